package app_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/verdictpdp/verdict/internal/bundle/bundletest"
	"github.com/verdictpdp/verdict/internal/config"
	controlv1 "github.com/verdictpdp/verdict/proto/verdict/control/v1"
	mcpv1 "github.com/verdictpdp/verdict/proto/verdict/mcp/v1"
)

func checkMCP(t *testing.T, c mcpv1.MCPPolicyClient, req *mcpv1.CheckRequest) *mcpv1.CheckResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Check(ctx, req)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	return resp
}

func firstReason(resp *mcpv1.CheckResponse) string {
	if len(resp.GetReasons()) == 0 {
		return ""
	}
	return resp.GetReasons()[0].GetCode()
}

// TestApprovalLifecycle walks the story on real servers: a
// destructive call waits for approval, a person approves it over HTTP, the
// identical call goes ahead once, and everything else is refused with a
// stable reason.
func TestApprovalLifecycle(t *testing.T) {
	env := newApprovalsEnv(t)
	env.cfg.Audit.File.Path = filepath.Join(t.TempDir(), "audit.jsonl")
	p := startPDP(t, env.cfg)
	native := mcpv1.NewMCPPolicyClient(p.dial(t))
	dana := env.token(t, "dana", "roles", []string{"crm_lead"})

	first := checkMCP(t, native, carlDeletes("42"))
	if first.GetDecision() != mcpv1.Decision_DECISION_REQUIRE_APPROVAL || first.GetApproval().GetStatus() != "pending" {
		t.Fatalf("destructive call: decision %v approval %v, want a pending approval", first.GetDecision(), first.GetApproval())
	}
	id := first.GetApproval().GetId()
	url := first.GetApproval().GetUrl()
	if url != "http://"+p.httpAddr+"/approvals/"+id {
		t.Errorf("approval url = %q", url)
	}
	if time.Until(first.GetApproval().GetExpiresAt().AsTime()) < 14*time.Minute {
		t.Errorf("approval expires at %v: want the 15 minute default", first.GetApproval().GetExpiresAt().AsTime())
	}
	rpc := first.GetJsonrpcError()
	el := rpc.GetData().GetFields()["elicitations"].GetListValue().GetValues()
	if rpc.GetCode() != -32042 || len(el) != 1 ||
		el[0].GetStructValue().GetFields()["url"].GetStringValue() != url ||
		el[0].GetStructValue().GetFields()["mode"].GetStringValue() != "url" ||
		el[0].GetStructValue().GetFields()["elicitationId"].GetStringValue() != id {
		t.Fatalf("JSON-RPC error = %v, want -32042 with one URL elicitation for the approval", rpc)
	}

	if again := checkMCP(t, native, carlDeletes("42")); again.GetApproval().GetId() != id {
		t.Fatalf("asking again while pending gave approval %q, want the same %q", again.GetApproval().GetId(), id)
	}

	// Refusals: nothing is recorded as approved.
	for _, c := range []struct {
		name, method, path, token string
		body                      any
		status                    int
		code                      string
	}{
		{"no token", "POST", "/v1/approvals/" + id + "/approve", "", nil, 401, "approver.unauthenticated"},
		{"forged token", "POST", "/v1/approvals/" + id + "/approve", tampered(dana, claimsAt(time.Now(), "dana", "roles", []string{"crm_lead", "admin"})), nil, 401, "approver.unauthenticated"},
		{"self approval", "POST", "/v1/approvals/" + id + "/approve", env.token(t, "carl", "roles", []string{"crm_lead"}), nil, 403, "approval.self"},
		{"token without the approver scope", "POST", "/v1/approvals/" + id + "/approve", env.token(t, "dana", "roles", []string{"crm_lead"}, "scope", "tools:read"), nil, 403, "approver.scope_missing"},
		{"approver of another tenant", "POST", "/v1/approvals/" + id + "/approve", env.token(t, "gina", "roles", []string{"crm_lead"}, "tenant", "globex"), nil, 403, "approver.other_tenant"},
		{"approver without the role", "POST", "/v1/approvals/" + id + "/approve", env.token(t, "eve", "roles", []string{"sales"}), nil, 403, "approver.not_authorized"},
		{"malformed id", "POST", "/v1/approvals/apr_../approve", dana, nil, 400, "approval.invalid_id"},
		{"unknown id", "POST", "/v1/approvals/apr_aaaaaaaaaaaaaaaaaaaaaaaaaa/approve", dana, nil, 404, "approval.not_found"},
		{"oversized note", "POST", "/v1/approvals/" + id + "/approve", dana, map[string]string{"note": strings.Repeat("x", 1025)}, 400, "note.invalid"},
		{"unknown member", "POST", "/v1/approvals/" + id + "/approve", dana, map[string]string{"notes": "x"}, 400, "request.invalid"},
		{"oversized body", "POST", "/v1/approvals/" + id + "/approve", dana, map[string]string{"note": strings.Repeat("x", 70<<10)}, 413, "request.too_large"},
	} {
		t.Run(c.name, func(t *testing.T) {
			st, out := adminCall(t, p, c.method, c.path, c.token, c.body)
			if st != c.status || errorCode(out) != c.code {
				t.Errorf("got %d %v, want %d %s", st, out, c.status, c.code)
			}
		})
	}
	if st, out := adminCall(t, p, "GET", "/v1/approvals/"+id, dana, nil); st != 200 || out["approval"].(map[string]any)["status"] != "pending" {
		t.Fatalf("after the refusals: %d %v, want still pending", st, out)
	}
	st, list := adminCall(t, p, "GET", "/v1/approvals?status=pending", dana, nil)
	if items, _ := list["approvals"].([]any); st != 200 || len(items) != 1 {
		t.Fatalf("pending list = %d %v, want the one approval", st, list)
	}

	st, out := adminCall(t, p, "POST", "/v1/approvals/"+id+"/approve", dana, map[string]string{"note": "ticket CRM-7"})
	if st != 200 || out["approval"].(map[string]any)["status"] != "approved" {
		t.Fatalf("approve: %d %v", st, out)
	}
	if st, out := adminCall(t, p, "POST", "/v1/approvals/"+id+"/approve", dana, nil); st != 409 || errorCode(out) != "approval.not_pending" {
		t.Errorf("approving twice: %d %v, want 409 approval.not_pending", st, out)
	}

	// Changed arguments are another call: they need their own approval.
	other := checkMCP(t, native, carlDeletes("43"))
	if other.GetDecision() != mcpv1.Decision_DECISION_REQUIRE_APPROVAL || other.GetApproval().GetId() == id {
		t.Fatalf("changed arguments: %v approval %v, want a new pending approval", other.GetDecision(), other.GetApproval())
	}
	// Naming the approved approval with changed arguments is refused.
	named := carlDeletes("43")
	named.ApprovalId = id
	if r := checkMCP(t, native, named); r.GetDecision() != mcpv1.Decision_DECISION_DENY || firstReason(r) != "approval.arguments_changed" {
		t.Errorf("presented approval with changed arguments: %v %v", r.GetDecision(), r.GetReasons())
	}
	// Another caller's identical call is not covered.
	eve := carlDeletes("42")
	eve.Subject.Id = "eve"
	eve.ApprovalId = id
	if r := checkMCP(t, native, eve); r.GetDecision() != mcpv1.Decision_DECISION_DENY || firstReason(r) != "approval.subject_mismatch" {
		t.Errorf("another subject presenting the approval: %v %v", r.GetDecision(), r.GetReasons())
	}

	used := checkMCP(t, native, carlDeletes("42"))
	if used.GetDecision() != mcpv1.Decision_DECISION_ALLOW || used.GetApproval().GetStatus() != "consumed" || firstReason(used) != "approval.used" {
		t.Fatalf("approved call: %v %v %v, want one allow", used.GetDecision(), used.GetApproval(), used.GetReasons())
	}
	third := checkMCP(t, native, carlDeletes("42"))
	if third.GetDecision() != mcpv1.Decision_DECISION_REQUIRE_APPROVAL || third.GetApproval().GetId() == id {
		t.Fatalf("second use: %v %v, want a new approval", third.GetDecision(), third.GetApproval())
	}
	replay := carlDeletes("42")
	replay.ApprovalId = id
	if r := checkMCP(t, native, replay); r.GetDecision() != mcpv1.Decision_DECISION_DENY || firstReason(r) != "approval.consumed" {
		t.Errorf("replayed approval: %v %v", r.GetDecision(), r.GetReasons())
	}

	// A denied call stays denied until its approval would have expired.
	if st, _ := adminCall(t, p, "POST", "/v1/approvals/"+other.GetApproval().GetId()+"/deny", dana, nil); st != 200 {
		t.Fatalf("deny: %d", st)
	}
	if r := checkMCP(t, native, carlDeletes("43")); r.GetDecision() != mcpv1.Decision_DECISION_DENY || firstReason(r) != "approval.denied" {
		t.Errorf("denied call asked again: %v %v", r.GetDecision(), r.GetReasons())
	}

	metrics := scrape(t, p)
	for _, want := range []string{
		`verdict_control_events_total{event="approval.requested"} 3`,
		`verdict_control_events_total{event="approval.consumed"} 1`,
		`verdict_approvals_pending 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// Lifecycle steps are not decisions.
	if strings.Contains(metrics, `entrypoint="verdict/control"`) {
		t.Error("lifecycle events are counted as decisions")
	}

	// Every step is in the audit log, linked to the decision that asked.
	p.stop()
	steps := map[string]map[string]any{}
	refused := map[string]bool{}
	for _, ev := range readLog(t, env.cfg.Audit.File.Path) {
		if c, ok := ev["control"].(map[string]any); ok && c["id"] == id {
			steps[c["event"].(string)] = c
			if c["event"] == "control.refused" {
				refused[c["by"].(string)+" "+c["code"].(string)] = true
			}
		}
	}
	for _, want := range []string{"approval.requested", "approval.approved", "approval.consumed"} {
		c, ok := steps[want]
		if !ok {
			t.Errorf("audit log has no %s event for %s (has %v)", want, id, steps)
			continue
		}
		if c["of_decision"] != first.GetDecisionId() {
			t.Errorf("%s names decision %v, want %s", want, c["of_decision"], first.GetDecisionId())
		}
	}
	if c := steps["approval.approved"]; c["by"] != "dana" || c["note"] != "ticket CRM-7" {
		t.Errorf("approved event = %v, want by dana with the note", c)
	}
	if c := steps["approval.consumed"]; c["consumed_by"] != used.GetDecisionId() {
		t.Errorf("consumed event = %v, want consumed_by %s", c, used.GetDecisionId())
	}
	for _, want := range []string{"carl approval.self", "eve approver.not_authorized"} {
		if !refused[want] {
			t.Errorf("audit log has no refusal %q for %s (has %v)", want, id, refused)
		}
	}
}

// TestApprovalSurvivesRestart stops the pdp between the approval and the
// call: the approval is on disk.
func TestApprovalSurvivesRestart(t *testing.T) {
	env := newApprovalsEnv(t)
	p := startPDP(t, env.cfg)
	native := mcpv1.NewMCPPolicyClient(p.dial(t))
	dana := env.token(t, "dana", "roles", []string{"crm_lead"})

	approved := checkMCP(t, native, carlDeletes("7")).GetApproval().GetId()
	pending := checkMCP(t, native, carlDeletes("8")).GetApproval().GetId()
	if st, out := adminCall(t, p, "POST", "/v1/approvals/"+approved+"/approve", dana, nil); st != 200 {
		t.Fatalf("approve: %d %v", st, out)
	}
	p.stop()

	p2 := startPDP(t, env.cfg)
	native2 := mcpv1.NewMCPPolicyClient(p2.dial(t))
	if r := checkMCP(t, native2, carlDeletes("8")); r.GetApproval().GetId() != pending || r.GetApproval().GetStatus() != "pending" {
		t.Errorf("pending approval after restart: %v", r.GetApproval())
	}
	if r := checkMCP(t, native2, carlDeletes("7")); r.GetDecision() != mcpv1.Decision_DECISION_ALLOW {
		t.Fatalf("approved call after restart: %v %v", r.GetDecision(), r.GetReasons())
	}
	if r := checkMCP(t, native2, carlDeletes("7")); r.GetDecision() != mcpv1.Decision_DECISION_REQUIRE_APPROVAL {
		t.Errorf("second use after restart: %v", r.GetDecision())
	}
}

// TestQuarantineDeniesCachedDecisions quarantines a tool, its server and a
// caller whose allowed call is in the decision cache: the next call is
// denied at once, and allowed again once released. The gRPC service does
// what the HTTP API does.
func TestQuarantineDeniesCachedDecisions(t *testing.T) {
	env := newApprovalsEnv(t)
	p := startPDP(t, env.cfg)
	conn := p.dial(t)
	native := mcpv1.NewMCPPolicyClient(conn)
	controls := controlv1.NewControlServiceClient(conn)
	admin := env.token(t, "sam", "roles", []string{"security-admin"})
	search := func() *mcpv1.CheckRequest {
		params, _ := structpb.NewStruct(map[string]any{"name": "search_contacts", "arguments": map[string]any{"tenant": "acme", "query": "smith", "limit": 10}})
		return &mcpv1.CheckRequest{
			Subject: &mcpv1.Subject{Id: "alice", Roles: []string{"sales"}, Tenant: "acme", Clearance: "confidential"},
			Server:  "crm", Method: "tools/call", Params: params,
			Context: &mcpv1.RequestContext{Purpose: "support", Region: "eu"},
		}
	}
	for range 2 { // the second is a cache hit
		if r := checkMCP(t, native, search()); r.GetDecision() != mcpv1.Decision_DECISION_ALLOW {
			t.Fatalf("search before quarantine: %v %v", r.GetDecision(), r.GetReasons())
		}
	}

	for _, q := range []map[string]string{
		{"kind": "tool", "server": "crm", "tool": "search_contacts"},
		{"kind": "server", "server": "crm"},
		{"kind": "subject", "subject": "alice"},
	} {
		t.Run(q["kind"], func(t *testing.T) {
			st, out := adminCall(t, p, "POST", "/v1/quarantines", admin, q)
			if st != 201 {
				t.Fatalf("quarantine: %d %v", st, out)
			}
			qid := out["quarantine"].(map[string]any)["id"].(string)
			r := checkMCP(t, native, search())
			if r.GetDecision() != mcpv1.Decision_DECISION_DENY || firstReason(r) != "quarantined" {
				t.Fatalf("quarantined %s: %v %v", q["kind"], r.GetDecision(), r.GetReasons())
			}
			if st, out := adminCall(t, p, "POST", "/v1/quarantines/"+qid+"/release", admin, nil); st != 200 {
				t.Fatalf("release: %d %v", st, out)
			}
			if r := checkMCP(t, native, search()); r.GetDecision() != mcpv1.Decision_DECISION_ALLOW {
				t.Fatalf("after release: %v %v", r.GetDecision(), r.GetReasons())
			}
		})
	}

	// Only containment roles may quarantine.
	if st, out := adminCall(t, p, "POST", "/v1/quarantines", env.token(t, "dana", "roles", []string{"crm_lead"}), map[string]string{"kind": "server", "server": "crm"}); st != 403 {
		t.Errorf("quarantine by a crm lead: %d %v, want 403", st, out)
	}
	if st, out := adminCall(t, p, "POST", "/v1/quarantines", admin, map[string]string{"kind": "galaxy"}); st != 400 || errorCode(out) != "quarantine.invalid" {
		t.Errorf("bad kind: %d %v", st, out)
	}

	// The gRPC service: a subject quarantine set there denies at once.
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+admin)
	qr, err := controls.CreateQuarantine(ctx, &controlv1.CreateQuarantineRequest{Kind: "subject", Subject: "alice", Duration: durationpb.New(time.Hour)})
	if err != nil {
		t.Fatalf("CreateQuarantine: %v", err)
	}
	if r := checkMCP(t, native, search()); firstReason(r) != "quarantined" {
		t.Errorf("after a gRPC quarantine: %v", r.GetReasons())
	}
	if _, err := controls.ReleaseQuarantine(ctx, &controlv1.ReleaseQuarantineRequest{Id: qr.GetQuarantine().GetId()}); err != nil {
		t.Fatalf("ReleaseQuarantine: %v", err)
	}
	if _, err := controls.ReleaseQuarantine(ctx, &controlv1.ReleaseQuarantineRequest{Id: qr.GetQuarantine().GetId()}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("releasing twice: %v, want FailedPrecondition", err)
	}
	if _, err := controls.ListQuarantines(context.Background(), &controlv1.ListQuarantinesRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("no token: %v, want Unauthenticated", err)
	}
}

// TestGrantAllowsThenExpires gives carl a short just-in-time grant for the
// destructive tool: calls need no approval while it lasts, and do again
// once it expired.
func TestGrantAllowsThenExpires(t *testing.T) {
	env := newApprovalsEnv(t)
	p := startPDP(t, env.cfg)
	conn := p.dial(t)
	native := mcpv1.NewMCPPolicyClient(conn)
	admin := env.token(t, "sam", "roles", []string{"security-admin"})

	for _, c := range []struct {
		name  string
		token string
		body  map[string]any
		want  int
		code  string
	}{
		{"unbounded", admin, map[string]any{"subject": "carl", "tools": []string{"crm/delete_contact"}}, 400, "grant.invalid"},
		{"already expired", admin, map[string]any{"subject": "carl", "tools": []string{"crm/delete_contact"}, "expires_at": time.Now().Add(-time.Minute).Format(time.RFC3339)}, 400, "grant.invalid"},
		{"too long", admin, map[string]any{"subject": "carl", "tools": []string{"crm/delete_contact"}, "duration": "9h"}, 403, "grant.too_long"},
		{"to oneself", admin, map[string]any{"subject": "sam", "tools": []string{"crm/delete_contact"}, "duration": "1h"}, 403, "approval.self"},
		{"without a grant role", env.token(t, "dana", "roles", []string{"crm_lead"}), map[string]any{"subject": "carl", "tools": []string{"crm/delete_contact"}, "duration": "1h"}, 403, "grant.not_authorized"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if st, out := adminCall(t, p, "POST", "/v1/grants", c.token, c.body); st != c.want || errorCode(out) != c.code {
				t.Errorf("got %d %v, want %d %s", st, out, c.want, c.code)
			}
		})
	}
	st, out := adminCall(t, p, "GET", "/v1/grants", admin, nil)
	if grants, _ := out["grants"].([]any); st != 200 || len(grants) != 0 {
		t.Fatalf("grants after refusals: %d %v, want none", st, out)
	}

	if r := checkMCP(t, native, carlDeletes("5")); r.GetDecision() != mcpv1.Decision_DECISION_REQUIRE_APPROVAL {
		t.Fatalf("before the grant: %v", r.GetDecision())
	}
	st, out = adminCall(t, p, "POST", "/v1/grants", admin, map[string]any{
		"subject": "carl", "tools": []string{"crm/delete_*"}, "duration": "2s",
		"conditions": []map[string]any{{"path": "tenant", "op": "eq", "value": "acme"}},
	})
	if st != 201 {
		t.Fatalf("grant: %d %v", st, out)
	}
	expires, _ := time.Parse(time.RFC3339Nano, out["grant"].(map[string]any)["expires_at"].(string))
	for _, id := range []string{"5", "6"} {
		if r := checkMCP(t, native, carlDeletes(id)); r.GetDecision() != mcpv1.Decision_DECISION_ALLOW {
			t.Fatalf("under the grant: %v %v", r.GetDecision(), r.GetReasons())
		}
	}
	other := carlDeletes("5")
	other.Params.Fields["arguments"] = structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{
		"tenant": structpb.NewStringValue("globex"), "id": structpb.NewStringValue("5")}})
	if r := checkMCP(t, native, other); r.GetDecision() == mcpv1.Decision_DECISION_ALLOW {
		t.Errorf("the grant's condition does not hold, yet the call is allowed")
	}
	time.Sleep(time.Until(expires) + 200*time.Millisecond)
	if r := checkMCP(t, native, carlDeletes("5")); r.GetDecision() != mcpv1.Decision_DECISION_REQUIRE_APPROVAL {
		t.Fatalf("after the grant expired: %v %v", r.GetDecision(), r.GetReasons())
	}

	// Revoking ends a grant at once.
	_, out = adminCall(t, p, "POST", "/v1/grants", admin, map[string]any{"subject": "carl", "tools": []string{"crm/*"}, "duration": "1h"})
	gid := out["grant"].(map[string]any)["id"].(string)
	if r := checkMCP(t, native, carlDeletes("9")); r.GetDecision() != mcpv1.Decision_DECISION_ALLOW {
		t.Fatalf("under the second grant: %v", r.GetDecision())
	}
	if st, out := adminCall(t, p, "POST", "/v1/grants/"+gid+"/revoke", admin, nil); st != http.StatusOK {
		t.Fatalf("revoke: %d %v", st, out)
	}
	if r := checkMCP(t, native, carlDeletes("9")); r.GetDecision() != mcpv1.Decision_DECISION_REQUIRE_APPROVAL {
		t.Errorf("after revoking: %v", r.GetDecision())
	}
}

// TestToolHiveListQuestionsRecordNoApproval: ToolHive asks about every
// entry of a tools/list result as a call without arguments. That is not a
// call a person could approve, so it must not page approvers; a real call
// with arguments does record one.
func TestToolHiveListQuestionsRecordNoApproval(t *testing.T) {
	env := newApprovalsEnv(t)
	// A destructive tool without required arguments: a list-entry question
	// about it reaches require_approval.
	env.cfg.Bundles = []config.Bundle{{Name: "ops", Source: bundletest.WriteDir(t, t.TempDir(), bundletest.Spec{
		Revision: "ops-1", Roots: []string{"mcp"},
		Data: map[string]any{"mcp": map[string]any{
			"servers":   map[string]any{"ops": map[string]any{"tools": map[string]any{"restart": map[string]any{"classification": "public", "input_schema": map[string]any{"type": "object"}, "annotations": map[string]any{"destructiveHint": true}}}}},
			"rules":     []any{map[string]any{"id": "oncall", "roles": []any{"oncall"}, "tools": []any{"ops/*"}}},
			"approvals": map[string]any{"viewer_roles": []any{"auditor"}},
		}},
	})}}
	p := startPDP(t, env.cfg)
	auditor := env.token(t, "ann", "roles", []string{"auditor"})
	ask := func(args string) []byte {
		t.Helper()
		ctx := `{}`
		if args != "" {
			ctx = `{"mcp":{"feature":"tool","operation":"call","resource_id":"restart","args":` + args + `}}`
		}
		body := `{"principal":{"sub":"olga","roles":["oncall"]},` +
			`"operation":"mcp:tool:call","resource":"mrn:mcp:ops:tool:restart","context":` + ctx + `}`
		st, raw := postToolHive(t, p, "/decision", "application/json", []byte(body))
		if st != 200 {
			t.Fatalf("toolhive: %d %s", st, raw)
		}
		return raw
	}
	pending := func() int {
		t.Helper()
		st, out := adminCall(t, p, "GET", "/v1/approvals?status=pending", auditor, nil)
		if st != 200 {
			t.Fatalf("list: %d %v", st, out)
		}
		items, _ := out["approvals"].([]any)
		return len(items)
	}
	for range 3 {
		if raw := ask(""); !strings.Contains(string(raw), `"allow":false`) || !strings.Contains(string(raw), "approval.required") {
			t.Fatalf("list-entry question: %s, want not allowed for want of approval", raw)
		}
	}
	if n := pending(); n != 0 {
		t.Fatalf("%d approvals pending after list-entry questions, want none", n)
	}
	if raw := ask(`{"service":"api"}`); !strings.Contains(string(raw), `"allow":false`) {
		t.Fatalf("call question: %s, want not allowed until approved", raw)
	}
	if n := pending(); n != 1 {
		t.Fatalf("%d approvals pending after a call, want 1", n)
	}
}

// TestApprovalWebhook: a new pending approval is POSTed to the operator's
// webhook, signed with the shared secret over the timestamp and body;
// asking again for the same pending call sends nothing more.
func TestApprovalWebhook(t *testing.T) {
	secret := "0123456789abcdef-webhook-secret"
	type delivery struct {
		event, ts, sig string
		body           []byte
	}
	got := make(chan delivery, 4)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- delivery{r.Header.Get("X-Verdict-Event"), r.Header.Get("X-Verdict-Timestamp"), r.Header.Get("X-Verdict-Signature"), body}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(hook.Close)
	env := newApprovalsEnv(t)
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env.cfg.Approvals.Webhook.URL = hook.URL + "/verdict"
	env.cfg.Approvals.Webhook.SecretFile = secretFile
	p := startPDP(t, env.cfg)
	native := mcpv1.NewMCPPolicyClient(p.dial(t))

	first := checkMCP(t, native, carlDeletes("42"))
	checkMCP(t, native, carlDeletes("42")) // the same pending approval: no second notification
	var d delivery
	select {
	case d = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("no webhook delivery within 10s")
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(d.ts + "."))
	mac.Write(d.body)
	if want := "sha256=" + hex.EncodeToString(mac.Sum(nil)); !hmac.Equal([]byte(d.sig), []byte(want)) {
		t.Errorf("signature %q does not verify with the secret", d.sig)
	}
	var payload struct {
		Event    string `json:"event"`
		Approval struct {
			ID, URL, Subject, Target string
			Arguments                map[string]any
		} `json:"approval"`
	}
	if err := json.Unmarshal(d.body, &payload); err != nil {
		t.Fatalf("body %s: %v", d.body, err)
	}
	a := payload.Approval
	if d.event != "approval.requested" || payload.Event != "approval.requested" || a.ID != first.GetApproval().GetId() ||
		a.URL != first.GetApproval().GetUrl() || a.Subject != "carl" || a.Target != "delete_contact" || a.Arguments["id"] != "42" {
		t.Errorf("delivery %s %s, want the approval of carl's call", d.event, d.body)
	}
	select {
	case extra := <-got:
		t.Errorf("a second delivery for the same pending call: %s", extra.body)
	case <-time.After(300 * time.Millisecond):
	}
}
