package mcp_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/internal/mcp"
)

func TestParseMessages(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		body      string
		wantN     int
		wantBatch bool
		wantCode  int // JSON-RPC code of the error; 0 for success
	}{
		{"request", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}`, 1, false, 0},
		{"notification", `{"jsonrpc":"2.0","method":"notifications/initialized"}`, 1, false, 0},
		{"client response", `{"jsonrpc":"2.0","id":"s1","result":{}}`, 1, false, 0},
		{"batch", `[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/cancelled"}]`, 2, true, 0},
		{"empty batch", `[]`, 0, true, mcp.CodeInvalidRequest},
		{"batch of numbers", `[1]`, 0, true, mcp.CodeInvalidRequest},
		{"not JSON", `{"jsonrpc":`, 0, false, mcp.CodeParseError},
		{"invalid UTF-8", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xff\"}", 0, false, mcp.CodeParseError},
		{"wrong version", `{"jsonrpc":"1.0","id":1,"method":"ping"}`, 0, false, mcp.CodeInvalidRequest},
		{"object id", `{"jsonrpc":"2.0","id":{},"method":"ping"}`, 0, false, mcp.CodeInvalidRequest},
		{"numeric method", `{"jsonrpc":"2.0","id":1,"method":5}`, 0, false, mcp.CodeInvalidRequest},
		{"array params", `{"jsonrpc":"2.0","id":1,"method":"ping","params":[]}`, 0, false, mcp.CodeInvalidParams},
		{"no method, no result", `{"jsonrpc":"2.0","id":1}`, 0, false, mcp.CodeInvalidRequest},
		{"too deep", `{"jsonrpc":"2.0","id":1,"method":"x","params":{"a":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}}`, 0, false, mcp.CodeInvalidRequest},
		{"brackets inside strings do not count", `{"jsonrpc":"2.0","id":1,"method":"x","params":{"a":"` + strings.Repeat("[", 100) + `\""}}`, 1, false, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			msgs, batch, err := mcp.ParseMessages([]byte(tc.body), 64)
			if tc.wantCode != 0 {
				var re *mcp.RequestError
				if !errors.As(err, &re) || re.JSONRPCCode != tc.wantCode {
					t.Fatalf("err = %v, want a RequestError with code %d", err, tc.wantCode)
				}
				return
			}
			if err != nil || len(msgs) != tc.wantN || batch != tc.wantBatch {
				t.Fatalf("got %d messages, batch=%v, err=%v; want %d, %v", len(msgs), batch, err, tc.wantN, tc.wantBatch)
			}
		})
	}
}

