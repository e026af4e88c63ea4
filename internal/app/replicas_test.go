package app_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/internal/config"
	"github.com/verdictpdp/verdict/internal/redistest"
	mcpv1 "github.com/verdictpdp/verdict/proto/verdict/mcp/v1"

	"google.golang.org/protobuf/types/known/structpb"
)

// propagation is how soon a change made through one replica must hold on
// the others.
const propagation = time.Second

// startReplicas runs n `pdp serve` processes on cfg, written to a file
// each reads with --config.
func startReplicas(t *testing.T, cfg config.Config, n int) []*pdp {
	t.Helper()
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "pdp.yaml")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	out := make([]*pdp, n)
	for i := range out {
		c := startChild(t, "--config", path)
		out[i] = &pdp{grpcAddr: c.grpcAddr, httpAddr: c.httpAd}
	}
	return out
}

// within polls check on every replica until it holds on all of them, and
// fails unless that happens within limit of start.
func within(t *testing.T, what string, start time.Time, limit time.Duration, replicas []*pdp, check func(*pdp) bool) time.Duration {
	t.Helper()
	pending := map[*pdp]bool{}
	for _, p := range replicas {
		pending[p] = true
	}
	for len(pending) > 0 {
		for p := range pending {
			if check(p) {
				delete(pending, p)
			}
		}
		if len(pending) > 0 {
			if time.Since(start) > limit {
				t.Fatalf("%s: not on %d of %d replicas within %v", what, len(pending), len(replicas), limit)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return time.Since(start)
}

// TestReplicasShareState runs three pdp processes on one Redis, as a
// deployment of three replicas behind a load balancer: a rate limit holds
// across them, an approval granted through one is consumed through another
// and cannot be reused on the third, and a quarantine set on one denies on
// all within a second.
func TestReplicasShareState(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the service as three processes")
	}
	t.Parallel()
	srv := redistest.Start(t)
	env := newApprovalsEnv(t)
	env.cfg.Approvals.Dir = ""
	env.cfg.State.Redis = config.Redis{URL: srv.URL(), Timeout: config.Duration(time.Second)}
	example, err := filepath.Abs(env.cfg.Bundles[0].Source)
	if err != nil {
		t.Fatal(err)
	}
	env.cfg.Bundles[0].Source = example
	replicas := startReplicas(t, env.cfg, 3)
	native := make([]mcpv1.MCPPolicyClient, len(replicas))
	for i, p := range replicas {
		native[i] = mcpv1.NewMCPPolicyClient(p.dial(t))
	}
	search := func(subject string) *mcpv1.CheckRequest {
		params, _ := structpb.NewStruct(map[string]any{"name": "search_contacts", "arguments": map[string]any{"tenant": "acme", "query": "smith", "limit": 10}})
		return &mcpv1.CheckRequest{
			Subject: &mcpv1.Subject{Id: subject, Roles: []string{"sales"}, Tenant: "acme", Clearance: "confidential"},
			Server:  "crm", Method: "tools/call", Params: params,
			Context: &mcpv1.RequestContext{Purpose: "support", Region: "eu"},
		}
	}

	// The example limits crm/search_contacts to 60 a minute per caller.
	t.Run("rate limit", func(t *testing.T) {
		for i := range 60 {
			r := checkMCP(t, native[i%3], search("rita"))
			if r.GetDecision() != mcpv1.Decision_DECISION_ALLOW {
				t.Fatalf("call %d on replica %d: %v %v", i+1, i%3, r.GetDecision(), r.GetReasons())
			}
		}
		for i := range native {
			r := checkMCP(t, native[i], search("rita"))
			if r.GetDecision() != mcpv1.Decision_DECISION_DENY || firstReason(r) != "rate_limited" {
				t.Errorf("call 61+ on replica %d: %v %v, want rate_limited", i, r.GetDecision(), r.GetReasons())
			}
		}
		if r := checkMCP(t, native[1], search("sven")); r.GetDecision() != mcpv1.Decision_DECISION_ALLOW {
			t.Errorf("another caller: %v %v", r.GetDecision(), r.GetReasons())
		}
	})

	t.Run("approval", func(t *testing.T) {
		first := checkMCP(t, native[0], carlDeletes("42"))
		if first.GetDecision() != mcpv1.Decision_DECISION_REQUIRE_APPROVAL || first.GetApproval().GetStatus() != "pending" {
			t.Fatalf("destructive call on replica 0: %v %v", first.GetDecision(), first.GetApproval())
		}
		id := first.GetApproval().GetId()
		within(t, "the pending approval", time.Now(), propagation, replicas[1:], func(p *pdp) bool {
			r := checkMCP(t, native[indexOf(replicas, p)], carlDeletes("42"))
			return r.GetApproval().GetId() == id
		})
		dana := env.token(t, "dana", "roles", []string{"crm_lead"})
		st, out := adminCall(t, replicas[1], "POST", "/v1/approvals/"+id+"/approve", dana, map[string]string{"note": "ticket CRM-9"})
		if st != 200 {
			t.Fatalf("approve through replica 1: %d %v", st, out)
		}
		approved := time.Now()
		// Consumed through replica 2, once it has heard of the approval.
		var consumed *mcpv1.CheckResponse
		within(t, "the approval", approved, propagation, replicas[2:], func(*pdp) bool {
			consumed = checkMCP(t, native[2], carlDeletes("42"))
			return consumed.GetDecision() != mcpv1.Decision_DECISION_REQUIRE_APPROVAL || consumed.GetApproval().GetStatus() != "pending"
		})
		if consumed.GetDecision() != mcpv1.Decision_DECISION_ALLOW || consumed.GetApproval().GetId() != id {
			t.Fatalf("retried call on replica 2: %v approval %v, want allowed under %s", consumed.GetDecision(), consumed.GetApproval(), id)
		}
		// Never again, on any replica.
		for i := range native {
			r := checkMCP(t, native[i], carlDeletes("42"))
			if r.GetDecision() == mcpv1.Decision_DECISION_ALLOW || r.GetApproval().GetId() == id {
				t.Errorf("reuse on replica %d: %v approval %v, want the consumed approval refused", i, r.GetDecision(), r.GetApproval())
			}
		}
		st, out = adminCall(t, replicas[0], "GET", "/v1/approvals/"+id, dana, nil)
		if st != 200 || out["approval"].(map[string]any)["status"] != "consumed" {
			t.Errorf("the approval through replica 0: %d %v, want consumed", st, out)
		}
	})

	// get_contact has no rate limit: polling it counts against nothing.
	read := func() *mcpv1.CheckRequest {
		return containCall("quinn", []string{"sales"}, "", "get_contact", map[string]any{"tenant": "acme", "id": "42"})
	}
	t.Run("quarantine", func(t *testing.T) {
		for i := range native {
			if r := checkMCP(t, native[i], read()); r.GetDecision() != mcpv1.Decision_DECISION_ALLOW {
				t.Fatalf("before the quarantine, replica %d: %v %v", i, r.GetDecision(), r.GetReasons())
			}
		}
		admin := env.token(t, "sam", "roles", []string{"security-admin"})
		st, out := adminCall(t, replicas[0], "POST", "/v1/quarantines", admin, map[string]string{"kind": "subject", "subject": "quinn"})
		if st != 201 {
			t.Fatalf("quarantine through replica 0: %d %v", st, out)
		}
		set := time.Now()
		qid := out["quarantine"].(map[string]any)["id"].(string)
		took := within(t, "the quarantine", set, propagation, replicas, func(p *pdp) bool {
			r := checkMCP(t, native[indexOf(replicas, p)], read())
			return r.GetDecision() == mcpv1.Decision_DECISION_DENY && firstReason(r) == "quarantined"
		})
		t.Logf("the quarantine denied on all three replicas %v after it was set", took)
		if st, out := adminCall(t, replicas[2], "POST", "/v1/quarantines/"+qid+"/release", admin, nil); st != 200 {
			t.Fatalf("release through replica 2: %d %v", st, out)
		}
		within(t, "the release", time.Now(), propagation, replicas, func(p *pdp) bool {
			return checkMCP(t, native[indexOf(replicas, p)], read()).GetDecision() == mcpv1.Decision_DECISION_ALLOW
		})
	})
}

func indexOf(replicas []*pdp, p *pdp) int {
	for i, r := range replicas {
		if r == p {
			return i
		}
	}
	return -1
}
