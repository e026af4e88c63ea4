package httpsink

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/verdictpdp/verdict/internal/audit"
)

func TestRestart(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		code      int
		failAfter int
	}{
		{name: "collector down", code: http.StatusServiceUnavailable},
		{name: "collector fails after two requests", failAfter: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newCollector(t)
			c.set(func(c *collector) { c.code, c.failAfter = tc.code, tc.failAfter })
			opts := testOptions(t, c, nil)
			opts.MaxBatchBytes = 2048
			s, err := New(opts)
			if err != nil {
				t.Fatal(err)
			}
			recs := records("r", 100, 200)
			writeAll(t, s, recs, 10)
			waitFor(t, "a failed upload", func() bool { return c.requestCount() > tc.failAfter && !s.Status().Healthy })

			ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
			defer cancel()
			err = s.Close(ctx)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Close with records left: %v, want context.DeadlineExceeded", err)
			}
			c.quiesce(t)
			sent := len(c.events())
			if got := s.Status().QueueDepth; got != int64(100-sent) {
				t.Errorf("QueueDepth after Close %d, want %d", got, 100-sent)
			}

			// Restart with the collector still failing: the spool is counted.
			c.set(func(c *collector) { c.code, c.failAfter = http.StatusServiceUnavailable, 0 })
			s2 := open(t, opts)
			waitFor(t, "a failed upload", func() bool { return !s2.Status().Healthy })
			left := int64(100 - sent)
			want := audit.SinkStatus{
				Name: "http", Target: c.url(), QueueDepth: left, SpoolBytes: left * 201, LastError: "collector answered 503",
			}
			if diff := cmp.Diff(want, s2.Status(), ignoreErrorTime); diff != "" {
				t.Errorf("Status after restart (-want +got):\n%s", diff)
			}

			c.set(func(c *collector) { c.code = 0 })
			more := records("s", 10, 200)
			writeAll(t, s2, more, 10)
			flush(t, s2)
			c.wantEvents(t, slices.Concat(recs, more))
			want = audit.SinkStatus{
				Name: "http", Target: c.url(), Healthy: true, Written: uint64(left) + 10, Spooled: 10, LastError: "collector answered 503",
			}
			if diff := cmp.Diff(want, s2.Status(), ignoreErrorTime); diff != "" {
				t.Errorf("Status after delivery (-want +got):\n%s", diff)
			}
		})
	}
}

// TestKilled spools records in a child process, kills it (SIGKILL) while
// it retries a failed upload, and checks that a sink on the same spool
// delivers the rest, each record once.
func TestKilled(t *testing.T) {
	if dir := os.Getenv("HTTPSINK_KILLED_SPOOL"); dir != "" {
		killedChild(dir, os.Getenv("HTTPSINK_KILLED_URL"))
		return
	}
	t.Parallel()
	c := newCollector(t)
	c.set(func(c *collector) { c.failAfter = 3 })
	opts := testOptions(t, c, nil)

	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestKilled$")
	cmd.Env = append(os.Environ(), "HTTPSINK_KILLED_SPOOL="+opts.SpoolDir, "HTTPSINK_KILLED_URL="+c.url())
	cmd.Stderr = t.Output()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	spooled := false
	for sc := bufio.NewScanner(stdout); !spooled && sc.Scan(); {
		spooled = sc.Text() == "spooled"
	}
	if !spooled {
		_ = cmd.Process.Kill()
		t.Fatalf("child: %v", cmd.Wait())
	}
	waitFor(t, "the child to retry", func() bool { return c.requestCount() > 4 })
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait() // killed
	c.quiesce(t)
	sent := len(c.events())
	if sent == 0 {
		t.Fatal("the child delivered nothing before it was killed")
	}

	c.set(func(c *collector) { c.failAfter = 0 })
	s := open(t, opts)
	flush(t, s)
	c.wantEvents(t, records("k", 200, 300))
	want := audit.SinkStatus{Name: "http", Target: c.url(), Healthy: true, Written: uint64(200 - sent)}
	if diff := cmp.Diff(want, s.Status()); diff != "" {
		t.Errorf("Status after restart (-want +got):\n%s", diff)
	}
}

func killedChild(dir, url string) {
	s, err := New(Options{URL: url, SpoolDir: dir, MaxBatchBytes: 4096, MinRetry: 5 * time.Millisecond, MaxRetry: 20 * time.Millisecond})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	recs := records("k", 200, 300)
	for i := 0; i < len(recs); i += 20 {
		if err := s.Write(context.Background(), recs[i:i+20]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	}
	fmt.Println("spooled")
	time.Sleep(time.Minute) // until killed
	os.Exit(3)
}

// TestPartialLine simulates a crash in the middle of a spool write: the
// record cut short is dropped, the others are delivered.
func TestPartialLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		before int // records spooled before the torn one
	}{
		{name: "after whole records", before: 10},
		{name: "alone in its segment", before: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newCollector(t)
			c.set(func(c *collector) { c.code = http.StatusServiceUnavailable })
			var log syncBuffer
			opts := testOptions(t, c, &log)
			s, err := New(opts)
			if err != nil {
				t.Fatal(err)
			}
			recs := records("t", tc.before, 150)
			writeAll(t, s, recs, 5)
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
			defer cancel()
			_ = s.Close(ctx) // leaves the records spooled
			c.quiesce(t)

			segs, err := filepath.Glob(filepath.Join(opts.SpoolDir, segmentPrefix+"*"+segmentSuffix))
			if err != nil || len(segs) == 0 {
				t.Fatalf("no spool segment: %v", err)
			}
			f, err := os.OpenFile(segs[len(segs)-1], os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteString(`{"decision_id":"torn","pad":"xxxx`); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}

			c.set(func(c *collector) { c.code = 0 })
			s2 := open(t, opts)
			more := records("u", 5, 150)
			writeAll(t, s2, more, 5)
			flush(t, s2)
			c.wantEvents(t, slices.Concat(recs, more))
			want := audit.SinkStatus{
				Name: "http", Target: c.url(), Healthy: true, Written: uint64(tc.before) + 5, Spooled: 5, Dropped: 1,
				LastError: "partial record in the spool",
			}
			if diff := cmp.Diff(want, s2.Status(), ignoreErrorTime); diff != "" {
				t.Errorf("Status after restart (-want +got):\n%s", diff)
			}
			if !strings.Contains(log.String(), "partial record") {
				t.Errorf("the torn record was not logged:\n%s", log.String())
			}
		})
	}
}
