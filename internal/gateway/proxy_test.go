package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/verdictpdp/verdict/internal/gateway/sse"
	"github.com/verdictpdp/verdict/internal/identity"
	mcpv1 "github.com/verdictpdp/verdict/proto/verdict/mcp/v1"
)

const (
	callOK   = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ok"}}`
	textOK   = `{"content":[{"type":"text","text":"fine"}]}`
	sseHeads = "text/event-stream"
)

// wantGatewayError checks a whole-request refusal: status, a JSON-RPC
// error with id null, the code and a message naming the problem.
func wantGatewayError(t *testing.T, r *reply, status, code int, msg string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d (body %s)", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q, want application/json", ct)
	}
	if len(r.msgs) != 1 || r.msgs[0].Error == nil || r.msgs[0].JSONRPC != "2.0" {
		t.Fatalf("want one JSON-RPC error, got %s", r.body)
	}
	m := r.msgs[0]
	if string(m.ID) != "null" {
		t.Errorf("id %s, want null", m.ID)
	}
	if m.Error.Code != code {
		t.Errorf("code %d, want %d (%s)", m.Error.Code, code, m.Error.Message)
	}
	if !strings.Contains(m.Error.Message, msg) {
		t.Errorf("message %q does not name %q", m.Error.Message, msg)
	}
}

// wantError checks that the client got exactly one answer for id, an error
// with code whose message holds msg.
func wantError(t *testing.T, r *reply, id string, code int, msg string) {
	t.Helper()
	got := r.byID(id)
	if len(got) != 1 || got[0].Error == nil {
		t.Fatalf("id %s: want one error answer, got %s", id, r.body)
	}
	if got[0].Error.Code != code || !strings.Contains(got[0].Error.Message, msg) {
		t.Errorf("id %s: error %d %q, want %d naming %q", id, got[0].Error.Code, got[0].Error.Message, code, msg)
	}
}

func wantResult(t *testing.T, r *reply, id string) json.RawMessage {
	t.Helper()
	got := r.byID(id)
	if len(got) != 1 || got[0].Error != nil || len(got[0].Result) == 0 {
		t.Fatalf("id %s: want one result, got %s", id, r.body)
	}
	return got[0].Result
}

func wantNothingUpstream(t *testing.T, u *fakeUpstream) {
	t.Helper()
	if got := u.received(); len(got) != 0 {
		t.Errorf("upstream received %q", got)
	}
}

func TestProxyMalformed(t *testing.T) {
	deep := strings.Repeat(`{"a":`, 80) + "1" + strings.Repeat("}", 80)
	cases := []struct {
		name   string
		body   string
		ctype  string
		hdr    map[string]string
		status int
		code   int
		msg    string
	}{
		{name: "not JSON", body: `{"jsonrpc":"2.0","id":1,`, status: 400, code: -32700, msg: "invalid_json"},
		{name: "not JSON at all", body: `hello`, status: 400, code: -32700, msg: "JSON"},
		{name: "trailing data", body: callOK + `{}`, status: 400, code: -32700, msg: "trailing"},
		{name: "invalid UTF-8", body: "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"ok\xff\"}}", status: 400, code: -32700, msg: "UTF-8"},
		{name: "jsonrpc missing", body: `{"id":1,"method":"tools/call","params":{"name":"ok"}}`, status: 400, code: -32600, msg: `"jsonrpc" must be "2.0"`},
		{name: "jsonrpc 1.0", body: `{"jsonrpc":"1.0","id":1,"method":"ping"}`, status: 400, code: -32600, msg: `"jsonrpc" must be "2.0"`},
		{name: "duplicate member", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ok","name":"deny_rm"}}`, status: 400, code: -32600, msg: "duplicate"},
		{name: "duplicate member in a batch", body: `[` + callOK + `,{"jsonrpc":"2.0","id":2,"id":3,"method":"ping"}]`, status: 400, code: -32600, msg: "duplicate"},
		{name: "nesting too deep", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ok","arguments":` + deep + `}}`, status: 400, code: -32600, msg: "nesting is deeper than 64"},
		{name: "empty batch", body: `[]`, status: 400, code: -32600, msg: "batch is empty"},
		{name: "batch of non-objects", body: `[1,2]`, status: 400, code: -32600, msg: "not an object"},
		{name: "id null", body: `{"jsonrpc":"2.0","id":null,"method":"ping"}`, status: 400, code: -32600, msg: `"id" must be a string or a number`},
		{name: "id object", body: `{"jsonrpc":"2.0","id":{},"method":"ping"}`, status: 400, code: -32600, msg: `"id" must be a string or a number`},
		{name: "params array", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":["ok"]}`, status: 400, code: -32602, msg: `"params" must be an object`},
		{name: "method not a string", body: `{"jsonrpc":"2.0","id":1,"method":7}`, status: 400, code: -32600, msg: `"method" must be a string`},
		{name: "neither request nor response", body: `{"jsonrpc":"2.0","id":1}`, status: 400, code: -32600, msg: "not a response"},
		{name: "scalar body", body: `"tools/call"`, status: 400, code: -32600, msg: "not an object or array"},
		{name: "empty body", body: ``, status: 400, code: -32600, msg: "JSON-RPC body"},
		{name: "header-only request", body: ``, hdr: map[string]string{"Mcp-Method": "tools/call", "Mcp-Name": "ok", "MCP-Protocol-Version": "2026-07-28"}, status: 400, code: -32600, msg: "JSON-RPC body"},
		{name: "Mcp-Method disagrees", body: callOK, hdr: map[string]string{"Mcp-Method": "tools/list"}, status: 400, code: -32020, msg: "disagrees"},
		{name: "Mcp-Name disagrees", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"deny_rm"}}`, hdr: map[string]string{"Mcp-Method": "tools/call", "Mcp-Name": "ok"}, status: 400, code: -32020, msg: "disagrees"},
		{name: "wrong Content-Type", body: callOK, ctype: "text/plain", status: 415, code: -32600, msg: "Content-Type: application/json"},
		{name: "no Content-Type", body: callOK, ctype: "-", status: 415, code: -32600, msg: "Content-Type: application/json"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			up := newUpstream(t, func(w http.ResponseWriter, _ *http.Request, body []byte) { answerAll(w, body, textOK) })
			d := &proxyStub{}
			p := newTestProxy(t, d, up.URL)
			hdr := map[string]string{}
			for k, v := range tc.hdr {
				hdr[k] = v
			}
			switch tc.ctype {
			case "":
			case "-":
				hdr["Content-Type"] = ""
			default:
				hdr["Content-Type"] = tc.ctype
			}
			r := send(t, p, http.MethodPost, tc.body, hdr)
			wantGatewayError(t, r, tc.status, tc.code, tc.msg)
			wantNothingUpstream(t, up)
			if n := d.asked(); n != 0 {
				t.Errorf("the decider was asked %d times about a malformed body", n)
			}
		})
	}
}

// endless is a body that never ends, counting what was read of it.
type endless struct {
	mu sync.Mutex
	n  int64
}

func (e *endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	e.mu.Lock()
	e.n += int64(len(p))
	e.mu.Unlock()
	return len(p), nil
}

func TestProxyOversizedBody(t *testing.T) {
	const limit = 4096
	for _, tc := range []struct {
		name string
		body func() (io.Reader, *endless)
	}{
		{"endless body", func() (io.Reader, *endless) {
			e := &endless{}
			return io.MultiReader(strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ok"}}`), e), e
		}},
		{"one byte over", func() (io.Reader, *endless) {
			pad := limit + 1 - len(callOK)
			return strings.NewReader(callOK[:len(callOK)-1] + strings.Repeat(" ", pad) + "}"), nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := newUpstream(t, func(w http.ResponseWriter, _ *http.Request, body []byte) { answerAll(w, body, textOK) })
			d := &proxyStub{}
			p := newTestProxy(t, d, up.URL, func(po *ProxyOptions, _ *Options) { po.MaxBodyBytes = limit })
			body, count := tc.body()
			req := httptest.NewRequest(http.MethodPost, "http://gw.test/mcp", body)
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			p.ServeHTTP(rec, req)
			r, err := readReply(rec.Result())
			if err != nil {
				t.Fatal(err)
			}
			wantGatewayError(t, r, http.StatusRequestEntityTooLarge, -32600, fmt.Sprintf("larger than %d bytes", limit))
			wantNothingUpstream(t, up)
			if d.asked() != 0 {
				t.Error("the decider was asked about an oversized body")
			}
			if count != nil {
				// MaxBytesReader reads at most one byte past the limit.
				if read := count.n + int64(len(callOK)); read > limit+1 {
					t.Errorf("read %d bytes of the body, limit %d", read, limit)
				}
			}
		})
	}
	t.Run("exactly the limit", func(t *testing.T) {
		up := newUpstream(t, func(w http.ResponseWriter, _ *http.Request, body []byte) { answerAll(w, body, textOK) })
		p := newTestProxy(t, &proxyStub{}, up.URL, func(po *ProxyOptions, _ *Options) { po.MaxBodyBytes = limit })
		body := callOK[:len(callOK)-1] + strings.Repeat(" ", limit-len(callOK)) + "}"
		r := send(t, p, http.MethodPost, body, nil)
		wantResult(t, r, "1")
	})
}

