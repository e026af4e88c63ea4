package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/verdictpdp/verdict/internal/challenge"
	"github.com/verdictpdp/verdict/internal/gateway/sse"
	"github.com/verdictpdp/verdict/internal/identity"
	"github.com/verdictpdp/verdict/internal/mcp"
	mcpv1 "github.com/verdictpdp/verdict/proto/verdict/mcp/v1"
)

// Defaults of ProxyOptions.
const (
	DefaultMaxBodyBytes    = 4 << 20
	DefaultUpstreamTimeout = 5 * time.Minute
	DefaultPath            = "/mcp"
)

// msgTimeout answers the requests of a POST the upstream did not answer
// within UpstreamTimeout.
const msgTimeout = "the MCP server did not answer in time"

// VerifyFunc verifies a bearer token (without "Bearer ") and returns the
// subject it proves, or an identity error whose message is safe to send.
type VerifyFunc func(ctx context.Context, token string) (*mcpv1.Subject, *identity.Error)

// ProxyOptions configure a Proxy.
type ProxyOptions struct {
	// Upstream is the MCP server's Streamable HTTP endpoint.
	Upstream *url.URL
	// Client calls the upstream (default: a client without a total
	// timeout; UpstreamTimeout bounds each POST).
	Client *http.Client
	// UpstreamHeaders are added to every upstream request: the gateway's
	// own credentials for the server. The client's Authorization header is
	// never forwarded.
	UpstreamHeaders http.Header
	// Path is where the gateway serves MCP (default /mcp).
	Path string
	// Verify verifies bearer tokens; nil means the gateway takes no tokens
	// and every caller is Subject.
	Verify VerifyFunc
	// Subject is the caller when Verify is nil (nil: unauthenticated).
	Subject *mcpv1.Subject
	// Metadata is the RFC 9728 document; served when Metadata.Resource is
	// set, and named in every challenge.
	Metadata ResourceMetadata
	// MaxBodyBytes bounds a client's POST body and an upstream's JSON
	// answer; MaxEventBytes one SSE event (both default 4 MiB).
	MaxBodyBytes  int64
	MaxEventBytes int
	// UpstreamTimeout bounds how long the upstream may take to answer the
	// requests of one POST (default 5m).
	UpstreamTimeout time.Duration
	// Purpose and Region are the circumstances of every request
	// (input.context).
	Purpose, Region string
	// AllowedHosts are the host names (without port) clients may address
	// the gateway by, in Host and, when sent, Origin: a browser page on
	// another site cannot reach a gateway on loopback through DNS
	// rebinding. Empty allows any host.
	AllowedHosts []string
	// MaxSessions and SessionTTL bound the session table.
	MaxSessions int
	SessionTTL  time.Duration
	Logger      *slog.Logger
}

// Proxy is the Streamable HTTP transport of the gateway: an MCP endpoint
// that decides every message with its Enforcer and relays the allowed
// ones to the upstream server.
type Proxy struct {
	e            *Enforcer
	opts         ProxyOptions
	sessions     *sessions
	metaPath     string
	metaURL      string
	metaDocument []byte
}

// NewProxy returns the proxy.
func NewProxy(e *Enforcer, opts ProxyOptions) (*Proxy, error) {
	if opts.Upstream == nil || (opts.Upstream.Scheme != "http" && opts.Upstream.Scheme != "https") || opts.Upstream.Host == "" {
		return nil, errors.New("gateway: the upstream must be an http(s) URL")
	}
	if opts.Client == nil {
		opts.Client = &http.Client{Transport: defaultTransport()}
	}
	if opts.Path == "" {
		opts.Path = DefaultPath
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.MaxEventBytes <= 0 {
		opts.MaxEventBytes = int(min(opts.MaxBodyBytes, 1<<30))
	}
	if opts.UpstreamTimeout <= 0 {
		opts.UpstreamTimeout = DefaultUpstreamTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Proxy{e: e, opts: opts, sessions: newSessions(opts.MaxSessions, opts.SessionTTL)}
	if opts.Metadata.Resource != "" {
		path, u, err := MetadataPaths(opts.Metadata.Resource)
		if err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
		p.metaPath, p.metaURL, p.metaDocument = path, u, opts.Metadata.encode()
	}
	return p, nil
}

func defaultTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 64
	return t
}

// Run forgets idle sessions until ctx ends.
func (p *Proxy) Run(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			p.sessions.sweep(now)
		}
	}
}

