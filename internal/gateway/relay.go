package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"

	"github.com/verdictpdp/verdict/internal/gateway/sse"
	"github.com/verdictpdp/verdict/internal/mcp"
)

// failCalls answers the forwarded requests of a POST that got no answer.
func (p *Proxy) failCalls(w http.ResponseWriter, conn *Conn, in *Inbound, status int, msg string) {
	answers := append(in.Answers, p.e.Unanswered(conn, in.Calls, msg)...)
	if len(answers) == 0 {
		writeError(w, status, CodeUnavailable, msg)
		return
	}
	in.Answers = answers
	writeJSON(w, http.StatusOK, in.AnswerBody())
}

// relayAnswer hands the upstream's answer to a POST back to the client,
// checking every message in it.
func (p *Proxy) relayAnswer(ctx context.Context, w http.ResponseWriter, up *http.Response, conn *Conn, in *Inbound, sid, owner string) {
	newSID := up.Header.Get("Mcp-Session-Id")
	if sid == "" && newSID != "" {
		if !validSessionID(newSID) {
			p.opts.Logger.Warn("gateway: upstream assigned an invalid session id: answer withheld")
			p.failCalls(w, conn, in, http.StatusBadGateway, "the MCP server answered with an invalid session id")
			return
		}
		p.sessions.add(newSID, owner, conn)
		w.Header().Set("Mcp-Session-Id", newSID)
	}
	switch {
	case up.StatusCode == http.StatusNotFound && sid != "":
		p.sessions.remove(sid)
		p.e.Unanswered(conn, in.Calls, "")
		writeError(w, http.StatusNotFound, mcp.CodeInvalidRequest, "session not found: start a new session with initialize")
		return
	case up.StatusCode == http.StatusAccepted:
		// A request is answered with a result; 202 is for notifications.
		in.Answers = append(in.Answers, p.e.Unanswered(conn, in.Calls, "the MCP server accepted the request without answering it")...)
		if len(in.Answers) > 0 {
			writeJSON(w, http.StatusOK, in.AnswerBody())
			return
		}
		w.WriteHeader(http.StatusAccepted)
		return
	case up.StatusCode < 200 || up.StatusCode > 299:
		p.e.Unanswered(conn, in.Calls, "")
		p.relayFailure(w, up)
		return
	}
	mt, _, _ := mime.ParseMediaType(up.Header.Get("Content-Type"))
	switch mt {
	case "application/json":
		p.relayJSON(ctx, w, up, conn, in)
	case "text/event-stream":
		p.relayStream(ctx, w, up.Body, conn, in, sid != "" || newSID != "")
	default:
		p.opts.Logger.Warn("gateway: upstream answered with an unexpected content type", "content_type", mt)
		p.failCalls(w, conn, in, http.StatusBadGateway, "the MCP server's answer is not JSON or an event stream")
	}
}

// relayFailure passes on an upstream HTTP error: its status, and its body
// only when that is a JSON-RPC error message (bounded).
func (p *Proxy) relayFailure(w http.ResponseWriter, up *http.Response) {
	msg := fmt.Sprintf("the MCP server refused the request (HTTP %d)", up.StatusCode)
	body, _ := io.ReadAll(io.LimitReader(up.Body, 64<<10))
	if code, ok := errorCode(body); ok {
		// Only the code: the message and data of an answer matched to no
		// request are checked by nothing.
		msg = fmt.Sprintf("the MCP server refused the request (HTTP %d, JSON-RPC error %d)", up.StatusCode, code)
	}
	writeError(w, up.StatusCode, CodeUnavailable, msg)
}

// errorCode is the code of body when it is one JSON-RPC error response.
func errorCode(body []byte) (int, bool) {
	var m, e map[string]json.RawMessage
	var code int
	if json.Unmarshal(body, &m) != nil || json.Unmarshal(m["error"], &e) != nil || json.Unmarshal(e["code"], &code) != nil {
		return 0, false
	}
	return code, true
}

