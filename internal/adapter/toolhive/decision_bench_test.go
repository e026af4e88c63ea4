package toolhive_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/internal/adapter/toolhive"
	"github.com/verdictpdp/verdict/internal/cache"
	"github.com/verdictpdp/verdict/internal/cache/cachetest"
	"github.com/verdictpdp/verdict/internal/engine/enginetest"
	"github.com/verdictpdp/verdict/internal/mcp"
	"github.com/verdictpdp/verdict/internal/pipeline"
)

// libraryHandler returns the ToolHive handler deciding with the MCP
// library on bundles/mcp-example's catalog, with n more tools on the files
// server (copies of read_file).
func libraryHandler(b *testing.B, n int, c *cache.Cache) *toolhive.Handler {
	b.Helper()
	raw, err := os.ReadFile("../../../bundles/mcp-example/data.json")
	if err != nil {
		b.Fatal(err)
	}
	var data map[string]any
	if err := json.Unmarshal(raw, &data); err != nil {
		b.Fatal(err)
	}
	tools := data["mcp"].(map[string]any)["servers"].(map[string]any)["files"].(map[string]any)["tools"].(map[string]any)
	for i := range n {
		tools["tool_"+strconv.Itoa(i)] = tools["read_file"]
	}
	eng := enginetest.MCPLibrary(b, data, c, false)
	// ToolHive sends no time, and the catalog has a rule limited to office
	// hours, so the decision time is in the cache key: a fixed clock lets
	// equal questions hit.
	at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	return toolhive.NewHandler(mcp.NewDecider(pipeline.New(eng, pipeline.Options{}), mcp.DefaultPath, false),
		toolhive.Options{Now: func() time.Time { return at }})
}

// toolCallBodies returns n PORC bodies of an analyst's read_file call, as
// ToolHive sends them with include_args and include_operation; with
// distinct set, each reads another file (an argument the policy reads), so
// no two share a cache key.
func toolCallBodies(b *testing.B, n int, distinct bool) [][]byte {
	b.Helper()
	out := make([][]byte, n)
	for i := range out {
		path := "/srv/data/q3.csv"
		if distinct {
			path = "/srv/data/q3-" + strconv.Itoa(i) + ".csv"
		}
		body, err := json.Marshal(map[string]any{
			"principal": map[string]any{"sub": "ana", "mroles": []any{"analyst"}, "mgroups": []any{}, "scopes": []any{"tools:read"}, "mclearance": "internal", "mannotations": map[string]any{}},
			"operation": "mcp:tool:call",
			"resource":  "mrn:mcp:files:tool:read_file",
			"context":   map[string]any{"mcp": map[string]any{"feature": "tool", "operation": "call", "resource_id": "read_file", "args": map[string]any{"path": path}}},
		})
		if err != nil {
			b.Fatal(err)
		}
		out[i] = body
	}
	return out
}

// BenchmarkDecision measures one POST /decision without the transport
// (parse, decide with the policy library, answer), by catalog size (tools
// on the server): evaluated (every call reads another file), answered from
// the cache, and with the cache off.
func BenchmarkDecision(b *testing.B) {
	for _, n := range []int{100, 10_000} {
		for _, mode := range []string{"miss", "hit", "off"} {
			b.Run(fmt.Sprintf("catalog=%d/cache=%s", n, mode), func(b *testing.B) {
				var c *cache.Cache
				if mode != "off" {
					var err error
					if c, err = cache.New(cache.Limits{MaxEntries: 4096}); err != nil {
						b.Fatal(err)
					}
					b.Cleanup(c.Close)
				}
				h := libraryHandler(b, n, c)
				pool := 1 << 10
				if mode == "miss" {
					pool = 1 << 14
				}
				bodies := toolCallBodies(b, pool, mode == "miss")
				for _, body := range bodies[:2] {
					if rec := post(h, body); rec.Code != http.StatusOK || !allowed(rec.Body.Bytes()) {
						b.Fatalf("warm-up: %d %s", rec.Code, rec.Body)
					}
				}
				c.Flush()
				before := c.Stats()
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					i++
					if rec := post(h, bodies[i&(len(bodies)-1)]); rec.Code != http.StatusOK {
						b.Fatalf("%d %s", rec.Code, rec.Body)
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

func allowed(body []byte) bool {
	var a struct {
		Allow bool `json:"allow"`
	}
	return json.Unmarshal(body, &a) == nil && a.Allow
}
