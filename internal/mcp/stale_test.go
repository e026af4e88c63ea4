package mcp_test

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/verdictpdp/verdict/internal/audit"
	"github.com/verdictpdp/verdict/internal/control"
	"github.com/verdictpdp/verdict/internal/control/redisstore"
	"github.com/verdictpdp/verdict/internal/enforce"
	"github.com/verdictpdp/verdict/internal/engine"
	"github.com/verdictpdp/verdict/internal/mcp"
	"github.com/verdictpdp/verdict/internal/pipeline"
	"github.com/verdictpdp/verdict/internal/redistest"
)

// allowEverything is a policy that allows every request.
type allowEverything struct{}

func (allowEverything) Decide(_ context.Context, _ string, _ engine.Input, derive engine.Derive) (engine.Decision, error) {
	r := engine.Result{Value: map[string]any{"allow": true}, Revision: "r1"}
	d, err := derive(r)
	return engine.Decision{Result: r, Derived: d}, err
}

func (allowEverything) Revision() string { return "r1" }

// TestStaleControlsDeny: while the controls' view of the store shared by
// replicas may be stale (here: Redis is down since the start), every MCP
// path refuses as state.unavailable, even what the policy allows: a
// quarantine or a revocation made on another replica may not be seen.
func TestStaleControlsDeny(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := redistest.Start(t)
	srv.Kill()
	store := redisstore.New(redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1}), redisstore.Options{})
	c, err := control.New(ctx, store, control.Options{Authorizer: allowApprovers{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	allow := mcp.NewDecider(pipeline.New(allowEverything{}, pipeline.Options{Controls: c}), mcp.DefaultPath, false)
	approval := mcp.NewDecider(pipeline.New(approvalEverywhere{}, pipeline.Options{Controls: c}), mcp.DefaultPath, false)
	call := &mcp.Request{Subject: mcp.Subject{ID: "carl", Authenticated: true}, Server: "crm", Method: mcp.MethodToolsCall,
		Params: map[string]any{"name": "delete_contact", "arguments": map[string]any{"id": "42"}}}
	list := &mcp.Request{Subject: mcp.Subject{ID: "carl", Authenticated: true}, Server: "crm", Method: mcp.MethodToolsList}
	tools := map[string]any{"tools": []any{map[string]any{"name": "delete_contact"}}}
	for _, tc := range []struct {
		name string
		run  func(t *testing.T) pipeline.Outcome
	}{
		{"allowed call", func(*testing.T) pipeline.Outcome { return allow.Check(ctx, audit.KindMCP, call, nil) }},
		{"call asking approval", func(*testing.T) pipeline.Outcome { return approval.Check(ctx, audit.KindMCP, call, nil) }},
		{"evaluation (search)", func(*testing.T) pipeline.Outcome {
			o := allow.Start(audit.KindMCP, call, "")
			allow.EvaluateAs(ctx, &o, call)
			return o
		}},
		{"listing", func(t *testing.T) pipeline.Outcome {
			t.Helper()
			o, l := allow.Filter(ctx, audit.KindMCP, list, mcp.MethodToolsList, tools)
			if got, _ := l.Result["tools"].([]any); len(got) != 0 {
				t.Errorf("listing kept %v", got)
			}
			return o
		}},
		{"result", func(t *testing.T) pipeline.Outcome {
			t.Helper()
			o, ch := allow.CheckResult(ctx, audit.KindMCP, call, map[string]any{"content": []any{}})
			if ch.Action != mcp.ResultBlock {
				t.Errorf("result action %v, want blocked", ch.Action)
			}
			return o
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := tc.run(t)
			if o.Verdict != pipeline.Deny || len(o.Reasons) == 0 || o.Reasons[0].Code != enforce.ReasonStateDown {
				t.Errorf("verdict %v %v, want a deny %s", o.Verdict, o.Reasons, enforce.ReasonStateDown)
			}
		})
	}
	if control.CodeStateDown != enforce.ReasonStateDown {
		t.Errorf("control.CodeStateDown %q differs from enforce.ReasonStateDown %q", control.CodeStateDown, enforce.ReasonStateDown)
	}
}
