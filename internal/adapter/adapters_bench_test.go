// Package adapter_test compares the adapters on one decision: the cost
// each wire format adds to the same MCP call.
package adapter_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/verdictpdp/verdict/internal/adapter/authzen"
	"github.com/verdictpdp/verdict/internal/adapter/extmcp"
	"github.com/verdictpdp/verdict/internal/adapter/mcpapi"
	"github.com/verdictpdp/verdict/internal/adapter/toolhive"
	"github.com/verdictpdp/verdict/internal/cache"
	"github.com/verdictpdp/verdict/internal/cache/cachetest"
	"github.com/verdictpdp/verdict/internal/control"
	"github.com/verdictpdp/verdict/internal/engine/enginetest"
	"github.com/verdictpdp/verdict/internal/mcp"
	"github.com/verdictpdp/verdict/internal/pipeline"
	agw "github.com/verdictpdp/verdict/proto/agentgateway/dev/ext_mcp"
	mcpv1 "github.com/verdictpdp/verdict/proto/verdict/mcp/v1"
)

// at is the decision time every adapter is given (the example catalog has
// an office-hours rule).
var at = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

func decider(b *testing.B, c *cache.Cache) *mcp.Decider {
	b.Helper()
	raw, err := os.ReadFile("../../bundles/mcp-example/data.json")
	if err != nil {
		b.Fatal(err)
	}
	var data map[string]any
	if err := json.Unmarshal(raw, &data); err != nil {
		b.Fatal(err)
	}
	eng := enginetest.MCPLibrary(b, data, c, false)
	return mcp.NewDecider(pipeline.New(eng, pipeline.Options{}), mcp.DefaultPath, false).WithClock(func() time.Time { return at })
}

// asker asks about the i-th of n prepared calls (an analyst reading file i
// of the files server: an argument the policy reads, so no two calls share
// a cache key) and reports whether it was allowed. The requests are built
// before the clock starts: what is measured is the adapter's work.
type asker func(i int) (bool, error)

// pool is the number of prepared calls, a power of two.
const pool = 1 << 14

func path(i int) string { return "/srv/data/q3-" + strconv.Itoa(i) + ".csv" }

func nativeAsker(b *testing.B, d *mcp.Decider) asker {
	b.Helper()
	srv := mcpapi.NewServer(d, mcpapi.Options{})
	reqs := make([]*mcpv1.CheckRequest, pool)
	for i := range reqs {
		params, err := structpb.NewStruct(map[string]any{"name": "read_file", "arguments": map[string]any{"path": path(i)}})
		if err != nil {
			b.Fatal(err)
		}
		reqs[i] = &mcpv1.CheckRequest{
			Subject: &mcpv1.Subject{Id: "ana", Roles: []string{"analyst"}, Scopes: []string{"tools:read"}, Clearance: "internal"},
			Server:  "files", Method: "tools/call", Params: params, Context: &mcpv1.RequestContext{Time: timestamppb.New(at)},
		}
	}
	return func(i int) (bool, error) {
		resp, err := srv.Check(context.Background(), reqs[i&(pool-1)])
		return resp.GetDecision() == mcpv1.Decision_DECISION_ALLOW, err
	}
}

func httpAsk(h http.Handler, target string, body []byte, answer any) error {
	req := httptest.NewRequest(http.MethodPost, target, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		return fmt.Errorf("%s: %d %s", target, rec.Code, rec.Body.Bytes())
	}
	return json.Unmarshal(rec.Body.Bytes(), answer)
}

func toolHiveAsker(b *testing.B, d *mcp.Decider) asker {
	b.Helper()
	h := toolhive.NewHandler(d, toolhive.Options{Now: func() time.Time { return at }})
	bodies := make([][]byte, pool)
	for i := range bodies {
		body, err := json.Marshal(map[string]any{
			"principal": map[string]any{"sub": "ana", "mroles": []any{"analyst"}, "mgroups": []any{}, "scopes": []any{"tools:read"}, "mclearance": "internal", "mannotations": map[string]any{}},
			"operation": "mcp:tool:call", "resource": "mrn:mcp:files:tool:read_file",
			"context": map[string]any{"mcp": map[string]any{"feature": "tool", "operation": "call", "resource_id": "read_file", "args": map[string]any{"path": path(i)}}},
		})
		if err != nil {
			b.Fatal(err)
		}
		bodies[i] = body
	}
	return func(i int) (bool, error) {
		var a struct{ Allow bool }
		err := httpAsk(h, "/decision", bodies[i&(pool-1)], &a)
		return a.Allow, err
	}
}

