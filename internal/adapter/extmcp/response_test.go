package extmcp_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/verdictpdp/verdict/internal/adapter/extmcp"
	"github.com/verdictpdp/verdict/internal/audit"
	"github.com/verdictpdp/verdict/internal/mcp"
	"github.com/verdictpdp/verdict/internal/pipeline"
	agw "github.com/verdictpdp/verdict/proto/agentgateway/dev/ext_mcp"
	mcpv1 "github.com/verdictpdp/verdict/proto/verdict/mcp/v1"
)

// allow asks CheckRequest for c, which must pass, and returns the decision
// id agentgateway sends back with the response.
func allow(t *testing.T, e *env, c call) string {
	t.Helper()
	res, err := e.ext.CheckRequest(timeout(t), c.extRequest(t))
	if err != nil || res.GetPass() == nil {
		t.Fatalf("CheckRequest %s: %v %v, want pass", c.method, res, err)
	}
	id, _ := res.GetMetadata().AsMap()["decision_id"].(string)
	if id == "" {
		t.Fatalf("CheckRequest metadata %v has no decision_id", res.GetMetadata().AsMap())
	}
	return id
}

// response is the McpResponse agentgateway sends for result, with
// metadata_context as the processor's metadata expressions fill it.
func response(t *testing.T, servers []string, method string, result any, md map[string]any) *agw.McpResponse {
	t.Helper()
	return &agw.McpResponse{ServiceNames: servers, Method: method, McpResponse: mustJSON(t, result), MetadataContext: mustStruct(t, md)}
}

func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("mutated is not a JSON object: %v (%q)", err, b)
	}
	return m
}

// TestCheckResponseAgreesWithCheckResult: a tool result is checked with the
// request it answers, as the native CheckResult checks it: redacted (the
// same copy), blocked, or passed.
func TestCheckResponseAgreesWithCheckResult(t *testing.T) {
	t.Parallel()
	e := startEnv(t, envOptions{})
	clinician := subject{id: "dr-who", tenant: "acme", clearance: "restricted", roles: []string{"clinician", "hipaa_trained"}}
	record := call{server: "ehr", method: "tools/call", who: clinician, purpose: "treatment", region: "eu",
		params: map[string]any{"name": "get_patient_record", "arguments": map[string]any{"patient_id": "P123456"}}}
	searchCall := call{server: "crm", method: "tools/call", params: search(acmeSmith), who: alice, purpose: "support", region: "eu"}
	cases := []struct {
		name   string
		call   call
		result map[string]any
		want   mcpv1.ResultAction
	}{
		{"redacted", searchCall, map[string]any{
			"content":           []any{map[string]any{"type": "text", "text": "Jane Roe <jane@example.com>, card 4111 1111 1111 1111"}},
			"structuredContent": map[string]any{"contacts": []any{map[string]any{"name": "Jane Roe", "phone": "+49 30 1234567", "score": 0.5}}},
		}, mcpv1.ResultAction_RESULT_ACTION_REDACT},
		{"passed", searchCall, map[string]any{
			"content": []any{map[string]any{"type": "text", "text": "no contact named smith"}},
		}, mcpv1.ResultAction_RESULT_ACTION_PASS},
		{"blocked: a secret in a restricted record", record, map[string]any{
			"content": []any{map[string]any{"type": "text", "text": "key AKIAABCDEFGHIJKLMNOP"}},
		}, mcpv1.ResultAction_RESULT_ACTION_BLOCK},
		{"resource redacted", call{server: "crm", method: "resources/read", params: map[string]any{"uri": "crm://contacts/42"}, who: alice, purpose: "support", region: "eu"}, map[string]any{
			"contents": []any{map[string]any{"uri": "crm://contacts/42", "text": "mail jane@example.com"}},
		}, mcpv1.ResultAction_RESULT_ACTION_REDACT},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := timeout(t)
			nat, err := e.native.CheckResult(ctx, &mcpv1.CheckResultRequest{Request: tc.call.nativeRequest(t), Result: mustStruct(t, tc.result)})
			if err != nil || nat.GetAction() != tc.want {
				t.Fatalf("native CheckResult: %v %v, want %v", nat, err, tc.want)
			}
			id := allow(t, e, tc.call)
			res, err := e.ext.CheckResponse(ctx, response(t, []string{tc.call.server}, tc.call.method, tc.result, map[string]any{"decision_id": id}))
			if err != nil {
				t.Fatal(err)
			}
			switch tc.want {
			case mcpv1.ResultAction_RESULT_ACTION_PASS:
				if res.GetPass() == nil {
					t.Fatalf("ExtMcp %v, want pass", res)
				}
			case mcpv1.ResultAction_RESULT_ACTION_UNSPECIFIED:
				t.Fatal("case without an action")
			case mcpv1.ResultAction_RESULT_ACTION_REDACT:
				if res.GetMutated() == nil {
					t.Fatalf("ExtMcp %v, want mutated", res)
				}
				got := decode(t, res.GetMutated())
				if d := cmp.Diff(nat.GetResult().AsMap(), got); d != "" {
					t.Errorf("mutated result differs from the native redacted copy (-native +ExtMcp):\n%s", d)
				}
				for _, secret := range []string{"jane@example.com", "4111 1111", "1234567"} {
					if strings.Contains(string(res.GetMutated()), secret) {
						t.Errorf("mutated result still holds %q: %s", secret, res.GetMutated())
					}
				}
				if !strings.Contains(string(res.GetMutated()), "[REDACTED") {
					t.Errorf("mutated result masks nothing: %s", res.GetMutated())
				}
			case mcpv1.ResultAction_RESULT_ACTION_BLOCK:
				ae := res.GetError()
				if ae.GetCode() != agw.AuthorizationError_PERMISSION_DENIED {
					t.Fatalf("ExtMcp %v, want PERMISSION_DENIED", res)
				}
				if got := rpcError(t, ae); got.Code != int(nat.GetJsonrpcError().GetCode()) || got.Message != nat.GetJsonrpcError().GetMessage() {
					t.Errorf("JSON-RPC error %v, want the native %v", got, nat.GetJsonrpcError())
				}
			}
		})
	}
}

