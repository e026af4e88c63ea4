package mcpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/verdictpdp/verdict/internal/adapter/mcpapi"
	"github.com/verdictpdp/verdict/internal/cache"
	"github.com/verdictpdp/verdict/internal/cache/cachetest"
	"github.com/verdictpdp/verdict/internal/engine/enginetest"
	"github.com/verdictpdp/verdict/internal/mcp"
	"github.com/verdictpdp/verdict/internal/pipeline"
	mcpv1 "github.com/verdictpdp/verdict/proto/verdict/mcp/v1"
)

// exampleCatalog returns bundles/mcp-example's data with n more tools on
// the crm server, copies of search_contacts.
func exampleCatalog(b *testing.B, n int) map[string]any {
	b.Helper()
	raw, err := os.ReadFile("../../../bundles/mcp-example/data.json")
	if err != nil {
		b.Fatal(err)
	}
	var data map[string]any
	if err := json.Unmarshal(raw, &data); err != nil {
		b.Fatal(err)
	}
	tools := data["mcp"].(map[string]any)["servers"].(map[string]any)["crm"].(map[string]any)["tools"].(map[string]any)
	for i := range n {
		tools["tool_"+strconv.Itoa(i)] = tools["search_contacts"]
	}
	return data
}

func mcpServer(b *testing.B, n int, c *cache.Cache) *mcpapi.Server {
	b.Helper()
	eng := enginetest.MCPLibrary(b, exampleCatalog(b, n), c, false)
	return mcpapi.NewServer(mcp.NewDecider(pipeline.New(eng, pipeline.Options{}), mcp.DefaultPath, false), mcpapi.Options{})
}

// toolCalls returns n tools/call requests as a gateway sends them; with
// distinct set, each searches for something else (an argument the policy
// reads), so no two share a cache key.
func toolCalls(b *testing.B, n int, distinct bool) []*mcpv1.CheckRequest {
	b.Helper()
	at := timestamppb.New(time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC))
	reqs := make([]*mcpv1.CheckRequest, n)
	for i := range reqs {
		query := "smith"
		if distinct {
			query = "smith-" + strconv.Itoa(i)
		}
		params, err := structpb.NewStruct(map[string]any{"name": "search_contacts", "arguments": map[string]any{"tenant": "acme", "query": query}})
		if err != nil {
			b.Fatal(err)
		}
		reqs[i] = &mcpv1.CheckRequest{
			Subject: &mcpv1.Subject{Id: "alice", Roles: []string{"sales"}, Tenant: "acme", Clearance: "confidential"},
			Server:  "crm", Method: "tools/call", Params: params, SessionId: "session-1",
			Context: &mcpv1.RequestContext{Purpose: "support", Region: "eu", Time: at},
		}
	}
	return reqs
}

// BenchmarkMCPCheck measures one native MCP Check without the transport on
// the policy library, by catalog size (tools on the server): answered from
// the cache, evaluated (every call searches for something else), and with
// the cache off.
func BenchmarkMCPCheck(b *testing.B) {
	for _, n := range []int{100, 10_000, 100_000} {
		for _, mode := range []string{"hit", "miss", "off"} {
			b.Run(fmt.Sprintf("catalog=%d/cache=%s", n, mode), func(b *testing.B) {
				var c *cache.Cache
				if mode != "off" {
					var err error
					if c, err = cache.New(cache.Limits{MaxEntries: 4096}); err != nil {
						b.Fatal(err)
					}
					b.Cleanup(c.Close)
				}
				srv := mcpServer(b, n, c)
				pool := 1 << 10
				if mode == "miss" {
					pool = 1 << 14
				}
				reqs := toolCalls(b, pool, mode == "miss")
				ctx := context.Background()
				for _, r := range reqs[:2] {
					resp, err := srv.Check(ctx, r)
					if err != nil || resp.GetDecision() != mcpv1.Decision_DECISION_ALLOW {
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
