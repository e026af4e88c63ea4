package app_test

import (
	"strings"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/internal/config"
	"github.com/verdictpdp/verdict/internal/redistest"
	mcpv1 "github.com/verdictpdp/verdict/proto/verdict/mcp/v1"
)

// TestControlsRedisReplicas runs two servers on one Redis: an approval
// asked on A is approved on B and used once on A; a quarantine set on B
// denies on A within a second.
func TestControlsRedisReplicas(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	env := newApprovalsEnv(t)
	env.cfg.Approvals.Dir = ""
	env.cfg.State.Redis = config.Redis{URL: srv.URL(), Timeout: config.Duration(time.Second)}
	a, b := startPDP(t, env.cfg), startPDP(t, env.cfg)
	onA := mcpv1.NewMCPPolicyClient(a.dial(t))
	dana, sam := env.token(t, "dana", "roles", []string{"crm_lead"}), env.token(t, "sam", "roles", []string{"security-admin"})

	first := checkMCP(t, onA, carlDeletes("42"))
	id := first.GetApproval().GetId()
	if first.GetDecision() != mcpv1.Decision_DECISION_REQUIRE_APPROVAL || id == "" {
		t.Fatalf("destructive call: %v %v", first.GetDecision(), first.GetApproval())
	}
	deadline := time.Now().Add(time.Second)
	for {
		st, out := adminCall(t, b, "POST", "/v1/approvals/"+id+"/approve", dana, nil)
		if st == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("approving on B: %d %v", st, out)
		}
		time.Sleep(10 * time.Millisecond)
	}
	deadline = time.Now().Add(time.Second)
	for {
		r := checkMCP(t, onA, carlDeletes("42"))
		if r.GetDecision() == mcpv1.Decision_DECISION_ALLOW {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the call approved on B is not allowed on A: %v %v", r.GetDecision(), r.GetReasons())
		}
		time.Sleep(10 * time.Millisecond)
	}
	onB := mcpv1.NewMCPPolicyClient(b.dial(t))
	if r := checkMCP(t, onB, carlDeletes("42")); r.GetDecision() == mcpv1.Decision_DECISION_ALLOW {
		t.Fatal("the approval used on A let the call through again on B")
	}

	if st, out := adminCall(t, b, "POST", "/v1/quarantines", sam, map[string]string{"kind": "server", "server": "crm"}); st != 201 {
		t.Fatalf("quarantine on B: %d %v", st, out)
	}
	set := time.Now()
	for {
		r := checkMCP(t, onA, carlDeletes("43"))
		if r.GetDecision() == mcpv1.Decision_DECISION_DENY && len(r.GetReasons()) > 0 && r.GetReasons()[0].GetCode() == "quarantined" {
			t.Logf("A denies %v after the quarantine on B", time.Since(set))
			break
		}
		if time.Since(set) > time.Second {
			t.Fatalf("A does not deny within 1s of the quarantine on B: %v %v", r.GetDecision(), r.GetReasons())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if m := scrape(t, a); !strings.Contains(m, `verdict_redis_duration_seconds_count{op="controls",result="ok"}`) {
		t.Error("the controls' Redis calls are not in verdict_redis_duration_seconds")
	}
}