func TestFromHTTP(t *testing.T) {
	t.Parallel()
	call := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search"}}`
	h := func(kv ...string) map[string]string {
		m := map[string]string{"content-type": "application/json"}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	tests := []struct {
		name     string
		req      mcp.HTTPRequest
		notMCP   bool
		wantCode int
		check    func(*testing.T, *mcp.Envelope)
	}{
		{name: "GET is not MCP", req: mcp.HTTPRequest{Method: "GET", Headers: h(), Body: []byte(call), BodyComplete: true}, notMCP: true},
		{name: "JSON that is not JSON-RPC", req: mcp.HTTPRequest{Method: "POST", Headers: h(), Body: []byte(`{"a":1}`), BodyComplete: true}, notMCP: true},
		{name: "2025 body", req: mcp.HTTPRequest{Method: "POST", Headers: h("mcp-session-id", "s1"), Body: []byte(call), BodyComplete: true},
			check: func(t *testing.T, e *mcp.Envelope) {
				t.Helper()
				if e.SessionID != "s1" || e.FromHeaders || e.Messages[0].Method != "tools/call" {
					t.Errorf("envelope %+v", e)
				}
			}},
		{name: "2026 headers match", req: mcp.HTTPRequest{Method: "POST", Headers: h("mcp-protocol-version", "2026-07-28", "mcp-method", "tools/call", "mcp-name", "=?base64?c2VhcmNo?="), Body: []byte(call), BodyComplete: true}},
		{name: "2026 name mismatch", req: mcp.HTTPRequest{Method: "POST", Headers: h("mcp-protocol-version", "2026-07-28", "mcp-method", "tools/call", "mcp-name", "other"), Body: []byte(call), BodyComplete: true}, wantCode: mcp.CodeHeaderMismatch},
		{name: "2026 name missing", req: mcp.HTTPRequest{Method: "POST", Headers: h("mcp-protocol-version", "2026-07-28", "mcp-method", "tools/call"), Body: []byte(call), BodyComplete: true}, wantCode: mcp.CodeHeaderMismatch},
		{name: "2026 bad base64", req: mcp.HTTPRequest{Method: "POST", Headers: h("mcp-protocol-version", "2026-07-28", "mcp-method", "tools/call", "mcp-name", "=?base64?***?="), Body: []byte(call), BodyComplete: true}, wantCode: mcp.CodeHeaderMismatch},
		{name: "older headers are not compared", req: mcp.HTTPRequest{Method: "POST", Headers: h("mcp-protocol-version", "2025-11-25", "mcp-method", "tools/list"), Body: []byte(call), BodyComplete: true},
			check: func(t *testing.T, e *mcp.Envelope) {
				t.Helper()
				if e.Messages[0].Method != "tools/call" {
					t.Errorf("the body must win over untrusted headers: %+v", e.Messages[0])
				}
			}},
		{name: "2026 headers without body", req: mcp.HTTPRequest{Method: "POST", Headers: h("mcp-protocol-version", "2026-07-28", "mcp-method", "tools/call", "mcp-name", "search", "mcp-param-region", "=?base64?ZXU=?=")},
			check: func(t *testing.T, e *mcp.Envelope) {
				t.Helper()
				if !e.FromHeaders || e.Messages[0].Params["name"] != "search" || e.HeaderParams["region"] != "eu" {
					t.Errorf("envelope %+v", e)
				}
			}},
		{name: "truncated body with old headers", req: mcp.HTTPRequest{Method: "POST", Headers: h("mcp-method", "tools/call"), Body: []byte(call[:20]), BodyComplete: false}, wantCode: mcp.CodeInvalidRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env, err := mcp.FromHTTP(tc.req)
			switch {
			case tc.notMCP:
				if !errors.Is(err, mcp.ErrNotMCP) {
					t.Fatalf("err = %v, want ErrNotMCP", err)
				}
			case tc.wantCode != 0:
				var re *mcp.RequestError
				if !errors.As(err, &re) || re.JSONRPCCode != tc.wantCode {
					t.Fatalf("err = %v, want code %d", err, tc.wantCode)
				}
			case err != nil:
				t.Fatalf("err = %v", err)
			case tc.check != nil:
				tc.check(t, env)
			}
		})
	}
}

func TestRequestInput(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 18, 10, 0, 0, 0, time.UTC)
	r := mcp.Request{
		Subject: mcp.Subject{ID: "alice", Roles: []string{"sales"}, Authenticated: true},
		Server:  "crm", Method: "tools/call", SessionID: "s1",
		Params: map[string]any{"name": "search", "arguments": map[string]any{"q": "x"},
			"_meta": map[string]any{"io.modelcontextprotocol/protocolVersion": "2026-07-28"}},
	}
	in, err := r.Input(now)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(in)
	want := `{"context":{"time":"2026-11-18T10:00:00Z"},"kind":"mcp","method":"tools/call","protocol_version":"2026-07-28",` +
		`"server":{"name":"crm"},"session":{"id":"s1"},"subject":{"authenticated":true,"claims":{},"clearance":"","groups":[],"id":"alice","roles":["sales"],"scopes":[],"tenant":""},` +
		`"tool":{"arguments":{"q":"x"},"name":"search"}}`
	if string(got) != want {
		t.Errorf("input\n got %s\nwant %s", got, want)
	}
	for _, bad := range []map[string]any{
		{},
		{"name": 3},
		{"name": "x", "arguments": "a=1"},
	} {
		r.Params = bad
		if _, err := r.Input(now); err == nil {
			t.Errorf("params %v: want an error", bad)
		}
	}
	r.Method, r.Params = "prompts/get", map[string]any{"name": "p", "arguments": map[string]any{"n": 1}}
	if _, err := r.Input(now); err == nil {
		t.Error("prompts/get with a non-string argument: want an error")
	}
}

