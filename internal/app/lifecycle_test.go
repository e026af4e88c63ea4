package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/verdictpdp/verdict/internal/admin"
	"github.com/verdictpdp/verdict/internal/app"
	"github.com/verdictpdp/verdict/internal/bundle/bundletest"
	"github.com/verdictpdp/verdict/internal/config"
	"github.com/verdictpdp/verdict/internal/status"
	mcpv1 "github.com/verdictpdp/verdict/proto/verdict/mcp/v1"
)

// revisionPolicy answers with the policy's own version and the data's
// revision in headers, so a response that mixed two bundles would show it.
func revisionSpec(rev string) bundletest.Spec {
	return bundletest.Spec{
		Revision: rev,
		Modules: map[string]string{"authz.rego": fmt.Sprintf(`package envoy.authz

allow := {"allowed": true, "headers": {"x-policy-rev": %q, "x-data-rev": data.rev}}
`, rev)},
		Data: map[string]any{"rev": rev},
	}
}

func checkReq() *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/"},
	}}}
}

// revOf returns the policy and data revisions a response reports.
func revOf(resp *authv3.CheckResponse) (policy, data string) {
	for _, h := range resp.GetOkResponse().GetHeaders() {
		switch h.GetHeader().GetKey() {
		case "x-policy-rev":
			policy = h.GetHeader().GetValue()
		case "x-data-rev":
			data = h.GetHeader().GetValue()
		}
	}
	return policy, data
}

// userSource returns the first configured (not built-in) bundle source.
func userSource(st admin.Status) status.Source {
	for _, s := range st.Sources {
		if !strings.HasPrefix(s.Location, "built-in:") {
			return s
		}
	}
	return status.Source{}
}

