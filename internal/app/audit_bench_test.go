package app_test

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/verdictpdp/verdict/internal/config"
)

// BenchmarkCheckAudit measures ext_authz Checks over loopback gRPC against
// a real server, with the audit log off and with the file sink on, from 16
// parallel streams (the RBAC policy). With the cache on, most Checks are
// hits: the decision is cheapest and the audit log's share of the cost is at
// its largest, since the event's input is built on the audit worker. With
// the cache off, every Check is evaluated. Compare sink=file with sink=off
// from one run:
//
//	go test -run '^$' -bench BenchmarkCheckAudit -count 5 ./internal/app/
func BenchmarkCheckAudit(b *testing.B) {
	for _, bc := range []struct{ cache, sink string }{{"on", "off"}, {"on", "file"}, {"off", "off"}, {"off", "file"}} {
		b.Run("cache="+bc.cache+"/sink="+bc.sink, func(b *testing.B) {
			cfg := config.Default()
			cfg.Bundles = []config.Bundle{{Name: "rbac", Source: rbacBundle(b)}}
			on := bc.cache == "on"
			cfg.Cache.Enabled = &on
			if bc.sink == "file" {
				cfg.Audit.File.Path = filepath.Join(b.TempDir(), "audit.jsonl")
			}
			p := startPDP(b, cfg)
			client := authv3.NewAuthorizationClient(p.dial(b))
			// 64 distinct requests: the cache answers after the first two
			// rounds, as for a gateway's steady traffic.
			reqs := make([]*authv3.CheckRequest, 64)
			for i := range reqs {
				role := "reader"
				if i%4 == 0 {
					role = "writer"
				}
				reqs[i] = envoyCheck(i, role, "GET", "/api/v1/items")
				reqs[i].Attributes.Request.Http.Headers["authorization"] = "Bearer bench-token"
			}
			var next atomic.Int64
			b.SetParallelism(8) // 16 streams on 2 cores
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := next.Add(1)
					if _, err := client.Check(context.Background(), reqs[i%int64(len(reqs))]); err != nil {
						b.Error(err)
						return
					}
				}
			})
			p.stop() // flushes the audit log: its cost is inside the timing
		})
	}
}