// TestCheckResponseWithoutItsRequest: a result whose request Verdict does
// not know cannot be checked, and is blocked: no decision id, an unknown
// one, one used already, one given to another method or server.
func TestCheckResponseWithoutItsRequest(t *testing.T) {
	t.Parallel()
	e := startEnv(t, envOptions{})
	result := map[string]any{"content": []any{map[string]any{"type": "text", "text": "fine"}}}
	tool := call{server: "crm", method: "tools/call", params: search(acmeSmith), who: alice, purpose: "support", region: "eu"}
	used := allow(t, e, tool)
	if res, err := e.ext.CheckResponse(timeout(t), response(t, []string{"crm"}, "tools/call", result, map[string]any{"decision_id": used})); err != nil || res.GetPass() == nil {
		t.Fatalf("first response: %v %v, want pass", res, err)
	}
	cases := []struct {
		name     string
		servers  []string
		md       map[string]any
		reason   string
		wantCode agw.AuthorizationError_Code
	}{
		{"no decision id", []string{"crm"}, map[string]any{"jwt": alice.claims()}, "no decision_id", agw.AuthorizationError_PERMISSION_DENIED},
		{"unknown decision id", []string{"crm"}, map[string]any{"decision_id": "3f1c9a4e-0000-4000-8000-000000000000"}, "no request is pending", agw.AuthorizationError_PERMISSION_DENIED},
		{"decision id used already", []string{"crm"}, map[string]any{"decision_id": used}, "no request is pending", agw.AuthorizationError_PERMISSION_DENIED},
		{"decision id of a list request", []string{"crm"}, map[string]any{"decision_id": allow(t, e, call{server: "crm", method: "tools/list", who: alice})}, "given to a tools/list request", agw.AuthorizationError_PERMISSION_DENIED},
		{"decision id of another server", []string{"github"}, map[string]any{"decision_id": allow(t, e, tool)}, "another MCP server", agw.AuthorizationError_PERMISSION_DENIED},
		{"two servers", []string{"crm", "github"}, map[string]any{"decision_id": allow(t, e, tool)}, "comes from one MCP server", agw.AuthorizationError_INVALID},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res, err := e.ext.CheckResponse(timeout(t), response(t, tc.servers, "tools/call", result, tc.md))
			if err != nil {
				t.Fatal(err)
			}
			ae := res.GetError()
			if ae.GetCode() != tc.wantCode || !strings.Contains(ae.GetReason(), tc.reason) {
				t.Fatalf("ExtMcp %v, want %v with a reason containing %q", res, tc.wantCode, tc.reason)
			}
		})
	}
}

