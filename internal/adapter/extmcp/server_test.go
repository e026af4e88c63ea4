package extmcp_test

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/verdictpdp/verdict/internal/adapter/extmcp"
	"github.com/verdictpdp/verdict/internal/cache"
	"github.com/verdictpdp/verdict/internal/mcp"
	agw "github.com/verdictpdp/verdict/proto/agentgateway/dev/ext_mcp"
	mcpv1 "github.com/verdictpdp/verdict/proto/verdict/mcp/v1"
)

func search(args map[string]any) map[string]any {
	return map[string]any{"name": "search_contacts", "arguments": args}
}

var acmeSmith = map[string]any{"tenant": "acme", "query": "smith"}

// TestCheckRequestAgreesWithNativeAPI sends each request to ExtMcp and to
// the native API on one pipeline: ExtMcp passes exactly what the native API
// allows, and refuses the rest with the native JSON-RPC error in mcp_error
// and the code agentgateway maps to the right JSON-RPC error.
func TestCheckRequestAgreesWithNativeAPI(t *testing.T) {
	t.Parallel()
	modes := []struct {
		name  string
		cache bool
		rego  bool
	}{{"native", false, false}, {"cache", true, false}, {"rego", false, true}}
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			var c *cache.Cache
			if mode.cache {
				var err error
				if c, err = cache.New(cache.Limits{MaxEntries: 1024, AdmitFirst: true}); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(c.Close)
			}
			e := startEnv(t, envOptions{cache: c, rego: mode.rego})
			cases := []struct {
				name string
				call call
				want mcpv1.Decision
			}{
				{"tool allowed", call{server: "crm", method: "tools/call", params: search(acmeSmith), who: alice, purpose: "support", region: "eu"}, mcpv1.Decision_DECISION_ALLOW},
				{"tool allowed with a verified token", call{server: "crm", method: "tools/call", params: search(acmeSmith), who: alice, token: e.token(t, alice, time.Hour), purpose: "support", region: "eu"}, mcpv1.Decision_DECISION_ALLOW},
				{"tool denied: no purpose", call{server: "crm", method: "tools/call", params: search(acmeSmith), who: alice, region: "eu"}, mcpv1.Decision_DECISION_DENY},
				{"tool denied: argument over the rule's limit", call{server: "crm", method: "tools/call", params: search(map[string]any{"tenant": "acme", "query": "x", "limit": 500}), who: alice, purpose: "support", region: "eu"}, mcpv1.Decision_DECISION_DENY},
				{"tool denied: other tenant's argument", call{server: "crm", method: "tools/call", params: search(map[string]any{"tenant": "globex", "query": "x"}), who: alice, purpose: "support", region: "eu"}, mcpv1.Decision_DECISION_DENY},
				{"tool denied: unauthenticated", call{server: "crm", method: "tools/call", params: search(acmeSmith), who: nobody, purpose: "support", region: "eu"}, mcpv1.Decision_DECISION_DENY},
				{"tool denied: expired token", call{server: "crm", method: "tools/call", params: search(acmeSmith), who: alice, token: e.token(t, alice, -time.Hour), purpose: "support", region: "eu"}, mcpv1.Decision_DECISION_DENY},
				{"tool denied: not a bearer token", call{server: "crm", method: "tools/call", params: search(acmeSmith), who: alice, token: "not a token", purpose: "support", region: "eu"}, mcpv1.Decision_DECISION_DENY},
				{"tool denied: unknown tool", call{server: "crm", method: "tools/call", params: map[string]any{"name": "drop_tables"}, who: alice, purpose: "support", region: "eu"}, mcpv1.Decision_DECISION_DENY},
				{"tool denied: unknown server", call{server: "nowhere", method: "tools/call", params: search(acmeSmith), who: alice, purpose: "support", region: "eu"}, mcpv1.Decision_DECISION_DENY},
				{"tool needs approval", call{server: "crm", method: "tools/call", params: map[string]any{"name": "delete_contact", "arguments": map[string]any{"tenant": "acme", "id": "42"}}, who: admin, purpose: "support", region: "eu"}, mcpv1.Decision_DECISION_REQUIRE_APPROVAL},
				{"invalid: arguments not an object", call{server: "crm", method: "tools/call", params: map[string]any{"name": "search_contacts", "arguments": "all"}, who: alice}, mcpv1.Decision_DECISION_DENY},
				{"invalid: no tool name", call{server: "crm", method: "tools/call", params: map[string]any{"arguments": acmeSmith}, who: alice}, mcpv1.Decision_DECISION_DENY},
				{"resource allowed", call{server: "crm", method: "resources/read", params: map[string]any{"uri": "crm://reports/q3"}, who: alice, purpose: "support", region: "eu"}, mcpv1.Decision_DECISION_ALLOW},
				{"resource denied", call{server: "crm", method: "resources/read", params: map[string]any{"uri": "file:///etc/passwd"}, who: alice, purpose: "support", region: "eu"}, mcpv1.Decision_DECISION_DENY},
				{"prompt allowed", call{server: "crm", method: "prompts/get", params: map[string]any{"name": "summarize_account", "arguments": map[string]any{"account": "acme"}}, who: alice}, mcpv1.Decision_DECISION_ALLOW},
				{"invalid: prompt argument not a string", call{server: "crm", method: "prompts/get", params: map[string]any{"name": "summarize_account", "arguments": map[string]any{"n": 1}}, who: alice}, mcpv1.Decision_DECISION_DENY},
				{"list allowed", call{server: "crm", method: "tools/list", who: alice, session: "s-1"}, mcpv1.Decision_DECISION_ALLOW},
				{"list denied: unauthenticated", call{server: "crm", method: "tools/list", who: nobody}, mcpv1.Decision_DECISION_DENY},
				{"initialize allowed", call{server: "crm", method: "initialize", params: map[string]any{"protocolVersion": "2025-11-25"}, who: alice}, mcpv1.Decision_DECISION_ALLOW},
				{"unknown method denied", call{server: "crm", method: "sampling/createMessage", params: map[string]any{}, who: alice}, mcpv1.Decision_DECISION_DENY},
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					ctx := timeout(t)
					nat, err := e.native.Check(ctx, tc.call.nativeRequest(t))
					if err != nil {
						t.Fatalf("native Check: %v", err)
					}
					if nat.GetDecision() != tc.want {
						t.Fatalf("native Check: %v %v, want %v", nat.GetDecision(), nat.GetReasons(), tc.want)
					}
					ext, err := e.ext.CheckRequest(ctx, tc.call.extRequest(t))
					if err != nil {
						t.Fatalf("ExtMcp CheckRequest: %v", err)
					}
					assertAgrees(t, ext, nat)
				})
			}
		})
	}
}