// ServeHTTP serves the MCP endpoint and the protected resource metadata.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == p.opts.Path:
		if !p.hostAllowed(r) {
			writeError(w, http.StatusForbidden, mcp.CodeInvalidRequest, "this gateway is not served under that host or origin")
			return
		}
	case p.metaPath != "" && (r.URL.Path == p.metaPath || r.URL.Path == WellKnownMetadata):
		p.serveMetadata(w, r)
		return
	default:
		http.NotFound(w, r)
		return
	}
	switch r.Method {
	case http.MethodPost:
		p.post(w, r)
	case http.MethodGet:
		p.get(w, r)
	case http.MethodDelete:
		p.delete(w, r)
	default:
		w.Header().Set("Allow", "GET, POST, DELETE")
		writeError(w, http.StatusMethodNotAllowed, mcp.CodeInvalidRequest, "the MCP endpoint takes POST, GET and DELETE")
	}
}

func (p *Proxy) serveMetadata(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "max-age=300")
	_, _ = w.Write(p.metaDocument)
}

// authenticate returns the caller's subject, or writes the 401 challenge.
func (p *Proxy) authenticate(w http.ResponseWriter, r *http.Request) (*mcpv1.Subject, bool) {
	if p.opts.Verify == nil {
		return p.opts.Subject, true
	}
	tok, ierr := identity.BearerToken(r.Header.Get("Authorization"))
	if ierr == nil && tok == "" {
		p.challenge(w, challenge.Unauthorized(p.metaURL, false, ""), "authentication required: send a bearer token for this server")
		return nil, false
	}
	if ierr == nil {
		var sub *mcpv1.Subject
		sub, ierr = p.opts.Verify(r.Context(), tok)
		if ierr == nil {
			return sub, true
		}
	}
	p.challenge(w, challenge.Unauthorized(p.metaURL, true, ierr.Code), "the bearer token was refused: "+ierr.Message)
	return nil, false
}

func (p *Proxy) challenge(w http.ResponseWriter, c challenge.Challenge, msg string) {
	w.Header().Set("WWW-Authenticate", c.Header)
	writeError(w, c.Status, mcp.CodeDenied, msg)
}

// post relays one client POST: decide every message, forward the allowed
// ones, check what comes back.
func (p *Proxy) post(w http.ResponseWriter, r *http.Request) {
	sub, ok := p.authenticate(w, r)
	if !ok {
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, mcp.CodeInvalidRequest, "an MCP POST carries Content-Type: application/json")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, p.opts.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, mcp.CodeInvalidRequest, fmt.Sprintf("the message is larger than %d bytes", p.opts.MaxBodyBytes))
			return
		}
		writeError(w, http.StatusBadRequest, mcp.CodeParseError, "the request body could not be read")
		return
	}
	sid := r.Header.Get("Mcp-Session-Id")
	conn, owner, ok := p.conn(w, sid, sub)
	if !ok {
		return
	}
	env, err := mcp.FromHTTP(mcp.HTTPRequest{Headers: lowerHeaders(r.Header), Body: body, BodyComplete: true, MaxDepth: p.e.MaxDepth(), Sized: true})
	if err != nil {
		var rerr *mcp.RequestError
		if !errors.As(err, &rerr) {
			rerr = &mcp.RequestError{JSONRPCCode: mcp.CodeInvalidRequest, Reason: "the request is not an MCP message"}
		}
		writeError(w, http.StatusBadRequest, rerr.JSONRPCCode, rerr.Reason)
		return
	}
	if env.FromHeaders {
		// The gateway forwards what it decided: a body, never headers alone.
		writeError(w, http.StatusBadRequest, mcp.CodeInvalidRequest, "an MCP POST to the gateway carries its JSON-RPC body")
		return
	}
	raws, err := Split(body, env.Batch)
	if err != nil || len(raws) != len(env.Messages) {
		writeError(w, http.StatusBadRequest, mcp.CodeParseError, "the JSON-RPC batch could not be split")
		return
	}
	who := Caller{
		Subject: sub, SessionID: sid, ProtocolVersion: r.Header.Get("MCP-Protocol-Version"), SourceIP: sourceIP(r),
		Purpose: p.opts.Purpose, Region: p.opts.Region,
	}
	in := p.e.Client(r.Context(), conn, who, env.Messages, raws, env.Batch)
	if in.Challenge != nil {
		p.e.Unanswered(conn, in.Calls, "refused")
		p.writeChallenge(w, in)
		return
	}
	if len(in.Forward) == 0 {
		p.answerOnly(w, &in)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), p.opts.UpstreamTimeout)
	defer cancel()
	up, err := p.upstream(ctx, r, http.MethodPost, in.Body(), sid)
	if err != nil {
		p.opts.Logger.Warn("gateway: upstream request failed", "err", redactURLError(err))
		msg := "the MCP server could not be reached"
		if ctx.Err() != nil {
			msg = msgTimeout
		}
		p.failCalls(w, conn, &in, http.StatusBadGateway, msg)
		return
	}
	defer func() { _ = up.Body.Close() }()
	p.relayAnswer(ctx, w, up, conn, &in, sid, owner)
}