// upstreamMode answers as JSON or as an event stream.
type upstreamMode string

const (
	modeJSON upstreamMode = "json"
	modeSSE  upstreamMode = "sse"
)

// answerMode answers every request of body with result, in mode.
func answerMode(mode upstreamMode, w http.ResponseWriter, body []byte, result func(upMsg) string) {
	ms, batch, err := readMsgs(body)
	if err != nil {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	var out []string
	for _, m := range ms {
		if len(m.ID) > 0 && m.Method != "" {
			out = append(out, `{"jsonrpc":"2.0","id":`+string(m.ID)+`,"result":`+result(m)+`}`)
		}
	}
	if len(out) == 0 {
		w.WriteHeader(http.StatusAccepted)
		return
	}
	if mode == modeSSE {
		w.Header().Set("Content-Type", sseHeads)
		for _, o := range out {
			_, _ = fmt.Fprintf(w, "event: message\ndata: %s\n\n", o)
		}
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if batch {
		_, _ = io.WriteString(w, "["+strings.Join(out, ",")+"]")
		return
	}
	_, _ = io.WriteString(w, out[0])
}

func TestProxyMixedBatch(t *testing.T) {
	const (
		el1 = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ok"}}`
		el2 = `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"deny_rm","arguments":{"path":"/"}}}`
		el3 = `{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"t","progress":1}}`
		el4 = `{"jsonrpc":"2.0","id":"three","method":"tools/list"}`
		el5 = `{"jsonrpc":"2.0","method":"tools/call","params":{"name":"deny_notify"}}`
		el6 = `{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"deny_other"}}`
	)
	for _, mode := range []upstreamMode{modeJSON, modeSSE} {
		t.Run(string(mode), func(t *testing.T) {
			up := newUpstream(t, func(w http.ResponseWriter, _ *http.Request, body []byte) {
				answerMode(mode, w, body, func(m upMsg) string {
					if m.Method == "tools/list" {
						return `{"tools":[{"name":"a"},{"name":"hidden_b"}]}`
					}
					return textOK
				})
			})
			d := &proxyStub{}
			p := newTestProxy(t, d, up.URL)
			r := send(t, p, http.MethodPost, "["+strings.Join([]string{el1, el2, el3, el4, el5, el6}, ",")+"]", nil)
			if r.status != http.StatusOK {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			got := up.received()
			if want := "[" + el1 + "," + el3 + "," + el4 + "]"; len(got) != 1 || string(got[0]) != want {
				t.Fatalf("upstream received %q, want exactly %s", got, want)
			}
			wantResult(t, r, "1")
			wantError(t, r, "2", -32001, "denied: deny_rm")
			wantError(t, r, "6", -32001, "denied: deny_other")
			if list := wantResult(t, r, `"three"`); strings.Contains(string(list), "hidden") {
				t.Errorf("the list leaked a hidden tool: %s", list)
			}
			if len(r.msgs) != 4 {
				t.Errorf("client got %d messages, want 4: %s", len(r.msgs), r.body)
			}
		})
	}
	t.Run("all denied", func(t *testing.T) {
		up := newUpstream(t, func(w http.ResponseWriter, _ *http.Request, body []byte) { answerAll(w, body, textOK) })
		p := newTestProxy(t, &proxyStub{}, up.URL)
		r := send(t, p, http.MethodPost, "["+el2+","+el5+","+el6+"]", nil)
		wantNothingUpstream(t, up)
		wantError(t, r, "2", -32001, "denied: deny_rm")
		wantError(t, r, "6", -32001, "denied: deny_other")
		if len(r.msgs) != 2 {
			t.Errorf("client got %d messages: %s", len(r.msgs), r.body)
		}
	})
	t.Run("one id twice", func(t *testing.T) {
		up := newUpstream(t, func(w http.ResponseWriter, _ *http.Request, body []byte) { answerAll(w, body, textOK) })
		p := newTestProxy(t, &proxyStub{}, up.URL)
		twin := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"other"}}`
		twinStr := `{"jsonrpc":"2.0","id":"1","method":"tools/call","params":{"name":"str"}}`
		r := send(t, p, http.MethodPost, "["+el1+","+twin+","+twinStr+"]", nil)
		got := up.received()
		// A string id "1" is another id than the number 1.
		if want := "[" + el1 + "," + twinStr + "]"; len(got) != 1 || string(got[0]) != want {
			t.Fatalf("upstream received %q, want %s", got, want)
		}
		ones := r.byID("1")
		if len(ones) != 2 {
			t.Fatalf("want two answers for id 1, got %s", r.body)
		}
		var results, errs int
		for _, m := range ones {
			switch {
			case m.Error != nil && m.Error.Code == -32600 && strings.Contains(m.Error.Message, "id twice"):
				errs++
			case m.Error == nil && len(m.Result) > 0:
				results++
			}
		}
		if results != 1 || errs != 1 {
			t.Errorf("want one result and one -32600 for id 1: %s", r.body)
		}
		wantResult(t, r, `"1"`)
	})
}

func TestProxyUnknownIDs(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write func(w http.ResponseWriter)
		// answered: the real request gets its result.
		answered bool
	}{
		{"JSON stray only", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"jsonrpc":"2.0","id":99,"result":{"content":[{"type":"text","text":"LEAK"}]}}`)
		}, false},
		{"JSON batch stray and real", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `[{"jsonrpc":"2.0","id":99,"result":{"content":[{"type":"text","text":"LEAK"}]}},{"jsonrpc":"2.0","id":"1","result":{"content":[{"type":"text","text":"LEAK"}]}},{"jsonrpc":"2.0","id":1,"result":`+textOK+`}]`)
		}, true},
		{"JSON answer twice", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `[{"jsonrpc":"2.0","id":1,"result":`+textOK+`},{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"LEAK"}]}}]`)
		}, true},
		{"SSE stray then end", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", sseHeads)
			_, _ = io.WriteString(w, "data: {\"jsonrpc\":\"2.0\",\"id\":99,\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"LEAK\"}]}}\n\n")
		}, false},
		{"SSE stray then real", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", sseHeads)
			_, _ = io.WriteString(w, "data: {\"jsonrpc\":\"2.0\",\"id\":99,\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"LEAK\"}]}}\n\n")
			_, _ = io.WriteString(w, "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":"+textOK+"}\n\n")
		}, true},
		{"SSE invalid JSON event", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", sseHeads)
			_, _ = io.WriteString(w, "data: {\"jsonrpc\":\"2.0\",\"id\":1,LEAK\n\n")
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := newUpstream(t, func(w http.ResponseWriter, _ *http.Request, _ []byte) { tc.write(w) })
			p := newTestProxy(t, &proxyStub{}, up.URL)
			r := send(t, p, http.MethodPost, callOK, nil)
			if strings.Contains(string(r.body), "LEAK") || strings.Contains(string(r.body), "99") {
				t.Errorf("a message the client never asked for leaked: %s", r.body)
			}
			if tc.answered {
				wantResult(t, r, "1")
			} else {
				wantError(t, r, "1", CodeUnavailable, "")
			}
			if len(r.msgs) != 1 {
				t.Errorf("client got %d messages, want 1: %s", len(r.msgs), r.body)
			}
		})
	}
}

