package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/internal/control"
	"github.com/verdictpdp/verdict/internal/control/redisstore"
	"github.com/verdictpdp/verdict/internal/redistest"
)

type allowAll struct{}

func (allowAll) Authorize(context.Context, map[string]any) (bool, []control.Reason, error) {
	return true, nil, nil
}

var boss = control.Approver{ID: "boss"}

// events records lifecycle events, of every replica.
type events struct {
	mu  sync.Mutex
	evs []control.Event
}

func (e *events) add(ev control.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.evs = append(e.evs, ev)
}

func (e *events) count(t control.EventType) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, ev := range e.evs {
		if ev.Type == t {
			n++
		}
	}
	return n
}

// clock is a settable Options.Now, shared by the replicas.
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

type cluster struct {
	srv *redistest.Server
	c   []*control.Controls
	ev  *events
	clk *clock
}

// newCluster runs n controls (replicas) on one redis-server, each with
// its own store and client, all auditing into one recorder.
func newCluster(t *testing.T, n int, mod func(i int, o *control.Options)) *cluster {
	t.Helper()
	cl := &cluster{srv: redistest.Start(t), ev: &events{}, clk: &clock{t: time.Now().UTC()}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	for i := range n {
		o := control.Options{Authorizer: allowAll{}, Events: cl.ev.add, Now: cl.clk.Now, StaleAfter: 300 * time.Millisecond,
			SweepEvery: time.Hour, MaxPendingPerSubject: 1000}
		if mod != nil {
			mod(i, &o)
		}
		c, err := control.New(ctx, newStore(t, cl.srv, redisstore.Options{PingEvery: 50 * time.Millisecond}), o)
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { c.Run(ctx) })
		cl.c = append(cl.c, c)
	}
	return cl
}

