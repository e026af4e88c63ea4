package app_test

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/verdictpdp/verdict/internal/app"
)

// child is `pdp serve` running as a process of its own.
type child struct {
	cmd              *exec.Cmd
	grpcAddr, httpAd string
	out              *bytes.Buffer
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String()
}

func startChild(t *testing.T, args ...string) *child {
	t.Helper()
	c := &child{grpcAddr: freeAddr(t), httpAd: freeAddr(t), out: &bytes.Buffer{}}
	c.cmd = exec.Command(os.Args[0], append([]string{"serve", "--grpc-addr", c.grpcAddr, "--http-addr", c.httpAd}, args...)...)
	c.cmd.Env = append(os.Environ(), childEnv+"=1")
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.cmd.Process.Kill(); _ = c.cmd.Wait() })
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + c.httpAd + "/readyz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return c
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("pdp child not ready within 20s:\n%s", c.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// hammer sends checks from 4 goroutines until stop is closed and returns
// how many were answered.
func hammer(t *testing.T, addr string, stop <-chan struct{}) *atomic.Int64 {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	client := authv3.NewAuthorizationClient(conn)
	var n atomic.Int64
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				_, err := client.Check(ctx, envoyCheck(g*1_000_000+i, "reader", "GET", "/api/v1/items"))
				cancel()
				if err != nil {
					return // the process was killed
				}
				n.Add(1)
			}
		})
	}
	t.Cleanup(wg.Wait)
	return &n
}

func verifyLog(t *testing.T, path string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	code := app.Main(context.Background(), []string{"audit", "verify", path}, &out, &out)
	return code, out.String()
}

// TestAuditLogSurvivesSIGKILL kills the service while it writes its audit
// log under load. The log still verifies up to its last complete record;
// the next start seals the killed segment and carries on the chain, and
// the whole log verifies after a clean stop.
func TestAuditLogSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the service as a process")
	}
	t.Parallel()
	dir := t.TempDir()
	logPath := filepath.Join(dir, "audit.jsonl")
	bundle := rbacBundle(t)

	c := startChild(t, "--bundle", bundle, "--audit-file", logPath)
	stop := make(chan struct{})
	answered := hammer(t, c.grpcAddr, stop)
	deadline := time.Now().Add(10 * time.Second)
	for answered.Load() < 2000 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = c.cmd.Wait()
	close(stop)

	code, out := verifyLog(t, logPath)
	if code != 0 {
		t.Fatalf("the killed log does not verify (exit %d):\n%s", code, out)
	}
	records := readLog(t, logPath)
	if len(records) == 0 || int64(len(records)) > answered.Load()+64 {
		t.Fatalf("%d records for %d answered decisions", len(records), answered.Load())
	}
	t.Logf("killed after %d answered decisions, %d records on disk: %s", answered.Load(), len(records), strings.TrimSpace(out))

	// Restart on the same log, decide a little, stop cleanly.
	c2 := startChild(t, "--bundle", bundle, "--audit-file", logPath)
	stop2 := make(chan struct{})
	more := hammer(t, c2.grpcAddr, stop2)
	for more.Load() < 200 && time.Now().Before(deadline.Add(10*time.Second)) {
		time.Sleep(10 * time.Millisecond)
	}
	close(stop2)
	time.Sleep(50 * time.Millisecond) // let the clients see stop
	if err := c2.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := c2.cmd.Wait(); err != nil {
		t.Fatalf("pdp did not stop cleanly: %v\n%s", err, c2.out.String())
	}
	code, out = verifyLog(t, logPath)
	if code != 0 {
		t.Fatalf("after a restart and a clean stop the log does not verify (exit %d):\n%s", code, out)
	}
	if after := readLog(t, logPath); int64(len(after)-len(records)) < more.Load() {
		t.Fatalf("%d records written after the restart for %d answered decisions", len(after)-len(records), more.Load())
	}
}
