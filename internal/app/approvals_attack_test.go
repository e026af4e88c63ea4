package app_test

import (
	"net/http"
	"strconv"
	"testing"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/verdictpdp/verdict/internal/bundle/bundletest"
	"github.com/verdictpdp/verdict/internal/config"
	mcpv1 "github.com/verdictpdp/verdict/proto/verdict/mcp/v1"
)

// TestQuarantineHoldsUnderFailOpen: with decision.fail_open, a call
// whose evaluation fails is allowed. A quarantine must still deny it: the
// kill switch is for exactly the moment the policy cannot be trusted. A
// caller who can make evaluation fail (here: an argument that makes two
// rule bodies conflict) must not step around a quarantine of itself.
func TestQuarantineHoldsUnderFailOpen(t *testing.T) {
	env := newApprovalsEnv(t)
	env.cfg.Decision.FailOpen = true
	env.cfg.MCP.Path = "review/mcp/decision"
	env.cfg.Bundles = append(env.cfg.Bundles, config.Bundle{Name: "review", Source: bundletest.WriteDir(t, t.TempDir(), bundletest.Spec{
		Revision: "review-1", Roots: []string{"review"},
		Modules: map[string]string{"review.rego": `package review.mcp

decision := {"allow": true} if not input.tool.arguments.boom

decision := {"allow": true, "n": 1} if input.tool.arguments.boom

decision := {"allow": true, "n": 2} if input.tool.arguments.boom
`},
	})})
	p := startPDP(t, env.cfg)
	native := mcpv1.NewMCPPolicyClient(p.dial(t))
	admin := env.token(t, "sam", "roles", []string{"security-admin"})
	call := func(boom bool) *mcpv1.CheckRequest {
		args := map[string]any{"x": 1}
		if boom {
			args["boom"] = true
		}
		params, _ := structpb.NewStruct(map[string]any{"name": "anything", "arguments": args})
		return &mcpv1.CheckRequest{Subject: &mcpv1.Subject{Id: "mallory"}, Server: "crm", Method: "tools/call", Params: params}
	}
	if r := checkMCP(t, native, call(false)); r.GetDecision() != mcpv1.Decision_DECISION_ALLOW {
		t.Fatalf("before: %v %v", r.GetDecision(), r.GetReasons())
	}
	for _, q := range []map[string]string{
		{"kind": "subject", "subject": "mallory"},
		{"kind": "server", "server": "crm"},
	} {
		st, out := adminCall(t, p, "POST", "/v1/quarantines", admin, q)
		if st != http.StatusCreated {
			t.Fatalf("quarantine: %d %v", st, out)
		}
	}
	if r := checkMCP(t, native, call(false)); firstReason(r) != "quarantined" {
		t.Fatalf("quarantined, evaluation fine: %v %v", r.GetDecision(), r.GetReasons())
	}
	if r := checkMCP(t, native, call(true)); r.GetDecision() == mcpv1.Decision_DECISION_ALLOW {
		t.Errorf("quarantined subject and server, evaluation failed, fail-open: allowed (%v)", r.GetReasons())
	}
}

// TestAuthZENSearchSeesQuarantine: an AuthZEN resource search for the
// action tools/call keeps the candidates an evaluation allows. An
// evaluation of a quarantined tool is a deny, so the search must not
// return it.
func TestAuthZENSearchSeesQuarantine(t *testing.T) {
	env := newApprovalsEnv(t)
	p := startPDP(t, env.cfg)
	admin := env.token(t, "sam", "roles", []string{"security-admin"})
	sub := map[string]any{"type": "user", "id": "alice", "properties": map[string]any{"roles": []any{"sales"}, "tenant": "acme", "clearance": "confidential"}}
	ctx := map[string]any{"arguments": map[string]any{"tenant": "acme", "query": "smith"}, "purpose": "support", "region": "eu"}
	search := func() []string {
		st, res := authzenPost(t, p, "/access/v1/search/resource", map[string]any{
			"subject":  sub,
			"action":   map[string]any{"name": "tools/call"},
			"resource": map[string]any{"type": "mcp_tool", "properties": map[string]any{"server": "crm"}},
			"context":  ctx,
		})
		if st != http.StatusOK {
			t.Fatalf("search: %d %v", st, res)
		}
		var found []string
		for _, r := range res["results"].([]any) {
			found = append(found, r.(map[string]any)["id"].(string))
		}
		return found
	}
	before := search()
	if len(before) == 0 {
		t.Fatal("the search finds nothing before the quarantine: pick another subject")
	}
	if st, out := adminCall(t, p, "POST", "/v1/quarantines", admin, map[string]string{"kind": "server", "server": "crm"}); st != http.StatusCreated {
		t.Fatalf("quarantine: %d %v", st, out)
	}
	st, d := authzenPost(t, p, "/access/v1/evaluation", map[string]any{
		"subject": sub, "action": map[string]any{"name": "tools/call"},
		"resource": map[string]any{"type": "mcp_tool", "id": before[0], "properties": map[string]any{"server": "crm"}}, "context": ctx,
	})
	t.Logf("evaluation of %s under quarantine: %d %v", before[0], st, d["decision"])
	if after := search(); len(after) != 0 {
		t.Errorf("server crm is quarantined, yet the search still finds %v (before: %v)", after, before)
	}
}

