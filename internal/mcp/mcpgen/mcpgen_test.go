package mcpgen_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/verdictpdp/verdict"
	"github.com/verdictpdp/verdict/internal/adapter/mcpapi"
	"github.com/verdictpdp/verdict/internal/bundle"
	"github.com/verdictpdp/verdict/internal/bundle/bundletest"
	"github.com/verdictpdp/verdict/internal/engine"
	"github.com/verdictpdp/verdict/internal/mcp"
	"github.com/verdictpdp/verdict/internal/mcp/mcpgen"
	"github.com/verdictpdp/verdict/internal/pipeline"
	mcpv1 "github.com/verdictpdp/verdict/proto/verdict/mcp/v1"
)

func rulesOf(t *testing.T, catalog map[string]any) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, r := range catalog["mcp"].(map[string]any)["rules"].([]any) {
		out = append(out, r.(map[string]any))
	}
	return out
}

func TestCatalogIsDeterministic(t *testing.T) {
	t.Parallel()
	spec := mcpgen.Spec{Servers: 6, ToolsPerServer: 8, Rules: 300, Seed: 7}
	a, b := mcpgen.Catalog(spec), mcpgen.Catalog(spec)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("two catalogs of one spec differ")
	}
	spec.Seed = 8
	if reflect.DeepEqual(a, mcpgen.Catalog(spec)) {
		t.Fatal("the seed changes nothing")
	}
	if _, err := json.Marshal(a); err != nil {
		t.Fatalf("the catalog is not JSON: %v", err)
	}
}

// TestRulesScale: more rules are more teams with grants of their own, never
// copies.
func TestRulesScale(t *testing.T) {
	t.Parallel()
	prevRoles := 0
	for _, n := range []int{10, 100, 300, 1000} {
		catalog := mcpgen.Catalog(mcpgen.Spec{Servers: 5, ToolsPerServer: 8, Rules: n, Seed: 1})
		rules := rulesOf(t, catalog)
		if len(rules) != n {
			t.Fatalf("rules=%d: %d rules", n, len(rules))
		}
		servers := catalog["mcp"].(map[string]any)["servers"].(map[string]any)
		ids, bodies, roles := map[string]bool{}, map[string]string{}, map[string]bool{}
		for _, r := range rules {
			id := r["id"].(string)
			if ids[id] {
				t.Errorf("rules=%d: id %s twice", n, id)
			}
			ids[id] = true
			body := map[string]any{}
			for k, v := range r {
				if k != "id" && k != "description" {
					body[k] = v
				}
			}
			b, err := json.Marshal(body)
			if err != nil {
				t.Fatal(err)
			}
			if other, ok := bodies[string(b)]; ok {
				t.Errorf("rules=%d: %s is %s again", n, id, other)
			}
			bodies[string(b)] = id
			for _, role := range asList(r["roles"]) {
				roles[role.(string)] = true
			}
			for _, p := range asList(r["tools"]) {
				server, tool, _ := strings.Cut(p.(string), "/")
				s, ok := servers[server].(map[string]any)
				if !ok {
					t.Errorf("rules=%d: %s grants %s on no server of the catalog", n, id, p)
					continue
				}
				if !strings.Contains(tool, "*") {
					if _, ok := s["tools"].(map[string]any)[tool]; !ok {
						t.Errorf("rules=%d: %s grants %s, not in the catalog", n, id, p)
					}
				}
			}
		}
		if len(roles) <= prevRoles {
			t.Errorf("rules=%d: %d roles, no more than with fewer rules (%d)", n, len(roles), prevRoles)
		}
		prevRoles = len(roles)
	}
}

// TestCatalogLooksReal: the features the policy library reads are all
// there, in a mid-sized organisation.
func TestCatalogLooksReal(t *testing.T) {
	t.Parallel()
	catalog := mcpgen.Catalog(mcpgen.Spec{Servers: 5, ToolsPerServer: 8, Rules: 100, Seed: 1})
	text, err := json.Marshal(catalog)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`"crm"`, `"files"`, `"tickets"`, `"payments"`, `"ehr"`, `"personal_data"`, `"phi"`, `"restricted"`, `"public"`,
		`"readOnlyHint":true`, `"destructiveHint":true`, `"additionalProperties":false`, `"maxLength"`, `"enum"`, `"required"`,
		`"rate_limit"`, `"redact"`, `"tenant_argument"`, `"hipaa"`, `"resources"`, `"prompts"`,
		`"op":"eq"`, `"op":"in"`, `"op":"prefix"`, `"op":"max_length"`, `"op":"path_under"`, `"op":"lte"`, `"op":"matches"`,
		`"hours"`, `"regions"`, `"purposes"`, `"source_cidrs"`, `"allow_destructive":true`, `"crm/search_*"`,
	} {
		if !strings.Contains(string(text), want) {
			t.Errorf("the catalog has no %s", want)
		}
	}
	tools := 0
	for _, s := range catalog["mcp"].(map[string]any)["servers"].(map[string]any) {
		tools += len(s.(map[string]any)["tools"].(map[string]any))
	}
	if tools != 40 {
		t.Errorf("5 servers of 8 tools: %d tools", tools)
	}
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

