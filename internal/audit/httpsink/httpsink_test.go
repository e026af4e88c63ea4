package httpsink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/verdictpdp/verdict/internal/audit"
)

var ignoreErrorTime = cmpopts.IgnoreFields(audit.SinkStatus{}, "LastErrorAt")

func TestDelivery(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		n, size  int
		perWrite int
		maxBatch int
		segBytes int64
	}{
		{name: "one record", n: 1, size: 100, perWrite: 1},
		{name: "many writes", n: 2000, size: 300, perWrite: 64},
		{name: "MaxBatchBytes splits the upload", n: 200, size: 500, perWrite: 50, maxBatch: 4096},
		{name: "a record larger than MaxBatchBytes goes alone", n: 4, size: 10_000, perWrite: 4, maxBatch: 4096},
		{name: "sent segments are deleted", n: 500, size: 200, perWrite: 10, segBytes: 4096},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newCollector(t)
			opts := testOptions(t, c, nil)
			opts.MaxBatchBytes = tc.maxBatch
			opts.segmentBytes = tc.segBytes
			s := open(t, opts)
			recs := records("d", tc.n, tc.size)
			writeAll(t, s, recs, tc.perWrite)
			flush(t, s)

			c.wantEvents(t, recs)
			maxBody := max(cmpOr(tc.maxBatch, DefaultMaxBatchBytes), tc.size+2)
			c.mu.Lock()
			sizes := c.sizes
			c.mu.Unlock()
			for i, n := range sizes {
				if n > maxBody {
					t.Errorf("request %d: body of %d bytes, want at most %d", i, n, maxBody)
				}
			}
			perRequest := max(1, (cmpOr(tc.maxBatch, DefaultMaxBatchBytes)-1)/(tc.size+1))
			if minRequests := (tc.n + perRequest - 1) / perRequest; len(sizes) < minRequests {
				t.Errorf("%d requests, want at least %d", len(sizes), minRequests)
			}
			want := audit.SinkStatus{Name: "http", Target: c.url(), Healthy: true, Written: uint64(tc.n), Spooled: uint64(tc.n)}
			if diff := cmp.Diff(want, s.Status()); diff != "" {
				t.Errorf("Status (-want +got):\n%s", diff)
			}
			checkSpoolDir(t, opts.SpoolDir, s)
		})
	}
}