// TestCrossTenantApprover: an approval keeps its caller's tenant, and the
// library's approvals policy lets only approvers of that tenant resolve it:
// a CRM lead of globex cannot approve acme's deletion.
func TestCrossTenantApprover(t *testing.T) {

	env := newApprovalsEnv(t)
	p := startPDP(t, env.cfg)
	native := mcpv1.NewMCPPolicyClient(p.dial(t))
	first := checkMCP(t, native, carlDeletes("77"))
	id := first.GetApproval().GetId()
	if id == "" {
		t.Fatalf("no approval: %v", first.GetDecision())
	}
	globexLead := env.token(t, "gina", "roles", []string{"crm_lead"}, "tenant", "globex")
	st, out := adminCall(t, p, "POST", "/v1/approvals/"+id+"/approve", globexLead, nil)
	if st == http.StatusOK {
		r := checkMCP(t, native, carlDeletes("77"))
		t.Errorf("a crm_lead of tenant globex approved acme's call (%d); the call then got %v", st, r.GetDecision())
	}
	_ = out
}

// TestGrantCacheIsPerSubject (sound): an allow cached under carl's
// grant is not served to dave, who holds no grant, nor to carl once it is
// revoked; a grant lifts no deny (another tenant's argument).
func TestGrantCacheIsPerSubject(t *testing.T) {
	env := newApprovalsEnv(t)
	p := startPDP(t, env.cfg)
	native := mcpv1.NewMCPPolicyClient(p.dial(t))
	admin := env.token(t, "sam", "roles", []string{"security-admin"})
	st, out := adminCall(t, p, "POST", "/v1/grants", admin, map[string]any{"subject": "carl", "tools": []string{"*/*"}, "duration": "1h"})
	if st != http.StatusCreated {
		t.Fatalf("grant: %d %v", st, out)
	}
	for range 2 {
		if r := checkMCP(t, native, carlDeletes("1")); r.GetDecision() != mcpv1.Decision_DECISION_ALLOW {
			t.Fatalf("carl under the grant: %v", r.GetDecision())
		}
	}
	dave := carlDeletes("1")
	dave.Subject.Id = "dave"
	if r := checkMCP(t, native, dave); r.GetDecision() != mcpv1.Decision_DECISION_REQUIRE_APPROVAL {
		t.Errorf("dave without a grant: %v %v", r.GetDecision(), r.GetReasons())
	}
	other := carlDeletes("1")
	other.Params.Fields["arguments"].GetStructValue().Fields["tenant"] = structpb.NewStringValue("globex")
	if r := checkMCP(t, native, other); r.GetDecision() == mcpv1.Decision_DECISION_ALLOW {
		t.Errorf("a grant lifted the tenant deny: %v", r.GetReasons())
	}
	ehr := carlDeletes("1")
	ehr.Server = "ehr"
	ehr.Params.Fields["name"] = structpb.NewStringValue("get_patient_record")
	ehr.Params.Fields["arguments"] = structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{"patient_id": structpb.NewStringValue("p1")}})
	if r := checkMCP(t, native, ehr); r.GetDecision() == mcpv1.Decision_DECISION_ALLOW {
		t.Errorf("a */* grant let carl into ehr: %v", r.GetReasons())
	}
}