func (p *Proxy) relayJSON(ctx context.Context, w http.ResponseWriter, up *http.Response, conn *Conn, in *Inbound) {
	body, err := io.ReadAll(io.LimitReader(up.Body, p.opts.MaxBodyBytes+1))
	switch {
	case err != nil && ctx.Err() != nil:
		p.opts.Logger.Warn("gateway: the MCP server did not answer in time", "timeout", p.opts.UpstreamTimeout)
		p.failCalls(w, conn, in, http.StatusBadGateway, msgTimeout)
		return
	case err != nil:
		p.opts.Logger.Warn("gateway: upstream answer could not be read", "err", err)
		p.failCalls(w, conn, in, http.StatusBadGateway, "the MCP server's answer could not be read")
		return
	case int64(len(body)) > p.opts.MaxBodyBytes:
		p.opts.Logger.Warn("gateway: upstream answer too large: withheld", "limit", p.opts.MaxBodyBytes)
		p.failCalls(w, conn, in, http.StatusBadGateway, "the MCP server's answer is larger than the gateway's limit")
		return
	}
	out := append(p.e.ServerBody(ctx, conn, body), in.Answers...)
	out = append(out, p.e.Unanswered(conn, in.Calls, "the MCP server's answer did not include this request")...)
	if len(out) == 0 {
		w.WriteHeader(http.StatusAccepted)
		return
	}
	in.Answers = out
	writeJSON(w, http.StatusOK, in.AnswerBody())
}

// relayStream relays an SSE stream event by event. Each event's message is
// checked before it is written; a half event is never written. The stream
// ends when the upstream ends it or, for a POST, once every request is
// answered. Requests left unanswered get an error, unless the upstream
// gave its events ids and the session lives on: the client may then resume
// the stream with GET and Last-Event-ID.
func (p *Proxy) relayStream(ctx context.Context, w http.ResponseWriter, body io.Reader, conn *Conn, in *Inbound, session bool) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	// The client waits for the headers before it reads the stream.
	_ = http.NewResponseController(w).Flush()
	sw := sse.NewWriter(w)
	for _, a := range in.Answers {
		if sw.WriteEvent(sse.Event{Data: a}) != nil {
			return
		}
	}
	rd := sse.NewReader(body, p.opts.MaxEventBytes)
	resumable := false
	awaiting := func() bool {
		for _, k := range in.Calls {
			if conn.Pending(k) {
				return true
			}
		}
		return false
	}
	var err error
	for in.Calls == nil || awaiting() {
		var ev sse.Event
		ev, err = rd.Next()
		if err != nil {
			break
		}
		resumable = resumable || ev.HasID && ev.ID != ""
		if len(bytes.TrimSpace(ev.Data)) == 0 {
			continue
		}
		out := p.e.ServerBody(ctx, conn, ev.Data)
		for i, m := range out {
			e := sse.Event{Data: m, Type: ev.Type}
			if i == len(out)-1 {
				e.ID, e.HasID = ev.ID, ev.HasID
			}
			if werr := sw.WriteEvent(e); werr != nil {
				return // the client went away; its calls stay for a resumed stream
			}
		}
	}
	msg := "the MCP server ended its stream without answering"
	switch {
	case err == nil, errors.Is(err, io.EOF):
	case ctx.Err() != nil:
		p.opts.Logger.Warn("gateway: the MCP server did not answer in time", "timeout", p.opts.UpstreamTimeout)
		resumable, msg = false, msgTimeout
	case errors.Is(err, sse.ErrTooLarge):
		// Resuming would send the same event again.
		p.opts.Logger.Warn("gateway: upstream event over the size limit: stream ended", "limit", p.opts.MaxEventBytes)
		resumable, msg = false, "the MCP server sent a message larger than the gateway's limit"
	default:
		p.opts.Logger.Warn("gateway: upstream event stream failed", "err", err)
	}
	if resumable && session {
		return
	}
	for _, m := range p.e.Unanswered(conn, in.Calls, msg) {
		if sw.WriteEvent(sse.Event{Data: m}) != nil {
			return
		}
	}
}
