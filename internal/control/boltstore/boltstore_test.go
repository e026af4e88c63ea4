package boltstore_test

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/verdictpdp/verdict/internal/control"
	"github.com/verdictpdp/verdict/internal/control/boltstore"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type allow struct{}

func (allow) Authorize(context.Context, map[string]any) (bool, []control.Reason, error) {
	return true, nil, nil
}

var boss = control.Approver{ID: "boss"}

// open returns controls over the database in dir.
func open(t *testing.T, dir string, clk *clock) *control.Controls {
	t.Helper()
	s, err := boltstore.Open(dir)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	c, err := control.New(context.Background(), s, control.Options{Now: clk.Now, Authorizer: allow{}, Retention: time.Hour})
	if err != nil {
		_ = s.Close()
		t.Fatalf("New: %v", err)
	}
	return c
}

func mkCall(t *testing.T, subject, tool string) control.Call {
	t.Helper()
	d, err := control.ArgumentsDigest(map[string]any{"path": "/srv/" + tool})
	if err != nil {
		t.Fatal(err)
	}
	return control.Call{Binding: control.Binding{Subject: subject, Server: "files", Method: "tools/call", Target: tool, ArgumentsSHA256: d}, DecisionID: "dec-" + tool}
}

func gate(t *testing.T, c *control.Controls, call control.Call, want control.GateOutcome) string {
	t.Helper()
	g := c.Gate(context.Background(), call)
	if g.Outcome != want {
		t.Fatalf("Gate(%s) = %d %+v, want %d", call.Target, g.Outcome, g.Reason, want)
	}
	if g.Approval == nil {
		return ""
	}
	return g.Approval.ID
}

// What was approved, granted or quarantined survives a restart, and an
// approval used before it stays used.
func TestRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "state")
	clk := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}

	c := open(t, dir, clk)
	pending := gate(t, c, mkCall(t, "alice", "read"), control.GatePending)
	approved := gate(t, c, mkCall(t, "alice", "delete"), control.GatePending)
	if _, err := c.Resolve(ctx, boss, approved, true, "ok"); err != nil {
		t.Fatal(err)
	}
	g, err := c.Grant(ctx, boss, control.GrantRequest{Group: "devs", Tools: []string{"files/*"}, Duration: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	q, err := c.Quarantine(ctx, boss, control.QuarantineRequest{Kind: control.QuarantineTool, Server: "files", Tool: "wipe"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	c = open(t, dir, clk)
	if id := gate(t, c, mkCall(t, "alice", "read"), control.GatePending); id != pending {
		t.Errorf("pending approval after restart = %s, want %s", id, pending)
	}
	if id := gate(t, c, mkCall(t, "alice", "delete"), control.GateApproved); id != approved {
		t.Errorf("approved approval after restart = %s, want %s", id, approved)
	}
	grants := must(c.GrantsFor("bob", []string{"devs"}))
	if len(grants) != 1 || grants[0].(map[string]any)["id"] != g.ID {
		t.Errorf("grants after restart = %v", grants)
	}
	if got := must(c.Quarantined("bob", "files", "wipe", "")); got == nil || got.ID != q.ID {
		t.Errorf("quarantine after restart = %v", got)
	}
	if _, e := c.Consume(ctx, approved, "dec-used"); e != nil {
		t.Fatalf("Consume after restart: %v", e)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	c = open(t, dir, clk)
	defer func() { _ = c.Close() }()
	if _, e := c.Consume(ctx, approved, "dec-again"); e == nil || e.Code != control.CodeConsumed {
		t.Errorf("Consume after a second restart = %v, want %s", e, control.CodeConsumed)
	}
	if id := gate(t, c, mkCall(t, "alice", "delete"), control.GatePending); id == approved {
		t.Error("the used approval let the call through after a restart")
	}
}

// The sweep deletes from the disk, not only from memory.
func TestSweepDeletesFromDisk(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	clk := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	c := open(t, dir, clk)
	old := gate(t, c, mkCall(t, "alice", "read"), control.GatePending)
	clk.Advance(time.Hour)
	if err := c.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	live := gate(t, c, mkCall(t, "alice", "read"), control.GatePending)
	clk.Advance(time.Hour)
	if err := c.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c = open(t, dir, clk)
	defer func() { _ = c.Close() }()
	if _, err := c.Approval(ctx, boss, old); control.ErrorOf(err).Code != control.CodeNotFound {
		t.Errorf("swept approval after restart: %v", err)
	}
	if v, err := c.Approval(ctx, boss, live); err != nil || v.Status != control.Expired {
		t.Errorf("approval within retention after restart = %v, %v", v.Status, err)
	}
}

// A second process on the same database fails at once with a clear error
// rather than hanging.
func TestOpenLocked(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := boltstore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	start := time.Now()
	s2, err := boltstore.Open(dir)
	if err == nil {
		_ = s2.Close()
		t.Fatal("a second Open of a database in use succeeded")
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("the second Open took %s", took)
	}
	if !strings.Contains(err.Error(), "in use") || !strings.Contains(err.Error(), dir) {
		t.Errorf("error = %q, want it to say the database in %s is in use", err, dir)
	}
}

// A record that does not decode stops the start with an error naming it.
func TestCorruptRecord(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := boltstore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(filepath.Join(dir, boltstore.FileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(control.KindApproval)).Put([]byte("apr_broken"), []byte("\xde\xad{not json"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = boltstore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	_, err = control.New(context.Background(), s, control.Options{})
	if err == nil || !strings.Contains(err.Error(), "apr_broken") {
		t.Errorf("New over a corrupt record = %v, want an error naming it", err)
	}
}

func TestUnknownKind(t *testing.T) {
	t.Parallel()
	s, err := boltstore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	ctx := context.Background()
	if err := s.Apply(ctx, []control.Change{{Kind: "secrets", ID: "x", Doc: []byte("{}")}}); err == nil {
		t.Error("a write into an unknown table succeeded")
	}
	if err := s.Apply(ctx, []control.Change{{Kind: "secrets", ID: "x"}}); err == nil {
		t.Error("Delete from an unknown table succeeded")
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