func getStatus(t *testing.T, p *pdp) admin.Status {
	t.Helper()
	resp, err := http.Get("http://" + p.httpAddr + "/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var st admin.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// waitStatus polls /v1/status until cond holds.
func waitStatus(t *testing.T, p *pdp, what string, cond func(admin.Status) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := getStatus(t, p)
		if cond(st) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within 10s: %s; status %+v", what, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitRevision polls Check until the policy answers with rev.
func waitRevision(t *testing.T, client authv3.AuthorizationClient, rev string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		resp, err := client.Check(context.Background(), checkReq())
		if err == nil {
			last, _ = revOf(resp)
			if last == rev {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("revision %q not served within 15s (last %q)", rev, last)
}

func TestHealthNotServingUntilFirstActivation(t *testing.T) {
	t.Parallel()
	archive := bundletest.Archive(t, revisionSpec("r1"))
	var available atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if !available.Load() {
			http.Error(w, "not yet", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write(archive)
	}))
	defer srv.Close()

	cfg := config.Default()
	cfg.Bundles = []config.Bundle{{Name: "remote", Source: srv.URL + "/bundle.tar.gz",
		Polling: config.Polling{MinDelay: config.Duration(50 * time.Millisecond), MaxDelay: config.Duration(100 * time.Millisecond)}}}
	p := startPDP(t, cfg)
	conn := p.dial(t)

	for _, svc := range []string{"", "envoy.service.auth.v3.Authorization"} {
		waitHealth(t, conn, svc, healthpb.HealthCheckResponse_NOT_SERVING, 5*time.Second)
	}
	resp, err := http.Get("http://" + p.httpAddr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("/readyz before activation = %d, want 503", resp.StatusCode)
	}
	// Before any bundle, a Check is a reasoned deny, never an allow.
	got, err := authv3.NewAuthorizationClient(conn).Check(context.Background(), checkReq())
	if err != nil {
		t.Fatal(err)
	}
	if got.GetStatus().GetCode() == 0 || got.GetDeniedResponse() == nil {
		t.Fatalf("Check before activation = %v, want a deny", got)
	}
	waitStatus(t, p, "the failing source is reported", func(st admin.Status) bool {
		return userSource(st).LastError != "" && st.Active == nil
	})

	available.Store(true)
	for _, svc := range []string{"", "envoy.service.auth.v3.Authorization"} {
		waitHealth(t, conn, svc, healthpb.HealthCheckResponse_SERVING, 10*time.Second)
	}
	resp, err = http.Get("http://" + p.httpAddr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/readyz after activation = %d, want 200", resp.StatusCode)
	}
	if st := getStatus(t, p); st.Active == nil || st.Active.Revision != "r1" {
		t.Fatalf("status active = %+v, want revision r1", st.Active)
	}

	// A health watcher (as a load balancer keeps) sees NOT_SERVING when the
	// service starts shutting down, before its listener goes away.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watch, err := healthpb.NewHealthClient(conn).Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if first, err := watch.Recv(); err != nil || first.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("watch before shutdown: %v %v", first, err)
	}
	stopped := make(chan struct{})
	go func() { p.stop(); close(stopped) }()
	next, err := watch.Recv()
	if err != nil || next.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("watch during shutdown: %v %v, want NOT_SERVING", next, err)
	}
	cancel() // end the stream so the graceful stop can finish
	<-stopped
}

func TestBundleSwapUnderLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "bundle.tar.gz")
	bundletest.ReplaceFile(t, path, bundletest.Archive(t, revisionSpec("r0")))

	cfg := config.Default()
	cfg.Bundles = []config.Bundle{{Name: "main", Source: path}}
	p := startPDP(t, cfg)
	client := authv3.NewAuthorizationClient(p.dial(t))
	waitRevision(t, client, "r0")

	const workers = 8
	ctx, cancel := context.WithCancel(context.Background())
	var (
		wg       sync.WaitGroup
		total    atomic.Int64
		mu       sync.Mutex
		seen     = map[string]int{}
		failures []string
	)
	for range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				resp, err := client.Check(context.Background(), checkReq())
				total.Add(1)
				mu.Lock()
				switch pol, dat := revOf(resp); {
				case err != nil:
					failures = append(failures, "rpc error: "+err.Error())
				case resp.GetStatus().GetCode() != 0:
					failures = append(failures, fmt.Sprintf("not allowed: %v", resp))
				case pol != dat || pol == "":
					failures = append(failures, fmt.Sprintf("mixed revisions: policy %q data %q", pol, dat))
				default:
					seen[pol]++
				}
				mu.Unlock()
			}
		})
	}
	const swaps = 5
	for i := 1; i <= swaps; i++ {
		time.Sleep(100 * time.Millisecond)
		bundletest.ReplaceFile(t, path, bundletest.Archive(t, revisionSpec(fmt.Sprintf("r%d", i))))
		waitRevision(t, client, fmt.Sprintf("r%d", i))
	}
	time.Sleep(100 * time.Millisecond)
	cancel()
	wg.Wait()

	if len(failures) > 0 {
		t.Fatalf("%d of %d requests failed; first: %s", len(failures), total.Load(), failures[0])
	}
	if len(seen) < 2 {
		t.Fatalf("load saw only revisions %v; the swap did not happen under load", seen)
	}
	t.Logf("%d requests, answers per revision: %v", total.Load(), seen)
}

