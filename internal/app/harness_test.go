package app_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/verdictpdp/verdict/internal/app"
	"github.com/verdictpdp/verdict/internal/config"
)

// pdp is a running service on loopback.
type pdp struct {
	grpcAddr string
	httpAddr string
	stop     func()
}

// testLogWriter sends the service's log lines to the test log until the
// test ends.
type testLogWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testLogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// startPDP runs app.Serve with cfg on free loopback ports and stops it when
// the test ends.
func startPDP(t testing.TB, cfg config.Config) *pdp {
	t.Helper()
	cfg.GRPC.Addr = "127.0.0.1:0"
	cfg.HTTP.Addr = "127.0.0.1:0"
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	lw := &testLogWriter{t: t}
	var logger *slog.Logger
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(lw, &slog.HandlerOptions{Level: slog.LevelInfo}))
	} else {
		logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	type addrs struct{ g, h net.Addr }
	readyc := make(chan addrs, 1)
	errc := make(chan error, 1)
	go func() {
		errc <- app.Serve(ctx, cfg, logger, func(g, h net.Addr) { readyc <- addrs{g, h} })
	}()
	var p pdp
	select {
	case a := <-readyc:
		p.grpcAddr, p.httpAddr = a.g.String(), a.h.String()
	case err := <-errc:
		cancel()
		t.Fatalf("pdp did not start: %v", err)
	case <-time.After(20 * time.Second):
		cancel()
		t.Fatal("pdp did not start within 20s")
	}
	var once sync.Once
	p.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-errc:
				if err != nil && !errors.Is(err, context.Canceled) {
					t.Errorf("pdp stopped with error: %v", err)
				}
			case <-time.After(20 * time.Second):
				t.Error("pdp did not stop within 20s")
			}
			lw.mu.Lock()
			lw.done = true
			lw.mu.Unlock()
		})
	}
	t.Cleanup(p.stop)
	return &p
}

// dial returns a plaintext client connection to the pdp's gRPC listener.
func (p *pdp) dial(t testing.TB) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(p.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// waitServing polls the health service until it reports want or the
// deadline passes.
func waitHealth(t testing.TB, conn *grpc.ClientConn, service string, want healthpb.HealthCheckResponse_ServingStatus, within time.Duration) {
	t.Helper()
	hc := healthpb.NewHealthClient(conn)
	deadline := time.Now().Add(within)
	var last healthpb.HealthCheckResponse_ServingStatus
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: service})
		cancel()
		if err == nil {
			last = resp.GetStatus()
			if last == want {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("health of %q: got %v, want %v within %v", service, last, want, within)
}

// cacheMode is one way a corpus runs: without the decision cache, or with it
// and the corpus sent several times in order, so that later passes are
// answered from entries earlier requests primed. Both must give the corpus's
// answers: the cache never changes a decision.
type cacheMode struct {
	name   string
	on     bool
	passes int
	// rego keeps the MCP library in Rego (--mcp-native=false).
	rego bool
}

var cacheModes = []cacheMode{{"cache=off", false, 1, false}, {"cache=on", true, 3, false}}

// mcpModes add, for MCP corpora, a run with the library in Rego: the
// native evaluator and the Rego library must give every answer alike.
var mcpModes = append([]cacheMode{{"cache=off,native=off", false, 1, true}}, cacheModes...)

func (m cacheMode) apply(cfg config.Config) config.Config {
	on := m.on
	cfg.Cache.Enabled = &on
	native := !m.rego
	cfg.MCP.Native = &native
	return cfg
}

// settleCache waits until the cache's background writer has inserted what
// the last pass queued (its insert count stops moving).
func settleCache(t *testing.T, p *pdp) {
	t.Helper()
	last := getStatus(t, p).Cache.Inserts
	for range 50 {
		time.Sleep(20 * time.Millisecond)
		now := getStatus(t, p).Cache.Inserts
		if now == last {
			return
		}
		last = now
	}
}