// TestAnonymousAuthZENFillsApprovals: AuthZEN without require_token lets
// any caller that reaches the port assert any subject. Such calls record no
// approvals, so they can neither page approvers for made-up subjects nor
// fill the table until real callers and the kill switch are refused.
func TestAnonymousAuthZENFillsApprovals(t *testing.T) {

	env := newApprovalsEnv(t)
	env.cfg.Approvals.MaxRecords = 40
	p := startPDP(t, env.cfg)
	admin := env.token(t, "sam", "roles", []string{"security-admin"})
	for i := range 50 {
		st, d := authzenPost(t, p, "/access/v1/evaluation", map[string]any{
			"subject":  map[string]any{"type": "user", "id": "ghost" + strconv.Itoa(i), "properties": map[string]any{"roles": []any{"crm_admin"}, "tenant": "acme", "clearance": "confidential"}},
			"action":   map[string]any{"name": "tools/call"},
			"resource": map[string]any{"type": "mcp_tool", "id": "delete_contact", "properties": map[string]any{"server": "crm"}},
			"context":  map[string]any{"arguments": map[string]any{"tenant": "acme", "id": strconv.Itoa(i)}, "purpose": "support", "region": "eu"},
		})
		if st != http.StatusOK || d["decision"] != false {
			t.Fatalf("evaluation %d: %d %v", i, st, d)
		}
	}
	st, list := adminCall(t, p, "GET", "/v1/approvals?status=pending", env.token(t, "dana", "roles", []string{"crm_lead"}), nil)
	items, _ := list["approvals"].([]any)
	if st != http.StatusOK || len(items) != 0 {
		t.Errorf("anonymous AuthZEN calls left %d pending approvals (%d), want none", len(items), st)
	}
	native := mcpv1.NewMCPPolicyClient(p.dial(t))
	if r := checkMCP(t, native, carlDeletes("1")); r.GetApproval().GetStatus() != "pending" {
		t.Errorf("carl's real call gets no approval: %v %v", r.GetDecision(), r.GetReasons())
	}
	if st, out := adminCall(t, p, "POST", "/v1/quarantines", admin, map[string]string{"kind": "server", "server": "crm"}); st != http.StatusCreated {
		t.Errorf("the kill switch is refused after anonymous AuthZEN calls: %d %v", st, out)
	}
}

// TestAnonymousAuthZENConsumesApproval: an unauthenticated AuthZEN
// evaluation asserting carl as its subject does not use up the approval a
// person gave carl's call: his real retry is still allowed.
func TestAnonymousAuthZENConsumesApproval(t *testing.T) {

	env := newApprovalsEnv(t)
	p := startPDP(t, env.cfg)
	native := mcpv1.NewMCPPolicyClient(p.dial(t))
	id := checkMCP(t, native, carlDeletes("42")).GetApproval().GetId()
	dana := env.token(t, "dana", "roles", []string{"crm_lead"})
	if st, out := adminCall(t, p, "POST", "/v1/approvals/"+id+"/approve", dana, nil); st != http.StatusOK {
		t.Fatalf("approve: %d %v", st, out)
	}
	st, d := authzenPost(t, p, "/access/v1/evaluation", map[string]any{
		"subject":  map[string]any{"type": "user", "id": "carl", "properties": map[string]any{"roles": []any{"crm_admin"}, "tenant": "acme", "clearance": "confidential"}},
		"action":   map[string]any{"name": "tools/call"},
		"resource": map[string]any{"type": "mcp_tool", "id": "delete_contact", "properties": map[string]any{"server": "crm"}},
		"context":  map[string]any{"arguments": map[string]any{"tenant": "acme", "id": "42"}, "purpose": "support", "region": "eu", "source_ip": "10.1.2.3"},
	})
	if st != http.StatusOK || d["decision"] != false {
		t.Errorf("anonymous AuthZEN evaluation as carl: %d %v, want decision false (it cannot use the approval)", st, d)
	}
	if r := checkMCP(t, native, carlDeletes("42")); r.GetDecision() != mcpv1.Decision_DECISION_ALLOW {
		t.Errorf("carl's approved call after the anonymous evaluation: %v %v", r.GetDecision(), r.GetReasons())
	}
}