func TestParseDecision(t *testing.T) {
	t.Parallel()
	good := map[string]any{
		"allow": true, "reasons": []any{},
		"obligations": map[string]any{"classification": "internal", "retention_days": json.Number("1825"),
			"rate_limit": map[string]any{"key": "k", "limit": json.Number("5"), "period_seconds": json.Number("60")},
			"labels":     map[string]any{"n": json.Number("2"), "b": true}, "controls": []any{"b", "a", "a"}},
	}
	d, err := mcp.ParseDecision(good)
	if err != nil || d.Verdict() != mcp.Allow || d.Obligations.RetentionDays != 1825 || d.Obligations.Labels["n"] != "2" ||
		len(d.Obligations.Controls) != 2 || d.Obligations.RateLimit.Limit != 5 {
		t.Fatalf("decision %+v, err %v", d, err)
	}
	for name, bad := range map[string]any{
		"not an object":     true,
		"allow not a bool":  map[string]any{"allow": "yes"},
		"reason no code":    map[string]any{"reasons": []any{map[string]any{"message": "m"}}},
		"negative days":     map[string]any{"obligations": map[string]any{"retention_days": json.Number("-1")}},
		"fractional days":   map[string]any{"obligations": map[string]any{"retention_days": json.Number("1.5")}},
		"rate limit no key": map[string]any{"obligations": map[string]any{"rate_limit": map[string]any{"limit": json.Number("1"), "period_seconds": json.Number("1")}}},
		"redact not list":   map[string]any{"obligations": map[string]any{"redact": "email"}},
		"label object":      map[string]any{"obligations": map[string]any{"labels": map[string]any{"x": map[string]any{}}}},
	} {
		if _, err := mcp.ParseDecision(bad); !errors.Is(err, mcp.ErrInvalidDecision) {
			t.Errorf("%s: err = %v, want ErrInvalidDecision", name, err)
		}
	}
	approval, _ := mcp.ParseDecision(map[string]any{"allow": true, "require_approval": true})
	if approval.Verdict() != mcp.RequireApproval {
		t.Errorf("allow+require_approval = %v, want require_approval", approval.Verdict())
	}
}

func FuzzParseMessages(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"a":[1,2]}}}`,
		`[{"jsonrpc":"2.0","id":"a","method":"ping"},{"jsonrpc":"2.0","method":"n"}]`,
		`{"jsonrpc":"2.0","id":1,"result":{}}`, `[[[[`, `"\u0000"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		msgs, _, err := mcp.ParseMessages(body, 16)
		if err != nil {
			var re *mcp.RequestError
			if !errors.As(err, &re) || re.Reason == "" {
				t.Fatalf("error %v is not a RequestError with a reason", err)
			}
			return
		}
		for _, m := range msgs {
			r := mcp.Request{Method: m.Method, Params: m.Params, Response: m.Response, Server: "s"}
			_, _ = r.Input(time.Unix(0, 0)) // must not panic
			if !m.Response && m.Method == "" {
				t.Fatal("a request without a method was accepted")
			}
		}
	})
}

func FuzzFromHTTP(f *testing.F) {
	f.Add("2026-07-28", "tools/call", "=?base64?c2VhcmNo?=", []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search"}}`))
	f.Add("2025-11-25", "", "", []byte(`[{"jsonrpc":"2.0","id":1,"method":"ping"}]`))
	f.Add("2026-07-28", "resources/read", "crm://x", []byte{})
	f.Fuzz(func(t *testing.T, version, method, name string, body []byte) {
		h := map[string]string{"mcp-protocol-version": version, "mcp-name": name}
		if method != "" {
			h["mcp-method"] = method
		}
		env, err := mcp.FromHTTP(mcp.HTTPRequest{Method: "POST", Headers: h, Body: body, BodyComplete: true, MaxDepth: 16})
		if err != nil {
			return
		}
		if len(env.Messages) == 0 {
			t.Fatal("an MCP envelope without messages")
		}
		if !env.FromHeaders && version >= mcp.HeaderProtocolVersion && method != "" {
			m := env.Messages[0]
			if hm, _ := mcp.DecodeHeaderValue(method); hm != m.Method {
				t.Fatalf("Mcp-Method %q accepted for body method %q", hm, m.Method)
			}
		}
	})
}
