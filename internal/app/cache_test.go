package app_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/verdictpdp/verdict/internal/admin"
	"github.com/verdictpdp/verdict/internal/bundle/bundletest"
	"github.com/verdictpdp/verdict/internal/config"
	mcpv1 "github.com/verdictpdp/verdict/proto/verdict/mcp/v1"
)

// rbacBundle writes the benchmark RBAC policy (role from x-roles, path glob
// from data) as a bundle directory.
func rbacBundle(t testing.TB) string {
	t.Helper()
	policy, err := os.ReadFile("../../testdata/bench/rbac.rego")
	if err != nil {
		t.Fatal(err)
	}
	return bundletest.WriteDir(t, t.TempDir(), bundletest.Spec{
		Revision: "rbac-1",
		Modules:  map[string]string{"rbac.rego": string(policy)},
		Data: map[string]any{"rbac": map[string]any{"permissions": map[string]any{
			"reader": []any{map[string]any{"method": "GET", "path": "/api/*/items"}},
			"writer": []any{map[string]any{"method": "POST", "path": "/api/*/items"}},
		}}},
	})
}

func envoyCheck(id int, role, method, path string) *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Principal: "spiffe://cluster.local/ns/web/sa/frontend"},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: strconv.Itoa(id), Method: method, Path: path, Host: "api.example.com",
			Headers: map[string]string{
				":authority": "api.example.com", ":method": method, ":path": path,
				"x-roles": role, "x-request-id": "req-" + strconv.Itoa(id),
			},
		}},
	}}
}

// withoutDecisionID returns resp without its decision id (unique per call)
// and that id.
func withoutDecisionID(t *testing.T, resp *authv3.CheckResponse) (*authv3.CheckResponse, string) {
	t.Helper()
	c := proto.CloneOf(resp)
	id := c.GetDynamicMetadata().GetFields()["decision_id"].GetStringValue()
	if id == "" {
		t.Fatalf("response without decision_id: %v", resp)
	}
	delete(c.GetDynamicMetadata().GetFields(), "decision_id")
	return c, id
}

// TestCacheGivesTheAnswersOfEvaluation sends the same mix of requests, each
// with its own request id, three times to a pdp with the cache and to one
// without: every answer must be the same, the third round must come from
// the cache (a decision is cached the second time it is made), and every
// answer must carry its own decision id.
func TestCacheGivesTheAnswersOfEvaluation(t *testing.T) {
	t.Parallel()
	dir := rbacBundle(t)
	servers := map[string]*pdp{}
	for _, on := range []bool{true, false} {
		cfg := config.Default()
		cfg.Bundles = []config.Bundle{{Name: "rbac", Source: dir}}
		cfg.Cache.Enabled = &on
		servers[strconv.FormatBool(on)] = startPDP(t, cfg)
	}
	clients := map[string]authv3.AuthorizationClient{}
	for name, p := range servers {
		clients[name] = authv3.NewAuthorizationClient(p.dial(t))
	}
	mix := []struct{ role, method, path string }{
		{"reader", "GET", "/api/v1/items"},
		{"reader", "GET", "/api/v2/items?limit=5"},
		{"reader", "POST", "/api/v1/items"},
		{"writer", "POST", "/api/v1/items"},
		{"writer", "GET", "/api/v1/items"},
		{"", "GET", "/api/v1/items"},
		{"reader,writer", "POST", "/api/v1/items"},
	}
	ids := map[string]bool{}
	n := 0
	for round := range 3 {
		for _, m := range mix {
			n++
			var answers []*authv3.CheckResponse
			for _, name := range []string{"true", "false"} {
				resp, err := clients[name].Check(context.Background(), envoyCheck(n, m.role, m.method, m.path))
				if err != nil {
					t.Fatal(err)
				}
				a, id := withoutDecisionID(t, resp)
				if ids[id] {
					t.Fatalf("decision id %s reused", id)
				}
				ids[id] = true
				answers = append(answers, a)
			}
			if !proto.Equal(answers[0], answers[1]) {
				t.Errorf("round %d %v: cached %v, uncached %v", round, m, answers[0], answers[1])
			}
		}
		if round == 1 {
			// The cache inserts in the background: wait until the
			// second round's decisions are visible before the third.
			waitStatus(t, servers["true"], "decisions cached", func(s admin.Status) bool { return s.Cache.Inserts >= uint64(len(mix)) })
		}
	}
	on := getStatus(t, servers["true"]).Cache
	if !on.Enabled || on.Hits != uint64(len(mix)) || on.Misses != 2*uint64(len(mix)) || on.FirstSeen != uint64(len(mix)) {
		t.Errorf("cache on: %+v", on.Stats)
	}
	ep := on.Entrypoints["envoy/authz/allow"]
	want := []string{
		"input.attributes.request.http (presence)",
		`input.attributes.request.http.headers["x-roles"]`,
		"input.attributes.request.http.method",
		"input.attributes.request.http.path",
	}
	if !ep.Cacheable || !slices.Equal(ep.Reads, want) {
		t.Errorf("envoy/authz/allow keyed on %+v, want reads %v", ep, want)
	}
	if off := getStatus(t, servers["false"]).Cache; off.Enabled || off.Hits != 0 {
		t.Errorf("cache off: %+v", off.Stats)
	}
}

