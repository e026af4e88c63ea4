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
	"github.com/verdictpdp/verdict/internal/engine"
	"github.com/verdictpdp/verdict/internal/pipeline"
)

// BenchRBACData is the role table the benchmark policy reads.
var benchRBACData = map[string]any{"rbac": map[string]any{"permissions": map[string]any{
	"reader": []any{map[string]any{"method": "GET", "path": "/api/*/items"}},
	"writer": []any{map[string]any{"method": "POST", "path": "/api/*/items"}},
}}}

func benchServer(b testing.TB) *extauthz.Server {
	b.Helper()
	policy, err := os.ReadFile("../../../testdata/bench/rbac.rego")
	if err != nil {
		b.Fatal(err)
	}
	raw := bundletest.Archive(b, bundletest.Spec{Revision: "bench", Modules: map[string]string{"rbac.rego": string(policy)}, Data: benchRBACData})
	bn, err := bundle.NewReader(bundle.Limits{}, nil).ReadArchive("bench", raw)
	if err != nil {
		b.Fatal(err)
	}
	eng, err := engine.New(engine.Deps{Entrypoints: []string{extauthz.DefaultPath}})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := eng.Activate(context.Background(), map[string]*bundle.Bundle{"bench": bn}); err != nil {
		b.Fatal(err)
	}
	return extauthz.NewServer(pipeline.New(eng, pipeline.Options{}), extauthz.Options{Path: extauthz.DefaultPath})
}

// benchRequest is a realistic Envoy CheckRequest with n extra headers.
func benchRequest(n int) *authv3.CheckRequest {
	h := map[string]string{
		":authority": "api.example.com", ":method": "GET", ":path": "/api/v1/items?limit=10",
		"x-request-id": "6f1c2b7e-0000-4000-8000-000000000001", "x-roles": "reader", "user-agent": "bench/1.0",
	}
	for i := range n {
		h["x-extra-"+strconv.Itoa(i)] = fmt.Sprintf("value-%d", i)
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Principal: "spiffe://cluster.local/ns/default/sa/frontend"},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: "1", Method: "GET", Path: "/api/v1/items?limit=10", Host: "api.example.com", Scheme: "http", Protocol: "HTTP/1.1", Headers: h,
		}},
	}}
}

// BenchmarkCheckInProcess measures one Check without the transport: input
// mapping, evaluation and response mapping, by number of request headers.
func BenchmarkCheckInProcess(b *testing.B) {
	srv := benchServer(b)
	for _, n := range []int{0, 20, 80} {
		b.Run("headers="+strconv.Itoa(n), func(b *testing.B) {
			req := benchRequest(n)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				resp, err := srv.Check(ctx, req)
				if err != nil || resp.GetStatus().GetCode() != 0 {
					b.Fatalf("Check: %v %v", resp, err)
				}
			}
		})
	}
}

func TestDecideReportsOutcome(t *testing.T) {
	t.Parallel()
	srv := benchServer(t)
	out := srv.Decide(context.Background(), benchRequest(2))
	if out.Err != nil || out.Result == nil || out.Revision != "bench" {
		t.Fatalf("Decide = %+v", out)
	}
	if out.Took <= 0 {
		t.Fatalf("Decide did not report its duration: %v", out.Took)
	}
	if got := out.Response.GetDynamicMetadata().GetFields()["decision_id"].GetStringValue(); got != out.DecisionID || got == "" {
		t.Fatalf("response decision_id %q, outcome %q", got, out.DecisionID)
	}
}
