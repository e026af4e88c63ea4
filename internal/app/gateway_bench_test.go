package app_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// BenchmarkGatewayToolCall measures what `pdp gateway` adds to a tools/call
// over Streamable HTTP: the same SDK client calls the same SDK server
// directly and through the gateway (decision core in process, the example
// catalog). The query changes on every call, so neither the call's
// decision nor its result check is a cache hit: each call is one policy
// evaluation, one DLP scan of the result, one result decision and a
// redaction. Rate limits are off (the tool allows 60 a minute).
//
//	go test -run '^$' -bench GatewayToolCall -benchtime 2000x ./internal/app/
func BenchmarkGatewayToolCall(b *testing.B) {
	crm := newCRMServer()
	upstream := httptest.NewServer(crm.handler(false))
	b.Cleanup(upstream.Close)
	gw := startGateway(b, "--bundle", "data=../../bundles/mcp-example", "--rate-limit=false",
		"--server", "crm", "--upstream", upstream.URL, "--purpose", "support", "--region", "eu",
		"--subject", "alice", "--subject-roles", "sales", "--subject-tenant", "acme", "--subject-clearance", "confidential")
	for _, target := range []struct{ name, url string }{{"direct", upstream.URL}, {"gateway", gw.url}} {
		b.Run(target.name, func(b *testing.B) {
			ctx := context.Background()
			client := mcp.NewClient(&mcp.Implementation{Name: "bench", Version: "1.0.0"}, nil)
			session, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: target.url}, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer func() { _ = session.Close() }()
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				res, err := session.CallTool(ctx, &mcp.CallToolParams{Name: "search_contacts", Arguments: map[string]any{
					"tenant": "acme", "query": fmt.Sprint("smith-", i), "limit": 10,
				}})
				if err != nil || res.IsError {
					b.Fatalf("call %d: %v", i, err)
				}
			}
		})
	}
}
