package httpsink

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/verdictpdp/verdict/internal/audit"
)

// collector is a decision-log service on a loopback port. It can stop
// listening (the sink then meets "connection refused") and listen again on
// the same address.
type collector struct {
	t    *testing.T
	addr string

	mu  sync.Mutex
	srv *http.Server
	l   net.Listener
	// conns counts open client connections.
	conns int
	// code, when nonzero, answers every request.
	code int
	// hold, when not nil, holds every request until it is closed (the
	// request is then answered) or the client gives up.
	hold chan struct{}
	// failAfter, when nonzero, answers 500 once that many requests were
	// accepted.
	failAfter int
	// limit, when nonzero, answers 413 to a body longer than that.
	limit int

	requests int
	batches  [][]string // the events of each accepted request, as sent
	sizes    []int      // the uncompressed body of each accepted request
	auth     []string   // the Authorization header of each accepted request
	errs     []string   // protocol violations
}

func newCollector(t *testing.T) *collector {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{t: t, addr: l.Addr().String()}
	c.serve(l)
	t.Cleanup(c.stop)
	return c
}

func (c *collector) url() string { return "http://" + c.addr + "/logs" }

func (c *collector) serve(l net.Listener) {
	srv := &http.Server{Handler: c, ReadHeaderTimeout: 10 * time.Second, ConnState: c.connState}
	c.mu.Lock()
	c.srv, c.l = srv, l
	c.mu.Unlock()
	go func() { _ = srv.Serve(l) }()
}

func (c *collector) connState(_ net.Conn, state http.ConnState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch state {
	case http.StateNew:
		c.conns++
	case http.StateClosed, http.StateHijacked:
		c.conns--
	default:
	}
}

// stop closes the listener and every connection.
func (c *collector) stop() {
	c.mu.Lock()
	srv, l := c.srv, c.l
	c.srv, c.l = nil, nil
	c.mu.Unlock()
	if srv != nil {
		// Close the listener here: srv.Close misses it if Serve has not
		// started yet, and connections would then queue until it does.
		_ = l.Close()
		_ = srv.Close()
	}
}

// quiesce waits until every client connection is closed: a request a
// client abandoned (a sink closed or killed mid-request) may still be in the
// server's buffers, and must be answered before the test changes the
// answer.
func (c *collector) quiesce(t *testing.T) {
	t.Helper()
	waitFor(t, "the collector's connections to close", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.conns == 0
	})
}

// restart listens again on the same address.
func (c *collector) restart() {
	c.t.Helper()
	l, err := net.Listen("tcp", c.addr)
	if err != nil {
		c.t.Fatalf("listening again on %s: %v", c.addr, err)
	}
	c.serve(l)
}

// holdRequests holds requests until release.
func (c *collector) holdRequests() {
	c.set(func(c *collector) { c.hold = make(chan struct{}) })
}

// release answers the requests held, and the next ones at once.
func (c *collector) release() {
	c.set(func(c *collector) {
		close(c.hold)
		c.hold = nil
	})
}

// stopHolding answers the next requests at once; those held stay held until
// their client gives up.
func (c *collector) stopHolding() {
	c.set(func(c *collector) { c.hold = nil })
}

func (c *collector) set(f func(c *collector)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f(c)
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	c.requests++
	hold := c.hold
	c.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-r.Context().Done():
			return
		}
	}
	c.mu.Lock()
	code, limit := c.code, c.limit
	if c.failAfter > 0 && len(c.batches) >= c.failAfter {
		code = http.StatusInternalServerError
	}
	c.mu.Unlock()
	if code != 0 {
		w.WriteHeader(code)
		return
	}

	var problems []string
	for h, want := range map[string]string{
		"Content-Type":     "application/json",
		"Content-Encoding": "gzip",
		"User-Agent":       "verdict",
	} {
		if got := r.Header.Get(h); got != want {
			problems = append(problems, fmt.Sprintf("%s: %q, want %q", h, got, want))
		}
	}
	if r.Method != http.MethodPost || r.URL.Path != "/logs" {
		problems = append(problems, fmt.Sprintf("%s %s, want POST /logs", r.Method, r.URL.Path))
	}
	var raw []byte
	zr, err := gzip.NewReader(r.Body)
	if err == nil {
		raw, err = io.ReadAll(zr)
	}
	if err != nil {
		problems = append(problems, "body: "+err.Error())
	}
	if limit > 0 && len(raw) > limit {
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		return
	}
	var events []json.RawMessage
	if err := json.Unmarshal(raw, &events); err != nil {
		problems = append(problems, "body: "+err.Error())
	}
	batch := make([]string, len(events))
	for i, e := range events {
		batch[i] = string(e)
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	if len(problems) > 0 {
		c.errs = append(c.errs, problems...)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	c.batches = append(c.batches, batch)
	c.sizes = append(c.sizes, len(raw))
	c.auth = append(c.auth, r.Header.Get("Authorization"))
}

// events returns the accepted events in the order received.
func (c *collector) events() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var all []string
	for _, b := range c.batches {
		all = append(all, b...)
	}
	return all
}