// assertAgrees holds an ExtMcp answer to the native answer to the same
// request.
func assertAgrees(t *testing.T, ext *agw.McpRequestResult, nat *mcpv1.CheckResponse) {
	t.Helper()
	md := ext.GetMetadata().AsMap()
	if md["decision_id"] == "" || md["revision"] != nat.GetRevision() {
		t.Errorf("metadata %v: want a decision id and revision %q", md, nat.GetRevision())
	}
	if nat.GetDecision() == mcpv1.Decision_DECISION_ALLOW {
		if ext.GetPass() == nil || md["decision"] != "allow" {
			t.Fatalf("native allows, ExtMcp answers %v", ext)
		}
		return
	}
	ae := ext.GetError()
	if ae == nil {
		t.Fatalf("native %v %v, ExtMcp answers %v", nat.GetDecision(), nat.GetReasons(), ext)
	}
	wantCode := agw.AuthorizationError_PERMISSION_DENIED
	switch nat.GetReasons()[0].GetCode() {
	case mcp.ReasonInvalidRequest:
		wantCode = agw.AuthorizationError_INVALID
	case "rate_limited":
		wantCode = agw.AuthorizationError_RESOURCE_EXHAUSTED
	}
	if ae.GetCode() != wantCode {
		t.Errorf("code %v, want %v (native reasons %v)", ae.GetCode(), wantCode, nat.GetReasons())
	}
	got := rpcError(t, ae)
	want := nat.GetJsonrpcError()
	if got.Code != int(want.GetCode()) || got.Message != want.GetMessage() || ae.GetReason() != want.GetMessage() {
		t.Errorf("JSON-RPC error %d %q (reason %q), want the native %d %q", got.Code, got.Message, ae.GetReason(), want.GetCode(), want.GetMessage())
	}
	if got.Data["decision_id"] != md["decision_id"] {
		t.Errorf("mcp_error names decision %v, metadata %v", got.Data["decision_id"], md["decision_id"])
	}
	wantData := want.GetData().AsMap()
	delete(wantData, "decision_id")
	delete(got.Data, "decision_id")
	if d := cmp.Diff(wantData, normalize(t, got.Data)); d != "" {
		t.Errorf("mcp_error data differs from the native error's (-native +ExtMcp):\n%s", d)
	}
}