func TestProxySSECut(t *testing.T) {
	const half = `data: {"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"HALF"}]}}` + "\n"
	for _, tc := range []struct {
		name  string
		serve func(w http.ResponseWriter)
	}{
		{"half an event, then the end", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", sseHeads)
			_, _ = io.WriteString(w, half)
		}},
		{"half a line, then the end", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", sseHeads)
			_, _ = io.WriteString(w, half[:40])
		}},
		{"connection closed mid-chunk", func(w http.ResponseWriter) {
			conn, bw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				panic(err)
			}
			defer func() { _ = conn.Close() }()
			_, _ = fmt.Fprintf(bw, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s", len(half)+1, half)
			_ = bw.Flush()
		}},
		{"connection closed, no length", func(w http.ResponseWriter) {
			conn, bw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				panic(err)
			}
			defer func() { _ = conn.Close() }()
			_, _ = io.WriteString(bw, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"+half)
			_ = bw.Flush()
		}},
		{"connection closed after a complete other event", func(w http.ResponseWriter) {
			conn, bw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				panic(err)
			}
			defer func() { _ = conn.Close() }()
			_, _ = io.WriteString(bw, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"+
				"data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"level\":\"info\",\"data\":\"x\"}}\n\n"+half)
			_ = bw.Flush()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := newUpstream(t, func(w http.ResponseWriter, _ *http.Request, _ []byte) { tc.serve(w) })
			p := newTestProxy(t, &proxyStub{}, up.URL)
			r := send(t, p, http.MethodPost, callOK, nil)
			if !r.sse {
				t.Fatalf("want an event stream, got %d %s", r.status, r.body)
			}
			if strings.Contains(string(r.body), "HALF") {
				t.Errorf("the half event was forwarded: %s", r.body)
			}
			wantError(t, r, "1", CodeUnavailable, "stream")
		})
	}
}

func TestProxyHangingUpstream(t *testing.T) {
	for _, tc := range []struct {
		name  string
		serve func(w http.ResponseWriter)
	}{
		{"no answer at all", func(http.ResponseWriter) {}},
		{"JSON headers, no body", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			_ = http.NewResponseController(w).Flush()
		}},
		{"JSON half a body", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"jsonrpc":"2.0","id":1,"res`)
			_ = http.NewResponseController(w).Flush()
		}},
		{"SSE headers, no events", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", sseHeads)
			w.WriteHeader(http.StatusOK)
			_ = http.NewResponseController(w).Flush()
		}},
		{"SSE keep-alive comments only", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", sseHeads)
			w.WriteHeader(http.StatusOK)
			for range 20 {
				_, _ = io.WriteString(w, ": ping\n\n")
				_ = http.NewResponseController(w).Flush()
				time.Sleep(50 * time.Millisecond)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stop := make(chan struct{})
			up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
				tc.serve(w)
				select {
				case <-r.Context().Done():
				case <-stop:
				}
			})
			t.Cleanup(func() { close(stop) }) // runs before up.Close
			p := newTestProxy(t, &proxyStub{}, up.URL, func(po *ProxyOptions, _ *Options) { po.UpstreamTimeout = 200 * time.Millisecond })
			start := time.Now()
			r := send(t, p, http.MethodPost, callOK, nil)
			if el := time.Since(start); el > 3*time.Second {
				t.Errorf("the client waited %v", el)
			}
			wantError(t, r, "1", CodeUnavailable, "in time")
		})
	}
}

