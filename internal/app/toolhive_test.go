package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/verdictpdp/verdict/internal/config"
	mcpv1 "github.com/verdictpdp/verdict/proto/verdict/mcp/v1"
)

// toolHiveCorpusFile is one testdata/toolhive/*.yaml file: questions in
// ToolHive's PORC form, each with the same call to the native MCP API.
type toolHiveCorpusFile struct {
	Description string `json:"description"`
	// Bundle is a bundle directory relative to the repository root
	// (default bundles/mcp-example); the built-in library serves with it.
	Bundle  string `json:"bundle"`
	Options struct {
		CallsWithoutArgs string `json:"calls_without_args"`
	} `json:"options"`
	Definitions map[string]any       `json:"definitions"`
	Cases       []toolHiveCorpusCase `json:"cases"`
}

type toolHiveCorpusCase struct {
	Name string `json:"name"`
	// PORC is the body ToolHive POSTs to /decision.
	PORC map[string]any `json:"porc"`
	// Native is the same call to verdict.mcp.v1.MCPPolicy: check (Check)
	// or filter (FilterTools with a one-entry result). Absent for
	// operations without an MCP equivalent.
	Native struct {
		Check  map[string]any `json:"check"`
		Filter map[string]any `json:"filter"`
	} `json:"native"`
	// Want is allow or deny; Reason, when set, must be among the reason
	// codes of ToolHive's answer.
	Want   string `json:"want"`
	Reason string `json:"reason"`
}

// toolHiveAnswer is the 200 body of POST /decision.
type toolHiveAnswer struct {
	Allow      *bool  `json:"allow"`
	DecisionID string `json:"decision_id"`
	Reasons    []struct {
		Code string `json:"code"`
	} `json:"reasons"`
}

// TestToolHiveCorpus runs every testdata/toolhive file against a real pdp
// on loopback: each PORC question over HTTP as ToolHive sends it, and the
// same call over the native gRPC API. The answers must be equal, and equal
// to the case's want.
func TestToolHiveCorpus(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("../../testdata/toolhive/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus files: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".yaml"), func(t *testing.T) {
			t.Parallel()
			runToolHiveCorpusFile(t, file)
		})
	}
}

func runToolHiveCorpusFile(t *testing.T, file string) {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var cf toolHiveCorpusFile
	if err := yaml.UnmarshalStrict(raw, &cf); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if len(cf.Cases) == 0 {
		t.Fatalf("%s: no cases", file)
	}
	if cf.Bundle == "" {
		cf.Bundle = "bundles/mcp-example"
	}
	cfg := config.Default()
	cfg.Bundles = []config.Bundle{{Name: "data", Source: filepath.Join("../..", cf.Bundle)}}
	cfg.ToolHive.CallsWithoutArgs = cf.Options.CallsWithoutArgs
	for _, mode := range mcpModes {
		t.Run(mode.name, func(t *testing.T) {
			p := startPDP(t, mode.apply(cfg))
			native := mcpv1.NewMCPPolicyClient(p.dial(t))
			for pass := range mode.passes {
				if pass > 0 {
					settleCache(t, p)
				}
				for _, c := range cf.Cases {
					t.Run(c.Name, func(t *testing.T) {
						runToolHiveCase(t, p, native, c)
					})
				}
			}
		})
	}
}

func runToolHiveCase(t *testing.T, p *pdp, native mcpv1.MCPPolicyClient, c toolHiveCorpusCase) {
	t.Helper()
	if c.Want != "allow" && c.Want != "deny" {
		t.Fatalf("want is %q, not allow or deny", c.Want)
	}
	body, err := json.Marshal(c.PORC)
	if err != nil {
		t.Fatal(err)
	}
	status, respBody := postToolHive(t, p, "/decision", "application/json", body)
	if status != http.StatusOK {
		t.Fatalf("status %d, want 200: %s", status, respBody)
	}
	var a toolHiveAnswer
	if err := json.Unmarshal(respBody, &a); err != nil || a.Allow == nil || a.DecisionID == "" {
		t.Fatalf("answer %s is not {allow, decision_id}: %v", respBody, err)
	}
	codes := make([]string, len(a.Reasons))
	for i, r := range a.Reasons {
		codes[i] = r.Code
	}
	if got := map[bool]string{true: "allow", false: "deny"}[*a.Allow]; got != c.Want {
		t.Errorf("ToolHive answer: %s (reasons %v), want %s", got, codes, c.Want)
	}
	if *a.Allow == (len(a.Reasons) > 0) {
		t.Errorf("answer %s: reasons come with a deny, and only with one", respBody)
	}
	if c.Reason != "" && !slices.Contains(codes, c.Reason) {
		t.Errorf("reasons %v, want one %s", codes, c.Reason)
	}
	nativeAllow, nativeFirst, ok := askNative(t, native, c)
	if !ok {
		return
	}
	if nativeAllow != *a.Allow {
		t.Errorf("ToolHive allow=%v, native API allow=%v for the same call", *a.Allow, nativeAllow)
	}
	if !*a.Allow && len(codes) > 0 && codes[0] != nativeFirst {
		t.Errorf("first reason %s, the native API's %s", codes[0], nativeFirst)
	}
}

// askNative sends the case's native call: whether it allows (Check:
// DECISION_ALLOW; FilterTools: the entry is kept) and its first reason
// code. ok is false for a case without one.
func askNative(t *testing.T, native mcpv1.MCPPolicyClient, c toolHiveCorpusCase) (allow bool, reason string, ok bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	switch {
	case c.Native.Check != nil:
		req := &mcpv1.CheckRequest{}
		mustProtoJSON(t, c.Native.Check, req)
		resp, err := native.Check(ctx, req)
		if err != nil {
			t.Fatalf("native Check: %v", err)
		}
		if rs := resp.GetReasons(); len(rs) > 0 {
			reason = rs[0].GetCode()
		}
		return resp.GetDecision() == mcpv1.Decision_DECISION_ALLOW, reason, true
	case c.Native.Filter != nil:
		req := &mcpv1.FilterToolsRequest{}
		mustProtoJSON(t, c.Native.Filter, req)
		resp, err := native.FilterTools(ctx, req)
		if err != nil {
			t.Fatalf("native FilterTools: %v", err)
		}
		kept := 0
		for _, f := range resp.GetResult().GetFields() {
			kept += len(f.GetListValue().GetValues())
		}
		switch {
		case len(resp.GetRemoved()) > 0:
			reason = resp.GetRemoved()[0].GetReason().GetCode()
		case len(resp.GetReasons()) > 0:
			reason = resp.GetReasons()[0].GetCode()
		}
		return kept == 1, reason, true
	default:
		return false, "", false
	}
}

// postToolHive sends one request to the pdp's HTTP listener as ToolHive
// does and returns the status and body.
func postToolHive(t *testing.T, p *pdp, path, contentType string, body []byte) (int, []byte) {
	t.Helper()
	return requestToolHive(t, p, http.MethodPost, path, contentType, body)
}

func requestToolHive(t *testing.T, p *pdp, method, path, contentType string, body []byte) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://"+p.httpAddr+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out
}

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
