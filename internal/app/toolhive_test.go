package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/internal/config"
	mcpv1 "github.com/verdictpdp/verdict/proto/verdict/mcp/v1"
)

// toolHiveRefusal is the body of every answer but 200.
type toolHiveRefusal struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

// nestedArgs returns arguments whose value nests n objects deep
// ({"a": {"a": … 1}}).
func nestedArgs(n int) map[string]any {
	var v any = 1
	for range n {
		v = map[string]any{"a": v}
	}
	m, _ := v.(map[string]any)
	return m
}

// TestToolHiveRefusals sends what ToolHive never sends: every such request
// is answered with a status other than 200 (which ToolHive takes as a deny)
// and a JSON body naming the reason; nothing is allowed.
func TestToolHiveRefusals(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	cfg.Bundles = []config.Bundle{{Name: "data", Source: "../../bundles/mcp-example"}}
	p := startPDP(t, cfg)
	native := mcpv1.NewMCPPolicyClient(p.dial(t))

	porc := func(edit func(map[string]any)) []byte {
		m := map[string]any{
			"principal": map[string]any{"sub": "ana", "mroles": []any{"analyst"}, "mclearance": "internal", "mannotations": map[string]any{}},
			"operation": "mcp:tool:call",
			"resource":  "mrn:mcp:files:tool:read_file",
			"context":   map[string]any{"mcp": map[string]any{"feature": "tool", "operation": "call", "resource_id": "read_file", "args": map[string]any{"path": "/srv/data/a"}}},
		}
		if edit != nil {
			edit(m)
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	mcpCtx := func(m map[string]any) map[string]any { return m["context"].(map[string]any)["mcp"].(map[string]any) }
	principal := func(m map[string]any) map[string]any { return m["principal"].(map[string]any) }

	cases := []struct {
		name        string
		method      string // default POST
		contentType string // default application/json
		body        []byte
		status      int
		code        string
	}{
		{name: "the well-formed question is answered", body: porc(nil), status: http.StatusOK},
		{name: "a charset parameter is fine", contentType: "application/json; charset=utf-8", body: porc(nil), status: http.StatusOK},
		{name: "not JSON", body: []byte(`{"principal":`), status: 400, code: "invalid_json"},
		{name: "two documents", body: append(porc(nil), porc(nil)...), status: 400, code: "trailing_data"},
		{name: "a member twice", body: []byte(`{"operation":"mcp:tool:call","operation":"mcp:prompt:get","resource":"mrn:mcp:files:tool:read_file","principal":{"sub":"ana"}}`), status: 400, code: "duplicate_key"},
		{name: "an array", body: []byte(`[]`), status: 400, code: "wrong_type"},
		{name: "no principal", body: porc(func(m map[string]any) { delete(m, "principal") }), status: 400, code: "missing_member"},
		{name: "no operation", body: porc(func(m map[string]any) { delete(m, "operation") }), status: 400, code: "missing_member"},
		{name: "no resource", body: porc(func(m map[string]any) { delete(m, "resource") }), status: 400, code: "missing_member"},
		{name: "a principal that is a string", body: porc(func(m map[string]any) { m["principal"] = "ana" }), status: 400, code: "wrong_type"},
		{name: "a numeric sub", body: porc(func(m map[string]any) { principal(m)["sub"] = 42 }), status: 400, code: "wrong_type"},
		{name: "a role that is not a string", body: porc(func(m map[string]any) { principal(m)["mroles"] = []any{"analyst", 7} }), status: 400, code: "wrong_type"},
		{name: "scopes that are an object", body: porc(func(m map[string]any) { principal(m)["scopes"] = map[string]any{} }), status: 400, code: "wrong_type"},
		{name: "a numeric operation", body: porc(func(m map[string]any) { m["operation"] = 3 }), status: 400, code: "wrong_type"},
		{name: "an operation without the mcp prefix", body: porc(func(m map[string]any) { m["operation"] = "tool:call" }), status: 400, code: "invalid_operation"},
		{name: "an operation in capitals", body: porc(func(m map[string]any) { m["operation"] = "mcp:Tool:call" }), status: 400, code: "invalid_operation"},
		{name: "an operation with a fourth part", body: porc(func(m map[string]any) { m["operation"] = "mcp:tool:call:x" }), status: 400, code: "invalid_operation"},
		{name: "a resource that is not an mrn", body: porc(func(m map[string]any) { m["resource"] = "files/read_file" }), status: 400, code: "invalid_resource"},
		{name: "an mrn without an id", body: porc(func(m map[string]any) { m["resource"] = "mrn:mcp:files:tool:" }), status: 400, code: "invalid_resource"},
		{name: "an mrn without a server", body: porc(func(m map[string]any) { m["resource"] = "mrn:mcp::tool:read_file" }), status: 400, code: "invalid_resource"},
		{name: "a server with a control character", body: porc(func(m map[string]any) { m["resource"] = "mrn:mcp:fi\u0007les:tool:read_file" }), status: 400, code: "invalid_resource"},
		{name: "a server name with a colon", body: porc(func(m map[string]any) { m["resource"] = "mrn:mcp:team:files:tool:read_file" }), status: 400, code: "feature_mismatch"},
		{name: "a resource of another feature", body: porc(func(m map[string]any) { m["resource"] = "mrn:mcp:files:prompt:read_file" }), status: 400, code: "feature_mismatch"},
		{name: "context naming another resource", body: porc(func(m map[string]any) { mcpCtx(m)["resource_id"] = "write_file" }), status: 400, code: "context_mismatch"},
		{name: "context naming another operation", body: porc(func(m map[string]any) { mcpCtx(m)["operation"] = "list" }), status: 400, code: "context_mismatch"},
		{name: "arguments that are a string", body: porc(func(m map[string]any) { mcpCtx(m)["args"] = "path=/" }), status: 400, code: "wrong_type"},
		{name: "a context that is a list", body: porc(func(m map[string]any) { m["context"] = []any{} }), status: 400, code: "wrong_type"},
		{name: "arguments nested as deep as the native API takes", body: porc(func(m map[string]any) { mcpCtx(m)["args"] = nestedArgs(63) }), status: http.StatusOK},
		{name: "arguments nested deeper than the native API takes", body: porc(func(m map[string]any) { mcpCtx(m)["args"] = nestedArgs(64) }), status: 400, code: "too_deep"},
		{name: "a principal nested too deep", body: porc(func(m map[string]any) { principal(m)["mannotations"] = nestedArgs(64) }), status: 400, code: "too_deep"},
		{name: "a body nested too deep", body: []byte(strings.Repeat("[", 200) + strings.Repeat("]", 200)), status: 400, code: "too_deep"},
		{name: "a body over 1 MiB", body: porc(func(m map[string]any) { mcpCtx(m)["args"] = map[string]any{"path": strings.Repeat("a", 1<<20)} }), status: 400, code: "too_large"},
		{name: "GET", method: http.MethodGet, status: http.StatusMethodNotAllowed, code: "method_not_allowed"},
		{name: "PUT", method: http.MethodPut, body: porc(nil), status: http.StatusMethodNotAllowed, code: "method_not_allowed"},
		{name: "a text body", contentType: "text/plain", body: porc(nil), status: http.StatusUnsupportedMediaType, code: "unsupported_media_type"},
		{name: "no content type", contentType: "-", body: porc(nil), status: http.StatusUnsupportedMediaType, code: "unsupported_media_type"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			method, ct := c.method, c.contentType
			if method == "" {
				method = http.MethodPost
			}
			switch ct {
			case "":
				ct = "application/json"
			case "-":
				ct = ""
			}
			status, body := requestToolHive(t, p, method, "/decision", ct, c.body)
			if status != c.status {
				t.Fatalf("status %d, want %d: %s", status, c.status, body)
			}
			if status == http.StatusOK {
				var a toolHiveAnswer
				if err := json.Unmarshal(body, &a); err != nil || a.Allow == nil {
					t.Fatalf("answer %s: %v", body, err)
				}
				return
			}
			var r toolHiveRefusal
			if err := json.Unmarshal(body, &r); err != nil {
				t.Fatalf("refusal %s is not JSON: %v", body, err)
			}
			if r.Code != c.code || r.Error == "" {
				t.Errorf("refusal %s, want code %s and a message", body, c.code)
			}
			if bytes.Contains(body, []byte(`"allow"`)) {
				t.Errorf("refusal %s carries an allow member", body)
			}
		})
	}

	// The native API refuses the same nesting at the same depth.
	t.Run("the native API draws the depth line in the same place", func(t *testing.T) {
		t.Parallel()
		for n, want := range map[int]bool{63: true, 64: false} {
			req := &mcpv1.CheckRequest{}
			mustProtoJSON(t, map[string]any{
				"subject": map[string]any{"id": "ana", "roles": []any{"analyst"}, "clearance": "internal"},
				"server":  "files", "method": "tools/call",
				"params": map[string]any{"name": "read_file", "arguments": nestedArgs(n)},
			}, req)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err := native.Check(ctx, req)
			cancel()
			if (err == nil) != want {
				t.Errorf("arguments %d deep: native Check error %v, want accepted=%v", n, err, want)
			}
		}
	})
}

// TestToolHiveMount checks where the endpoint is served: under
// toolhive.path_prefix, and not at all when toolhive.enabled is off.
func TestToolHiveMount(t *testing.T) {
	t.Parallel()
	body := []byte(`{"principal":{"sub":"ana"},"operation":"mcp:tool:list","resource":"mrn:mcp:files:tool:"}`)
	off := false
	for _, c := range []struct {
		name    string
		edit    func(*config.ToolHive)
		serving map[string]int // path → status
	}{
		{"default", func(*config.ToolHive) {}, map[string]int{"/decision": 200, "/toolhive/decision": 404}},
		{"prefix", func(th *config.ToolHive) { th.PathPrefix = "/toolhive" }, map[string]int{"/toolhive/decision": 200, "/decision": 404}},
		{"disabled", func(th *config.ToolHive) { th.Enabled = &off }, map[string]int{"/decision": 404}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			cfg := config.Default()
			c.edit(&cfg.ToolHive)
			p := startPDP(t, cfg)
			for path, want := range c.serving {
				if status, got := postToolHive(t, p, path, "application/json", body); status != want {
					t.Errorf("POST %s: status %d, want %d: %s", path, status, want, got)
				}
			}
			// The admin endpoints are served either way.
			if status, _ := requestToolHive(t, p, http.MethodGet, "/healthz", "", nil); status != http.StatusOK {
				t.Errorf("GET /healthz: status %d", status)
			}
		})
	}
}

