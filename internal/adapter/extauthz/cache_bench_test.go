package extauthz_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/verdictpdp/verdict/internal/adapter/extauthz"
	"github.com/verdictpdp/verdict/internal/bundle"
	"github.com/verdictpdp/verdict/internal/bundle/bundletest"
	"github.com/verdictpdp/verdict/internal/cache"
	"github.com/verdictpdp/verdict/internal/cache/cachetest"
	"github.com/verdictpdp/verdict/internal/engine"
	"github.com/verdictpdp/verdict/internal/pipeline"
)

// catalogSizes are the bundle data sizes the Check benchmarks run with.
var catalogSizes = []int{100, 10_000, 100_000}

// rbacCatalog returns the RBAC data with n roles, one permission each.
func rbacCatalog(n int) map[string]any {
	perms := make(map[string]any, n)
	for i := range n {
		perms["role-"+strconv.Itoa(i)] = []any{map[string]any{"method": "GET", "path": "/api/*/items/*"}}
	}
	return map[string]any{"rbac": map[string]any{"permissions": perms}}
}

func rbacEngine(b *testing.B, n int, c *cache.Cache) *engine.Engine {
	b.Helper()
	policy, err := os.ReadFile("../../../testdata/bench/rbac.rego")
	if err != nil {
		b.Fatal(err)
	}
	raw := bundletest.Archive(b, bundletest.Spec{Revision: "bench", Modules: map[string]string{"rbac.rego": string(policy)}, Data: rbacCatalog(n)})
	bn, err := bundle.NewReader(bundle.Limits{}, nil).ReadArchive("bench", raw)
	if err != nil {
		b.Fatal(err)
	}
	eng, err := engine.New(engine.Deps{Entrypoints: []string{extauthz.DefaultPath}, Cache: c})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := eng.Activate(context.Background(), map[string]*bundle.Bundle{"bench": bn}); err != nil {
		b.Fatal(err)
	}
	return eng
}

// envoyRequests returns n CheckRequests as Envoy sends them, each with its
// own request id; with distinct set, each also asks for a different item
// (a path the policy reads), so no two share a cache key.
func envoyRequests(n int, distinct bool) []*authv3.CheckRequest {
	reqs := make([]*authv3.CheckRequest, n)
	for i := range reqs {
		path := "/api/v1/items/42"
		if distinct {
			path = "/api/v1/items/" + strconv.Itoa(i)
		}
		r := benchRequest(6)
		h := r.GetAttributes().GetRequest().GetHttp()
		h.Path, h.Id = path, strconv.Itoa(i)
		h.Headers[":path"] = path
		h.Headers["x-roles"] = "role-7"
		h.Headers["x-request-id"] = fmt.Sprintf("6f1c2b7e-0000-4000-8000-%012d", i)
		reqs[i] = r
	}
	return reqs
}

// BenchmarkCheck measures one ext_authz Check without the transport (input,
// cache, evaluation, response) on the RBAC policy, by catalog size: answered
// from the cache (hit), evaluated and cached (miss: every request reads a
// different path), and with the cache off.
func BenchmarkCheck(b *testing.B) {
	for _, n := range catalogSizes {
		for _, mode := range []string{"hit", "miss", "off"} {
			b.Run(fmt.Sprintf("catalog=%d/cache=%s", n, mode), func(b *testing.B) {
				var c *cache.Cache
				if mode != "off" {
					var err error
					// Fewer entries than distinct requests: the miss run
					// never finds one, and evicts as it inserts.
					if c, err = cache.New(cache.Limits{MaxEntries: 4096}); err != nil {
						b.Fatal(err)
					}
					b.Cleanup(c.Close)
				}
				srv := extauthz.NewServer(pipeline.New(rbacEngine(b, n, c), pipeline.Options{}), extauthz.Options{Path: extauthz.DefaultPath})
				// A server holds few requests at a time: a larger pool only
				// makes the collector scan more.
				pool := 1 << 10
				if mode == "miss" {
					pool = 1 << 14
				}
				reqs := envoyRequests(pool, mode == "miss")
				ctx := context.Background()
				// A decision is cached the second time it is made.
				for _, r := range reqs[:2] {
					if resp, err := srv.Check(ctx, r); err != nil || resp.GetStatus().GetCode() != 0 {
						b.Fatalf("warm-up Check: %v %v", resp, err)
					}
				}
				c.Flush()
				before := c.Stats()
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					i++
					if _, err := srv.Check(ctx, reqs[i&(len(reqs)-1)]); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				cachetest.ReportHitRate(b, c, before)
				if st := c.Stats(); mode == "hit" && st.Misses > 2 || mode == "miss" && st.Hits > st.Misses/100 {
					b.Fatalf("%s: cache stats %+v", mode, st)
				}
			})
		}
	}
}