// TestRefusesMalformedResponses: a result that is not a JSON object, or
// cannot be trusted to be read the way the client reads it, is refused.
func TestRefusesMalformedResponses(t *testing.T) {
	t.Parallel()
	e := startEnv(t, envOptions{})
	tool := call{server: "crm", method: "tools/call", params: search(acmeSmith), who: alice, purpose: "support", region: "eu"}
	for _, tc := range []struct{ name, method, body, reason string }{
		{"result not JSON", "tools/call", `{"content":`, "mcp_response"},
		{"result an array", "tools/call", `[]`, "must be a JSON object"},
		{"result naming a member twice", "tools/call", `{"content":[],"content":[{"type":"text","text":"x"}]}`, "duplicate_key"},
		{"list result not JSON", "tools/list", `nope`, "mcp_response"},
		{"list entries not an array", "tools/list", `{"tools":{"name":"x"}}`, "must be an array"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			md := map[string]any{"jwt": alice.claims()}
			if tc.method == "tools/call" {
				md["decision_id"] = allow(t, e, tool)
			}
			res, err := e.ext.CheckResponse(timeout(t), &agw.McpResponse{ServiceNames: []string{"crm"}, Method: tc.method, McpResponse: []byte(tc.body), MetadataContext: mustStruct(t, md)})
			if err != nil {
				t.Fatal(err)
			}
			if ae := res.GetError(); ae.GetCode() != agw.AuthorizationError_INVALID || !strings.Contains(ae.GetReason(), tc.reason) {
				t.Fatalf("ExtMcp %v, want INVALID with a reason containing %q", res, tc.reason)
			}
		})
	}
	t.Run("other methods pass", func(t *testing.T) {
		t.Parallel()
		res, err := e.ext.CheckResponse(timeout(t), &agw.McpResponse{ServiceNames: []string{"crm"}, Method: "initialize", McpResponse: []byte(`{}`)})
		if err != nil || res.GetPass() == nil {
			t.Fatalf("initialize result: %v %v, want pass", res, err)
		}
	})
}

var toolList = map[string]any{
	"tools": []any{
		map[string]any{"name": "search_contacts", "description": "Search contacts"},
		map[string]any{"name": "delete_contact", "description": "Delete a contact"},
		map[string]any{"name": "drop_tables", "description": "Not in the catalog"},
	},
	"nextCursor": "page-2",
}

func names(t *testing.T, result map[string]any, member, key string) []string {
	t.Helper()
	var out []string
	items, _ := result[member].([]any)
	for _, it := range items {
		out = append(out, it.(map[string]any)[key].(string))
	}
	return out
}

// TestListFiltering: a list result is filtered as FilterTools filters it,
// for the subject of the list request (remembered) or of
// metadata_context.jwt; a listing the subject may not see is refused.
func TestListFiltering(t *testing.T) {
	t.Parallel()
	e := startEnv(t, envOptions{})
	nat, err := e.native.FilterTools(timeout(t), &mcpv1.FilterToolsRequest{
		Request: call{server: "crm", method: "tools/list", who: alice}.nativeRequest(t), Result: mustStruct(t, toolList)})
	if err != nil || nat.GetDecision() != mcpv1.Decision_DECISION_ALLOW {
		t.Fatalf("native FilterTools: %v %v", nat, err)
	}
	want := names(t, nat.GetResult().AsMap(), "tools", "name")
	if len(want) != 1 {
		t.Fatalf("native FilterTools kept %v; the test wants a partial listing", want)
	}
	for _, tc := range []struct {
		name string
		md   func() map[string]any
	}{
		{"subject of the list request", func() map[string]any {
			return map[string]any{"decision_id": allow(t, e, call{server: "crm", method: "tools/list", who: alice})}
		}},
		{"subject in metadata_context.jwt", func() map[string]any { return map[string]any{"jwt": alice.claims()} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res, err := e.ext.CheckResponse(timeout(t), response(t, []string{"crm"}, "tools/list", toolList, tc.md()))
			if err != nil || res.GetMutated() == nil {
				t.Fatalf("ExtMcp %v %v, want mutated", res, err)
			}
			got := decode(t, res.GetMutated())
			if d := cmp.Diff(nat.GetResult().AsMap(), got); d != "" {
				t.Errorf("filtered list differs from FilterTools' (-native +ExtMcp):\n%s", d)
			}
		})
	}
	t.Run("nothing removed", func(t *testing.T) {
		t.Parallel()
		kept := map[string]any{"tools": []any{map[string]any{"name": "search_contacts"}}}
		res, err := e.ext.CheckResponse(timeout(t), response(t, []string{"crm"}, "tools/list", kept, map[string]any{"jwt": alice.claims()}))
		if err != nil || res.GetPass() == nil {
			t.Fatalf("ExtMcp %v %v, want pass", res, err)
		}
	})
	t.Run("unauthenticated", func(t *testing.T) {
		t.Parallel()
		res, err := e.ext.CheckResponse(timeout(t), response(t, []string{"crm"}, "tools/list", toolList, nil))
		if err != nil || res.GetError().GetCode() != agw.AuthorizationError_PERMISSION_DENIED {
			t.Fatalf("ExtMcp %v %v, want PERMISSION_DENIED", res, err)
		}
	})
}

