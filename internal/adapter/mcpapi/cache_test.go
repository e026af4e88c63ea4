package mcpapi_test

import (
	"context"
	"testing"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/verdictpdp/verdict/internal/adapter/mcpapi"
	"github.com/verdictpdp/verdict/internal/cache"
	"github.com/verdictpdp/verdict/internal/engine/enginetest"
	"github.com/verdictpdp/verdict/internal/mcp"
	"github.com/verdictpdp/verdict/internal/pipeline"
	mcpv1 "github.com/verdictpdp/verdict/proto/verdict/mcp/v1"
)

// TestCacheTellsRequestsApart: a decision cached for one request must not
// answer another that differs in what the policy reads. The native API
// once keyed input.peer.dns_names (a []string) as undefined, so the
// decision for gateway A answered gateway B.
func TestCacheTellsRequestsApart(t *testing.T) {
	t.Parallel()
	type call struct {
		ctx func(context.Context) context.Context
		req *mcpv1.CheckRequest
	}
	toolCall := func(args map[string]any) *mcpv1.CheckRequest {
		params, err := structpb.NewStruct(map[string]any{"name": "search", "arguments": args})
		if err != nil {
			t.Fatal(err)
		}
		return &mcpv1.CheckRequest{Subject: &mcpv1.Subject{Id: "alice"}, Server: "crm", Method: "tools/call", Params: params}
	}
	fromGateway := func(dns ...string) func(context.Context) context.Context {
		return func(ctx context.Context) context.Context { return withPeer(ctx, "spiffe://example.org/gw", dns) }
	}
	none := func(ctx context.Context) context.Context { return ctx }
	tests := []struct {
		name         string
		allow        string // the condition of the allowing rule
		allowed, bad call   // bad must be denied after allowed was cached
	}{
		{
			name:    "gateway DNS name",
			allow:   `input.peer.dns_names[0] == "gw-a.example"`,
			allowed: call{fromGateway("gw-a.example"), toolCall(nil)},
			bad:     call{fromGateway("gw-b.example"), toolCall(nil)},
		},
		{
			name:    "gateway without DNS names",
			allow:   `input.peer.dns_names[0] == "gw-a.example"`,
			allowed: call{fromGateway("gw-a.example"), toolCall(nil)},
			bad:     call{fromGateway(), toolCall(nil)},
		},
		{
			name:    "argument number spelled differently",
			allow:   `input.tool.arguments.limit == 10`,
			allowed: call{none, toolCall(map[string]any{"limit": 10})},
			bad:     call{none, toolCall(map[string]any{"limit": 10.5})},
		},
		{
			name:    "nested argument",
			allow:   `input.tool.arguments.filter.tags[1] == "public"`,
			allowed: call{none, toolCall(map[string]any{"filter": map[string]any{"tags": []any{"x", "public"}}})},
			bad:     call{none, toolCall(map[string]any{"filter": map[string]any{"tags": []any{"x", "secret"}}})},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := cache.New(cache.Limits{MaxEntries: 16, AdmitFirst: true})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.Close)
			policy := "package verdict.mcp\n" +
				`default decision := {"allow": false, "reasons": [{"code": "test.deny", "message": "denied"}]}` + "\n" +
				`decision := {"allow": true} if ` + tc.allow + "\n"
			srv := mcpapi.NewServer(mcp.NewDecider(pipeline.New(enginetest.Engine(t, mcp.DefaultPath, policy, c), pipeline.Options{}), mcp.DefaultPath, false), mcpapi.Options{})
			ctx := context.Background()
			for i := range 2 {
				resp, err := srv.Check(tc.allowed.ctx(ctx), tc.allowed.req)
				if err != nil || resp.GetDecision() != mcpv1.Decision_DECISION_ALLOW {
					t.Fatalf("allowed request: %v %v", resp, err)
				}
				c.Flush()
				if st := c.Stats(); st.Hits != uint64(i) {
					t.Fatalf("%d cache hits after %d identical requests: the cache is not answering", st.Hits, i+1)
				}
			}
			resp, err := srv.Check(tc.bad.ctx(ctx), tc.bad.req)
			if err != nil || resp.GetDecision() != mcpv1.Decision_DECISION_DENY {
				t.Errorf("got %v %v, want a deny (the cached allow was for another request)", resp.GetDecision(), err)
			}
		})
	}
}
