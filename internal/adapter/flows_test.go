package adapter_test

import (
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/verdictpdp/verdict/internal/adapter/mcpapi"
	"github.com/verdictpdp/verdict/internal/adapter/toolhive"
	"github.com/verdictpdp/verdict/internal/engine/enginetest"
	"github.com/verdictpdp/verdict/internal/mcp"
	"github.com/verdictpdp/verdict/internal/pipeline"
	"github.com/verdictpdp/verdict/internal/session"
	mcpv1 "github.com/verdictpdp/verdict/proto/verdict/mcp/v1"
)

// flowDecider is the example catalog plus a "vault" server whose
// read_secret takes no arguments and is restricted, and a rule letting
// ops read it and file GitHub issues; with session state on.
func flowDecider(t *testing.T) *mcp.Decider {
	t.Helper()
	return flowDeciderScope(t, session.ScopeSession)
}

func flowDeciderScope(t *testing.T, scope string) *mcp.Decider {
	t.Helper()
	raw, err := os.ReadFile("../../bundles/mcp-example/data.json")
	if err != nil {
		t.Fatal(err)
	}
	var data map[string]any
	if err := json.Unmarshal(raw, &data); err != nil {
		t.Fatal(err)
	}
	m := data["mcp"].(map[string]any)
	m["servers"].(map[string]any)["vault"] = map[string]any{"tools": map[string]any{"read_secret": map[string]any{
		"classification": "restricted",
		"annotations":    map[string]any{"readOnlyHint": true, "openWorldHint": false},
		"input_schema":   map[string]any{"type": "object", "properties": map[string]any{}},
	}}}
	m["rules"] = append(m["rules"].([]any), map[string]any{"id": "ops", "roles": []any{"ops"}, "tools": []any{"vault/read_secret", "github/create_issue"}})
	st, err := session.New(session.Options{Scope: scope})
	if err != nil {
		t.Fatal(err)
	}
	eng := enginetest.MCPLibrary(t, data, nil, false)
	return mcp.NewDecider(pipeline.New(eng, pipeline.Options{Observer: st}), mcp.DefaultPath, false).WithClock(func() time.Time { return at })
}

// TestToolHiveArglessReadTaints: ToolHive asks mcp:tool:call without
// context.mcp.args both for a list entry and for a real call that has no
// arguments (or for every call when ToolHive runs without include_args).
// With calls_without_args "call" (the default) such a question is decided
// as the call; an allowed one is recorded as a read like any call (failing
// closed: a listing may taint the session), so a restricted tool that
// takes no arguments cannot be read through ToolHive without the egress
// that follows being stopped.
func TestToolHiveArglessReadTaints(t *testing.T) {
	d := flowDecider(t)
	h := toolhive.NewHandler(d, toolhive.Options{Now: func() time.Time { return at }})
	principal := map[string]any{"sub": "olga", "mroles": []any{"ops"}, "mgroups": []any{"engineering"}, "scopes": []any{"github:write"},
		"mclearance": "restricted", "mannotations": map[string]any{}}
	ask := func(resource, id string, args map[string]any) bool {
		t.Helper()
		mc := map[string]any{"feature": "tool", "operation": "call", "resource_id": id}
		if args != nil {
			mc["args"] = args
		}
		body, err := json.Marshal(map[string]any{"principal": principal, "operation": "mcp:tool:call", "resource": resource, "context": map[string]any{"mcp": mc}})
		if err != nil {
			t.Fatal(err)
		}
		var a struct {
			Allow   bool
			Reasons []struct{ Code, Message string }
		}
		if err := httpAsk(h, "/decision", body, &a); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: allow %v %v", resource, a.Allow, a.Reasons)
		return a.Allow
	}
	// The premise: the same read with (empty) arguments taints the session.
	if !ask("mrn:mcp:vault:tool:read_secret", "read_secret", map[string]any{}) {
		t.Fatal("the read with arguments was not allowed")
	}
	if ask("mrn:mcp:github:tool:create_issue", "create_issue", map[string]any{"repo": "acme/public", "title": "the secret"}) {
		t.Fatal("premise: the egress after a read with arguments was allowed")
	}
	principal["sub"] = "olga2"
	if !ask("mrn:mcp:vault:tool:read_secret", "read_secret", nil) {
		t.Fatal("the read without arguments was not allowed: the test proves nothing")
	}
	if ask("mrn:mcp:github:tool:create_issue", "create_issue", map[string]any{"repo": "acme/public", "title": "the secret"}) {
		t.Fatal("an open-world call was allowed after the session read restricted data through ToolHive (a call without arguments)")
	}
}

// TestFlowAcrossServerSessions: MCP over Envoy keys session state on the
// Mcp-Session-Id header, which each upstream MCP server assigns itself;
// with the usual one route per server, a read on crm and a call on github
// are two sessions. With sessions.scope "session" (the default) the flow
// is stopped only within one session (a gateway in front of several
// servers sends one id); with "subject" the caller's sessions share one
// state, and the flow is stopped across servers. Shown on the native API
// with the ids two servers would give.
func TestFlowAcrossServerSessions(t *testing.T) {
	for _, tc := range []struct {
		scope string
		other mcpv1.Decision // the egress in the github server's own session
	}{
		{session.ScopeSession, mcpv1.Decision_DECISION_ALLOW},
		{session.ScopeSubject, mcpv1.Decision_DECISION_DENY},
	} {
		t.Run(tc.scope, func(t *testing.T) {
			srv := mcpapi.NewServer(flowDeciderScope(t, tc.scope), mcpapi.Options{})
			check := func(server, tool, sess string, args map[string]any) mcpv1.Decision {
				t.Helper()
				params, err := structpb.NewStruct(map[string]any{"name": tool, "arguments": args})
				if err != nil {
					t.Fatal(err)
				}
				resp, err := srv.Check(context.Background(), &mcpv1.CheckRequest{
					Subject: &mcpv1.Subject{Id: "olga", Roles: []string{"ops"}, Clearance: "restricted", Tenant: "acme"},
					Server:  server, Method: "tools/call", Params: params, SessionId: sess,
					Context: &mcpv1.RequestContext{Time: timestamppb.New(at), Purpose: "support", Region: "eu"},
				})
				if err != nil {
					t.Fatal(err)
				}
				return resp.GetDecision()
			}
			if got := check("vault", "read_secret", "vault-sess-1", map[string]any{}); got != mcpv1.Decision_DECISION_ALLOW {
				t.Fatalf("read: %v", got)
			}
			if got := check("github", "create_issue", "vault-sess-1", map[string]any{"repo": "acme/public", "title": "x"}); got != mcpv1.Decision_DECISION_DENY {
				t.Fatalf("same session: %v, want the flow denied", got)
			}
			if got := check("github", "create_issue", "github-sess-9", map[string]any{"repo": "acme/public", "title": "x"}); got != tc.other {
				t.Fatalf("the egress in the github server's own session: %v, want %v", got, tc.other)
			}
		})
	}
}
