package mcp_test

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"

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

// fromHTTPCase is one case of testdata/from_http.yaml.
type fromHTTPCase struct {
	Name       string            `json:"name"`
	Headers    map[string]string `json:"headers"`
	Body       string            `json:"body"`
	Incomplete bool              `json:"incomplete"`
	Want       struct {
		Code           int            `json:"code"`
		ReasonContains string         `json:"reason_contains"`
		Methods        []string       `json:"methods"`
		Names          []string       `json:"names"`
		Batch          bool           `json:"batch"`
		FromHeaders    bool           `json:"from_headers"`
		Session        string         `json:"session"`
		HeaderParams   map[string]any `json:"header_params"`
	} `json:"want"`
}

func loadFromHTTPCases(t testing.TB) []fromHTTPCase {
	t.Helper()
	raw, err := os.ReadFile("testdata/from_http.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Cases []fromHTTPCase `json:"cases"`
	}
	if err := yaml.UnmarshalStrict(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Cases) == 0 {
		t.Fatal("no cases in testdata/from_http.yaml")
	}
	return doc.Cases
}

func (c fromHTTPCase) request() mcp.HTTPRequest {
	h := c.Headers
	if h == nil {
		h = map[string]string{}
	}
	return mcp.HTTPRequest{Headers: h, Body: []byte(c.Body), BodyComplete: !c.Incomplete, MaxDepth: 64}
}

// TestFromHTTP runs testdata/from_http.yaml: what a POST to an MCP route is
// read as, or why it is refused.
func TestFromHTTP(t *testing.T) {
	t.Parallel()
	for _, tc := range loadFromHTTPCases(t) {
		t.Run(tc.Name, func(t *testing.T) {
			t.Parallel()
			env, err := mcp.FromHTTP(tc.request())
			if tc.Want.Code != 0 {
				re, ok := errors.AsType[*mcp.RequestError](err)
				if !ok || re.JSONRPCCode != tc.Want.Code || !strings.Contains(re.Reason, tc.Want.ReasonContains) {
					t.Fatalf("err = %v, want JSON-RPC code %d saying %q", err, tc.Want.Code, tc.Want.ReasonContains)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			var methods, names []string
			for _, m := range env.Messages {
				methods = append(methods, m.Method)
				if n, ok := m.Params["name"].(string); ok {
					names = append(names, n)
				}
			}
			if d := cmp.Diff(tc.Want.Methods, methods); d != "" {
				t.Errorf("methods (-want +got):\n%s", d)
			}
			if tc.Want.Names != nil {
				if d := cmp.Diff(tc.Want.Names, names); d != "" {
					t.Errorf("names (-want +got):\n%s", d)
				}
			}
			if env.Batch != tc.Want.Batch || env.FromHeaders != tc.Want.FromHeaders || env.SessionID != tc.Want.Session {
				t.Errorf("batch %v, from headers %v, session %q; want %v, %v, %q", env.Batch, env.FromHeaders, env.SessionID, tc.Want.Batch, tc.Want.FromHeaders, tc.Want.Session)
			}
			if tc.Want.HeaderParams != nil {
				if d := cmp.Diff(tc.Want.HeaderParams, env.HeaderParams); d != "" {
					t.Errorf("header params (-want +got):\n%s", d)
				}
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

	// Session ids key caller state: bounded, visible ASCII.
	r.Params = map[string]any{"name": "p", "arguments": map[string]any{}}
	for id, want := range map[string]string{
		strings.Repeat("a", mcp.MaxSessionIDBytes):   "",
		strings.Repeat("a", mcp.MaxSessionIDBytes+1): "session id is 257 bytes; the limit is 256",
		"has space":  "session id must be visible ASCII (0x21 to 0x7E)",
		"tab\there":  "session id must be visible ASCII (0x21 to 0x7E)",
		"caf\u00e9":  "session id must be visible ASCII (0x21 to 0x7E)",
		"019a-ok_~!": "",
	} {
		r.SessionID = id
		_, err := r.Input(now)
		var re *mcp.RequestError
		switch {
		case want == "" && err != nil:
			t.Errorf("session id %q: %v", id, err)
		case want != "" && (!errors.As(err, &re) || re.Reason != want || re.JSONRPCCode != mcp.CodeInvalidRequest):
			t.Errorf("session id %q: %v, want %q", id, err, want)
		}
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

// FuzzFromHTTP checks that a POST to an MCP route is read from its body by
// parsing it, never by matching bytes: a complete body is accepted only
// when ParseMessages accepts it (and then with the same messages), and every
// Mcp-Method or Mcp-Name header sent with a body agrees with it, whatever
// version the request claims.
func FuzzFromHTTP(f *testing.F) {
	for _, c := range loadFromHTTPCases(f) {
		f.Add(c.Headers[mcp.HeaderVersion], c.Headers[mcp.HeaderMethod], c.Headers[mcp.HeaderName], []byte(c.Body), c.Incomplete)
	}
	f.Fuzz(func(t *testing.T, version, method, name string, body []byte, incomplete bool) {
		h := map[string]string{}
		for k, v := range map[string]string{mcp.HeaderVersion: version, mcp.HeaderMethod: method, mcp.HeaderName: name} {
			if v != "" {
				h[k] = v
			}
		}
		env, err := mcp.FromHTTP(mcp.HTTPRequest{Headers: h, Body: body, BodyComplete: !incomplete, MaxDepth: 16})
		if err != nil {
			if _, ok := errors.AsType[*mcp.RequestError](err); !ok {
				t.Fatalf("error %v is not a RequestError", err)
			}
			return
		}
		if len(env.Messages) == 0 {
			t.Fatal("an MCP envelope without messages")
		}
		if env.FromHeaders {
			if len(body) > 0 && !incomplete || method == "" || version < mcp.HeaderProtocolVersion {
				t.Fatalf("decided from headers (version %q, method %q) with a complete body or untrusted headers", version, method)
			}
			return
		}
		msgs, batch, perr := mcp.ParseMessages(body, 16)
		if perr != nil || batch != env.Batch || len(msgs) != len(env.Messages) {
			t.Fatalf("accepted a body ParseMessages reads as %d messages, batch %v, err %v", len(msgs), batch, perr)
		}
		if method != "" {
			if hm, _ := mcp.DecodeHeaderValue(method); len(msgs) != 1 || hm != msgs[0].Method {
				t.Fatalf("Mcp-Method %q accepted for a body with methods %v", hm, msgs)
			}
		}
		if name != "" {
			hn, _ := mcp.DecodeHeaderValue(name)
			if len(msgs) != 1 || (hn != msgs[0].Params["name"] && hn != msgs[0].Params["uri"]) {
				t.Fatalf("Mcp-Name %q accepted for a body with %v", hn, msgs)
			}
		}
	})
}

func TestCheckValueDepth(t *testing.T) {
	cases := []struct {
		name string
		v    any
		ok   bool
	}{
		{"flat", map[string]any{"a": 1.0, "b": "x"}, true},
		{"at the limit", map[string]any{"a": []any{map[string]any{}}}, true},
		{"too deep", map[string]any{"a": []any{map[string]any{"b": []any{[]any{}}}}}, false},
		{"NaN", map[string]any{"a": math.NaN()}, false},
		{"infinity in an array", map[string]any{"a": []any{1.0, math.Inf(-1)}}, false},
	}
	for _, tc := range cases {
		err := mcp.CheckValueDepth(tc.v, 3)
		if (err == nil) != tc.ok {
			t.Errorf("%s: err %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}