func TestRejectedBundleKeepsPreviousRevision(t *testing.T) {
	t.Parallel()
	priv, pub := bundletest.RSAKeyPair(t)
	otherPriv, _ := bundletest.RSAKeyPair(t)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key.pem")
	if err := os.WriteFile(keyFile, []byte(pub), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "bundle.tar.gz")
	bundletest.ReplaceFile(t, path, bundletest.SignedArchive(t, revisionSpec("good"), priv, "default"))

	cfg := config.Default()
	cfg.Bundles = []config.Bundle{{Name: "main", Source: path}}
	cfg.Verification = &config.Verification{PublicKeyFile: keyFile}
	p := startPDP(t, cfg)
	client := authv3.NewAuthorizationClient(p.dial(t))
	waitRevision(t, client, "good")

	// One after the other: each bad bundle replaces the file the service watches.
	bad := []struct {
		name string
		raw  []byte
	}{
		{"corrupt archive", []byte("\x1f\x8b\x08\x00 this is not a gzip stream")},
		{"unsigned", bundletest.Archive(t, revisionSpec("unsigned"))},
		{"wrong key", bundletest.SignedArchive(t, revisionSpec("wrong-key"), otherPriv, "default")},
		{"policy does not compile", bundletest.SignedArchive(t, bundletest.Spec{
			Revision: "broken", Modules: map[string]string{"x.rego": "package envoy.authz\n\nallow := x"},
		}, priv, "default")},
	}
	for _, bc := range bad {
		name, raw := bc.name, bc.raw
		func() {
			before := userSource(getStatus(t, p)).Failures
			bundletest.ReplaceFile(t, path, raw)
			deadline := time.Now().Add(10 * time.Second)
			for userSource(getStatus(t, p)).Failures == before {
				if time.Now().After(deadline) {
					t.Fatalf("%s: the bad bundle was not reported in /v1/status", name)
				}
				time.Sleep(20 * time.Millisecond)
			}
			resp, err := client.Check(context.Background(), checkReq())
			if err != nil {
				t.Fatal(err)
			}
			if pol, dat := revOf(resp); pol != "good" || dat != "good" {
				t.Fatalf("%s: after a rejected bundle the service answers with %q/%q, want the previous revision", name, pol, dat)
			}
			if st := getStatus(t, p); st.Active.Revision != "good" || userSource(st).LastError == "" {
				t.Fatalf("%s: status = %+v", name, st)
			}
		}()
	}

	// A bundle signed with the right key afterwards is accepted again.
	bundletest.ReplaceFile(t, path, bundletest.SignedArchive(t, revisionSpec("good2"), priv, "default"))
	waitRevision(t, client, "good2")
}

func TestRestartServesPersistedBundleWhileServerIsDown(t *testing.T) {
	t.Parallel()
	archive := bundletest.Archive(t, revisionSpec("persisted-1"))
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", `"v1"`)
		_, _ = w.Write(archive)
	}))
	persist := t.TempDir()
	cfg := config.Default()
	cfg.PersistDir = persist
	cfg.Bundles = []config.Bundle{{Name: "remote", Source: srv.URL + "/b.tar.gz",
		Polling: config.Polling{MinDelay: config.Duration(30 * time.Millisecond), MaxDelay: config.Duration(60 * time.Millisecond)}}}

	first := startPDP(t, cfg)
	waitRevision(t, authv3.NewAuthorizationClient(first.dial(t)), "persisted-1")
	// Let a few conditional polls happen: they must not re-download.
	time.Sleep(200 * time.Millisecond)
	first.stop()
	srv.Close()
	if hits.Load() < 2 {
		t.Fatalf("bundle server saw %d requests, want repeated polls", hits.Load())
	}

	second := startPDP(t, cfg)
	conn := second.dial(t)
	waitHealth(t, conn, "", healthpb.HealthCheckResponse_SERVING, 10*time.Second)
	waitRevision(t, authv3.NewAuthorizationClient(conn), "persisted-1")
	waitStatus(t, second, "the unreachable bundle server is reported", func(st admin.Status) bool {
		return userSource(st).LastError != "" && st.Active != nil && st.Active.Revision == "persisted-1"
	})
}