// conn returns the connection state for a request on session sid: the
// session's (owned by sub) or, without a session, one for this request.
func (p *Proxy) conn(w http.ResponseWriter, sid string, sub *mcpv1.Subject) (*Conn, string, bool) {
	owner := ownerKey(sub)
	if sid == "" {
		return p.e.NewConn(), owner, true
	}
	if !validSessionID(sid) {
		writeError(w, http.StatusBadRequest, mcp.CodeInvalidRequest, "Mcp-Session-Id must be visible ASCII, at most 256 bytes")
		return nil, "", false
	}
	c, ok := p.sessions.get(sid, owner)
	if !ok {
		// Unknown, expired, or someone else's: to the caller, all the same.
		writeError(w, http.StatusNotFound, mcp.CodeInvalidRequest, "session not found: start a new session with initialize")
		return nil, "", false
	}
	return c, owner, true
}

func (p *Proxy) writeChallenge(w http.ResponseWriter, in Inbound) {
	ch := in.Challenge
	var c challenge.Challenge
	if ch.GetHttpStatus() == http.StatusForbidden {
		c = challenge.InsufficientScope(p.metaURL, ch.GetScopes(), "")
	} else {
		c = challenge.Unauthorized(p.metaURL, ch.GetError() != "", "")
	}
	w.Header().Set("WWW-Authenticate", c.Header)
	if len(in.Answers) == 0 {
		writeError(w, c.Status, mcp.CodeDenied, "authorization required")
		return
	}
	writeJSON(w, c.Status, in.AnswerBody())
}

// answerOnly answers a POST none of whose messages were forwarded.
func (p *Proxy) answerOnly(w http.ResponseWriter, in *Inbound) {
	if in.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((in.RetryAfter+time.Second-1)/time.Second)))
	}
	if len(in.Answers) > 0 {
		writeJSON(w, http.StatusOK, in.AnswerBody())
		return
	}
	writeError(w, http.StatusForbidden, mcp.CodeDenied, "the message was refused by policy")
}

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

// upstream sends a request to the MCP server with the client's MCP headers
// and the gateway's own credentials.
func (p *Proxy) upstream(ctx context.Context, r *http.Request, method string, body []byte, sid string) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, p.opts.Upstream.String(), rd)
	if err != nil {
		return nil, err
	}
	for k, vs := range r.Header {
		if forwardHeader(k) {
			req.Header[k] = vs
		}
	}
	if sid != "" {
		req.Header.Set("Mcp-Session-Id", sid)
	}
	for k, vs := range p.opts.UpstreamHeaders {
		req.Header[http.CanonicalHeaderKey(k)] = vs
	}
	return p.opts.Client.Do(req)
}

