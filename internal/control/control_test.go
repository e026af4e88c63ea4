package control

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// clock is a settable Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

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

// authFunc is an Authorizer backed by a func.
type authFunc func(ctx context.Context, in map[string]any) (bool, []Reason, error)

func (f authFunc) Authorize(ctx context.Context, in map[string]any) (bool, []Reason, error) {
	return f(ctx, in)
}

var allowAll = authFunc(func(context.Context, map[string]any) (bool, []Reason, error) { return true, nil, nil })

// recorder keeps the events.
type recorder struct {
	mu  sync.Mutex
	evs []Event
}

func (r *recorder) add(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evs = append(r.evs, e)
}

func (r *recorder) of(t EventType) []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Event
	for _, e := range r.evs {
		if e.Type == t {
			out = append(out, e)
		}
	}
	return out
}

type fixture struct {
	c         *Controls
	clk       *clock
	ev        *recorder
	store     *MemoryStore
	opts      Options
	requested atomic.Int32
}

// newFixture returns controls over a memory store, with a fake clock, an
// allow-all authorizer and recorded events; mod changes the options.
func newFixture(tb testing.TB, mod func(*Options)) *fixture {
	tb.Helper()
	f := &fixture{clk: newClock(), ev: &recorder{}, store: NewMemoryStore()}
	f.opts = Options{Now: f.clk.Now, Authorizer: allowAll, Events: f.ev.add, Requested: func(*Approval) { f.requested.Add(1) }}
	if mod != nil {
		mod(&f.opts)
	}
	c, err := New(context.Background(), f.store, f.opts)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	f.c = c
	return f
}

// reopen returns new controls over the same store, as after a restart.
func (f *fixture) reopen(tb testing.TB) *Controls {
	tb.Helper()
	c, err := New(context.Background(), f.store, f.opts)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return c
}

var (
	boss  = Approver{ID: "boss", Roles: []string{"approver"}, Groups: []string{"ops"}}
	boss2 = Approver{ID: "boss2", Roles: []string{"approver"}}
)

// mkCall is subject's tools/call of server "files", tool, with args.
func mkCall(tb testing.TB, subject, tool string, args any) Call {
	tb.Helper()
	d, err := ArgumentsDigest(args)
	if err != nil {
		tb.Fatalf("ArgumentsDigest: %v", err)
	}
	raw, _ := json.Marshal(args)
	return Call{
		Binding:    Binding{Subject: subject, Server: "files", Method: "tools/call", Target: tool, ArgumentsSHA256: d},
		Revision:   "rev1",
		DecisionID: "dec-" + subject + "-" + tool,
		Reason:     "deleting needs approval",
		Arguments:  raw,
	}
}

// mustGate gates call and wants outcome.
func mustGate(tb testing.TB, c *Controls, call Call, want GateOutcome) Gate {
	tb.Helper()
	g := c.Gate(context.Background(), call)
	if g.Outcome != want {
		tb.Fatalf("Gate outcome = %d (reason %+v), want %d", g.Outcome, g.Reason, want)
	}
	if want != GateRefused && g.Approval == nil {
		tb.Fatal("Gate returned no approval")
	}
	return g
}

// pending creates a pending approval for call and returns its id.
func (f *fixture) pending(tb testing.TB, call Call) string {
	tb.Helper()
	return mustGate(tb, f.c, call, GatePending).Approval.ID
}

// approved creates an approved approval for call and returns its id.
func (f *fixture) approved(tb testing.TB, call Call) string {
	tb.Helper()
	id := f.pending(tb, call)
	if _, err := f.c.Resolve(context.Background(), boss, id, true, "ok"); err != nil {
		tb.Fatalf("Resolve: %v", err)
	}
	return id
}

// codeOf is err's code ("" for nil).
func codeOf(err error) string {
	if err == nil {
		return ""
	}
	return ErrorOf(err).Code
}

// status reads approval id's status as an approver sees it.
func (f *fixture) status(tb testing.TB, id string) Status {
	tb.Helper()
	v, err := f.c.Approval(context.Background(), boss, id)
	if err != nil {
		tb.Fatalf("Approval(%s): %v", id, err)
	}
	return v.Status
}

// must is v, or a panic on err (reads that fail only on a stale view).
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
