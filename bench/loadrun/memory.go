package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// memoryResult is pdp's resident memory around many distinct Checks.
type memoryResult struct {
	name      string
	dataBytes int64
	checks    int
	rssReady  int64
	// After the first pass every request was new; after the second, every
	// request was made a second time, which a cache with a doorkeeper
	// admits.
	rssPass1, rssPass2     int64
	cachePass1, cachePass2 *cacheStats
}

// memory starts pdp with a bundle of about -mem-bundle-mb and reads VmRSS
// once ready; it then sends -mem-checks distinct Checks (a different path
// each) and reads VmRSS and the cache figures, and sends the same Checks
// again and reads them once more. The second pass is there because pdp's
// cache admits a decision only the second time it is made. With a
// cache-capable pdp it does so with the cache on and off.
func (r *runner) memory(ctx context.Context, pdpBin string, rbacPolicy []byte, res *results) error {
	dir := filepath.Join(r.tmp, "bundles", "memory")
	size, err := writeMemoryBundle(dir, rbacPolicy, r.opts.memBundleMB<<20)
	if err != nil {
		return err
	}
	var on []string
	if res.features.cacheMaxEntries {
		on = append(on, "--cache-max-entries", strconv.Itoa(max(200_000, r.opts.memChecks)))
	}
	if res.features.cacheTTL {
		// Entries must not expire while they are being counted.
		on = append(on, "--cache-ttl", "10m")
	}
	variants := [][]string{on}
	if res.features.cache {
		variants = append(variants, []string{"--cache=false"})
	}
	for _, extra := range variants {
		name := strings.TrimSpace("pdp " + strings.Join(extra, " "))
		m, err := r.memoryRun(ctx, pdpBin, name, dir, extra)
		if err != nil {
			return err
		}
		m.dataBytes = size
		res.memory = append(res.memory, m)
	}
	return nil
}

func (r *runner) memoryRun(ctx context.Context, pdpBin, name, bundleDir string, extra []string) (memoryResult, error) {
	m := memoryResult{name: name, checks: r.opts.memChecks}
	fl := &fleet{dir: r.fleet.dir}
	defer fl.stopAll()
	r.logf("memory: starting %s with a %d MB bundle", name, r.opts.memBundleMB)
	flags := append([]string{"--bundle", bundleDir, "--library=false"}, extra...)
	p, err := fl.startPDP(ctx, "memory "+name, pdpBin, r.httpc, flags...)
	if err != nil {
		return m, err
	}
	time.Sleep(200 * time.Millisecond) // let the start-up garbage settle
	if m.rssReady, err = rssBytes(p.proc.pid()); err != nil {
		return m, err
	}
	conn, err := grpc.NewClient(p.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return m, fmt.Errorf("dial %s: %w", p.grpcAddr, err)
	}
	defer func() { _ = conn.Close() }()
	client := authv3.NewAuthorizationClient(conn)

	for pass, out := range []struct {
		rss   *int64
		cache **cacheStats
	}{{&m.rssPass1, &m.cachePass1}, {&m.rssPass2, &m.cachePass2}} {
		if err := sendDistinct(ctx, client, m.checks); err != nil {
			if aerr := p.proc.alive(); aerr != nil {
				err = aerr
			}
			return m, fmt.Errorf("memory checks on %s, pass %d: %w", name, pass+1, err)
		}
		if *out.cache, err = settledCacheStatus(ctx, p, r.httpc); err != nil {
			return m, err
		}
		if *out.rss, err = rssBytes(p.proc.pid()); err != nil {
			return m, err
		}
		r.logf("memory: %s: VmRSS %s after ready, %s after pass %d of %d checks", name, fmtMiB(m.rssReady), fmtMiB(*out.rss), pass+1, m.checks)
	}
	return m, nil
}

// sendDistinct sends n distinct Checks, all of which must be allowed, on 16
// streams. It is not timed: the requests are built on the fly.
func sendDistinct(ctx context.Context, client authv3.AuthorizationClient, n int) error {
	const streams = 16
	var next, denied atomic.Int64
	var firstDenial atomic.Pointer[string]
	errs := make([]error, streams)
	var wg sync.WaitGroup
	for s := range streams {
		wg.Go(func() {
			ids := newRequestIDs(uint64(1000 + s)) //nolint:gosec // small
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				resp, err := client.Check(ctx, memoryCheckRequest(i, ids))
				if err != nil {
					errs[s] = err
					return
				}
				if resp.GetStatus().GetCode() != 0 {
					denied.Add(1)
					why := fmt.Sprintf("request %d (GET /api/v%d/items): status %d, HTTP %d, %s", i, i,
						resp.GetStatus().GetCode(), resp.GetDeniedResponse().GetStatus().GetCode(), resp.GetDeniedResponse().GetBody())
					firstDenial.CompareAndSwap(nil, &why)
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if d := denied.Load(); d > 0 {
		return fmt.Errorf("%d of %d were denied; all should be allowed. The first: %s", d, n, *firstDenial.Load())
	}
	return nil
}

// settledCacheStatus reads the cache figures once the entry count stopped
// changing (the cache writes in the background), for at most 5 seconds; nil
// when the pdp reports no cache.
func settledCacheStatus(ctx context.Context, p *pdpServer, httpc *http.Client) (*cacheStats, error) {
	deadline := time.Now().Add(5 * time.Second)
	var last *cacheStats
	for {
		st, err := p.cacheStatus(ctx, httpc)
		if err != nil || st == nil {
			return st, err
		}
		if last != nil && st.Entries == last.Entries || time.Now().After(deadline) {
			return st, nil
		}
		last = st
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%s status: %w", p.proc.name, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}
