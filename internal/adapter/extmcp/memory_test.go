package extmcp_test

import (
	"context"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/verdictpdp/verdict/internal/adapter/extmcp"
	"github.com/verdictpdp/verdict/internal/mcp"
	"github.com/verdictpdp/verdict/internal/pipeline"
	agw "github.com/verdictpdp/verdict/proto/agentgateway/dev/ext_mcp"
)

func heapBytes() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestPendingStoreMemory: what the pending store holds stays within a few
// times its byte budget, however the requests it remembers are shaped
// (params of many small objects, which decode to many times their size;
// large claims).
func TestPendingStoreMemory(t *testing.T) {
	const budget = 4 << 20
	body := []byte(`{"x":[` + strings.Repeat(`{"a":0},`, 8999) + `{"a":0}]}`)
	for name, mk := range map[string]func(i int) *agw.McpRequest{
		"params": func(int) *agw.McpRequest {
			return &agw.McpRequest{ServiceNames: []string{"github"}, Method: "tools/list", McpRequest: slices.Clone(body),
				MetadataContext: mustStruct(t, map[string]any{"jwt": map[string]any{"sub": "alice"}})}
		},
		"claims": func(i int) *agw.McpRequest {
			blob := strings.Repeat("x", 256<<10) + string(rune('a'+i%26))
			return &agw.McpRequest{ServiceNames: []string{"github"}, Method: "tools/list",
				MetadataContext: mustStruct(t, map[string]any{"jwt": map[string]any{"sub": "alice", "blob": blob}})}
		},
	} {
		t.Run(name, func(t *testing.T) {
			d := mcp.NewDecider(pipeline.New(newEngine(t, nil, false), pipeline.Options{}), mcp.DefaultPath, false)
			// What the server holds is what the heap gives back once it is
			// gone (the engine stays): robust to other tests' garbage.
			with := func() int64 {
				srv := extmcp.NewServer(d, extmcp.Options{PendingBytes: budget})
				for i := range 200 {
					if res, err := srv.CheckRequest(context.Background(), mk(i)); err != nil || res.GetPass() == nil {
						t.Fatal(res, err)
					}
				}
				h := int64(heapBytes())
				runtime.KeepAlive(srv)
				return h
			}()
			without := int64(heapBytes())
			runtime.KeepAlive(d)
			if held := with - without; held > 4*budget {
				t.Fatalf("the pending store holds %d MiB; its budget is %d MiB", held>>20, budget>>20)
			}
		})
	}
}