// TestRequests: every request is new, the sequence is reproducible and the
// mix is as documented.
func TestRequests(t *testing.T) {
	t.Parallel()
	catalog := mcpgen.Catalog(mcpgen.Spec{Servers: 5, ToolsPerServer: 8, Rules: 300, Seed: 1})
	const n = 20000
	reqs := mcpgen.Requests(catalog, n, 42)
	if !reflect.DeepEqual(reqs[:50], mcpgen.Requests(catalog, 50, 42)) {
		t.Fatal("two sequences of one seed differ")
	}
	seen := make(map[string]int, n)
	verdicts := map[mcp.Verdict]int{}
	reached := 0
	byIntent := map[mcpgen.Intent]int{}
	for i, r := range reqs {
		b, err := json.Marshal(r.Arguments)
		if err != nil {
			t.Fatal(err)
		}
		key := r.Server + "/" + r.Tool + string(b)
		if j, ok := seen[key]; ok {
			t.Fatalf("requests %d and %d have the same arguments: %s", j, i, key)
		}
		seen[key] = i
		verdicts[r.Want]++
		byIntent[r.Intent]++
		if r.Intent == mcpgen.IntentAllow && r.Want == mcp.Allow || r.Intent != mcpgen.IntentAllow && r.Want != mcp.Allow {
			reached++
		}
		if _, err := r.CheckRequest(); err != nil {
			t.Fatal(err)
		}
	}
	allow := float64(verdicts[mcp.Allow]) / n
	t.Logf("verdicts %v, intents %v", verdicts, byIntent)
	if allow < 0.76 || allow > 0.82 {
		t.Errorf("%.3f allowed, want about 0.79", allow)
	}
	if approval := float64(verdicts[mcp.RequireApproval]) / n; approval < 0.02 || approval > 0.05 {
		t.Errorf("%.3f need approval, want about 0.03", approval)
	}
	if f := float64(reached) / n; f < 0.98 {
		t.Errorf("%.3f of the requests reached their intent", f)
	}
}

// TestRequestsMatchTheLibrary evaluates generated requests with the policy
// library (the built-in bundle, as pdp serves it) and compares every
// decision with the one the request carries: verdict and reason codes.
func TestRequestsMatchTheLibrary(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		spec mcpgen.Spec
		n    int
	}{
		{mcpgen.Spec{Servers: 5, ToolsPerServer: 8, Rules: 10, Seed: 1}, 300},
		{mcpgen.Spec{Servers: 5, ToolsPerServer: 8, Rules: 100, Seed: 2}, 500},
		{mcpgen.Spec{Servers: 10, ToolsPerServer: 12, Rules: 300, Seed: 3}, 300},
		{mcpgen.Spec{Servers: 12, ToolsPerServer: 6, Rules: 1000, Seed: 4}, 100},
	} {
		t.Run(fmt.Sprintf("rules=%d", tc.spec.Rules), func(t *testing.T) {
			t.Parallel()
			if testing.Short() && tc.spec.Rules > 100 {
				t.Skip("short")
			}
			catalog := mcpgen.Catalog(tc.spec)
			srv := libraryServer(t, catalog)
			ctx := context.Background()
			allowed := 0
			for i, r := range mcpgen.Requests(catalog, tc.n, tc.spec.Seed) {
				req, err := r.CheckRequest()
				if err != nil {
					t.Fatal(err)
				}
				resp, err := srv.Check(ctx, req)
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				var codes []string
				for _, rs := range resp.GetReasons() {
					codes = append(codes, rs.GetCode())
				}
				slices.Sort(codes)
				if got := verdictOf(resp.GetDecision()); got != r.Want || !slices.Equal(codes, r.Reasons) {
					args, _ := json.Marshal(r.Arguments)
					t.Errorf("request %d (%s, %s/%s %s as %+v, context %+v): the library says %v %v (%v), the request says %v %v",
						i, r.Intent, r.Server, r.Tool, args, r.Subject, r.Context, got, codes, resp.GetReasons(), r.Want, r.Reasons)
				}
				if resp.GetDecision() == mcpv1.Decision_DECISION_ALLOW {
					allowed++
				}
			}
			if f := float64(allowed) / float64(tc.n); f < 0.70 || f > 0.88 {
				t.Errorf("the library allowed %.2f of the requests, want about 0.79", f)
			}
		})
	}
}

func verdictOf(d mcpv1.Decision) mcp.Verdict {
	switch d {
	case mcpv1.Decision_DECISION_ALLOW:
		return mcp.Allow
	case mcpv1.Decision_DECISION_REQUIRE_APPROVAL:
		return mcp.RequireApproval
	case mcpv1.Decision_DECISION_DENY:
		return mcp.Deny
	case mcpv1.Decision_DECISION_UNSPECIFIED:
	}
	return 0
}

// libraryServer is the native API deciding with the built-in policy library
// on catalog, without a decision cache.
func libraryServer(t *testing.T, catalog map[string]any) *mcpapi.Server {
	t.Helper()
	reader := bundle.NewReader(bundle.Limits{}, nil)
	lib, err := reader.ReadFS(verdict.MCPBundle, verdict.DefaultBundles()[verdict.MCPBundle])
	if err != nil {
		t.Fatal(err)
	}
	data, err := reader.ReadArchive("catalog", bundletest.Archive(t, bundletest.Spec{Revision: "catalog", Roots: []string{"mcp"}, Data: catalog}))
	if err != nil {
		t.Fatal(err)
	}
	// This test checks decisions, not speed: on a busy machine one
	// evaluation of a thousand rules can outlast the default second.
	eng, err := engine.New(engine.Deps{Entrypoints: []string{mcp.DefaultPath}, EvalTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Activate(context.Background(), map[string]*bundle.Bundle{verdict.MCPBundle: lib, "catalog": data}); err != nil {
		t.Fatal(err)
	}
	return mcpapi.NewServer(mcp.NewDecider(pipeline.New(eng, pipeline.Options{}), mcp.DefaultPath, false), mcpapi.Options{})
}