// eventually polls cond for up to limit and returns how long it took to
// hold, failing the test when it never does.
func eventually(t *testing.T, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("%s: not within %v", what, limit)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

func call(subject, tool string) control.Call {
	d, _ := control.ArgumentsDigest(map[string]any{"path": "/" + tool})
	return control.Call{Binding: control.Binding{Subject: subject, Server: "files", Method: "tools/call", Target: tool, ArgumentsSHA256: d},
		DecisionID: "dec-" + tool}
}

// approved creates call's approval on a, approves it there and waits until
// every replica sees it approved.
func (cl *cluster) approved(t *testing.T, cc control.Call) string {
	t.Helper()
	ctx := context.Background()
	g := cl.c[0].Gate(ctx, cc)
	if g.Outcome != control.GatePending {
		t.Fatalf("Gate: %+v", g)
	}
	if _, err := cl.c[0].Resolve(ctx, boss, g.Approval.ID, true, ""); err != nil {
		t.Fatal(err)
	}
	// Presenting the id: a replica that has not heard of the approval yet
	// must not create another for the call.
	presented := cc
	presented.PresentedID = g.Approval.ID
	for i, c := range cl.c {
		eventually(t, 2*time.Second, fmt.Sprintf("replica %d sees the approval", i), func() bool {
			return c.Gate(ctx, presented).Outcome == control.GateApproved
		})
	}
	return g.Approval.ID
}

// TestApprovalAcrossReplicas: approved on A, consumed on B, refused on C
// (whether C has heard of the consumption yet or finds out by writing).
func TestApprovalAcrossReplicas(t *testing.T) {
	t.Parallel()
	cl := newCluster(t, 3, nil)
	ctx := context.Background()
	cc := call("alice", "delete")
	id := cl.approved(t, cc)
	if _, e := cl.c[1].Consume(ctx, id, "dec-b"); e != nil {
		t.Fatalf("consume on B: %v", e)
	}
	if _, e := cl.c[2].Consume(ctx, id, "dec-c"); e == nil || e.Code != control.CodeConsumed {
		t.Fatalf("consume on C: %v, want %s", e, control.CodeConsumed)
	}
	presented := cc
	presented.PresentedID = id
	if g := cl.c[2].Gate(ctx, presented); g.Outcome != control.GateRefused || g.Reason.Code != control.CodeConsumed {
		t.Errorf("Gate on C presenting the used approval: %+v", g)
	}
	if n := cl.ev.count(control.EventConsumed); n != 1 {
		t.Errorf("%d consumption events, want 1", n)
	}
}

// TestConsumeRace: 3 replicas × 10 goroutines consume one approval:
// exactly one succeeds, every other is told it was used.
func TestConsumeRace(t *testing.T) {
	t.Parallel()
	cl := newCluster(t, 3, nil)
	id := cl.approved(t, call("alice", "delete"))
	var mu sync.Mutex
	codes := map[string]int{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for r, c := range cl.c {
		for g := range 10 {
			wg.Go(func() {
				<-start
				_, e := c.Consume(context.Background(), id, fmt.Sprintf("dec-%d-%d", r, g))
				code := "ok"
				if e != nil {
					code = e.Code
				}
				mu.Lock()
				codes[code]++
				mu.Unlock()
			})
		}
	}
	close(start)
	wg.Wait()
	if codes["ok"] != 1 || codes[control.CodeConsumed] != 29 {
		t.Errorf("outcomes %v, want one ok and 29 %s", codes, control.CodeConsumed)
	}
	if n := cl.ev.count(control.EventConsumed); n != 1 {
		t.Errorf("%d consumption events, want 1", n)
	}
}

// TestChangesPropagate: what one replica sets or ends, the others apply
// within a second.
func TestChangesPropagate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("quarantine set on A denies on B and C", func(t *testing.T) {
		t.Parallel()
		cl := newCluster(t, 3, nil)
		if _, err := cl.c[0].Quarantine(ctx, boss, control.QuarantineRequest{Kind: control.QuarantineServer, Server: "files"}); err != nil {
			t.Fatal(err)
		}
		for i, c := range cl.c[1:] {
			took := eventually(t, time.Second, fmt.Sprintf("replica %d quarantines", i+1), func() bool {
				q, err := c.Quarantined("alice", "files", "read", "")
				return err == nil && q != nil
			})
			t.Logf("replica %d quarantined after %v", i+1, took)
		}
	})
	t.Run("quarantine released on B lifts on A", func(t *testing.T) {
		t.Parallel()
		cl := newCluster(t, 3, nil)
		q, err := cl.c[0].Quarantine(ctx, boss, control.QuarantineRequest{Kind: control.QuarantineSubject, Subject: "mallory"})
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, 2*time.Second, "B sees the quarantine", func() bool { q, _ := cl.c[1].Quarantined("mallory", "", "", ""); return q != nil })
		if _, err := cl.c[1].Release(ctx, boss, q.ID, ""); err != nil {
			t.Fatal(err)
		}
		eventually(t, 2*time.Second, "A lifts the quarantine", func() bool { q, _ := cl.c[0].Quarantined("mallory", "", "", ""); return q == nil })
	})
	t.Run("grant revoked on A disappears on B", func(t *testing.T) {
		t.Parallel()
		cl := newCluster(t, 3, nil)
		g, err := cl.c[0].Grant(ctx, boss, control.GrantRequest{Subject: "alice", Tools: []string{"files/*"}, Duration: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, 2*time.Second, "B sees the grant", func() bool { gs, _ := cl.c[1].GrantsFor("alice", nil); return len(gs) == 1 })
		if _, err := cl.c[0].Revoke(ctx, boss, g.ID, ""); err != nil {
			t.Fatal(err)
		}
		eventually(t, 2*time.Second, "B drops the grant", func() bool { gs, err := cl.c[1].GrantsFor("alice", nil); return err == nil && len(gs) == 0 })
	})
	t.Run("approval denied on B after A approved it is not usable on C", func(t *testing.T) {
		t.Parallel()
		cl := newCluster(t, 3, nil)
		id := cl.approved(t, call("bob", "wipe"))
		if _, err := cl.c[1].Resolve(ctx, boss, id, false, "no"); err != nil {
			t.Fatal(err)
		}
		if _, e := cl.c[2].Consume(ctx, id, "dec-c"); e == nil || e.Code != control.CodeDenied {
			t.Errorf("consume on C after a denial: %v, want %s", e, control.CodeDenied)
		}
	})
	t.Run("two replicas approving: one wins", func(t *testing.T) {
		t.Parallel()
		cl := newCluster(t, 3, nil)
		g := cl.c[0].Gate(ctx, call("carol", "drop"))
		presented := call("carol", "drop")
		presented.PresentedID = g.Approval.ID
		eventually(t, 2*time.Second, "B sees the approval", func() bool { return cl.c[1].Gate(ctx, presented).Outcome == control.GatePending })
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i := range 2 {
			wg.Go(func() { _, errs[i] = cl.c[i].Resolve(ctx, boss, g.Approval.ID, true, "") })
		}
		wg.Wait()
		// (Denying after an approval is allowed: it takes the approval
		// back. Two approvals of one are not.)
		if (errs[0] == nil) == (errs[1] == nil) {
			t.Errorf("approvals: %v, %v; want exactly one to succeed", errs[0], errs[1])
		}
		for _, err := range errs {
			if err != nil && control.ErrorOf(err).Code != control.CodeNotPending {
				t.Errorf("the losing approval: %v, want %s", err, control.CodeNotPending)
			}
		}
		if n := cl.ev.count(control.EventApproved); n != 1 {
			t.Errorf("%d approval events, want 1", n)
		}
	})
}

// TestSweepOnce: two replicas sweeping the same expiry audit it once.
func TestSweepOnce(t *testing.T) {
	t.Parallel()
	cl := newCluster(t, 2, func(_ int, o *control.Options) { o.TTL = time.Minute })
	ctx := context.Background()
	for i := range 5 {
		cl.c[0].Gate(ctx, call("dave", fmt.Sprint("t", i)))
	}
	eventually(t, 2*time.Second, "B sees the approvals", func() bool { return cl.c[1].Stats().Pending == 5 })
	cl.clk.Advance(2 * time.Minute)
	var wg sync.WaitGroup
	for _, c := range cl.c {
		wg.Go(func() {
			if err := c.Sweep(ctx); err != nil {
				t.Errorf("Sweep: %v", err)
			}
		})
	}
	wg.Wait()
	if n := cl.ev.count(control.EventExpired); n != 5 {
		t.Errorf("%d expiry events for 5 approvals, want 5", n)
	}
}

// TestRedisDown: with Redis gone, reads refuse once the bound has passed
// (or keep the last view with FailOpen) and changes are refused; when
// Redis is back, the replicas recover by themselves and take its content
// as the truth.
func TestRedisDown(t *testing.T) {
	t.Parallel()
	const bound = 300 * time.Millisecond
	cl := newCluster(t, 2, func(i int, o *control.Options) { o.FailOpen = i == 1; o.StaleAfter = bound })
	ctx := context.Background()
	if _, err := cl.c[0].Quarantine(ctx, boss, control.QuarantineRequest{Kind: control.QuarantineTool, Server: "files", Tool: "rm"}); err != nil {
		t.Fatal(err)
	}
	id := cl.approved(t, call("erin", "delete"))
	eventually(t, time.Second, "B quarantines", func() bool { q, _ := cl.c[1].Quarantined("erin", "files", "rm", ""); return q != nil })

	killed := time.Now()
	cl.srv.Kill()
	closed := cl.c[0]
	took := eventually(t, bound+2*time.Second, "reads fail closed", func() bool {
		_, err := closed.Quarantined("erin", "files", "read", "")
		return errors.Is(err, control.ErrStale)
	})
	if took < bound-50*time.Millisecond {
		t.Errorf("reads failed closed %v after redis died, before the bound %v", took, bound)
	}
	t.Logf("reads failed closed %v after redis died (bound %v)", time.Since(killed), bound)
	if _, err := closed.GrantsFor("erin", nil); !errors.Is(err, control.ErrStale) {
		t.Errorf("GrantsFor: %v, want ErrStale", err)
	}
	if g := closed.Gate(ctx, call("erin", "delete")); g.Outcome != control.GateRefused || g.Reason.Code != control.CodeStateDown {
		t.Errorf("Gate: %+v, want refused %s", g, control.CodeStateDown)
	}
	if _, e := closed.Consume(ctx, id, "dec"); e == nil || e.Code != control.CodeStateDown {
		t.Errorf("Consume: %v, want %s", e, control.CodeStateDown)
	}
	// FailOpen reads the last view; its changes still fail closed.
	open := cl.c[1]
	if q, err := open.Quarantined("erin", "files", "rm", ""); err != nil || q == nil {
		t.Errorf("fail-open Quarantined: %v, %v; want the last view's quarantine", q, err)
	}
	if g := open.Gate(ctx, call("erin", "delete")); g.Outcome != control.GateApproved {
		t.Errorf("fail-open Gate: %+v, want the last view's approval", g)
	}
	if _, e := open.Consume(ctx, id, "dec"); e == nil || e.Code != control.CodeUnavailable {
		t.Errorf("fail-open Consume with redis down: %v, want %s", e, control.CodeUnavailable)
	}
	if _, err := open.Quarantine(ctx, boss, control.QuarantineRequest{Kind: control.QuarantineServer, Server: "x"}); control.ErrorOf(err).Code != control.CodeUnavailable {
		t.Errorf("fail-open Quarantine with redis down: %v, want %s", err, control.CodeUnavailable)
	}

	// Back, empty (no persistence): the replicas recover on their own and
	// hold what Redis holds.
	cl.srv.Restart()
	back := time.Now()
	for i, c := range cl.c {
		eventually(t, 5*time.Second, fmt.Sprintf("replica %d recovers", i), func() bool {
			q, err := c.Quarantined("erin", "files", "rm", "")
			return err == nil && q == nil
		})
	}
	t.Logf("recovered %v after redis restarted", time.Since(back))
	if _, err := cl.c[0].Quarantine(ctx, boss, control.QuarantineRequest{Kind: control.QuarantineServer, Server: "files"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "B quarantines after the restart", func() bool { q, _ := cl.c[1].Quarantined("erin", "files", "x", ""); return q != nil })
}

// TestStartWithRedisDown: the controls start without Redis, refuse until
// it answers, then load it.
func TestStartWithRedisDown(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	srv.Kill()
	c, err := control.New(context.Background(), newStore(t, srv, redisstore.Options{}), control.Options{Authorizer: allowAll{}})
	if err != nil {
		t.Fatalf("New with redis down: %v", err)
	}
	if _, err := c.Quarantined("zed", "", "", ""); !errors.Is(err, control.ErrStale) {
		t.Fatalf("Quarantined before any load: %v, want ErrStale", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	wg.Go(func() { c.Run(ctx) })
	time.Sleep(200 * time.Millisecond)
	srv.Restart()
	other, err := control.New(context.Background(), newStore(t, srv, redisstore.Options{}), control.Options{Authorizer: allowAll{}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Quarantine(context.Background(), boss, control.QuarantineRequest{Kind: control.QuarantineSubject, Subject: "zed"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the late load", func() bool { q, err := c.Quarantined("zed", "", "", ""); return err == nil && q != nil })
}

// busy blocks redis-server for d with a script that spins (no DEBUG
// needed), after a moment for it to start.
func busy(t *testing.T, srv *redistest.Server, d time.Duration) chan struct{} {
	t.Helper()
	done := make(chan struct{})
	c := rawClient(t, srv)
	go func() {
		defer close(done)
		_ = c.Eval(context.Background(), `local t = redis.call('TIME'); local s = t[1] * 1000000 + t[2]
while true do local n = redis.call('TIME'); if n[1] * 1000000 + n[2] - s > tonumber(ARGV[1]) then break end end
return 1`, nil, d.Microseconds()).Err()
	}()
	time.Sleep(20 * time.Millisecond)
	return done
}

// TestLostAnswer sets a quarantine and revokes a grant while Redis is too
// busy to answer in time but still runs the writes afterwards: the replica
// that made them (and skips its own change messages) must not go on
// allowing under its old view. It resyncs, or refuses while it cannot.
func TestLostAnswer(t *testing.T) {
	srv := redistest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	mk := func(timeout time.Duration) *control.Controls {
		st := newStore(t, srv, redisstore.Options{Timeout: timeout, PingEvery: time.Second})
		c, err := control.New(ctx, st, control.Options{Authorizer: allowAll{}, StaleAfter: 300 * time.Millisecond, SweepEvery: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { c.Run(ctx) })
		return c
	}
	a, b := mk(100*time.Millisecond), mk(time.Second)
	eventually(t, 2*time.Second, "both synced", func() bool { return !a.Stale() && !b.Stale() })
	// Warm the script cache, as any running replica has.
	if _, err := a.Quarantine(ctx, boss, control.QuarantineRequest{Kind: control.QuarantineServer, Server: "other", Note: "warm"}); err != nil {
		t.Fatal(err)
	}
	g, err := a.Grant(ctx, boss, control.GrantRequest{Subject: "alice", Tools: []string{"files/read"}, Duration: time.Hour, Note: "jit"})
	if err != nil {
		t.Fatal(err)
	}

	done := busy(t, srv, 300*time.Millisecond)
	_, qerr := a.Quarantine(ctx, boss, control.QuarantineRequest{Kind: control.QuarantineServer, Server: "files", Note: "incident"})
	<-done
	if qerr == nil {
		t.Skip("the write did not time out")
	}
	// The revoke's answer is lost too; whether it landed, the store says.
	done = busy(t, srv, 300*time.Millisecond)
	_, _ = a.Revoke(ctx, boss, g.ID, "over")
	<-done

	eventually(t, 2*time.Second, "b sees the quarantine", func() bool {
		q, _ := b.Quarantined("alice", "files", "read", "")
		return q != nil
	})
	raw := rawClient(t, srv)
	// Once a's resync (every 100ms while unsynced) has had its chance, a
	// may refuse (stale) but never allow the quarantined call or offer the
	// revoked grant.
	time.Sleep(250 * time.Millisecond)
	deadline := time.Now().Add(1500 * time.Millisecond)
	for time.Now().Before(deadline) {
		if q, err := a.Quarantined("alice", "files", "read", ""); q == nil && err == nil {
			t.Fatalf("replica a allows a call to a server quarantined in the shared store (stale=%v)", a.Stale())
		}
		if gs, err := a.GrantsFor("alice", nil); err == nil && len(gs) > 0 {
			stored, serr := raw.HGet(ctx, "verdict:control:grants", g.ID).Result()
			if serr != nil || !strings.Contains(stored, `"status":"active"`) {
				t.Fatalf("replica a still offers the grant the shared store holds as %s (%v); stale=%v", stored, serr, a.Stale())
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
}
