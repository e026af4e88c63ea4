package app_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/verdictpdp/verdict/internal/config"
	"github.com/verdictpdp/verdict/internal/redistest"
	mcpv1 "github.com/verdictpdp/verdict/proto/verdict/mcp/v1"
)

// redisFlowConfig is the flow example's setup with session state on the
// Redis at url.
func redisFlowConfig(url string, timeout time.Duration, failOpen ...string) config.Config {
	cfg := config.Default()
	cfg.Bundles = []config.Bundle{{Name: "data", Source: filepath.Join("../..", "bundles/mcp-example")}}
	cfg.State.Redis = config.Redis{URL: url, Timeout: config.Duration(timeout), FailOpen: failOpen}
	return cfg
}

// flowCall is the native Check a gateway sends for alice's tools/call of
// server/tool in an MCP session.
func flowCall(t *testing.T, server, tool string, args map[string]any, session string) *mcpv1.CheckRequest {
	t.Helper()
	params, err := structpb.NewStruct(map[string]any{"name": tool, "arguments": args})
	if err != nil {
		t.Fatal(err)
	}
	return &mcpv1.CheckRequest{
		Subject: &mcpv1.Subject{Id: "alice", Roles: []string{"sales"}, Groups: []string{"engineering"},
			Scopes: []string{"github:write"}, Tenant: "acme", Clearance: "confidential"},
		Server: server, Method: "tools/call", Params: params, SessionId: session,
		Context: &mcpv1.RequestContext{Purpose: "support", Region: "eu", Time: timestamppb.New(flowTime)},
	}
}

func readContact(t *testing.T, session string) *mcpv1.CheckRequest {
	t.Helper()
	return flowCall(t, "crm", "get_contact", map[string]any{"tenant": "acme", "id": "42"}, session)
}

func createIssue(t *testing.T, session string) *mcpv1.CheckRequest {
	t.Helper()
	return flowCall(t, "github", "create_issue", map[string]any{"repo": "acme/public", "title": "contact 42"}, session)
}

func hasReason(resp *mcpv1.CheckResponse, code string) bool {
	for _, r := range resp.GetReasons() {
		if r.GetCode() == code {
			return true
		}
	}
	return false
}