func extMcpAsker(b *testing.B, d *mcp.Decider) asker {
	b.Helper()
	srv := extmcp.NewServer(d, extmcp.Options{})
	md, err := structpb.NewStruct(map[string]any{"jwt": map[string]any{"sub": "ana", "roles": []any{"analyst"}, "scope": "tools:read", "clearance": "internal"}})
	if err != nil {
		b.Fatal(err)
	}
	reqs := make([]*agw.McpRequest, pool)
	for i := range reqs {
		params, err := json.Marshal(map[string]any{"name": "read_file", "arguments": map[string]any{"path": path(i)}})
		if err != nil {
			b.Fatal(err)
		}
		reqs[i] = &agw.McpRequest{ServiceNames: []string{"files"}, Method: "tools/call", McpRequest: params, MetadataContext: md}
	}
	return func(i int) (bool, error) {
		res, err := srv.CheckRequest(context.Background(), reqs[i&(pool-1)])
		return res.GetPass() != nil, err
	}
}

func authZENAsker(b *testing.B, d *mcp.Decider) asker {
	b.Helper()
	h := authzen.NewServer(d.Pipeline(), authzen.Options{MCP: d}).Handler()
	bodies := make([][]byte, pool)
	for i := range bodies {
		body, err := json.Marshal(map[string]any{
			"subject":  map[string]any{"type": "user", "id": "ana", "properties": map[string]any{"roles": []any{"analyst"}, "scopes": []any{"tools:read"}, "clearance": "internal"}},
			"action":   map[string]any{"name": "tools/call"},
			"resource": map[string]any{"type": "mcp_tool", "id": "read_file", "properties": map[string]any{"server": "files"}},
			"context":  map[string]any{"arguments": map[string]any{"path": path(i)}, "time": at.Format(time.RFC3339)},
		})
		if err != nil {
			b.Fatal(err)
		}
		bodies[i] = body
	}
	return func(i int) (bool, error) {
		var a struct{ Decision bool }
		err := httpAsk(h, "/access/v1/evaluation", bodies[i&(pool-1)], &a)
		return a.Decision, err
	}
}

// BenchmarkAdapters measures the same allowed MCP call, in process, through
// each adapter, every call new to the cache (a miss: the MCP library is
// evaluated, natively): the native API (proto in, proto out), ToolHive's
// httpv1 (JSON body through the HTTP handler), agentgateway's ExtMcp
// (proto with JSON params) and AuthZEN's MCP mapping (JSON through the HTTP
// handler). With -count N the adapters take turns, round after round.
func BenchmarkAdapters(b *testing.B) {
	for _, a := range []struct {
		name string
		new  func(*testing.B, *mcp.Decider) asker
	}{
		{"native", nativeAsker}, {"toolhive", toolHiveAsker}, {"extmcp", extMcpAsker}, {"authzen", authZENAsker},
	} {
		b.Run("adapter="+a.name+"/cache=miss", func(b *testing.B) {
			c, err := cache.New(cache.Limits{MaxEntries: 4096})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(c.Close)
			missLoop(b, c, a.new(b, decider(b, c)))
		})
	}
}

// missLoop asks ask for call after call (each new to the cache, after a
// warm-up), reporting allocations and the measured hit rate.
func missLoop(b *testing.B, c *cache.Cache, ask asker) {
	b.Helper()
	if ok, err := ask(0); err != nil || !ok {
		b.Fatalf("warm-up: allowed=%v, %v", ok, err)
	}
	c.Flush()
	before := c.Stats()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		if _, err := ask(i); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	cachetest.ReportHitRate(b, c, before)
}

// allowAll lets the benchmark's operator quarantine anything.
type allowAll struct{}

func (allowAll) Authorize(context.Context, map[string]any) (bool, []control.Reason, error) {
	return true, nil, nil
}

// BenchmarkControls prices the runtime controls on the native API's miss
// path: off; on with nothing quarantined or granted (the common case); on
// with 100 quarantines and 100 grants that match neither the caller nor
// the call.
func BenchmarkControls(b *testing.B) {
	for _, setup := range []string{"off", "idle", "100-unrelated"} {
		b.Run("controls="+setup+"/cache=miss", func(b *testing.B) {
			c, err := cache.New(cache.Limits{MaxEntries: 4096})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(c.Close)
			d := decider(b, c)
			if setup != "off" {
				ctl, err := control.New(context.Background(), control.NewMemoryStore(), control.Options{Authorizer: allowAll{}})
				if err != nil {
					b.Fatal(err)
				}
				if setup == "100-unrelated" {
					op := control.Approver{ID: "sam"}
					for i := range 100 {
						n := strconv.Itoa(i)
						if _, err := ctl.Quarantine(context.Background(), op, control.QuarantineRequest{Kind: control.QuarantineTool, Server: "files", Tool: "other_" + n}); err != nil {
							b.Fatal(err)
						}
						if _, err := ctl.Grant(context.Background(), op, control.GrantRequest{Subject: "user" + n, Tools: []string{"files/*"}, Duration: time.Hour}); err != nil {
							b.Fatal(err)
						}
					}
				}
				d = d.WithControls(ctl)
			}
			missLoop(b, c, nativeAsker(b, d))
		})
	}
}
