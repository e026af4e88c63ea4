package soak

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/internal/redistest"
)

// Closed-loop load: this many workers over capacityConns connections,
// each sending its next request as soon as the last is answered.
const (
	capacityWorkers = 32
	capacityConns   = 4
)

// capacity is one closed-loop measurement.
type capacity struct {
	requests int64
	rps      float64
	p50, p99 time.Duration
	errors   int64 // failed calls
	refused  int64 // refused by the limiter: state.unavailable when a Redis call times out
	wrong    int64
}

func (c capacity) String() string {
	return fmt.Sprintf("%.0f requests/s, p50 %v, p99 %v (%d requests, %d errors, %d refused, %d wrong)",
		c.rps, c.p50.Round(10*time.Microsecond), c.p99.Round(10*time.Microsecond), c.requests, c.errors, c.refused, c.wrong)
}

// measureCapacity drives r with the mix in a closed loop for d (after a
// 2s warm-up) and fails the test on any error or wrong answer. Refusals
// are counted, not failed: at saturation a Redis call may outlast
// state.redis.timeout, and the request is then refused (fail closed).
func measureCapacity(t *testing.T, r *replica, b *bundleServer, d time.Duration) capacity {
	t.Helper()
	c := dial(t, r.grpcAddr, capacityConns)
	warm, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	load{workers: capacityWorkers, expect: b}.run(warm, c)
	cancel()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	begin := time.Now()
	tl := load{workers: capacityWorkers, expect: b, latency: true}.run(ctx, c)
	elapsed := time.Since(begin)
	res := capacity{
		requests: tl.total(), p50: tl.percentile(0.50), p99: tl.percentile(0.99),
		errors: tl.get(failed), refused: tl.get(refused), wrong: tl.get(wrong) + tl.get(stale),
	}
	res.rps = float64(res.requests) / elapsed.Seconds()
	if res.errors != 0 || res.wrong != 0 {
		t.Errorf("capacity run: %v; first: %v", res, tl.examples)
	}
	return res
}

// capacityDuration is how long each measurement runs.
func capacityDuration() time.Duration {
	return 10 * time.Second
}

// TestCapacity measures one replica's throughput of the mixed load with
// Redis-backed rate limits and with in-memory ones, one after the other
// on this machine, with the load generator on the same cores.
func TestCapacity(t *testing.T) {
	soakDuration(t)
	redis := redistest.Start(t)
	s := newSigner(t)
	b := newBundleServer(t)
	b.serve(t, s, "A")
	dir := t.TempDir()

	results := map[string]capacity{}
	for _, mode := range []string{"memory", "redis"} {
		cfg := pdpConfig{bundleURL: b.url(), publicKey: s.pubFile, auditFile: filepath.Join(dir, mode, "audit.jsonl")}
		if mode == "redis" {
			cfg.redisURL = redis.URL()
		}
		r := startReplica(t, cfg.write(t, dir))
		res := measureCapacity(t, r, b, capacityDuration())
		r.stop(t)
		results[mode] = res
		t.Logf("capacity, %s rate limits: %v", mode, res)
	}
	mem, red := results["memory"], results["redis"]
	fmt.Printf("CAPACITY cpus=%d workers=%d duration=%v memory=%.0f rps (p50 %v, p99 %v) redis=%.0f rps (p50 %v, p99 %v, %d refused) redis/memory=%.2f\n",
		runtime.NumCPU(), capacityWorkers, capacityDuration(),
		mem.rps, mem.p50.Round(10*time.Microsecond), mem.p99.Round(10*time.Microsecond),
		red.rps, red.p50.Round(10*time.Microsecond), red.p99.Round(10*time.Microsecond), red.refused, red.rps/mem.rps)
}
