package app_test

import (
	"context"
	"os"
	"strconv"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/verdictpdp/verdict/internal/bundle/bundletest"
	"github.com/verdictpdp/verdict/internal/config"
)

// BenchmarkCheckLoopbackGRPC measures Check through a real gRPC client and
// server on loopback, with 1 and 16 concurrent callers on one connection.
func BenchmarkCheckLoopbackGRPC(b *testing.B) {
	policy, err := os.ReadFile("../../testdata/bench/rbac.rego")
	if err != nil {
		b.Fatal(err)
	}
	dir := bundletest.WriteDir(b, b.TempDir(), bundletest.Spec{
		Revision: "bench",
		Modules:  map[string]string{"rbac.rego": string(policy)},
		Data: map[string]any{"rbac": map[string]any{"permissions": map[string]any{
			"reader": []any{map[string]any{"method": "GET", "path": "/api/*/items"}},
		}}},
	})
	cfg := config.Default()
	cfg.Bundles = []config.Bundle{{Name: "bench", Source: dir}}
	cfg.Log.Level = "error"
	p := startPDP(b, cfg)
	client := authv3.NewAuthorizationClient(p.dial(b))
	req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/api/v1/items", Headers: map[string]string{
			":authority": "api.example.com", "x-roles": "reader", "x-request-id": "6f1c2b7e-0000-4000-8000-000000000001",
		}},
	}}}
	ctx := context.Background()
	if resp, err := client.Check(ctx, req); err != nil || resp.GetStatus().GetCode() != 0 {
		b.Fatalf("warm-up Check: %v %v", resp, err)
	}
	for _, streams := range []int{1, 16} {
		b.Run("streams="+strconv.Itoa(streams), func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism((streams + 1) / 2) // GOMAXPROCS 2 on the reference machine
			if streams == 1 {
				for b.Loop() {
					if _, err := client.Check(ctx, req); err != nil {
						b.Fatal(err)
					}
				}
				return
			}
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := client.Check(ctx, req); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