// normalize re-decodes v as JSON the way a Struct holds it (numbers as
// float64).
func normalize(t *testing.T, v map[string]any) map[string]any {
	t.Helper()
	var out map[string]any
	if err := json.Unmarshal(mustJSON(t, v), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRateLimitExhausted: the call over a rate_limit obligation is refused
// with RESOURCE_EXHAUSTED (agentgateway's -32003) and a retry-after, as the
// native API refuses it with rate_limited.
func TestRateLimitExhausted(t *testing.T) {
	t.Parallel()
	e := startEnv(t, envOptions{})
	get := func(who string) call {
		s := alice
		s.id = who
		return call{server: "crm", method: "tools/call", who: s, purpose: "support", region: "eu",
			params: map[string]any{"name": rateLimited, "arguments": map[string]any{"tenant": "acme", "id": "42"}}}
	}
	for i := range rateLimit + 1 {
		ctx := timeout(t)
		nat, err := e.native.Check(ctx, get("rl-native").nativeRequest(t))
		if err != nil {
			t.Fatal(err)
		}
		ext, err := e.ext.CheckRequest(ctx, get("rl-ext").extRequest(t))
		if err != nil {
			t.Fatal(err)
		}
		if i < rateLimit {
			if nat.GetDecision() != mcpv1.Decision_DECISION_ALLOW || ext.GetPass() == nil {
				t.Fatalf("call %d: native %v %v, ExtMcp %v; want both allowed", i+1, nat.GetDecision(), nat.GetReasons(), ext)
			}
			continue
		}
		if ae := ext.GetError(); ae.GetCode() != agw.AuthorizationError_RESOURCE_EXHAUSTED {
			t.Fatalf("call %d over the limit: ExtMcp %v, want RESOURCE_EXHAUSTED", i+1, ext)
		}
		got := rpcError(t, ext.GetError())
		if got.Data["retry_after_seconds"] == nil {
			t.Errorf("mcp_error %v has no retry_after_seconds", got)
		}
		assertAgrees(t, ext, nat)
	}
}

// TestRefusesMalformedRequests: what cannot be decided is refused with
// INVALID and a reason naming the problem, never passed and never a gRPC
// error.
func TestRefusesMalformedRequests(t *testing.T) {
	t.Parallel()
	e := startEnv(t, envOptions{})
	valid := func() *agw.McpRequest {
		return call{server: "crm", method: "tools/call", params: search(acmeSmith), who: alice, purpose: "support", region: "eu"}.extRequest(t)
	}
	with := func(f func(r *agw.McpRequest)) *agw.McpRequest {
		r := valid()
		f(r)
		return r
	}
	body := func(s string) *agw.McpRequest { return with(func(r *agw.McpRequest) { r.McpRequest = []byte(s) }) }
	deep := strings.Repeat(`{"a":`, 70) + "1" + strings.Repeat("}", 70)
	cases := []struct {
		name   string
		req    *agw.McpRequest
		reason string
	}{
		{"no method", with(func(r *agw.McpRequest) { r.Method = "" }), "method is empty"},
		{"method with a control character", with(func(r *agw.McpRequest) { r.Method = "tools/call\n" }), "control character"},
		{"no service name", with(func(r *agw.McpRequest) { r.ServiceNames = nil }), "service_names is empty"},
		{"two servers for a tool call", with(func(r *agw.McpRequest) { r.ServiceNames = []string{"crm", "github"} }), "goes to one MCP server"},
		{"a server twice", with(func(r *agw.McpRequest) {
			r.ServiceNames = []string{"crm", "crm"}
			r.McpRequest = nil
			r.Method = "tools/list"
		}), "listed twice"},
		{"empty server name", with(func(r *agw.McpRequest) { r.ServiceNames = []string{""} }), "server is empty"},
		{"too many servers", with(func(r *agw.McpRequest) {
			r.McpRequest, r.Method = nil, "tools/list"
			r.ServiceNames = nil
			for i := range extmcp.MaxServices + 1 {
				r.ServiceNames = append(r.ServiceNames, "s"+strconv.Itoa(i))
			}
		}), "the limit is 128"},
		{"params not JSON", body(`{"name":`), "mcp_request"},
		{"params an array", body(`[1,2]`), "must be a JSON object, not an array"},
		{"params a string", body(`"search_contacts"`), "must be a JSON object"},
		{"params with trailing data", body(`{} {}`), "trailing_data"},
		{"params nested too deep", body(deep), "too_deep"},
		{"params naming a member twice", body(`{"name":"search_contacts","name":"delete_contact"}`), "duplicate_key"},
		{"params not UTF-8", body("{\"name\":\"search_\xff\"}"), "invalid_utf8"},
		{"params too large", body(`{"name":"` + strings.Repeat("x", 1<<20) + `"}`), "the limit is 1048576"},
		{"tool call without params", with(func(r *agw.McpRequest) { r.McpRequest = nil }), "needs params.name"},
		{"tool name with a control character", body(`{"name":"search\u0000contacts"}`), "control character"},
		{"jwt claims not an object", with(func(r *agw.McpRequest) { r.MetadataContext = mustStruct(t, map[string]any{"jwt": "alice"}) }), "metadata_context.jwt must be an object"},
		{"jwt claims without sub", with(func(r *agw.McpRequest) {
			r.MetadataContext = mustStruct(t, map[string]any{"jwt": map[string]any{"roles": []any{"admin"}}})
		}), "no sub claim"},
		{"purpose not a string", with(func(r *agw.McpRequest) { r.MetadataContext = mustStruct(t, map[string]any{"purpose": 7}) }), "metadata_context.purpose must be a string"},
		{"two authorization headers", with(func(r *agw.McpRequest) {
			r.Headers = []*agw.McpHeader{{Key: "authorization", Value: []byte("Bearer a")}, {Key: "Authorization", Value: []byte("Bearer b")}}
		}), "more than once"},
		{"session id with a control character", with(func(r *agw.McpRequest) {
			r.Headers = []*agw.McpHeader{{Key: "mcp-session-id", Value: []byte("s\x01")}}
		}), "control character"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res, err := e.ext.CheckRequest(timeout(t), tc.req)
			if err != nil {
				t.Fatalf("gRPC error %v, want an INVALID result", err)
			}
			ae := res.GetError()
			if ae.GetCode() != agw.AuthorizationError_INVALID || !strings.Contains(ae.GetReason(), tc.reason) {
				t.Fatalf("answer %v, want INVALID with a reason containing %q", res, tc.reason)
			}
			if got := rpcError(t, ae); got.Data["decision_id"] != res.GetMetadata().AsMap()["decision_id"] || res.GetMetadata().AsMap()["decision"] != "deny" {
				t.Errorf("mcp_error %v and metadata %v do not name the same denied decision", got, res.GetMetadata().AsMap())
			}
		})
	}
}

// TestTokenOrGatewayClaims: a bearer token this service verifies decides
// the subject, even against the gateway's claims; one it cannot verify
// (no identity.jwt) gives way to the claims agentgateway verified.
func TestTokenOrGatewayClaims(t *testing.T) {
	t.Parallel()
	withBoth := func(t *testing.T, token string) *agw.McpRequest {
		t.Helper()
		req := call{server: "crm", method: "tools/call", params: search(acmeSmith), who: alice, purpose: "support", region: "eu"}.extRequest(t)
		req.Headers = append(req.Headers, &agw.McpHeader{Key: "authorization", Value: []byte("Bearer " + token)})
		return req
	}
	t.Run("verified here", func(t *testing.T) {
		t.Parallel()
		e := startEnv(t, envOptions{})
		res, err := e.ext.CheckRequest(timeout(t), withBoth(t, e.token(t, alice, -time.Hour)))
		if err != nil || res.GetError().GetCode() != agw.AuthorizationError_PERMISSION_DENIED {
			t.Fatalf("expired token with the gateway's claims: %v %v, want PERMISSION_DENIED", res, err)
		}
		if got := rpcError(t, res.GetError()); !strings.Contains(string(mustJSON(t, got.Data["reasons"])), "subject.unauthenticated") {
			t.Errorf("reasons %v, want subject.unauthenticated", got.Data["reasons"])
		}
	})
	t.Run("not verifiable here", func(t *testing.T) {
		t.Parallel()
		e := startEnv(t, envOptions{noVerifier: true})
		res, err := e.ext.CheckRequest(timeout(t), withBoth(t, "opaque-token"))
		if err != nil || res.GetPass() == nil {
			t.Fatalf("unverifiable token with the gateway's claims: %v %v, want pass on the claims", res, err)
		}
		req := withBoth(t, "opaque-token")
		req.MetadataContext = mustStruct(t, map[string]any{"purpose": "support", "region": "eu"})
		res, err = e.ext.CheckRequest(timeout(t), req)
		if err != nil || res.GetPass() != nil {
			t.Fatalf("unverifiable token alone: %v %v, want a deny", res, err)
		}
		nat, err := e.native.Check(timeout(t), &mcpv1.CheckRequest{Server: "crm", Method: "tools/call", Params: mustStruct(t, search(acmeSmith)), BearerToken: "opaque-token",
			Context: &mcpv1.RequestContext{Purpose: "support", Region: "eu"}})
		if err != nil {
			t.Fatal(err)
		}
		assertAgrees(t, res, nat)
	})
}