func TestProxyUpstreamDown(t *testing.T) {
	up := newUpstream(t, func(http.ResponseWriter, *http.Request, []byte) {})
	addr := up.Listener.Addr().String()
	up.Close()
	p := newTestProxy(t, &proxyStub{}, up.URL)
	r := send(t, p, http.MethodPost, `[`+callOK+`,{"jsonrpc":"2.0","id":2,"method":"tools/list"},{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"deny_x"}}]`, nil)
	wantError(t, r, "1", CodeUnavailable, "could not be reached")
	wantError(t, r, "2", CodeUnavailable, "could not be reached")
	wantError(t, r, "3", -32001, "denied: deny_x")
	host := addr[:strings.LastIndex(addr, ":")]
	if strings.Contains(string(r.body), addr) || strings.Contains(string(r.body), host) || strings.Contains(string(r.body), "connect") {
		t.Errorf("the error names internals: %s", r.body)
	}
	t.Run("notification only", func(t *testing.T) {
		r := send(t, p, http.MethodPost, `{"jsonrpc":"2.0","method":"notifications/initialized"}`, nil)
		wantGatewayError(t, r, http.StatusBadGateway, CodeUnavailable, "could not be reached")
	})
}

func TestProxyResults(t *testing.T) {
	const big = 8192
	result := func(m upMsg) string {
		var params struct {
			Name string `json:"name"`
		}
		_ = json.Unmarshal(m.Params, &params)
		switch {
		case m.Method == "tools/list":
			return `{"tools":[{"name":"a"},{"name":"hidden_b"},{"name":"c"}]}`
		case params.Name == "secret":
			return `{"content":[{"type":"text","text":"the SECRET is 42"}]}`
		case params.Name == "block":
			return `{"content":[{"type":"text","text":"BLOCK me"}]}`
		case params.Name == "big":
			return `{"content":[{"type":"text","text":"` + strings.Repeat("x", big) + `"}]}`
		case params.Name == "array":
			return `[1,2]`
		}
		return textOK
	}
	call := func(name string) string {
		return `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"` + name + `"}}`
	}
	for _, mode := range []upstreamMode{modeJSON, modeSSE} {
		t.Run(string(mode), func(t *testing.T) {
			up := newUpstream(t, func(w http.ResponseWriter, _ *http.Request, body []byte) { answerMode(mode, w, body, result) })
			d := &proxyStub{}
			p := newTestProxy(t, d, up.URL, func(po *ProxyOptions, _ *Options) { po.MaxBodyBytes = big })
			t.Run("redact", func(t *testing.T) {
				r := send(t, p, http.MethodPost, call("secret"), nil)
				res := string(wantResult(t, r, "1"))
				if strings.Contains(res, "SECRET") || !strings.Contains(res, "[redacted] is 42") {
					t.Errorf("not redacted: %s", res)
				}
			})
			t.Run("block", func(t *testing.T) {
				r := send(t, p, http.MethodPost, call("block"), nil)
				wantError(t, r, "1", -32001, "result blocked")
				if strings.Contains(string(r.body), "BLOCK me") {
					t.Errorf("the blocked result leaked: %s", r.body)
				}
			})
			t.Run("pass", func(t *testing.T) {
				r := send(t, p, http.MethodPost, call("plain"), nil)
				if res := wantResult(t, r, "1"); string(res) != textOK {
					t.Errorf("result %s, want %s unchanged", res, textOK)
				}
			})
			t.Run("filter", func(t *testing.T) {
				r := send(t, p, http.MethodPost, `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, nil)
				var res struct {
					Tools []struct{ Name string } `json:"tools"`
				}
				if err := json.Unmarshal(wantResult(t, r, "1"), &res); err != nil {
					t.Fatal(err)
				}
				if len(res.Tools) != 2 || res.Tools[0].Name != "a" || res.Tools[1].Name != "c" {
					t.Errorf("filtered list %+v, want a and c", res.Tools)
				}
			})
			t.Run("not an object", func(t *testing.T) {
				r := send(t, p, http.MethodPost, call("array"), nil)
				wantError(t, r, "1", CodeUnavailable, "not a JSON object")
			})
			t.Run("too large", func(t *testing.T) {
				r := send(t, p, http.MethodPost, call("big"), nil)
				wantError(t, r, "1", CodeUnavailable, "")
				if strings.Contains(string(r.body), "xxxx") {
					t.Errorf("the oversized answer leaked")
				}
			})
		})
	}
	t.Run("decider fails", func(t *testing.T) {
		up := newUpstream(t, func(w http.ResponseWriter, _ *http.Request, body []byte) { answerMode(modeJSON, w, body, result) })
		d := &proxyStub{}
		p := newTestProxy(t, d, up.URL)
		d.mu.Lock()
		d.err = fmt.Errorf("rpc error: dial tcp 10.1.2.3:9000: connection refused")
		d.mu.Unlock()
		r := send(t, p, http.MethodPost, call("secret"), nil)
		wantError(t, r, "1", CodeUnavailable, "could not decide")
		wantNothingUpstream(t, up)
		if strings.Contains(string(r.body), "10.1.2.3") || strings.Contains(string(r.body), "refused") {
			t.Errorf("the decider's error leaked: %s", r.body)
		}
	})
}

// sessionUpstream is an MCP server with sessions: initialize creates
// "sess-1"; tools/call "ask" sends the client a sampling request before
// its answer; client answers are taken with 202.
func sessionUpstream(t *testing.T, hold chan struct{}, arrived chan struct{}) *fakeUpstream {
	t.Helper()
	return newUpstream(t, func(w http.ResponseWriter, r *http.Request, body []byte) {
		if r.Method != http.MethodPost {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		ms, _, err := readMsgs(body)
		if err != nil || len(ms) == 0 {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		m := ms[0]
		var params struct {
			Name string `json:"name"`
		}
		_ = json.Unmarshal(m.Params, &params)
		switch {
		case m.Method == "initialize":
			w.Header().Set("Mcp-Session-Id", "sess-1")
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"jsonrpc":"2.0","id":`+string(m.ID)+`,"result":{"protocolVersion":"2025-06-18","capabilities":{},"serverInfo":{"name":"up","version":"1"}}}`)
		case r.Header.Get("Mcp-Session-Id") != "sess-1":
			w.WriteHeader(http.StatusNotFound)
		case m.Method == "":
			w.WriteHeader(http.StatusAccepted)
		case params.Name == "ask":
			w.Header().Set("Content-Type", sseHeads)
			_, _ = io.WriteString(w, "data: {\"jsonrpc\":\"2.0\",\"id\":\"srv-1\",\"method\":\"sampling/createMessage\",\"params\":{\"messages\":[],\"maxTokens\":1}}\n\n")
			_, _ = io.WriteString(w, "data: {\"jsonrpc\":\"2.0\",\"id\":"+string(m.ID)+",\"result\":"+textOK+"}\n\n")
		case params.Name == "slow":
			if arrived != nil {
				arrived <- struct{}{}
			}
			select {
			case <-hold:
			case <-r.Context().Done():
			}
			answerAll(w, body, textOK)
		default:
			answerAll(w, body, textOK)
		}
	})
}

const initialize = `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"c","version":"1"}}}`

func TestProxyClientResponses(t *testing.T) {
	up := sessionUpstream(t, nil, nil)
	p := newTestProxy(t, &proxyStub{}, up.URL)
	r := send(t, p, http.MethodPost, initialize, nil)
	if sid := r.header.Get("Mcp-Session-Id"); sid != "sess-1" {
		t.Fatalf("session %q: %s", sid, r.body)
	}
	hdr := map[string]string{"Mcp-Session-Id": "sess-1"}
	n := len(up.received())

	// An answer to a request the server never sent.
	r = send(t, p, http.MethodPost, `{"jsonrpc":"2.0","id":"srv-1","result":{"role":"assistant","content":{"type":"text","text":"x"}}}`, hdr)
	if r.status != http.StatusForbidden && r.status != http.StatusAccepted {
		t.Errorf("status %d for an unasked answer: %s", r.status, r.body)
	}
	if got := up.received(); len(got) != n {
		t.Fatalf("an answer to a request never sent was forwarded: %q", got[n:])
	}

	// The server asks (on the stream of a POST), the client answers.
	r = send(t, p, http.MethodPost, `{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"ask"}}`, hdr)
	if got := r.byID(`"srv-1"`); len(got) != 1 || got[0].Method != "sampling/createMessage" {
		t.Fatalf("the server request did not reach the client: %s", r.body)
	}
	wantResult(t, r, "5")
	n = len(up.received())
	answer := `{"jsonrpc":"2.0","id":"srv-1","result":{"role":"assistant","content":{"type":"text","text":"x"}}}`
	r = send(t, p, http.MethodPost, answer, hdr)
	if r.status != http.StatusAccepted {
		t.Errorf("status %d: %s", r.status, r.body)
	}
	if got := up.received(); len(got) != n+1 || string(got[n]) != answer {
		t.Fatalf("the answer to a real server request was not forwarded: %q", got[n:])
	}
	// Only once.
	r = send(t, p, http.MethodPost, answer, hdr)
	if got := up.received(); len(got) != n+1 {
		t.Errorf("a second answer to the same server request was forwarded (status %d)", r.status)
	}
	// An answer with another id type is another id.
	_ = send(t, p, http.MethodPost, `{"jsonrpc":"2.0","id":5,"result":{}}`, hdr)
	if got := up.received(); len(got) != n+1 {
		t.Errorf("an answer to the client's own request id was forwarded")
	}
}

func TestProxyInFlightID(t *testing.T) {
	hold, arrived := make(chan struct{}), make(chan struct{}, 1)
	up := sessionUpstream(t, hold, arrived)
	p := newTestProxy(t, &proxyStub{}, up.URL)
	_ = send(t, p, http.MethodPost, initialize, nil)
	hdr := map[string]string{"Mcp-Session-Id": "sess-1"}
	slow := `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"slow"}}`
	done := make(chan *reply, 1)
	go func() { done <- send(t, p, http.MethodPost, slow, hdr) }()
	<-arrived
	n := len(up.received())
	r := send(t, p, http.MethodPost, `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"other"}}`, hdr)
	wantError(t, r, "7", -32600, "still in flight")
	if got := up.received(); len(got) != n {
		t.Errorf("the reused id was forwarded: %q", got[n:])
	}
	// Another session (here: none) is another connection.
	r = send(t, p, http.MethodPost, `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"fine"}}`, nil)
	if r.status != http.StatusNotFound {
		// sessionUpstream answers 404 without its session: passed through.
		t.Errorf("status %d: %s", r.status, r.body)
	}
	close(hold)
	wantResult(t, <-done, "7")
	// Answered: the id may be used again.
	r = send(t, p, http.MethodPost, `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"other"}}`, hdr)
	wantResult(t, r, "7")
}

func TestProxyInexactIntegers(t *testing.T) {
	for _, n := range []string{"9007199254740993", "-9007199254740993", "9007199254740994", "18446744073709551617", "1" + strings.Repeat("0", 400)} {
		t.Run(n, func(t *testing.T) {
			up := newUpstream(t, func(w http.ResponseWriter, _ *http.Request, body []byte) { answerAll(w, body, textOK) })
			d := &proxyStub{}
			p := newTestProxy(t, d, up.URL)
			r := send(t, p, http.MethodPost, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ok","arguments":{"n":[`+n+`]}}}`, nil)
			wantError(t, r, "1", -32602, "")
			wantNothingUpstream(t, up)
			if d.asked() != 0 {
				t.Error("the decider was asked about an inexact number")
			}
		})
	}
	for _, n := range []string{"9007199254740992", "-9007199254740991", "1.5e300", "9007199254740993.5"} {
		t.Run("exact "+n, func(t *testing.T) {
			up := newUpstream(t, func(w http.ResponseWriter, _ *http.Request, body []byte) { answerAll(w, body, textOK) })
			p := newTestProxy(t, &proxyStub{}, up.URL)
			r := send(t, p, http.MethodPost, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ok","arguments":{"n":`+n+`}}}`, nil)
			wantResult(t, r, "1")
		})
	}
}

func TestProxySessionBinding(t *testing.T) {
	up := sessionUpstream(t, nil, nil)
	verify := func(_ context.Context, tok string) (*mcpv1.Subject, *identity.Error) {
		switch tok {
		case "tok-a":
			return &mcpv1.Subject{Id: "alice"}, nil
		case "tok-b":
			return &mcpv1.Subject{Id: "bob"}, nil
		}
		return nil, &identity.Error{Code: "invalid_token", Message: "unknown token"}
	}
	p := newTestProxy(t, &proxyStub{}, up.URL, func(po *ProxyOptions, _ *Options) { po.Verify = verify; po.Subject = nil })
	r := send(t, p, http.MethodPost, initialize, map[string]string{"Authorization": "Bearer tok-a"})
	if r.header.Get("Mcp-Session-Id") != "sess-1" {
		t.Fatalf("no session: %d %s", r.status, r.body)
	}
	if n := p.sessions.len(); n != 1 {
		t.Fatalf("%d sessions", n)
	}
	for _, tc := range []struct {
		name, method, tok, sid string
		status                 int
	}{
		{"owner", http.MethodPost, "tok-a", "sess-1", http.StatusOK},
		{"another subject", http.MethodPost, "tok-b", "sess-1", http.StatusNotFound},
		{"another subject GET", http.MethodGet, "tok-b", "sess-1", http.StatusNotFound},
		{"another subject DELETE", http.MethodDelete, "tok-b", "sess-1", http.StatusNotFound},
		{"unknown session", http.MethodPost, "tok-a", "sess-2", http.StatusNotFound},
		{"invalid session id", http.MethodPost, "tok-a", "sess 1", http.StatusBadRequest},
		{"control character", http.MethodPost, "tok-a", "sess-1\x7f", http.StatusBadRequest},
		{"too long", http.MethodPost, "tok-a", strings.Repeat("s", 257), http.StatusBadRequest},
		{"no token", http.MethodPost, "", "sess-1", http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hdr := map[string]string{"Mcp-Session-Id": tc.sid}
			if tc.tok != "" {
				hdr["Authorization"] = "Bearer " + tc.tok
			}
			before := len(up.received())
			r := send(t, p, tc.method, callOK, hdr)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if tc.status == http.StatusOK {
				wantResult(t, r, "1")
				return
			}
			if len(r.msgs) != 1 || r.msgs[0].Error == nil || string(r.msgs[0].ID) != "null" {
				t.Errorf("want a JSON-RPC error with id null: %s", r.body)
			}
			if got := up.received(); len(got) != before {
				t.Errorf("upstream received %q", got[before:])
			}
		})
	}
	if n := p.sessions.len(); n != 1 {
		t.Errorf("%d sessions after refusals, want the one", n)
	}
	// The upstream forgets the session: the gateway does too.
	r = send(t, p, http.MethodPost, callOK, map[string]string{"Authorization": "Bearer tok-a", "Mcp-Session-Id": "sess-1"})
	if r.status != http.StatusOK {
		t.Fatalf("status %d", r.status)
	}
	up.Close()
	gone := newUpstream(t, func(w http.ResponseWriter, _ *http.Request, _ []byte) { w.WriteHeader(http.StatusNotFound) })
	p.opts.Upstream, _ = url.Parse(gone.URL)
	r = send(t, p, http.MethodPost, callOK, map[string]string{"Authorization": "Bearer tok-a", "Mcp-Session-Id": "sess-1"})
	if r.status != http.StatusNotFound || p.sessions.len() != 0 {
		t.Errorf("status %d, %d sessions after the upstream's 404", r.status, p.sessions.len())
	}
}

func TestProxyHostOrigin(t *testing.T) {
	up := newUpstream(t, func(w http.ResponseWriter, _ *http.Request, body []byte) { answerAll(w, body, textOK) })
	p := newTestProxy(t, &proxyStub{}, up.URL, func(po *ProxyOptions, _ *Options) { po.AllowedHosts = []string{"gw.test", "::1"} })
	for _, tc := range []struct {
		name, host, origin string
		status             int
	}{
		{"allowed host", "gw.test", "", 200},
		{"allowed host with port and origin", "gw.test:8443", "https://gw.test:8443", 200},
		{"IPv6 host", "[::1]:80", "http://[::1]", 200},
		{"foreign host", "evil.test", "", 403},
		{"foreign origin", "gw.test", "https://evil.test", 403},
		{"rebinding", "evil.test", "http://evil.test", 403},
		{"origin null", "gw.test", "null", 403},
		{"host suffix", "gw.test.evil.test", "", 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(up.received())
			hdr := map[string]string{"Host": tc.host}
			if tc.origin != "" {
				hdr["Origin"] = tc.origin
			}
			r := send(t, p, http.MethodPost, callOK, hdr)
			if tc.status == 200 {
				wantResult(t, r, "1")
				return
			}
			wantGatewayError(t, r, http.StatusForbidden, -32600, "host or origin")
			if got := up.received(); len(got) != before {
				t.Errorf("upstream received %q", got[before:])
			}
		})
	}
}

func TestProxyUpstreamStatus(t *testing.T) {
	for _, tc := range []struct {
		name     string
		body     string
		serve    func(w http.ResponseWriter)
		status   int
		check    func(t *testing.T, r *reply)
		forwards bool
	}{
		{"notification 202", `{"jsonrpc":"2.0","method":"notifications/initialized"}`, func(w http.ResponseWriter) { w.WriteHeader(http.StatusAccepted) }, http.StatusAccepted,
			func(t *testing.T, r *reply) {
				t.Helper()
				if len(r.body) != 0 {
					t.Errorf("202 with a body: %s", r.body)
				}
			}, true},
		{"202 for a request", callOK, func(w http.ResponseWriter) { w.WriteHeader(http.StatusAccepted) }, http.StatusOK, func(t *testing.T, r *reply) {
			t.Helper()
			wantError(t, r, "1", CodeUnavailable, "without answering")
		}, true},
		{"unexpected content type", callOK + "", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "text/html")
			_, _ = io.WriteString(w, `{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"LEAK"}]}}`)
		}, http.StatusOK, func(t *testing.T, r *reply) {
			t.Helper()
			wantError(t, r, "1", CodeUnavailable, "not JSON or an event stream")
		}, true},
		{"no content type", callOK, func(w http.ResponseWriter) {
			w.Header()["Content-Type"] = nil
			w.WriteHeader(http.StatusOK)
			_, _ = io.WriteString(w, `{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"LEAK"}]}}`)
		}, http.StatusOK, func(t *testing.T, r *reply) {
			t.Helper()
			wantError(t, r, "1", CodeUnavailable, "not JSON or an event stream")
		}, true},
		{"unexpected content type in a batch", `[` + callOK + `,{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"deny_x"}}]`, func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/octet-stream")
			_, _ = io.WriteString(w, "LEAK")
		}, http.StatusOK, func(t *testing.T, r *reply) {
			t.Helper()
			wantError(t, r, "1", CodeUnavailable, "not JSON or an event stream")
			wantError(t, r, "2", -32001, "denied: deny_x")
		}, true},
		{"HTTP 500 with HTML", callOK, func(w http.ResponseWriter) {
			http.Error(w, "<html>LEAK stack trace</html>", http.StatusInternalServerError)
		}, http.StatusInternalServerError,
			func(t *testing.T, r *reply) { t.Helper(); wantGatewayError(t, r, 500, CodeUnavailable, "HTTP 500") }, true},
		{"HTTP 400 with a JSON-RPC error", callOK, func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"bad"}}`)
		}, http.StatusBadRequest, func(t *testing.T, r *reply) {
			t.Helper()
			wantGatewayError(t, r, 400, CodeUnavailable, "HTTP 400, JSON-RPC error -32600")
		}, true},
		{"HTTP 500 with a JSON-RPC result", callOK, func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, `{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"LEAK SECRET"}]}}`)
		}, http.StatusInternalServerError, func(t *testing.T, r *reply) { t.Helper(); wantGatewayError(t, r, 500, CodeUnavailable, "HTTP 500") }, true},
		{"HTTP 400 with an error and a result", callOK, func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"jsonrpc":"2.0","id":1,"error":{"code":-32600,"message":"bad"},"result":{"content":[{"type":"text","text":"LEAK"}]}}`)
		}, http.StatusBadRequest, func(t *testing.T, r *reply) { t.Helper(); wantGatewayError(t, r, 400, CodeUnavailable, "HTTP 400") }, true},
		{"HTTP 403 with a list", callOK, func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			_, _ = io.WriteString(w, `{"tools":[{"name":"hidden_LEAK"}]}`)
		}, http.StatusForbidden, func(t *testing.T, r *reply) { t.Helper(); wantGatewayError(t, r, 403, CodeUnavailable, "HTTP 403") }, true},
		{"invalid session id from upstream", callOK, func(w http.ResponseWriter) {
			w.Header().Set("Mcp-Session-Id", "bad id")
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"LEAK"}]}}`)
		}, http.StatusOK, func(t *testing.T, r *reply) {
			t.Helper()
			wantError(t, r, "1", CodeUnavailable, "invalid session id")
			if r.header.Get("Mcp-Session-Id") != "" {
				t.Error("the invalid session id was passed on")
			}
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := newUpstream(t, func(w http.ResponseWriter, _ *http.Request, _ []byte) { tc.serve(w) })
			p := newTestProxy(t, &proxyStub{}, up.URL)
			r := send(t, p, http.MethodPost, tc.body, nil)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if strings.Contains(string(r.body), "LEAK") {
				t.Errorf("the upstream's body leaked: %s", r.body)
			}
			if tc.check != nil {
				tc.check(t, r)
			}
			if got := up.received(); tc.forwards && len(got) != 1 {
				t.Errorf("upstream received %d bodies", len(got))
			}
		})
	}
}

// TestProxyStreamOverNetwork relays an SSE answer through a real listener
// on both sides, read incrementally: the server request arrives before the
// upstream answers.
func TestProxyStreamOverNetwork(t *testing.T) {
	release := make(chan struct{})
	up := newUpstream(t, func(w http.ResponseWriter, _ *http.Request, body []byte) {
		w.Header().Set("Content-Type", sseHeads)
		_, _ = io.WriteString(w, "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":\"t\",\"progress\":1}}\n\n")
		_ = http.NewResponseController(w).Flush()
		<-release
		answerMode(modeSSE, w, body, func(upMsg) string { return textOK })
	})
	gw := httptest.NewServer(newTestProxy(t, &proxyStub{}, up.URL))
	t.Cleanup(gw.Close)
	req, _ := http.NewRequest(http.MethodPost, gw.URL+"/mcp", strings.NewReader(callOK))
	req.Header.Set("Content-Type", "application/json")
	res, err := gw.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = res.Body.Close() }()
	br := bufio.NewReader(res.Body)
	line, err := br.ReadString('\n')
	if err != nil || !strings.Contains(line, "notifications/progress") {
		t.Fatalf("first line %q, %v", line, err)
	}
	close(release)
	rest, _ := io.ReadAll(br)
	if !strings.Contains(string(rest), `"id":1,"result"`) {
		t.Errorf("no answer: %s", rest)
	}
}

// proxyStub allows everything except tools/call of tools named "deny_*";
// FilterTools removes entries named "hidden*"; CheckResult redacts text
// holding "SECRET" and blocks text holding "BLOCK". It records every
// question and every request it allowed.
type proxyStub struct {
	mu      sync.Mutex
	checks  []*mcpv1.CheckRequest
	allowed []*mcpv1.CheckRequest
	filters []*mcpv1.FilterToolsRequest
	results []*mcpv1.CheckResultRequest
	// err, when set, is what every question fails with.
	err error
}

func (d *proxyStub) Check(_ context.Context, req *mcpv1.CheckRequest) (*mcpv1.CheckResponse, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.checks = append(d.checks, req)
	if d.err != nil {
		return nil, d.err
	}
	if req.GetMethod() == "tools/call" {
		name := req.GetParams().GetFields()["name"].GetStringValue()
		if strings.HasPrefix(name, "deny_") {
			return &mcpv1.CheckResponse{
				Decision:     mcpv1.Decision_DECISION_DENY,
				DecisionId:   "d-deny",
				JsonrpcError: &mcpv1.JsonRpcError{Code: -32001, Message: "denied: " + name},
			}, nil
		}
	}
	d.allowed = append(d.allowed, req)
	return &mcpv1.CheckResponse{Decision: mcpv1.Decision_DECISION_ALLOW, DecisionId: "d-allow"}, nil
}

func (d *proxyStub) FilterTools(_ context.Context, req *mcpv1.FilterToolsRequest) (*mcpv1.FilterToolsResponse, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.filters = append(d.filters, req)
	if d.err != nil {
		return nil, d.err
	}
	res := proto.Clone(req.GetResult()).(*structpb.Struct)
	out := &mcpv1.FilterToolsResponse{Decision: mcpv1.Decision_DECISION_ALLOW, Result: res}
	for key, v := range res.GetFields() {
		list := v.GetListValue()
		if list == nil {
			continue
		}
		kept := list.Values[:0]
		for _, el := range list.GetValues() {
			name := el.GetStructValue().GetFields()["name"].GetStringValue()
			if strings.HasPrefix(name, "hidden") {
				out.Removed = append(out.Removed, &mcpv1.RemovedEntry{Name: name, Reason: &mcpv1.Reason{Code: "hidden"}})
				continue
			}
			kept = append(kept, el)
		}
		list.Values = kept
		res.Fields[key] = structpb.NewListValue(list)
	}
	return out, nil
}

func (d *proxyStub) CheckResult(_ context.Context, req *mcpv1.CheckResultRequest) (*mcpv1.CheckResultResponse, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.results = append(d.results, req)
	if d.err != nil {
		return nil, d.err
	}
	res := proto.Clone(req.GetResult()).(*structpb.Struct)
	redacted := false
	for _, c := range res.GetFields()["content"].GetListValue().GetValues() {
		f := c.GetStructValue().GetFields()
		text := f["text"].GetStringValue()
		if strings.Contains(text, "BLOCK") {
			return &mcpv1.CheckResultResponse{
				Action:       mcpv1.ResultAction_RESULT_ACTION_BLOCK,
				JsonrpcError: &mcpv1.JsonRpcError{Code: -32001, Message: "result blocked"},
			}, nil
		}
		if strings.Contains(text, "SECRET") {
			f["text"] = structpb.NewStringValue(strings.ReplaceAll(text, "SECRET", "[redacted]"))
			redacted = true
		}
	}
	if redacted {
		return &mcpv1.CheckResultResponse{Action: mcpv1.ResultAction_RESULT_ACTION_REDACT, Result: res}, nil
	}
	return &mcpv1.CheckResultResponse{Action: mcpv1.ResultAction_RESULT_ACTION_PASS}, nil
}

func (d *proxyStub) asked() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.checks)
}

// fakeUpstream is an MCP server whose behaviour each test scripts; it
// records every POST body it received.
type fakeUpstream struct {
	*httptest.Server
	mu     sync.Mutex
	bodies [][]byte
}

func newUpstream(t testing.TB, h func(w http.ResponseWriter, r *http.Request, body []byte)) *fakeUpstream {
	t.Helper()
	u := &fakeUpstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Method == http.MethodPost {
			u.mu.Lock()
			u.bodies = append(u.bodies, body)
			u.mu.Unlock()
		}
		h(w, r, body)
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *fakeUpstream) received() [][]byte {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([][]byte(nil), u.bodies...)
}

// upMsg is a message as the fake upstream reads it.
type upMsg struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
}

// readMsgs reads a body as one message or a batch.
func readMsgs(body []byte) ([]upMsg, bool, error) {
	body = bytes.TrimSpace(body)
	if len(body) > 0 && body[0] == '[' {
		var ms []upMsg
		err := json.Unmarshal(body, &ms)
		return ms, true, err
	}
	var m upMsg
	err := json.Unmarshal(body, &m)
	return []upMsg{m}, false, err
}

// writeJSONResult answers every request of body with result (a JSON
// object), as one message or a batch like the request.
func answerAll(w http.ResponseWriter, body []byte, result string) {
	ms, batch, err := readMsgs(body)
	if err != nil {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	var out []string
	for _, m := range ms {
		if len(m.ID) > 0 && m.Method != "" {
			out = append(out, `{"jsonrpc":"2.0","id":`+string(m.ID)+`,"result":`+result+`}`)
		}
	}
	if len(out) == 0 {
		w.WriteHeader(http.StatusAccepted)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if batch {
		_, _ = io.WriteString(w, "["+strings.Join(out, ",")+"]")
		return
	}
	_, _ = io.WriteString(w, out[0])
}

type proxyOpt func(*ProxyOptions, *Options)

func newTestProxy(t testing.TB, d Decider, upstream string, mods ...proxyOpt) *Proxy {
	t.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	po := ProxyOptions{Upstream: u, Subject: &mcpv1.Subject{Id: "alice"}}
	eo := Options{Server: "test-server"}
	for _, m := range mods {
		m(&po, &eo)
	}
	e, err := New(d, eo)
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewProxy(e, po)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// clientMsg is a message the client received.
type clientMsg struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Method  string          `json:"method"`
	Result  json.RawMessage `json:"result"`
	Error   *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// reply is what the client got for one HTTP request.
type reply struct {
	status int
	header http.Header
	body   []byte
	msgs   []clientMsg
	sse    bool
}

func (r *reply) byID(id string) []clientMsg {
	var out []clientMsg
	for _, m := range r.msgs {
		if string(m.ID) == id {
			out = append(out, m)
		}
	}
	return out
}

// send serves one request through p and reads its answer: every message
// of a JSON body or an event stream, each of which must be valid JSON.
func send(t testing.TB, p http.Handler, method, body string, hdr map[string]string) *reply {
	t.Helper()
	req := httptest.NewRequest(method, "http://gw.test/mcp", strings.NewReader(body))
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	p.ServeHTTP(rec, req)
	r, err := readReply(rec.Result())
	if err != nil {
		t.Fatalf("%s %q: %v (body %q)", method, body, err, rec.Body.String())
	}
	return r
}

func readReply(res *http.Response) (*reply, error) {
	body, _ := io.ReadAll(res.Body)
	r := &reply{status: res.StatusCode, header: res.Header, body: body}
	if len(body) == 0 {
		return r, nil
	}
	ct := res.Header.Get("Content-Type")
	var datas [][]byte
	switch {
	case strings.HasPrefix(ct, "text/event-stream"):
		r.sse = true
		rd := sse.NewReader(bytes.NewReader(body), 1<<24)
		for {
			ev, err := rd.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, err
			}
			datas = append(datas, ev.Data)
		}
	case strings.HasPrefix(ct, "application/json"):
		datas = [][]byte{body}
	default:
		return r, nil
	}
	for _, d := range datas {
		if !json.Valid(d) {
			return nil, errors.New("invalid JSON sent to the client")
		}
		ms, _, err := readClientMsgs(d)
		if err != nil {
			return nil, err
		}
		r.msgs = append(r.msgs, ms...)
	}
	return r, nil
}

func readClientMsgs(body []byte) ([]clientMsg, bool, error) {
	body = bytes.TrimSpace(body)
	if len(body) > 0 && body[0] == '[' {
		var ms []clientMsg
		err := json.Unmarshal(body, &ms)
		return ms, true, err
	}
	var m clientMsg
	err := json.Unmarshal(body, &m)
	return []clientMsg{m}, false, err
}

// TestProxyLargeValues: a string longer than the per-value JSON default
// (256 KiB), in a tool's arguments and in its result, passes within the
// gateway's message limit, over JSON and SSE answers.
func TestProxyLargeValues(t *testing.T) {
	t.Parallel()
	large := strings.Repeat("x", 300<<10)
	result := func(upMsg) string { return `{"content":[{"type":"text","text":"` + large + `"}]}` }
	for _, mode := range []upstreamMode{modeJSON, modeSSE} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			up := newUpstream(t, func(w http.ResponseWriter, _ *http.Request, body []byte) { answerMode(mode, w, body, result) })
			p := newTestProxy(t, &proxyStub{}, up.URL)
			r := send(t, p, http.MethodPost, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"write","arguments":{"content":"`+large+`"}}}`, nil)
			if res := wantResult(t, r, "1"); !strings.Contains(string(res), large) {
				t.Errorf("the large result did not come through (%d bytes)", len(res))
			}
			if got := up.received(); len(got) != 1 || !strings.Contains(string(got[0]), large) {
				t.Errorf("the upstream did not get the large argument")
			}
		})
	}
}