// TestToolHiveAudit checks that each ToolHive question is one audit event
// under the decision id ToolHive was answered with, with the MCP input it
// was decided on; a refused body is a deny event without input, and a
// request that is not a question (wrong method) is no event.
func TestToolHiveAudit(t *testing.T) {
	t.Parallel()
	logPath := filepath.Join(t.TempDir(), "audit.jsonl")
	cfg := config.Default()
	cfg.Bundles = []config.Bundle{{Name: "data", Source: "../../bundles/mcp-example"}}
	cfg.Audit.File.Path = logPath
	p := startPDP(t, cfg)

	analyst := `{"sub":"ana","mroles":["analyst"],"mclearance":"internal","mannotations":{}}`
	var ids []string
	for _, body := range []string{
		`{"principal":` + analyst + `,"operation":"mcp:tool:call","resource":"mrn:mcp:files:tool:read_file","context":{"mcp":{"args":{"path":"/srv/data/a"}}}}`,
		`{"principal":` + analyst + `,"operation":"mcp:tool:call","resource":"mrn:mcp:files:tool:read_file","context":{"mcp":{"args":{"path":"/etc/passwd"}}}}`,
		`{"principal":` + analyst + `,"operation":"mcp:tool:call","resource":"files/read_file"}`,
	} {
		_, resp := postToolHive(t, p, "/decision", "application/json", []byte(body))
		var a struct {
			DecisionID string `json:"decision_id"`
		}
		if err := json.Unmarshal(resp, &a); err != nil || a.DecisionID == "" {
			t.Fatalf("answer %s has no decision id", resp)
		}
		ids = append(ids, a.DecisionID)
	}
	if status, _ := requestToolHive(t, p, http.MethodGet, "/decision", "", nil); status != http.StatusMethodNotAllowed {
		t.Fatalf("GET: status %d", status)
	}
	p.stop() // flushes the log

	evs := readLog(t, logPath)
	if got := eventIDs(evs); !slices.Equal(got, ids) {
		t.Fatalf("audit events %v, want %v", got, ids)
	}
	for i, want := range []struct {
		decision string
		status   float64
		input    bool
	}{{"allow", 200, true}, {"deny", 200, true}, {"deny", 400, false}} {
		e := evs[i]
		if e["decision"] != want.decision || e["http_status"] != want.status || (e["input"] != nil) != want.input {
			t.Errorf("event %d: decision %v, http_status %v, input %v; want %+v", i, e["decision"], e["http_status"], e["input"], want)
		}
		if e["requested_by"] != "127.0.0.1" {
			t.Errorf("event %d: requested_by %v", i, e["requested_by"])
		}
	}
	in, _ := evs[0]["input"].(map[string]any)
	tool, _ := in["tool"].(map[string]any)
	subject, _ := in["subject"].(map[string]any)
	if in["method"] != "tools/call" || tool["name"] != "read_file" || subject["id"] != "ana" || subject["source"] != "gateway" {
		t.Errorf("input %v is not the tools/call ToolHive asked about", in)
	}
	if e, _ := evs[2]["error"].(map[string]any); e["code"] != "invalid_resource" {
		t.Errorf("refusal event error %v, want code invalid_resource", evs[2]["error"])
	}
}