// TestMultiplexedTargets: agentgateway fans a list request out to every
// target and names each entry of the merged result after its target
// ("crm_search_contacts", "crm+crm://…"). Each target is decided on its
// own: a target the subject may not list is left out of the fan-out
// (metadata.allowed_targets) and its entries out of the result, each entry
// judged with its own name as FilterTools judges it, and an entry of no
// listed target removed.
func TestMultiplexedTargets(t *testing.T) {
	t.Parallel()
	e := startEnv(t, envOptions{})
	dev := subject{id: "dana", tenant: "acme", clearance: "confidential", roles: []string{"sales"}, groups: []string{"engineering"}, scopes: []string{"github:write"}}
	outsider := subject{id: "olga", tenant: "initech", clearance: "confidential", roles: []string{"sales"}}

	t.Run("request", func(t *testing.T) {
		t.Parallel()
		ctx := timeout(t)
		fanout := func(who subject, servers ...string) *agw.McpRequestResult {
			req := call{method: "tools/list", who: who}.extRequest(t)
			req.ServiceNames = servers
			res, err := e.ext.CheckRequest(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			return res
		}
		if res := fanout(dev, "crm", "github"); res.GetPass() == nil || res.GetMetadata().AsMap()["allowed_targets"] != nil {
			t.Errorf("all targets allowed: %v, want pass without allowed_targets", res)
		}
		res := fanout(outsider, "crm", "github")
		md := res.GetMetadata().AsMap()
		if res.GetPass() == nil || !slices.Equal(anyStrings(md["allowed_targets"]), []string{"github"}) || len(anyStrings(md["decision_ids"])) != 2 {
			t.Errorf("crm denied (tenant), github allowed: %v, want pass with allowed_targets [github] and two decision ids", res)
		}
		if res := fanout(outsider, "crm"); res.GetError().GetCode() != agw.AuthorizationError_PERMISSION_DENIED {
			t.Errorf("every target denied: %v, want PERMISSION_DENIED", res)
		}
		// Another fan-out method has no response check to fall back on
		// should the gateway ignore allowed_targets: refused outright.
		req := call{method: "initialize", who: outsider}.extRequest(t)
		req.ServiceNames = []string{"github", "crm"}
		res, err := e.ext.CheckRequest(ctx, req)
		if err != nil || res.GetError().GetCode() != agw.AuthorizationError_PERMISSION_DENIED || !strings.Contains(res.GetError().GetReason(), "other tenants") {
			t.Errorf("initialize with crm denied: %v %v, want crm's PERMISSION_DENIED", res, err)
		}
	})

	t.Run("response", func(t *testing.T) {
		t.Parallel()
		muxed := map[string]any{"tools": []any{
			map[string]any{"name": "crm_search_contacts"},
			map[string]any{"name": "crm_delete_contact"},
			map[string]any{"name": "github_list_issues"},
			map[string]any{"name": "github_delete_repository"},
			map[string]any{"name": "files_read_file"},
			map[string]any{"name": "unprefixed"},
		}}
		own := map[string][]any{}
		for _, it := range muxed["tools"].([]any) {
			server, name, _ := strings.Cut(it.(map[string]any)["name"].(string), "_")
			own[server] = append(own[server], map[string]any{"name": name})
		}
		var want []string
		for _, server := range []string{"crm", "github"} {
			nat, err := e.native.FilterTools(timeout(t), &mcpv1.FilterToolsRequest{
				Request: call{server: server, method: "tools/list", who: dev}.nativeRequest(t),
				Result:  mustStruct(t, map[string]any{"tools": own[server]})})
			if err != nil || nat.GetDecision() != mcpv1.Decision_DECISION_ALLOW {
				t.Fatalf("native FilterTools %s: %v %v", server, nat, err)
			}
			for _, n := range names(t, nat.GetResult().AsMap(), "tools", "name") {
				want = append(want, server+"_"+n)
			}
		}
		// The subject is the fan-out request's, remembered under its
		// decision id.
		list := call{method: "tools/list", who: dev}.extRequest(t)
		list.ServiceNames = []string{"crm", "github"}
		lres, err := e.ext.CheckRequest(timeout(t), list)
		if err != nil || lres.GetPass() == nil {
			t.Fatalf("fan-out request: %v %v, want pass", lres, err)
		}
		req := response(t, []string{"crm", "github"}, "tools/list", muxed, map[string]any{"decision_id": lres.GetMetadata().AsMap()["decision_id"]})
		res, err := e.ext.CheckResponse(timeout(t), req)
		if err != nil || res.GetMutated() == nil {
			t.Fatalf("ExtMcp %v %v, want mutated", res, err)
		}
		if got := names(t, decode(t, res.GetMutated()), "tools", "name"); !slices.Equal(got, want) || len(want) < 2 {
			t.Errorf("kept %v, want %v (what FilterTools keeps per target, in the merged order)", got, want)
		}
	})

	t.Run("resources", func(t *testing.T) {
		t.Parallel()
		muxed := map[string]any{"resources": []any{
			map[string]any{"uri": "crm+crm://contacts/42", "name": "Jane"},
			map[string]any{"uri": "crm+file:///etc/passwd", "name": "passwd"},
			map[string]any{"uri": "github+crm://contacts/42", "name": "wrong server"},
			map[string]any{"uri": "relative/path", "name": "unattributed"},
		}}
		res, err := e.ext.CheckResponse(timeout(t), response(t, []string{"crm", "github"}, "resources/list", muxed, map[string]any{"jwt": alice.claims()}))
		if err != nil || res.GetMutated() == nil {
			t.Fatalf("ExtMcp %v %v, want mutated", res, err)
		}
		if got := names(t, decode(t, res.GetMutated()), "resources", "uri"); !slices.Equal(got, []string{"crm+crm://contacts/42"}) {
			t.Errorf("kept %v, want only crm's contact", got)
		}
	})
}

func anyStrings(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, x := range l {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

// TestPendingRequestsAreBounded: the requests remembered for their
// responses are bounded in number; the oldest are forgotten first.
func TestPendingRequestsAreBounded(t *testing.T) {
	t.Parallel()
	e := startEnv(t, envOptions{ext: extmcp.Options{PendingEntries: 2}})
	tool := call{server: "crm", method: "tools/call", params: search(acmeSmith), who: alice, purpose: "support", region: "eu"}
	ids := []string{allow(t, e, tool), allow(t, e, tool), allow(t, e, tool)}
	result := map[string]any{"content": []any{map[string]any{"type": "text", "text": "fine"}}}
	for i, id := range ids {
		res, err := e.ext.CheckResponse(context.Background(), response(t, []string{"crm"}, "tools/call", result, map[string]any{"decision_id": id}))
		if err != nil {
			t.Fatal(err)
		}
		if (i == 0) != (res.GetPass() == nil) {
			t.Errorf("response %d: %v; want the oldest forgotten and the two newest passed", i, res)
		}
	}
}

// TestMuxedListUnattributedIsRecorded: a multiplexed list none of whose
// entries names a server of service_names is emptied, and the audit log
// says so.
func TestMuxedListUnattributedIsRecorded(t *testing.T) {
	var n atomic.Int32
	rec, err := audit.New(audit.Options{Observe: func(*audit.Entry) { n.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	srv := extmcp.NewServer(mcp.NewDecider(pipeline.New(newEngine(t, nil, false), pipeline.Options{Audit: rec}), mcp.DefaultPath, false), extmcp.Options{})
	res, err := srv.CheckResponse(context.Background(), response(t, []string{"crm", "github"}, "tools/list",
		map[string]any{"tools": []any{map[string]any{"name": "files_read_file"}}}, map[string]any{"jwt": alice.claims()}))
	if err != nil {
		t.Fatal(err)
	}
	if res.GetMutated() == nil {
		t.Fatalf("an unattributed entry was let through: %v", res)
	}
	if n.Load() != 1 {
		t.Fatalf("%d audit events for an emptied list, want 1", n.Load())
	}
}
