package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/verdictpdp/verdict/internal/app"
	"github.com/verdictpdp/verdict/internal/config"
	controlv1 "github.com/verdictpdp/verdict/proto/verdict/control/v1"
	mcpv1 "github.com/verdictpdp/verdict/proto/verdict/mcp/v1"
)

// containmentBundle writes the MCP example bundle with containment into
// a fresh directory and returns it.
func containmentBundle(t *testing.T, containment map[string]any) string {
	t.Helper()
	src := filepath.Join("../..", "bundles/mcp-example")
	raw, err := os.ReadFile(filepath.Join(src, "data.json"))
	if err != nil {
		t.Fatal(err)
	}
	var data map[string]any
	if err := json.Unmarshal(raw, &data); err != nil {
		t.Fatal(err)
	}
	data["mcp"].(map[string]any)["containment"] = containment
	dir := t.TempDir()
	out, _ := json.Marshal(data)
	manifest, err := os.ReadFile(filepath.Join(src, ".manifest"))
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string][]byte{"data.json": out, ".manifest": manifest} {
		if err := os.WriteFile(filepath.Join(dir, name), body, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func containCall(subject string, roles []string, session, tool string, args map[string]any) *mcpv1.CheckRequest {
	params, _ := structpb.NewStruct(map[string]any{"name": tool, "arguments": args})
	return &mcpv1.CheckRequest{
		Subject: &mcpv1.Subject{Id: subject, Roles: roles, Tenant: "acme", Clearance: "confidential"},
		Server:  "crm", Method: "tools/call", Params: params, SessionId: session,
		Context: &mcpv1.RequestContext{Purpose: "support", Region: "eu", SourceIp: "10.1.2.3"},
	}
}

// eventually polls check until it holds (containment quarantines on its
// worker, moments after the decision that crossed the threshold).
func eventually(t *testing.T, what string, check func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !check() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestContainmentDenyStorm: a caller whose calls are mostly denied crosses
// the bundle's deny-rate rule over the native API and is quarantined by
// Verdict itself: its next calls are denied as quarantined, the quarantine
// is listed as created by the system approver, audited and alerted on the
// webhook; an approver releases it and the caller is allowed again.
func TestContainmentDenyStorm(t *testing.T) {
	secret := "0123456789abcdef-webhook-secret"
	got := make(chan []byte, 8)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Header.Get("X-Verdict-Event") == "containment.triggered" {
			got <- body
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(hook.Close)
	env := newApprovalsEnv(t)
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	env.cfg.Approvals.Webhook.URL = hook.URL + "/verdict"
	env.cfg.Approvals.Webhook.SecretFile = secretFile
	env.cfg.Audit.File.Path = filepath.Join(t.TempDir(), "audit.jsonl")
	env.cfg.Bundles = []config.Bundle{{Name: "data", Source: containmentBundle(t, map[string]any{
		"rules": []any{map[string]any{"id": "deny-storm", "signal": "deny_rate", "scope": "subject",
			"window_seconds": 300, "min_calls": 4, "threshold": 0.5}},
	})}}
	p := startPDP(t, env.cfg)
	native := mcpv1.NewMCPPolicyClient(p.dial(t))
	admin := env.token(t, "sam", "roles", []string{"security-admin"})
	search := func() *mcpv1.CheckRequest {
		return containCall("mallory", []string{"sales"}, "", "search_contacts", map[string]any{"tenant": "acme", "query": "smith", "limit": 10})
	}
	// Another caller's denies count for that caller only (and are too few).
	for range 3 {
		checkMCP(t, native, containCall("bob", []string{"sales"}, "", "delete_contact", map[string]any{"tenant": "acme", "id": "1"}))
	}
	if r := checkMCP(t, native, search()); r.GetDecision() != mcpv1.Decision_DECISION_ALLOW {
		t.Fatalf("search: %v %v", r.GetDecision(), r.GetReasons())
	}
	for i := range 3 {
		r := checkMCP(t, native, containCall("mallory", []string{"sales"}, "", "delete_contact", map[string]any{"tenant": "acme", "id": "9"}))
		if r.GetDecision() != mcpv1.Decision_DECISION_DENY {
			t.Fatalf("delete %d by a sales caller: %v, want a deny", i, r.GetDecision())
		}
	}
	eventually(t, "the caller quarantined", func() bool { return firstReason(checkMCP(t, native, search())) == "quarantined" })

	st, out := adminCall(t, p, "GET", "/v1/quarantines", admin, nil)
	list, _ := out["quarantines"].([]any)
	if st != 200 || len(list) != 1 {
		t.Fatalf("quarantines = %d %v, want one", st, out)
	}
	q := list[0].(map[string]any)
	if q["kind"] != "subject" || q["subject"] != "mallory" || q["created_by"] != "verdict:containment" || q["rule"] != "deny-storm" ||
		!strings.HasPrefix(q["note"].(string), "containment rule deny-storm: deny_rate ") {
		t.Fatalf("quarantine = %v", q)
	}
	qid := q["id"].(string)

	var alert map[string]any
	select {
	case body := <-got:
		if err := json.Unmarshal(body, &alert); err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no containment webhook within 10s")
	}
	rule, _ := alert["rule"].(map[string]any)
	measured, _ := alert["measured"].(map[string]any)
	aq, _ := alert["quarantine"].(map[string]any)
	if alert["event"] != "containment.triggered" || alert["subject"] != "mallory" || rule["id"] != "deny-storm" || rule["signal"] != "deny_rate" ||
		measured["value"].(float64) < 0.5 || measured["calls"].(float64) < 4 || aq["id"] != qid {
		t.Errorf("alert = %v", alert)
	}

	if m := scrape(t, p); !strings.Contains(m, `verdict_containment_triggered_total{rule="deny-storm",signal="deny_rate"} 1`) {
		t.Error("metrics lack the containment counter")
	}

	if st, out := adminCall(t, p, "POST", "/v1/quarantines/"+qid+"/release", admin, map[string]string{"note": "reviewed"}); st != 200 {
		t.Fatalf("release: %d %v", st, out)
	}
	for range 3 { // released: allowed, and the window starts afresh
		if r := checkMCP(t, native, search()); r.GetDecision() != mcpv1.Decision_DECISION_ALLOW {
			t.Fatalf("after release: %v %v", r.GetDecision(), r.GetReasons())
		}
	}
	st, out = adminCall(t, p, "GET", "/v1/quarantines", admin, nil)
	if list, _ := out["quarantines"].([]any); st != 200 || len(list) != 0 {
		t.Errorf("active quarantines after release = %v", out)
	}

	p.stop()
	var created map[string]any
	for _, ev := range readLog(t, env.cfg.Audit.File.Path) {
		if c, ok := ev["control"].(map[string]any); ok && c["event"] == "quarantine.created" && c["id"] == qid {
			created = c
		}
	}
	if created == nil || created["by"] != "verdict:containment" || !strings.HasPrefix(created["note"].(string), "containment rule deny-storm") {
		t.Fatalf("audit quarantine.created = %v", created)
	}
	if d, _ := created["detail"].(map[string]any); d["rule"] != "deny-storm" {
		t.Errorf("audit detail = %v, want the rule", created["detail"])
	}
}

// TestContainmentSession: a session-scope rule quarantines the session
// that crossed it; the caller's other session goes on.
func TestContainmentSession(t *testing.T) {
	env := newApprovalsEnv(t)
	env.cfg.Bundles = []config.Bundle{{Name: "data", Source: containmentBundle(t, map[string]any{
		"rules": []any{map[string]any{"id": "destructive-burst", "signal": "destructive", "scope": "session",
			"window_seconds": 60, "threshold": 2}},
		"quarantine_seconds": 3600,
	})}}
	p := startPDP(t, env.cfg)
	native := mcpv1.NewMCPPolicyClient(p.dial(t))
	admin := env.token(t, "sam", "roles", []string{"security-admin"})
	del := func(session, id string) *mcpv1.CheckRequest {
		return containCall("carl", []string{"crm_admin"}, session, "delete_contact", map[string]any{"tenant": "acme", "id": id})
	}
	for _, id := range []string{"1", "2"} {
		if r := checkMCP(t, native, del("s-1", id)); r.GetDecision() != mcpv1.Decision_DECISION_REQUIRE_APPROVAL {
			t.Fatalf("destructive call: %v %v", r.GetDecision(), r.GetReasons())
		}
	}
	eventually(t, "the session quarantined", func() bool { return firstReason(checkMCP(t, native, del("s-1", "3"))) == "quarantined" })
	if r := checkMCP(t, native, del("s-2", "4")); r.GetDecision() != mcpv1.Decision_DECISION_REQUIRE_APPROVAL {
		t.Errorf("another session of the caller: %v %v, want it to go on", r.GetDecision(), r.GetReasons())
	}
	if r := checkMCP(t, native, del("", "5")); r.GetDecision() != mcpv1.Decision_DECISION_REQUIRE_APPROVAL {
		t.Errorf("the caller without a session: %v %v, want it to go on", r.GetDecision(), r.GetReasons())
	}
	st, out := adminCall(t, p, "GET", "/v1/quarantines", admin, nil)
	list, _ := out["quarantines"].([]any)
	if st != 200 || len(list) != 1 {
		t.Fatalf("quarantines = %d %v", st, out)
	}
	q := list[0].(map[string]any)
	if q["kind"] != "session" || q["subject"] != "carl" || q["session"] != "s-1" || q["created_by"] != "verdict:containment" || q["expires_at"] == nil {
		t.Fatalf("quarantine = %v", q)
	}
	// A person can set a session quarantine too, over gRPC as over HTTP.
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+admin)
	gq, err := controlv1.NewControlServiceClient(p.dial(t)).CreateQuarantine(ctx, &controlv1.CreateQuarantineRequest{Kind: "session", Subject: "carl", Session: "s-3"})
	if err != nil || gq.GetQuarantine().GetSession() != "s-3" || gq.GetQuarantine().GetKind() != "session" {
		t.Fatalf("CreateQuarantine(session) = %v, %v", gq, err)
	}
	if r := checkMCP(t, native, del("s-3", "8")); firstReason(r) != "quarantined" {
		t.Errorf("s-3 after its quarantine: %v", r.GetReasons())
	}
	if r := checkMCP(t, native, del("s-4", "8")); r.GetDecision() != mcpv1.Decision_DECISION_REQUIRE_APPROVAL {
		t.Errorf("s-4 next to a quarantined s-3: %v %v", r.GetDecision(), r.GetReasons())
	}
	st, out = adminCall(t, p, "POST", "/v1/quarantines", admin, map[string]string{"kind": "session", "subject": "carl", "session": "s-2"})
	if st != 201 {
		t.Fatalf("session quarantine by an approver: %d %v", st, out)
	}
	if r := checkMCP(t, native, del("s-2", "6")); firstReason(r) != "quarantined" {
		t.Errorf("s-2 after its quarantine: %v", r.GetReasons())
	}
	for _, q := range []any{list[0], out["quarantine"]} {
		id := q.(map[string]any)["id"].(string)
		if st, out := adminCall(t, p, "POST", "/v1/quarantines/"+id+"/release", admin, nil); st != 200 {
			t.Fatalf("release: %d %v", st, out)
		}
	}
	if r := checkMCP(t, native, del("s-1", "7")); r.GetDecision() != mcpv1.Decision_DECISION_REQUIRE_APPROVAL {
		t.Errorf("s-1 after release: %v %v", r.GetDecision(), r.GetReasons())
	}
}

// TestContainmentRulesValidated: a bundle whose containment does not
// validate is not served.
func TestContainmentRulesValidated(t *testing.T) {
	env := newApprovalsEnv(t)
	env.cfg.Bundles = []config.Bundle{{Name: "data", Source: containmentBundle(t, map[string]any{
		"rules": []any{map[string]any{"id": "x", "signal": "latency", "scope": "subject", "window_seconds": 60, "threshold": 2}},
	})}}
	cfg := env.cfg
	cfg.GRPC.Addr, cfg.HTTP.Addr = "127.0.0.1:0", "127.0.0.1:0"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := app.Serve(ctx, cfg, slog.New(slog.DiscardHandler), func(net.Addr, net.Addr) {
		t.Error("the service started with containment rules that do not validate")
	})
	if err == nil || !strings.Contains(err.Error(), `signal "latency"`) {
		t.Fatalf("serve = %v, want the bad signal named", err)
	}
}

// TestContainmentNeedsControls: with approvals off, rules in the bundle
// contain nothing, and Verdict says so at activation.
func TestContainmentNeedsControls(t *testing.T) {
	cfg := config.Default()
	off := false
	cfg.Approvals.Enabled = &off
	cfg.Bundles = []config.Bundle{{Name: "data", Source: containmentBundle(t, map[string]any{
		"rules": []any{map[string]any{"id": "deny-storm", "signal": "deny_rate", "scope": "subject", "window_seconds": 60, "threshold": 0.5}},
	})}}
	cfg.GRPC.Addr, cfg.HTTP.Addr = "127.0.0.1:0", "127.0.0.1:0"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	errc := make(chan error, 1)
	go func() {
		errc <- app.Serve(ctx, cfg, slog.New(slog.NewTextHandler(&logs, nil)), func(g, _ net.Addr) { ready <- g.String() })
	}()
	defer cancel()
	var addr string
	select {
	case addr = <-ready:
	case err := <-errc:
		t.Fatalf("serve: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("not started within 20s")
	}
	defer func() {
		cancel()
		if err := <-errc; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("serve: %v", err)
		}
	}()
	if !strings.Contains(logs.String(), "data.mcp.containment has rules, but approvals are off") {
		t.Errorf("no warning in the log:\n%s", logs.String())
	}
	native := mcpv1.NewMCPPolicyClient((&pdp{grpcAddr: addr}).dial(t))
	for range 5 {
		if r := checkMCP(t, native, containCall("mallory", []string{"sales"}, "", "delete_contact", map[string]any{"tenant": "acme", "id": "1"})); r.GetDecision() != mcpv1.Decision_DECISION_DENY {
			t.Fatalf("delete by a sales caller: %v", r.GetDecision())
		}
	}
	if r := checkMCP(t, native, containCall("mallory", []string{"sales"}, "", "search_contacts", map[string]any{"tenant": "acme", "query": "x"})); r.GetDecision() != mcpv1.Decision_DECISION_ALLOW {
		t.Errorf("search after the denies, controls off: %v %v", r.GetDecision(), r.GetReasons())
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