func TestCacheMCPAndFlushBySubject(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	cfg.Bundles = []config.Bundle{{Name: "mcp", Source: "../../bundles/mcp-example"}}
	p := startPDP(t, cfg)
	client := mcpv1.NewMCPPolicyClient(p.dial(t))
	raw, err := os.ReadFile("../../docs/examples/mcp-check.json")
	if err != nil {
		t.Fatal(err)
	}
	var req mcpv1.CheckRequest
	if err := protojson.Unmarshal(raw, &req); err != nil {
		t.Fatal(err)
	}
	// The example bundle has a rule with office hours, so the decision
	// depends on the time: the gateway sends it, and repeated calls within
	// the same instant hit the cache.
	req.Context.Time = timestamppb.New(time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC))
	// The second identical decision is admitted and inserted by the cache's
	// writer in the background: repeat until two calls were answered from
	// it.
	var first *mcpv1.CheckResponse
	var st admin.Status
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; ; i++ {
		resp, err := client.Check(context.Background(), &req)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = resp
			continue
		}
		if resp.GetDecisionId() == first.GetDecisionId() || resp.GetDecision() != first.GetDecision() ||
			!proto.Equal(resp.GetObligations(), first.GetObligations()) {
			t.Fatalf("call %d: %v, first %v", i, resp, first)
		}
		if st = getStatus(t, p); st.Cache.Hits >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("repeated MCP checks were not cached after %d calls: %+v", i+1, st.Cache.Stats)
		}
		time.Sleep(5 * time.Millisecond)
	}
	ep := st.Cache.Entrypoints["verdict/mcp/decision"]
	if !ep.Cacheable || ep.WholeInput != "" || !slices.Contains(ep.Reads, "input.context.time") || slices.Contains(ep.Reads, "input.session") {
		t.Errorf("verdict/mcp/decision keyed on %+v", ep)
	}

	for _, tc := range []struct {
		query string
		code  int
	}{{"", http.StatusBadRequest}, {"?subject=alice", http.StatusOK}} {
		resp, err := http.Post("http://"+p.httpAddr+"/v1/cache/flush"+tc.query, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Fatalf("flush%s = %d, want %d", tc.query, resp.StatusCode, tc.code)
		}
	}
	waitStatus(t, p, "alice's decisions flushed", func(st admin.Status) bool {
		return st.Cache.Entries == 0 && st.Cache.Invalidated >= 1
	})
	if _, err := client.Check(context.Background(), &req); err != nil {
		t.Fatal(err)
	}
	if st := getStatus(t, p); st.Cache.Misses < 2 {
		t.Fatalf("a flushed decision was served from the cache: %+v", st.Cache.Stats)
	}
}

// exampleDataWithoutHours writes bundles/mcp-example with the hours
// condition taken out of every rule, as a bundle directory.
func exampleDataWithoutHours(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile("../../bundles/mcp-example/data.json")
	if err != nil {
		t.Fatal(err)
	}
	var data map[string]any
	if err := json.Unmarshal(raw, &data); err != nil {
		t.Fatal(err)
	}
	removed := 0
	for _, r := range data["mcp"].(map[string]any)["rules"].([]any) {
		if when, ok := r.(map[string]any)["when"].(map[string]any); ok && when["hours"] != nil {
			delete(when, "hours")
			removed++
		}
	}
	if removed == 0 {
		t.Fatal("bundles/mcp-example has no rule with hours any more: the test needs one")
	}
	return bundletest.WriteDir(t, t.TempDir(), bundletest.Spec{Revision: "no-hours", Roots: []string{"mcp"}, Data: data})
}