func TestStartFailsOnBrokenLocalBundle(t *testing.T) {
	t.Parallel()
	dir := bundletest.WriteDir(t, t.TempDir(), bundletest.Spec{
		Revision: "broken",
		Modules:  map[string]string{"bad.rego": "package envoy.authz\n\nallow := x\n"},
	})
	cfg := config.Default()
	cfg.GRPC.Addr, cfg.HTTP.Addr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Bundles = []config.Bundle{{Name: "main", Source: dir}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := app.Serve(ctx, cfg, slog.New(slog.DiscardHandler), func(net.Addr, net.Addr) {
		t.Error("the service started listening with a policy that does not compile")
	})
	if err == nil || !strings.Contains(err.Error(), "bad.rego") || !strings.Contains(err.Error(), "main") {
		t.Fatalf("Serve = %v, want an error naming the bundle and the file", err)
	}
}

func TestDirectoryBundleReloadsOnEdit(t *testing.T) {
	t.Parallel()
	dir := bundletest.WriteDir(t, t.TempDir(), revisionSpec("d1"))
	cfg := config.Default()
	cfg.Bundles = []config.Bundle{{Name: "main", Source: dir}}
	p := startPDP(t, cfg)
	client := authv3.NewAuthorizationClient(p.dial(t))
	waitRevision(t, client, "d1")
	bundletest.WriteDir(t, dir, revisionSpec("d2"))
	waitRevision(t, client, "d2")
}

// TestDirectoryBundleManifestAndDataFixes edits a data bundle directory as
// an operator would: a new revision in .manifest alone is served, a broken
// data.json is reported while the last good revision keeps serving, and
// putting data.json right clears the error without a new activation.
func TestDirectoryBundleManifestAndDataFixes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, f := range []string{".manifest", "data.json"} {
		raw, err := os.ReadFile(filepath.Join("../../bundles/mcp-example", f))
		if err != nil {
			t.Fatal(err)
		}
		bundletest.ReplaceFile(t, filepath.Join(dir, f), raw)
	}
	cfg := config.Default()
	cfg.Bundles = []config.Bundle{{Name: "mcp", Source: dir}}
	p := startPDP(t, cfg)
	client := mcpv1.NewMCPPolicyClient(p.dial(t))
	check := func(t *testing.T) *mcpv1.CheckResponse {
		t.Helper()
		resp, err := client.Check(context.Background(), exampleMCPCheck(t))
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if rev := check(t).GetRevision(); !strings.Contains(rev, "mcp=mcp-example-1") {
		t.Fatalf("revision %q, want mcp=mcp-example-1 in it", rev)
	}

	bundletest.ReplaceFile(t, filepath.Join(dir, ".manifest"), []byte(`{"revision": "mcp-example-2", "roots": ["mcp"], "rego_version": 1}`))
	waitStatus(t, p, "the manifest-only change is served", func(st admin.Status) bool {
		return st.Active != nil && strings.Contains(st.Active.Revision, "mcp=mcp-example-2")
	})
	if rev := check(t).GetRevision(); !strings.Contains(rev, "mcp=mcp-example-2") {
		t.Fatalf("native answer revision %q after the manifest change", rev)
	}
	generation := getStatus(t, p).Active.Generation

	good, err := os.ReadFile(filepath.Join(dir, "data.json"))
	if err != nil {
		t.Fatal(err)
	}
	bundletest.ReplaceFile(t, filepath.Join(dir, "data.json"), []byte(`{"mcp": {"servers": `))
	waitStatus(t, p, "the broken data.json is reported", func(st admin.Status) bool {
		return sourceNamed(st, "mcp").LastError != ""
	})
	if resp := check(t); !strings.Contains(resp.GetRevision(), "mcp=mcp-example-2") || resp.GetReasons()[0].GetCode() != "access.condition" {
		t.Fatalf("with a broken data.json the service answers %v, want the last good revision's decision", resp)
	}

	bundletest.ReplaceFile(t, filepath.Join(dir, "data.json"), good)
	waitStatus(t, p, "the fixed data.json clears the error", func(st admin.Status) bool {
		return sourceNamed(st, "mcp").LastError == ""
	})
	if st := getStatus(t, p); st.Active.Generation != generation || sourceNamed(st, "mcp").Revision != "mcp-example-2" {
		t.Fatalf("after the fix: generation %d (was %d), source %+v; want the same activation", st.Active.Generation, generation, sourceNamed(st, "mcp"))
	}
}
