package extmcp_test

import (
	"context"
	"encoding/json"
	"net"
	"strconv"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/verdictpdp/verdict/internal/adapter/extmcp"
	"github.com/verdictpdp/verdict/internal/cache"
	"github.com/verdictpdp/verdict/internal/cache/cachetest"
	"github.com/verdictpdp/verdict/internal/grpcserver"
	"github.com/verdictpdp/verdict/internal/mcp"
	"github.com/verdictpdp/verdict/internal/pipeline"
	agw "github.com/verdictpdp/verdict/proto/agentgateway/dev/ext_mcp"
)

// benchRequests are n tools/call requests as agentgateway sends them for
// alice, each searching for something else (an argument the policy reads),
// so that no two share a cache key.
func benchRequests(b *testing.B, n int) []*agw.McpRequest {
	b.Helper()
	md, err := structpb.NewStruct(map[string]any{"jwt": alice.claims(), "purpose": "support", "region": "eu"})
	if err != nil {
		b.Fatal(err)
	}
	reqs := make([]*agw.McpRequest, n)
	for i := range reqs {
		params, err := json.Marshal(search(map[string]any{"tenant": "acme", "query": "smith-" + strconv.Itoa(i)}))
		if err != nil {
			b.Fatal(err)
		}
		reqs[i] = &agw.McpRequest{ServiceNames: []string{"crm"}, Method: "tools/call", McpRequest: params, MetadataContext: md,
			Headers: []*agw.McpHeader{{Key: ":authority", Value: []byte("mcp.example.com")}, {Key: "mcp-session-id", Value: []byte("session-1")}}}
	}
	return reqs
}

// BenchmarkCheckRequest measures one ExtMcp CheckRequest for a tools/call
// on bundles/mcp-example with the decision cache on and every request new
// (a cache miss: the policy is evaluated): through the service in process,
// and through a gRPC client on loopback.
func BenchmarkCheckRequest(b *testing.B) {
	for _, transport := range []string{"inprocess", "grpc"} {
		b.Run("transport="+transport+"/cache=miss", func(b *testing.B) {
			c, err := cache.New(cache.Limits{MaxEntries: 4096})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(c.Close)
			srv := extmcp.NewServer(mcp.NewDecider(pipeline.New(newEngine(b, c, false), pipeline.Options{}), mcp.DefaultPath, false), extmcp.Options{})
			var check checkFunc = srv.CheckRequest
			if transport == "grpc" {
				client := loopback(b, srv)
				check = func(ctx context.Context, req *agw.McpRequest) (*agw.McpRequestResult, error) {
					return client.CheckRequest(ctx, req)
				}
			}
			reqs := benchRequests(b, 1<<14)
			ctx := context.Background()
			if res, err := check(ctx, reqs[0]); err != nil || res.GetPass() == nil {
				b.Fatalf("warm-up: %v %v", res, err)
			}
			c.Flush()
			before := c.Stats()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				if _, err := check(ctx, reqs[i&(len(reqs)-1)]); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			cachetest.ReportHitRate(b, c, before)
			if st := c.Stats(); st.Hits > st.Misses/100 {
				b.Fatalf("cache stats %+v: want misses", st)
			}
		})
	}
}

// checkFunc is CheckRequest, in process or through a client.
type checkFunc func(ctx context.Context, req *agw.McpRequest) (*agw.McpRequestResult, error)

// loopback serves srv on a loopback port and returns a client's
// CheckRequest.
func loopback(b *testing.B, srv agw.ExtMcpServer) agw.ExtMcpClient {
	b.Helper()
	gs := grpcserver.New(grpcserver.Options{})
	agw.RegisterExtMcpServer(gs.Server, srv)
	var lc net.ListenConfig
	l, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = gs.Serve(l) }()
	b.Cleanup(gs.Stop)
	conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = conn.Close() })
	return agw.NewExtMcpClient(conn)
}