func (c *collector) requestCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.requests
}

// wantEvents fails the test unless the collector accepted exactly want, in
// order, and saw no protocol violation.
func (c *collector) wantEvents(t *testing.T, want []audit.Record) {
	t.Helper()
	c.mu.Lock()
	errs := c.errs
	c.mu.Unlock()
	for _, e := range errs {
		t.Errorf("collector: %s", e)
	}
	got := c.events()
	if diff := cmp.Diff(decisionIDs(t, want), decisionIDs(t, got)); diff != "" {
		t.Fatalf("decision ids received (-want +got):\n%s", diff)
	}
	for i := range want {
		if got[i] != string(want[i].JSON) {
			t.Fatalf("event %d: got %s, want %s", i, got[i], want[i].JSON)
		}
	}
}

// decisionIDs returns the events' decision ids; events are []audit.Record
// or []string.
func decisionIDs[E audit.Record | string](t *testing.T, events []E) []string {
	t.Helper()
	ids := make([]string, len(events))
	for i, e := range events {
		var raw []byte
		switch e := any(e).(type) {
		case audit.Record:
			raw = e.JSON
		case string:
			raw = []byte(e)
		}
		var ev struct {
			DecisionID string `json:"decision_id"`
		}
		if err := json.Unmarshal(raw, &ev); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		ids[i] = ev.DecisionID
	}
	return ids
}

// records returns n events of size bytes each, with decision ids
// prefix-00000, prefix-00001...
func records(prefix string, n, size int) []audit.Record {
	recs := make([]audit.Record, n)
	now := time.Now()
	for i := range recs {
		id := fmt.Sprintf("%s-%05d", prefix, i)
		head := fmt.Sprintf(`{"decision_id":%q,"pad":"`, id)
		js := head + strings.Repeat("x", max(size-len(head)-2, 0)) + `"}`
		recs[i] = audit.Record{ID: id, Time: now, Expires: now.Add(time.Hour), JSON: []byte(js)}
	}
	return recs
}

// writeAll writes recs in batches of n.
func writeAll(t *testing.T, s *Sink, recs []audit.Record, n int) {
	t.Helper()
	for len(recs) > 0 {
		k := min(n, len(recs))
		if err := s.Write(t.Context(), recs[:k]); err != nil {
			t.Fatalf("Write: %v", err)
		}
		recs = recs[k:]
	}
}

// testOptions returns options for a sink shipping to c, spooling to a new
// directory, retrying fast, and logging to log.
func testOptions(t *testing.T, c *collector, log io.Writer) Options {
	t.Helper()
	if log == nil {
		log = t.Output()
	}
	return Options{
		URL:      c.url(),
		SpoolDir: filepath.Join(t.TempDir(), "spool"),
		MinRetry: 5 * time.Millisecond,
		MaxRetry: 50 * time.Millisecond,
		Logger:   slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

// open starts a sink, closed when the test ends.
func open(t *testing.T, opts Options) *Sink {
	t.Helper()
	s, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_ = s.Close(ctx) // the test may have left records spooled on purpose
	})
	return s
}

func flush(t *testing.T, s *Sink) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), patience)
	defer cancel()
	if err := s.Flush(ctx); err != nil {
		buf := make([]byte, 1<<20)
		t.Fatalf("Flush: %v (status %+v)\n%s", err, s.Status(), buf[:runtime.Stack(buf, true)])
	}
}

// patience is how long a test waits for what should take milliseconds: long
// enough for a loaded machine running the race detector.
const patience = 30 * time.Second

// waitFor polls cond until it holds, failing the test after patience.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// syncBuffer is a log destination safe for the uploader and the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