// checkSpoolDir checks that the spool holds the active segment and the
// cursor only, at the segment's end, with owner-only permissions.
func checkSpoolDir(t *testing.T, dir string, s *Sink) {
	t.Helper()
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o700 {
		t.Errorf("spool directory mode %v, want 0700", perm)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s: mode %v, want 0600", e.Name(), perm)
		}
	}
	s.mu.Lock()
	active := s.segs[len(s.segs)-1]
	s.mu.Unlock()
	active.size = fileSize(t, segmentPath(dir, active.seq))
	wantNames := []string{cursorName, filepath.Base(segmentPath(dir, active.seq))}
	if diff := cmp.Diff(wantNames, names); diff != "" {
		t.Errorf("spool files (-want +got):\n%s", diff)
	}
	b, err := os.ReadFile(filepath.Join(dir, cursorName))
	if err != nil {
		t.Fatal(err)
	}
	var cur cursorFile
	if err := json.Unmarshal(b, &cur); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(cursorFile{Segment: active.seq, Offset: active.size}, cur); diff != "" {
		t.Errorf("cursor (-want +got):\n%s", diff)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func cmpOr(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

func TestOutage(t *testing.T) {
	t.Parallel()
	setCode := func(code int) func(*collector) {
		return func(c *collector) { c.set(func(c *collector) { c.code = code }) }
	}
	tests := []struct {
		name     string
		timeout  time.Duration
		down, up func(*collector)
		wantErr  string
	}{
		{name: "500", down: setCode(500), up: setCode(0), wantErr: "collector answered 500"},
		{name: "429", down: setCode(429), up: setCode(0), wantErr: "collector answered 429"},
		{name: "400", down: setCode(400), up: setCode(0), wantErr: "collector answered 400"},
		{name: "timeout", timeout: time.Second, down: (*collector).holdRequests, up: (*collector).stopHolding, wantErr: "timeout"},
		{name: "connection refused", down: (*collector).stop, up: (*collector).restart, wantErr: "connection refused"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newCollector(t)
			tc.down(c)
			opts := testOptions(t, c, nil)
			if tc.timeout != 0 {
				opts.Client = &http.Client{Timeout: tc.timeout}
			}
			s := open(t, opts)
			recs := records("o", 50, 200)
			writeAll(t, s, recs, 10)
			waitFor(t, "a failed upload", func() bool { return !s.Status().Healthy })

			want := audit.SinkStatus{
				Name: "http", Target: c.url(), QueueDepth: 50, SpoolBytes: 50 * 201, Spooled: 50, LastError: tc.wantErr,
			}
			if diff := cmp.Diff(want, s.Status(), ignoreErrorTime); diff != "" {
				t.Errorf("Status while the collector is down (-want +got):\n%s", diff)
			}

			tc.up(c)
			more := records("p", 5, 200)
			writeAll(t, s, more, 5)
			flush(t, s)
			c.wantEvents(t, slices.Concat(recs, more))
			want = audit.SinkStatus{Name: "http", Target: c.url(), Healthy: true, Written: 55, Spooled: 55, LastError: tc.wantErr}
			if diff := cmp.Diff(want, s.Status(), ignoreErrorTime); diff != "" {
				t.Errorf("Status after the collector is back (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRetryNow checks that Flush and Close retry at once an upload that
// waits out a long backoff, so that a shutdown does not miss a collector
// that came back.
func TestRetryNow(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		call func(*Sink, context.Context) error
	}{
		{name: "Flush", call: (*Sink).Flush},
		{name: "Close", call: (*Sink).Close},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newCollector(t)
			c.set(func(c *collector) { c.code = http.StatusServiceUnavailable })
			opts := testOptions(t, c, nil)
			opts.MinRetry, opts.MaxRetry = time.Hour, time.Hour
			s := open(t, opts)
			recs := records("n", 20, 100)
			writeAll(t, s, recs, 10)
			waitFor(t, "a failed upload", func() bool { return !s.Status().Healthy })

			c.set(func(c *collector) { c.code = 0 })
			ctx, cancel := context.WithTimeout(t.Context(), patience)
			defer cancel()
			if err := tc.call(s, ctx); err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			c.wantEvents(t, recs)
		})
	}
}

// TestSpoolBound fills the spool while the collector holds the upload
// (without failing it, so that LastError can only come from Write).
func TestSpoolBound(t *testing.T) {
	t.Parallel()
	c := newCollector(t)
	c.holdRequests()
	var log syncBuffer
	opts := testOptions(t, c, &log)
	opts.SpoolMaxBytes = 1000 // ten records of 99 bytes and a newline
	s := open(t, opts)
	recs := records("b", 20, 99)

	for i, wantDropped := range []int{0, 0, 2, 4, 4} {
		err := s.Write(t.Context(), recs[4*i:4*i+4])
		if wantDropped == 0 && err != nil {
			t.Fatalf("Write %d: %v", i, err)
		}
		if wantDropped > 0 && !errors.Is(err, ErrSpoolFull) {
			t.Fatalf("Write %d: %v, want ErrSpoolFull", i, err)
		}
		if wantDropped > 0 && !strings.Contains(err.Error(), fmt.Sprintf("%d of 4 records dropped", wantDropped)) {
			t.Errorf("Write %d: %v, want %d of 4 records dropped", i, err, wantDropped)
		}
	}
	want := audit.SinkStatus{
		Name: "http", Target: c.url(), QueueDepth: 10, SpoolBytes: 1000, Spooled: 10, Dropped: 10, LastError: "spool full",
	}
	if diff := cmp.Diff(want, s.Status(), ignoreErrorTime); diff != "" {
		t.Errorf("Status with a full spool (-want +got):\n%s", diff)
	}
	if n := strings.Count(log.String(), "audit records dropped"); n != 1 {
		t.Errorf("logged dropped records %d times in 10 s, want once:\n%s", n, log.String())
	}

	c.release()
	flush(t, s)
	later := records("c", 4, 99)
	writeAll(t, s, later, 4)
	flush(t, s)
	c.wantEvents(t, slices.Concat(recs[:10], later))
	want = audit.SinkStatus{Name: "http", Target: c.url(), Healthy: true, Written: 14, Spooled: 14, Dropped: 10, LastError: "spool full"}
	if diff := cmp.Diff(want, s.Status(), ignoreErrorTime); diff != "" {
		t.Errorf("Status after delivery (-want +got):\n%s", diff)
	}
}

func TestTooLarge(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		large       int // index of a record too large for the collector, or -1
		wantDropped uint64
		wantErr     string
	}{
		{name: "batches are halved until they fit", large: -1},
		{name: "a record too large alone is dropped", large: 37, wantDropped: 1, wantErr: "collector refused a record as too large (413)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newCollector(t)
			const limit = 1000
			c.set(func(c *collector) { c.limit = limit })
			s := open(t, testOptions(t, c, nil))
			recs := records("l", 100, 100)
			want := recs
			if tc.large >= 0 {
				recs[tc.large] = records("huge", 1, 3*limit)[0]
				want = slices.Delete(slices.Clone(recs), tc.large, tc.large+1)
			}
			writeAll(t, s, recs, len(recs))
			flush(t, s)

			c.wantEvents(t, want)
			c.mu.Lock()
			sizes := c.sizes
			c.mu.Unlock()
			for i, n := range sizes {
				if n > limit {
					t.Errorf("request %d accepted with %d bytes, over the limit", i, n)
				}
			}
			wantStatus := audit.SinkStatus{
				Name: "http", Target: c.url(), Healthy: true, Written: uint64(len(want)), Spooled: 100,
				Dropped: tc.wantDropped, LastError: tc.wantErr,
			}
			if diff := cmp.Diff(wantStatus, s.Status(), ignoreErrorTime); diff != "" {
				t.Errorf("Status (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWriteInput(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		json        string
		want        string // what the collector receives, "" for nothing
		wantErr     error
		wantDropped uint64
	}{
		{
			name: "indented JSON is compacted",
			json: "{\n  \"decision_id\": \"in-pretty\",\n  \"result\": [1, 2]\n}",
			want: `{"decision_id":"in-pretty","result":[1,2]}`,
		},
		{name: "an empty record is dropped", json: "", wantErr: ErrInvalidRecord, wantDropped: 1},
		{name: "broken JSON with a newline is dropped", json: "{\n\"decision_id\":", wantErr: ErrInvalidRecord, wantDropped: 1},
		{name: "broken JSON is dropped by the uploader", json: `{"decision_id":`, wantDropped: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newCollector(t)
			s := open(t, testOptions(t, c, nil))
			recs := records("in", 2, 100)
			batch := []audit.Record{recs[0], {ID: "x", JSON: []byte(tc.json)}, recs[1]}
			if err := s.Write(t.Context(), batch); !errors.Is(err, tc.wantErr) {
				t.Fatalf("Write: %v, want %v", err, tc.wantErr)
			}
			flush(t, s)
			want := []audit.Record{recs[0], recs[1]}
			if tc.want != "" {
				want = []audit.Record{recs[0], {JSON: []byte(tc.want)}, recs[1]}
			}
			c.wantEvents(t, want)
			if got := s.Status().Dropped; got != tc.wantDropped {
				t.Errorf("Dropped %d, want %d", got, tc.wantDropped)
			}
		})
	}
}

// TestSecrets checks that credentials in the URL and headers reach the
// collector and nothing else: not Status, not the logs.
func TestSecrets(t *testing.T) {
	t.Parallel()
	c := newCollector(t)
	c.set(func(c *collector) { c.code = http.StatusServiceUnavailable })
	var log syncBuffer
	opts := testOptions(t, c, &log)
	opts.URL = "http://agent:hunter2@" + c.addr + "/logs?token=tok3n"
	opts.Headers = map[string]string{"Authorization": "Bearer s3cret"}
	s := open(t, opts)
	recs := records("sec", 3, 100)
	writeAll(t, s, recs, 3)
	waitFor(t, "a failed upload", func() bool { return !s.Status().Healthy })
	c.stop()
	waitFor(t, "a refused connection", func() bool { return s.Status().LastError == "connection refused" })
	c.restart()
	c.set(func(c *collector) { c.code = 0 })
	flush(t, s)

	st := s.Status()
	if st.Target != c.url() {
		t.Errorf("Target %q, want %q", st.Target, c.url())
	}
	shown := fmt.Sprintf("%+v\n%s", st, log.String())
	for _, secret := range []string{"hunter2", "tok3n", "s3cret"} {
		if strings.Contains(shown, secret) {
			t.Errorf("%q shown in status or logs:\n%s", secret, shown)
		}
	}
	c.mu.Lock()
	auth := c.auth
	c.mu.Unlock()
	if diff := cmp.Diff([]string{"Bearer s3cret"}, auth); diff != "" {
		t.Errorf("Authorization received (-want +got):\n%s", diff)
	}
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{name: "no spool", opts: Options{URL: "http://c.example/logs"}, want: "SpoolDir is required"},
		{name: "not http", opts: Options{URL: "ftp://u:hunter2@c.example/logs", SpoolDir: dir}, want: "URL ftp://c.example/logs: want an http or https URL"},
		{name: "unparsable URL", opts: Options{URL: "http://u:hunter2@c.example/%zz", SpoolDir: dir}, want: "invalid URL"},
		{name: "no host", opts: Options{URL: "http:///logs", SpoolDir: dir}, want: "want an http or https URL with a host"},
		{name: "negative bound", opts: Options{URL: "http://c.example/logs", SpoolDir: dir, SpoolMaxBytes: -1}, want: "negative"},
		{name: "retry bounds", opts: Options{URL: "http://c.example/logs", SpoolDir: dir, MinRetry: time.Minute, MaxRetry: time.Second}, want: "MinRetry 1m0s exceeds MaxRetry 1s"},
		{
			name: "header value", opts: Options{URL: "http://c.example/logs", SpoolDir: dir, Headers: map[string]string{"Authorization": "hunter2\r\nX: y"}},
			want: `header "Authorization": invalid name or value`,
		},
		{name: "header name", opts: Options{URL: "http://c.example/logs", SpoolDir: dir, Headers: map[string]string{"Bad Name": "v"}}, want: `header "Bad Name"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, err := New(tc.opts)
			if err == nil {
				_ = s.Close(t.Context())
				t.Fatalf("New succeeded, want an error with %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "hunter2") {
				t.Errorf("New: %v, want an error with %q and no password", err, tc.want)
			}
		})
	}
}

// TestClose is not parallel: it looks for the uploader among all
// goroutines.
func TestClose(t *testing.T) {
	c := newCollector(t)
	opts := testOptions(t, c, nil)
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	recs := records("cl", 300, 200)
	writeAll(t, s, recs, 30)
	ctx, cancel := context.WithTimeout(t.Context(), patience)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	c.wantEvents(t, recs)
	buf := make([]byte, 1<<20)
	if stacks := string(buf[:runtime.Stack(buf, true)]); strings.Contains(stacks, "httpsink.(*Sink).run") {
		t.Errorf("the uploader outlived Close:\n%s", stacks)
	}

	if err := s.Write(t.Context(), recs[:2]); !errors.Is(err, ErrClosed) {
		t.Errorf("Write after Close: %v, want ErrClosed", err)
	}
	if err := s.Flush(t.Context()); err != nil {
		t.Errorf("Flush after Close with nothing left: %v", err)
	}
	if err := s.Close(t.Context()); err != nil {
		t.Errorf("second Close: %v", err)
	}
	want := audit.SinkStatus{Name: "http", Target: c.url(), Healthy: false, Written: 300, Spooled: 300, Dropped: 2, LastError: "sink closed"}
	if diff := cmp.Diff(want, s.Status(), ignoreErrorTime); diff != "" {
		t.Errorf("Status after Close (-want +got):\n%s", diff)
	}
}