// TestSessionsRedisReplicas runs two servers on one Redis: a session reads
// personal data through the first, and its egress through the second is
// denied by the flow rule.
func TestSessionsRedisReplicas(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	cfg := redisFlowConfig(srv.URL(), time.Second)
	a, b := startPDP(t, cfg), startPDP(t, cfg)
	ca, cb := mcpv1.NewMCPPolicyClient(a.dial(t)), mcpv1.NewMCPPolicyClient(b.dial(t))
	ctx := context.Background()
	resp, err := ca.Check(ctx, readContact(t, "sess-1"))
	if err != nil || resp.GetDecision() != mcpv1.Decision_DECISION_ALLOW {
		t.Fatalf("reading the contact through A: %v %v", resp, err)
	}
	resp, err = cb.Check(ctx, createIssue(t, "sess-1"))
	if err != nil || resp.GetDecision() != mcpv1.Decision_DECISION_DENY || !hasReason(resp, "flow.toxic") {
		t.Fatalf("the egress through B after a read through A: %v %v; want a deny flow.toxic", resp, err)
	}
	resp, err = cb.Check(ctx, createIssue(t, "sess-2"))
	if err != nil || resp.GetDecision() != mcpv1.Decision_DECISION_ALLOW {
		t.Fatalf("a fresh session through B: %v %v; want an allow", resp, err)
	}
	// AuthZEN on B reads the same session.
	body, err := json.Marshal(map[string]any{
		"subject":  map[string]any{"type": "user", "id": "alice", "properties": map[string]any{"roles": []any{"sales"}, "groups": []any{"engineering"}, "scopes": []any{"github:write"}, "tenant": "acme", "clearance": "confidential"}},
		"action":   map[string]any{"name": "tools/call"},
		"resource": map[string]any{"type": "mcp_tool", "id": "create_issue", "properties": map[string]any{"server": "github"}},
		"context":  map[string]any{"arguments": map[string]any{"repo": "acme/public", "title": "contact 42"}, "session_id": "%s", "purpose": "support", "region": "eu", "time": flowTime.Format(time.RFC3339)},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ session, want string }{{"sess-1", `{"decision":false`}, {"sess-3", `{"decision":true}`}} {
		status, _, raw := postJSON(t, "http://"+b.httpAddr+"/access/v1/evaluation", []byte(strings.Replace(string(body), "%s", tc.session, 1)), nil)
		if status != 200 || !strings.HasPrefix(string(raw), tc.want) {
			t.Errorf("AuthZEN on B for %s: %d %s, want %s", tc.session, status, raw, tc.want)
		}
	}
	status := getStatus(t, b)
	if st := status.Sessions; st == nil || st.Store != "redis" || st.Stats != nil {
		t.Errorf("status sessions = %+v, want store redis without a local count", st)
	}
	if st := status.State; st == nil || st.Redis == nil || !st.Redis.Reachable || st.Redis.Calls == 0 {
		t.Errorf("status state = %+v, want Redis reachable and its calls counted", st)
	}
	m := scrape(t, b)
	if !strings.Contains(m, `verdict_redis_duration_seconds_count{op="sessions",result="ok"}`) {
		t.Error("B's session state calls are not in verdict_redis_duration_seconds")
	}
	if strings.Contains(m, "\nverdict_sessions ") {
		t.Error("B reports a local verdict_sessions count of state it does not hold")
	}
}

// TestSessionsRedisDown: with Redis down a call is denied state.unavailable
// (an unread session might have read anything), unless fail_open names
// sessions; the service recovers when Redis is back.
func TestSessionsRedisDown(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	closed := startPDP(t, redisFlowConfig(srv.URL(), 100*time.Millisecond))
	open := startPDP(t, redisFlowConfig(srv.URL(), 100*time.Millisecond, config.FailOpenSessions))
	cc, co := mcpv1.NewMCPPolicyClient(closed.dial(t)), mcpv1.NewMCPPolicyClient(open.dial(t))
	ctx := context.Background()
	srv.Kill()
	resp, err := cc.Check(ctx, createIssue(t, "sess-1"))
	if err != nil || resp.GetDecision() != mcpv1.Decision_DECISION_DENY || resp.GetReasons()[0].GetCode() != "state.unavailable" {
		t.Fatalf("Redis down, failing closed: %v %v", resp, err)
	}
	if msg := resp.GetReasons()[0].GetMessage(); msg != "session state is unavailable right now" {
		t.Errorf("reason %q, want the session state's short message (no internal detail)", msg)
	}
	resp, err = co.Check(ctx, readContact(t, "sess-1"))
	if err != nil || resp.GetDecision() != mcpv1.Decision_DECISION_ALLOW {
		t.Fatalf("Redis down, failing open for sessions: %v %v", resp, err)
	}
	srv.Restart()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := cc.Check(ctx, readContact(t, "sess-2"))
		if err == nil && resp.GetDecision() == mcpv1.Decision_DECISION_ALLOW {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery after Redis came up: %v %v", resp, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	resp, err = co.Check(ctx, createIssue(t, "sess-2"))
	if err != nil || !hasReason(resp, "flow.toxic") {
		t.Fatalf("after recovery, the read through one server must deny the egress through the other: %v %v", resp, err)
	}
}

// TestSessionsRedisUnrecorded: Redis answers reads but refuses the script
// that records (an ACL): an allowed read that cannot be recorded is
// refused, since another replica would not know of it, unless fail_open
// names sessions.
func TestSessionsRedisUnrecorded(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	closed := startPDP(t, redisFlowConfig(srv.URL(), time.Second))
	open := startPDP(t, redisFlowConfig(srv.URL(), time.Second, config.FailOpenSessions))
	cc, co := mcpv1.NewMCPPolicyClient(closed.dial(t)), mcpv1.NewMCPPolicyClient(open.dial(t))
	ctx := context.Background()
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { _ = admin.Close() })
	if err := admin.Do(ctx, "ACL", "SETUSER", "default", "-eval", "-evalsha").Err(); err != nil {
		t.Fatal(err)
	}
	resp, err := cc.Check(ctx, readContact(t, "sess-1"))
	if err != nil || resp.GetDecision() != mcpv1.Decision_DECISION_DENY || resp.GetReasons()[0].GetCode() != "state.unavailable" {
		t.Fatalf("a read that cannot be recorded, failing closed: %v %v", resp, err)
	}
	resp, err = co.Check(ctx, readContact(t, "sess-1"))
	if err != nil || resp.GetDecision() != mcpv1.Decision_DECISION_ALLOW {
		t.Fatalf("a read that cannot be recorded, failing open: %v %v", resp, err)
	}
	// A result with findings that cannot be recorded is not delivered.
	req := mcpExample[mcpv1.CheckResultRequest](t, "mcp-check-result.json")
	cr, err := cc.CheckResult(ctx, req)
	if err != nil || cr.GetAction() != mcpv1.ResultAction_RESULT_ACTION_BLOCK || cr.GetReasons()[0].GetCode() != "state.unavailable" {
		t.Fatalf("a result whose findings cannot be recorded, failing closed: %v %v", cr, err)
	}
	cr, err = co.CheckResult(ctx, req)
	if err != nil || cr.GetAction() == mcpv1.ResultAction_RESULT_ACTION_BLOCK {
		t.Fatalf("a result whose findings cannot be recorded, failing open: %v %v", cr, err)
	}
	if err := admin.Do(ctx, "ACL", "SETUSER", "default", "+@all").Err(); err != nil {
		t.Fatal(err)
	}
	if resp, err := cc.Check(ctx, readContact(t, "sess-2")); err != nil || resp.GetDecision() != mcpv1.Decision_DECISION_ALLOW {
		t.Fatalf("recording again: %v %v", resp, err)
	}
	if resp, err := co.Check(ctx, createIssue(t, "sess-2")); err != nil || !hasReason(resp, "flow.toxic") {
		t.Fatalf("the recorded read does not deny the egress: %v %v", resp, err)
	}
}