// forwardHeader reports whether a client header goes upstream: MCP's own
// and content negotiation, never credentials or cookies.
func forwardHeader(name string) bool {
	switch http.CanonicalHeaderKey(name) {
	case "Content-Type", "Accept", "Last-Event-Id", "Mcp-Protocol-Version", "Traceparent", "Tracestate", "User-Agent":
		return true
	}
	return strings.HasPrefix(strings.ToLower(name), "mcp-") && !strings.EqualFold(name, "Mcp-Session-Id")
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

// sessionOf authenticates a GET or DELETE and returns the session it
// names, owned by the caller; otherwise it answered (missing is the
// reason for a request without a session id).
func (p *Proxy) sessionOf(w http.ResponseWriter, r *http.Request, missing string) (string, *Conn, bool) {
	sub, ok := p.authenticate(w, r)
	if !ok {
		return "", nil, false
	}
	sid := r.Header.Get("Mcp-Session-Id")
	if sid == "" {
		writeError(w, http.StatusBadRequest, mcp.CodeInvalidRequest, missing)
		return "", nil, false
	}
	conn, _, ok := p.conn(w, sid, sub)
	return sid, conn, ok
}

// get relays the server's stream of a session (GET), checking each message.
func (p *Proxy) get(w http.ResponseWriter, r *http.Request) {
	sid, conn, ok := p.sessionOf(w, r, "a GET stream needs an Mcp-Session-Id")
	if !ok {
		return
	}
	up, err := p.upstream(r.Context(), r, http.MethodGet, nil, sid)
	if err != nil {
		p.opts.Logger.Warn("gateway: upstream stream request failed", "err", redactURLError(err))
		writeError(w, http.StatusBadGateway, CodeUnavailable, "the MCP server could not be reached")
		return
	}
	defer func() { _ = up.Body.Close() }()
	if up.StatusCode == http.StatusNotFound {
		p.sessions.remove(sid)
	}
	mt, _, _ := mime.ParseMediaType(up.Header.Get("Content-Type"))
	if up.StatusCode != http.StatusOK || mt != "text/event-stream" {
		p.relayFailure(w, up)
		return
	}
	p.relayStream(r.Context(), w, up.Body, conn, &Inbound{Calls: nil}, true)
}

// delete ends a session upstream and here.
func (p *Proxy) delete(w http.ResponseWriter, r *http.Request) {
	sid, _, ok := p.sessionOf(w, r, "DELETE needs the Mcp-Session-Id of the session to end")
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	up, err := p.upstream(ctx, r, http.MethodDelete, nil, sid)
	if err != nil {
		p.opts.Logger.Warn("gateway: upstream session delete failed", "err", redactURLError(err))
		writeError(w, http.StatusBadGateway, CodeUnavailable, "the MCP server could not be reached")
		return
	}
	defer func() { _ = up.Body.Close() }()
	if up.StatusCode < 300 || up.StatusCode == http.StatusNotFound {
		p.sessions.remove(sid)
	}
	if up.StatusCode < 300 {
		w.WriteHeader(up.StatusCode)
		return
	}
	p.relayFailure(w, up)
}

// hostAllowed checks Host and Origin against AllowedHosts.
func (p *Proxy) hostAllowed(r *http.Request) bool {
	if len(p.opts.AllowedHosts) == 0 {
		return true
	}
	if !slices.Contains(p.opts.AllowedHosts, hostname(r.Host)) {
		return false
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && slices.Contains(p.opts.AllowedHosts, hostname(u.Host))
}

// hostname is host without its port, lower case, IPv6 without brackets.
func hostname(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return strings.ToLower(strings.Trim(host, "[]"))
}

func lowerHeaders(h http.Header) map[string]string {
	out := make(map[string]string, len(h))
	for k, vs := range h {
		out[strings.ToLower(k)] = strings.Join(vs, ",")
	}
	return out
}

func sourceIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return ""
	}
	return host
}

// redactURLError keeps an upstream URL (which may carry credentials in its
// query) out of logs.
func redactURLError(err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return fmt.Errorf("%s upstream: %w", uerr.Op, uerr.Err)
	}
	return err
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(body) //nolint:gosec // JSON-RPC for MCP clients, served as application/json with nosniff: never rendered as HTML
}

// writeError answers with a JSON-RPC error without an id (the request's
// messages were not read, or not one of them is the culprit).
func writeError(w http.ResponseWriter, status, code int, msg string) {
	writeJSON(w, status, errorResponse(json.RawMessage("null"), code, msg, nil))
}