// TestMCPCacheWithoutGatewayTime sends native checks without context.time,
// so the input carries the server's clock: with no rule that has hours,
// the decision does not depend on it and the second identical check is
// answered from the cache; with one, the time is part of the key and the
// hours are still decided.
func TestMCPCacheWithoutGatewayTime(t *testing.T) {
	t.Parallel()
	at := func(hour int) *timestamppb.Timestamp {
		return timestamppb.New(time.Date(2026, 11, 23, hour, 0, 0, 0, time.UTC)) // a Monday
	}
	// A sales manager's export: the example's only rule with hours
	// (08:00-18:00 Europe/Berlin on weekdays) grants it.
	export := func(when *timestamppb.Timestamp) *mcpv1.CheckRequest {
		req := &mcpv1.CheckRequest{
			Subject: &mcpv1.Subject{Id: "bob", Roles: []string{"sales_manager"}, Tenant: "acme", Clearance: "confidential"},
			Server:  "crm", Method: "tools/call",
			Context: &mcpv1.RequestContext{SourceIp: "10.1.2.3", Purpose: "support", Region: "eu", Time: when},
		}
		var err error
		if req.Params, err = structpb.NewStruct(map[string]any{"name": "export_contacts", "arguments": map[string]any{"tenant": "acme", "limit": 100}}); err != nil {
			t.Fatal(err)
		}
		return req
	}
	cases := []struct {
		name      string
		dir       string
		readsTime bool
		// decisions of the export at 10:00 and 20:00 UTC.
		at10, at20 mcpv1.Decision
	}{
		{"no rule has hours", exampleDataWithoutHours(t), false, mcpv1.Decision_DECISION_ALLOW, mcpv1.Decision_DECISION_ALLOW},
		{"a rule has hours", "../../bundles/mcp-example", true, mcpv1.Decision_DECISION_ALLOW, mcpv1.Decision_DECISION_DENY},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := config.Default()
			cfg.Bundles = []config.Bundle{{Name: "mcp", Source: tc.dir}}
			p := startPDP(t, cfg)
			client := mcpv1.NewMCPPolicyClient(p.dial(t))
			decide := func(req *mcpv1.CheckRequest) *mcpv1.CheckResponse {
				t.Helper()
				resp, err := client.Check(context.Background(), req)
				if err != nil {
					t.Fatal(err)
				}
				return resp
			}

			ep := getStatus(t, p).Cache.Entrypoints["verdict/mcp/decision"]
			if !ep.Cacheable || slices.Contains(ep.Reads, "input.context.time") != tc.readsTime {
				t.Fatalf("verdict/mcp/decision keyed on %v, want input.context.time read: %v", ep.Reads, tc.readsTime)
			}
			if got := decide(export(at(10))).GetDecision(); got != tc.at10 {
				t.Errorf("export at 10:00 UTC = %v, want %v", got, tc.at10)
			}
			if got := decide(export(at(20))).GetDecision(); got != tc.at20 {
				t.Errorf("export at 20:00 UTC = %v, want %v", got, tc.at20)
			}

			// The same check without a time, repeated: the cache admits a
			// decision the second time it is made and inserts it in the
			// background.
			req := exampleMCPCheck(t)
			req.Context.Time = nil
			first := decide(req)
			before := getStatus(t, p).Cache
			const calls = 20
			for range calls {
				if resp := decide(req); resp.GetDecision() != first.GetDecision() {
					t.Fatalf("repeated check = %v, first %v", resp, first)
				}
				if tc.readsTime {
					continue
				}
				if st := getStatus(t, p).Cache; st.Hits > before.Hits {
					return
				}
				time.Sleep(5 * time.Millisecond)
			}
			st := getStatus(t, p).Cache
			if !tc.readsTime {
				t.Fatalf("%d identical checks without context.time were never answered from the cache: %+v", calls+1, st.Stats)
			}
			if st.Hits != before.Hits || st.Misses-before.Misses != calls {
				t.Fatalf("checks at different instants were answered from the cache: before %+v, after %+v", before.Stats, st.Stats)
			}
		})
	}
}
