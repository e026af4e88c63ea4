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
	// cores is the pdp's CPU time over the run's wall time: how much of
	// the machine the replica itself used (the load generator, Redis and
	// the collector used the rest).
	cores float64
}

// perCore is requests/s per core of the pdp's own CPU.
func (c capacity) perCore() float64 {
	if c.cores == 0 {
		return 0
	}
	return c.rps / c.cores
}

func (c capacity) String() string {
	return fmt.Sprintf("%.0f requests/s, p50 %v, p99 %v, pdp CPU %.2f cores = %.0f requests/s per core (%d requests, %d errors, %d refused, %d wrong)",
		c.rps, c.p50.Round(10*time.Microsecond), c.p99.Round(10*time.Microsecond), c.cores, c.perCore(), c.requests, c.errors, c.refused, c.wrong)
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
	cpu0, _ := cpuSeconds(r.pid())
	tl := load{workers: capacityWorkers, expect: b, latency: true}.run(ctx, c)
	elapsed := time.Since(begin)
	cpu1, _ := cpuSeconds(r.pid())
	res := capacity{
		requests: tl.total(), p50: tl.percentile(0.50), p99: tl.percentile(0.99),
		errors: tl.get(failed), refused: tl.get(refused), wrong: tl.get(wrong) + tl.get(stale),
	}
	res.rps = float64(res.requests) / elapsed.Seconds()
	res.cores = (cpu1 - cpu0) / elapsed.Seconds()
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
	fmt.Printf("CAPACITY cpus=%d workers=%d duration=%v memory=%.0f rps (p50 %v, p99 %v, pdp %.2f cores, %.0f rps/core) redis=%.0f rps (p50 %v, p99 %v, pdp %.2f cores, %.0f rps/core, %d refused) redis/memory=%.2f\n",
		runtime.NumCPU(), capacityWorkers, capacityDuration(),
		mem.rps, mem.p50.Round(10*time.Microsecond), mem.p99.Round(10*time.Microsecond), mem.cores, mem.perCore(),
		red.rps, red.p50.Round(10*time.Microsecond), red.p99.Round(10*time.Microsecond), red.cores, red.perCore(), red.refused, red.rps/mem.rps)
}
