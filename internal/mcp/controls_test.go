package mcp_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/internal/audit"
	"github.com/verdictpdp/verdict/internal/control"
	"github.com/verdictpdp/verdict/internal/engine"
	"github.com/verdictpdp/verdict/internal/mcp"
	"github.com/verdictpdp/verdict/internal/pipeline"
)

// approvalEverywhere is a policy that asks approval for every request.
type approvalEverywhere struct{}

func (approvalEverywhere) Decide(_ context.Context, _ string, _ engine.Input, derive engine.Derive) (engine.Decision, error) {
	r := engine.Result{Value: map[string]any{"allow": false, "require_approval": true,
		"reasons": []any{map[string]any{"code": "approval.required", "message": "ask a person"}}}, Revision: "r1"}
	d, err := derive(r)
	return engine.Decision{Result: r, Derived: d}, err
}

func (approvalEverywhere) Revision() string { return "r1" }

type allowApprovers struct{}

func (allowApprovers) Authorize(context.Context, map[string]any) (bool, []control.Reason, error) {
	return true, nil, nil
}

// TestApprovalOfOtherMethods: an approval binds to (server, method,
// target, arguments), and the target and arguments are known for
// tools/call, prompts/get and resources/read only. For any other method a
// policy asks approval for (resources/subscribe, completion/complete,
// ToolHive's skills/get) every request of the subject on the server would
// share one binding whatever its params: approving one must not let
// another through.
func TestApprovalOfOtherMethods(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, err := control.New(ctx, control.NewMemoryStore(), control.Options{Authorizer: allowApprovers{}})
	if err != nil {
		t.Fatal(err)
	}
	d := mcp.NewDecider(pipeline.New(approvalEverywhere{}, pipeline.Options{Controls: c}), mcp.DefaultPath, false)
	req := func(uri string) *mcp.Request {
		return &mcp.Request{Subject: mcp.Subject{ID: "carl", Authenticated: true}, Server: "crm", Method: "resources/subscribe", Params: map[string]any{"uri": uri}}
	}
	first := d.Check(ctx, audit.KindMCP, req("crm://contacts/1"), nil)
	if first.Verdict != pipeline.Deny || len(first.Reasons) == 0 || first.Reasons[0].Code != mcp.ReasonApprovalUnbindable || first.Approval != nil {
		t.Fatalf("resources/subscribe asking approval: %v %v %+v, want a deny %s and no approval", first.Verdict, first.Reasons, first.Approval, mcp.ReasonApprovalUnbindable)
	}
	if st := c.Stats(); st.Records != 0 {
		t.Fatalf("%d approvals recorded for an unbindable request", st.Records)
	}
	if o := d.Check(ctx, audit.KindMCP, req("crm://contacts/*"), nil); o.Verdict == pipeline.Allow {
		t.Errorf("an approval for subscribing to crm://contacts/1 let carl subscribe to crm://contacts/*: %v", o.Reasons)
	}
}

// approvalFor60s asks approval with a policy-chosen life of 60 seconds.
type approvalFor60s struct{ approvalEverywhere }

func (approvalFor60s) Decide(_ context.Context, _ string, _ engine.Input, derive engine.Derive) (engine.Decision, error) {
	r := engine.Result{Value: map[string]any{"allow": false, "require_approval": true,
		"reasons":     []any{map[string]any{"code": "approval.required", "message": "ask a person"}},
		"obligations": map[string]any{"approval_ttl_seconds": json.Number("60")}}, Revision: "r1"}
	d, err := derive(r)
	return engine.Decision{Result: r, Derived: d}, err
}

// TestPolicyApprovalTTL: obligations.approval_ttl_seconds sets how long the
// approval waits and how long the approved call may then be retried.
func TestPolicyApprovalTTL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, err := control.New(ctx, control.NewMemoryStore(), control.Options{Authorizer: allowApprovers{}})
	if err != nil {
		t.Fatal(err)
	}
	d := mcp.NewDecider(pipeline.New(approvalFor60s{}, pipeline.Options{Controls: c}), mcp.DefaultPath, false)
	req := &mcp.Request{Subject: mcp.Subject{ID: "carl", Authenticated: true}, Server: "crm", Method: mcp.MethodToolsCall,
		Params: map[string]any{"name": "delete_contact", "arguments": map[string]any{"id": "42"}}}
	o := d.Check(ctx, audit.KindMCP, req, nil)
	if o.Approval == nil || o.Verdict != pipeline.RequireApproval {
		t.Fatalf("no approval: %v %v", o.Verdict, o.Reasons)
	}
	if life := time.Until(o.Approval.ExpiresAt); life > 61*time.Second || life < 50*time.Second {
		t.Errorf("pending approval lives %v, want the policy's 60s", life)
	}
	v, err := c.Resolve(ctx, control.Approver{ID: "dana"}, o.Approval.ID, true, "")
	if err != nil {
		t.Fatal(err)
	}
	if life := time.Until(v.ExpiresAt); life > 61*time.Second || life < 50*time.Second {
		t.Errorf("approved call may be retried for %v, want the policy's 60s", life)
	}
}
