package filelog

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/internal/audit"
)

// t0 is the fake clock's start.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fakeClock is a settable clock for Options.Now.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *fakeClock { return &fakeClock{now: t0} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// event is a decision-log event like the audit package builds, padded to
// about size bytes.
func event(i int, at time.Time, size int) []byte {
	ev := map[string]any{
		"decision_id": fmt.Sprintf("dec-%06d", i),
		"path":        "envoy/authz/allow",
		"timestamp":   at.Format(time.RFC3339Nano),
		"input":       map[string]any{"attributes": map[string]any{"request": map[string]any{"http": map[string]any{"method": "GET", "path": "/v1/things"}}}},
		"result":      i%3 != 0,
	}
	b, _ := json.Marshal(ev)
	if pad := size - len(b) - 12; pad > 0 {
		ev["labels"] = map[string]any{"pad": strings.Repeat("x", pad)}
		b, _ = json.Marshal(ev)
	}
	return b
}

// records makes n records numbered from first, made at clock's time and
// expiring at exp.
func records(first, n int, at, exp time.Time) []audit.Record {
	out := make([]audit.Record, n)
	for i := range out {
		out[i] = audit.Record{
			ID:      fmt.Sprintf("dec-%06d", first+i),
			Time:    at,
			Expires: exp,
			JSON:    event(first+i, at, 300),
		}
	}
	return out
}

// testOptions are Options for a log in a fresh directory, on clock, with
// background work slow enough not to interfere.
func testOptions(t testing.TB, clock *fakeClock) Options {
	t.Helper()
	return Options{
		Path:               filepath.Join(t.TempDir(), "audit", "audit.jsonl"),
		CheckpointInterval: time.Hour,
		RetentionCheck:     time.Hour,
		Now:                clock.Now,
	}
}

func open(t testing.TB, o Options) *Sink {
	t.Helper()
	s, err := Open(o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

func closeSink(t testing.TB, s *Sink) {
	t.Helper()
	if err := s.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func write(t testing.TB, s *Sink, batch []audit.Record) {
	t.Helper()
	if err := s.Write(context.Background(), batch); err != nil {
		t.Fatalf("Write: %v", err)
	}
}

// abandon stops s as a crash would: no final checkpoint.
func abandon(t testing.TB, s *Sink) {
	t.Helper()
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f != nil {
		_ = s.f.Close()
		s.f = nil
	}
}

func segments(t testing.TB, path string) []string {
	t.Helper()
	segs, err := Segments(path)
	if err != nil {
		t.Fatal(err)
	}
	return segs
}

func verify(t testing.TB, path string, pub ed25519.PublicKey) Report {
	t.Helper()
	rep, err := Verify(segments(t, path), VerifyOptions{PublicKey: pub})
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return rep
}

// mustVerify verifies the log and fails unless it is OK with wantRecords
// records.
func mustVerify(t testing.TB, path string, pub ed25519.PublicKey, wantRecords int) Report {
	t.Helper()
	rep := verify(t, path, pub)
	if !rep.OK || rep.Records != wantRecords {
		t.Fatalf("Verify: OK %v, %d records (want %d); problems %+v; warnings %q", rep.OK, rep.Records, wantRecords, rep.Problems, rep.Warnings)
	}
	return rep
}

// fileLines reads a file as lines without newlines; a last line without a
// newline is kept.
func fileLines(t testing.TB, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(b), "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	for i, l := range lines {
		lines[i] = strings.TrimSuffix(l, "\n")
	}
	return lines
}

func writeLines(t testing.TB, path string, lines []string) {
	t.Helper()
	var b bytes.Buffer
	for _, l := range lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

func newKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

func public(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }
