package mcpapi_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/verdictpdp/verdict"
	"github.com/verdictpdp/verdict/internal/adapter/mcpapi"
	"github.com/verdictpdp/verdict/internal/bundle"
	"github.com/verdictpdp/verdict/internal/bundle/bundletest"
	"github.com/verdictpdp/verdict/internal/cache"
	"github.com/verdictpdp/verdict/internal/cache/cachetest"
	"github.com/verdictpdp/verdict/internal/engine"
	"github.com/verdictpdp/verdict/internal/mcp"
	"github.com/verdictpdp/verdict/internal/mcp/mcpgen"
	"github.com/verdictpdp/verdict/internal/mcpnative"
	"github.com/verdictpdp/verdict/internal/pipeline"
	mcpv1 "github.com/verdictpdp/verdict/proto/verdict/mcp/v1"
)

// ruleCounts are the organisations of BenchmarkMCPCheckRules: 40 tools on
// five servers, and from one rule per department to teams with a thousand
// rules between them.
var ruleCounts = []int{10, 100, 300, 1000}

// BenchmarkMCPCheckRules measures one native MCP Check on the policy
// library against a generated organisation (internal/mcp/mcpgen), by
// number of access rules, as real agents call: every request carries
// argument values no request before it had, about 79 % are allowed and
// the rest denied or sent for approval. cache=miss runs with the decision
// cache on, cache=off without it. The hit rate (hit-%) is the cache's own
// count, not assumed; allow-% is the share of allowed answers.
func BenchmarkMCPCheckRules(b *testing.B) {
	for _, n := range ruleCounts {
		catalog := mcpgen.Catalog(mcpgen.Spec{Servers: 5, ToolsPerServer: 8, Rules: n, Seed: 1})
		for _, mode := range []string{"miss", "off", "off/evaluator=rego"} {
			rego := mode == "off/evaluator=rego"
			if rego && n == 300 {
				continue // the Rego library's growth shows at 10, 100 and 1,000
			}
			b.Run(fmt.Sprintf("rules=%d/cache=%s", n, mode), func(b *testing.B) {
				var c *cache.Cache
				if mode != "off" {
					var err error
					if c, err = cache.New(cache.Limits{MaxEntries: 4096}); err != nil {
						b.Fatal(err)
					}
					b.Cleanup(c.Close)
				}
				srv := generatedServer(b, catalog, c, rego)
				gen := mcpgen.NewGenerator(catalog, 1)
				var reqs []*mcpv1.CheckRequest
				more := func() {
					reqs = reqs[:0]
					for range 512 {
						r := gen.Next()
						req, err := r.CheckRequest()
						if err != nil {
							b.Fatal(err)
						}
						reqs = append(reqs, req)
					}
				}
				more()
				ctx := context.Background()
				if _, err := srv.Check(ctx, reqs[0]); err != nil { // compiles the schemas' first use outside the clock
					b.Fatal(err)
				}
				c.Flush()
				before := c.Stats()
				b.ReportAllocs()
				i, allowed, calls := 1, 0, 0
				for b.Loop() {
					if i == len(reqs) {
						// Never a request twice: new ones, made outside the clock.
						b.StopTimer()
						more()
						i = 0
						b.StartTimer()
					}
					resp, err := srv.Check(ctx, reqs[i])
					if err != nil {
						b.Fatal(err)
					}
					if resp.GetDecision() == mcpv1.Decision_DECISION_ALLOW {
						allowed++
					}
					i++
					calls++
				}
				b.StopTimer()
				b.ReportMetric(100*float64(allowed)/float64(calls), "allow-%")
				cachetest.ReportHitRate(b, c, before)
			})
		}
	}
}

// generatedServer is the native API on the policy library and catalog.
// generatedServer serves catalog with the library, natively unless rego.
func generatedServer(b *testing.B, catalog map[string]any, c *cache.Cache, rego bool) *mcpapi.Server {
	b.Helper()
	reader := bundle.NewReader(bundle.Limits{}, nil)
	lib, err := reader.ReadFS(verdict.MCPBundle, verdict.DefaultBundles()[verdict.MCPBundle])
	if err != nil {
		b.Fatal(err)
	}
	data, err := reader.ReadArchive("catalog", bundletest.Archive(b, bundletest.Spec{Revision: "catalog", Roots: []string{"mcp"}, Data: catalog}))
	if err != nil {
		b.Fatal(err)
	}
	eng, err := engine.New(engine.Deps{Entrypoints: []string{mcp.DefaultPath}, Cache: c,
		Natives: map[string]engine.Native{mcpnative.Entrypoint: mcpnative.Builtin()}, DisableNative: rego})
	if err != nil {
		b.Fatal(err)
	}
	snap, err := eng.Activate(context.Background(), map[string]*bundle.Bundle{verdict.MCPBundle: lib, "catalog": data})
	if err != nil {
		b.Fatal(err)
	}
	if ev := snap.Evaluators()[mcp.DefaultPath]; (ev.Kind == engine.EvaluatorNative) == rego {
		b.Fatalf("the library runs %s (%s)", ev.Kind, ev.Reason)
	}
	return mcpapi.NewServer(mcp.NewDecider(pipeline.New(eng, pipeline.Options{}), mcp.DefaultPath, false), mcpapi.Options{})
}
