package control

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The life of one call by its binding: asked, asked again, approved, used
// once, asked again.
func TestGateByBinding(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, nil)
	call := mkCall(t, "alice", "delete", map[string]any{"path": "/tmp/a"})

	g := mustGate(t, f.c, call, GatePending)
	id := g.Approval.ID
	if !validID(id, approvalPrefix) {
		t.Fatalf("id %q is not an approval id", id)
	}
	if got := f.requested.Load(); got != 1 {
		t.Errorf("Requested called %d times, want 1", got)
	}
	req := f.ev.of(EventRequested)
	if len(req) != 1 || req[0].ID != id || req[0].DecisionID != call.DecisionID || req[0].Binding == nil || *req[0].Binding != call.Binding {
		t.Fatalf("approval.requested events = %+v", req)
	}

	if again := mustGate(t, f.c, call, GatePending); again.Approval.ID != id {
		t.Errorf("identical call got %s, want the pending %s", again.Approval.ID, id)
	}
	if got := f.requested.Load(); got != 1 {
		t.Errorf("identical call called Requested again (%d)", got)
	}

	others := map[string]Call{
		"arguments": mkCall(t, "alice", "delete", map[string]any{"path": "/tmp/b"}),
		"subject":   mkCall(t, "bob", "delete", map[string]any{"path": "/tmp/a"}),
		"target":    mkCall(t, "alice", "remove", map[string]any{"path": "/tmp/a"}),
	}
	for name, other := range others {
		if g := mustGate(t, f.c, other, GatePending); g.Approval.ID == id {
			t.Errorf("a call with another %s shares approval %s", name, id)
		}
	}

	if _, err := f.c.Resolve(ctx, boss, id, true, "fine"); err != nil {
		t.Fatal(err)
	}
	g = mustGate(t, f.c, call, GateApproved)
	if g.Approval.ID != id {
		t.Fatalf("approved call got %s, want %s", g.Approval.ID, id)
	}
	used, e := f.c.Consume(ctx, id, "dec-2")
	if e != nil {
		t.Fatalf("Consume: %v", e)
	}
	if used.Status != Consumed || used.ConsumedBy != "dec-2" {
		t.Errorf("consumed approval = %+v", used)
	}
	if st := f.status(t, id); st != Consumed {
		t.Errorf("status after Consume = %s", st)
	}
	if _, e := f.c.Consume(ctx, id, "dec-3"); e == nil || e.Code != CodeConsumed {
		t.Errorf("second Consume = %v, want %s", e, CodeConsumed)
	}
	next := mustGate(t, f.c, call, GatePending)
	if next.Approval.ID == id {
		t.Error("a used approval let the call through again")
	}
	if got := f.requested.Load(); got != 5 {
		t.Errorf("Requested called %d times, want 5", got)
	}
}

func TestGateNeedsSubject(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	g := mustGate(t, f.c, mkCall(t, "", "delete", nil), GateRefused)
	if g.Reason.Code != CodeNoSubject {
		t.Errorf("code = %s", g.Reason.Code)
	}
}

func TestGateConcurrentSameCall(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	call := mkCall(t, "alice", "delete", map[string]any{"path": "/x"})
	ids := make([]string, 20)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Go(func() {
			if g := f.c.Gate(context.Background(), call); g.Outcome == GatePending {
				ids[i] = g.Approval.ID
			}
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] || id == "" {
			t.Fatalf("20 identical calls got approvals %v, want one", ids)
		}
	}
	if got := f.requested.Load(); got != 1 {
		t.Errorf("Requested called %d times, want 1", got)
	}
	if got := f.c.Stats().Pending; got != 1 {
		t.Errorf("pending = %d, want 1", got)
	}
}

func TestConsumeConcurrentOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	id := f.approved(t, mkCall(t, "alice", "delete", nil))
	var ok, consumed atomic.Int32
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			_, e := f.c.Consume(context.Background(), id, "dec")
			switch {
			case e == nil:
				ok.Add(1)
			case e.Code == CodeConsumed:
				consumed.Add(1)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 1 || consumed.Load() != 19 {
		t.Errorf("%d consumptions succeeded and %d were refused as consumed; want 1 and 19", ok.Load(), consumed.Load())
	}
	if n := len(f.ev.of(EventConsumed)); n != 1 {
		t.Errorf("%d approval.consumed events, want 1", n)
	}
}

func TestConsumeRefuses(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	pending := f.pending(t, mkCall(t, "alice", "a", nil))
	for _, tc := range []struct{ name, id, want string }{
		{"unknown", newID(approvalPrefix), CodeNotFound},
		{"pending", pending, CodeNotPending},
	} {
		if _, e := f.c.Consume(context.Background(), tc.id, "dec"); e == nil || e.Code != tc.want {
			t.Errorf("%s: Consume = %v, want %s", tc.name, e, tc.want)
		}
	}
}

// A call that names its approval is checked against it field by field.
func TestGatePresentedID(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, nil)
	args := func(n int) map[string]any { return map[string]any{"n": n} }

	expiring := mkCall(t, "alice", "delete", args(0))
	expiring.TTL = time.Minute
	expired := f.pending(t, expiring)
	pending := f.pending(t, mkCall(t, "alice", "delete", args(1)))
	approved := f.approved(t, mkCall(t, "alice", "delete", args(2)))
	denied := f.pending(t, mkCall(t, "alice", "delete", args(3)))
	if _, err := f.c.Resolve(ctx, boss, denied, false, "no"); err != nil {
		t.Fatal(err)
	}
	consumed := f.approved(t, mkCall(t, "alice", "delete", args(4)))
	if _, e := f.c.Consume(ctx, consumed, "dec"); e != nil {
		t.Fatal(e)
	}
	f.clk.Advance(2 * time.Minute)

	for _, tc := range []struct {
		name   string
		id     string
		call   Call
		want   GateOutcome
		code   string
		sameID bool
	}{
		{"malformed", "apr_nope", mkCall(t, "alice", "delete", args(2)), GateRefused, CodeInvalidID, false},
		{"upper case", "apr_" + "ABCDEFGHIJKLMNOPQRSTUVWXYZ", mkCall(t, "alice", "delete", args(2)), GateRefused, CodeInvalidID, false},
		{"grant id", newID(grantPrefix), mkCall(t, "alice", "delete", args(2)), GateRefused, CodeInvalidID, false},
		{"unknown", newID(approvalPrefix), mkCall(t, "alice", "delete", args(2)), GateRefused, CodeNotFound, false},
		{"other subject", approved, mkCall(t, "mallory", "delete", args(2)), GateRefused, CodeSubjectMismatch, false},
		{"other tool", approved, mkCall(t, "alice", "wipe", args(2)), GateRefused, CodeTargetMismatch, false},
		{"other server", approved, func() Call { c := mkCall(t, "alice", "delete", args(2)); c.Server = "db"; return c }(), GateRefused, CodeTargetMismatch, false},
		{"other method", approved, func() Call { c := mkCall(t, "alice", "delete", args(2)); c.Method = "prompts/get"; return c }(), GateRefused, CodeTargetMismatch, false},
		{"other arguments", approved, mkCall(t, "alice", "delete", args(99)), GateRefused, CodeArgsChanged, false},
		{"denied", denied, mkCall(t, "alice", "delete", args(3)), GateRefused, CodeDenied, false},
		{"expired", expired, mkCall(t, "alice", "delete", args(0)), GateRefused, CodeExpired, false},
		{"consumed", consumed, mkCall(t, "alice", "delete", args(4)), GateRefused, CodeConsumed, false},
		{"pending", pending, mkCall(t, "alice", "delete", args(1)), GatePending, "", true},
		{"approved", approved, mkCall(t, "alice", "delete", args(2)), GateApproved, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			before := f.requested.Load()
			tc.call.PresentedID = tc.id
			g := mustGate(t, f.c, tc.call, tc.want)
			if g.Reason.Code != tc.code {
				t.Errorf("code = %q, want %q", g.Reason.Code, tc.code)
			}
			if tc.sameID && g.Approval.ID != tc.id {
				t.Errorf("approval = %s, want %s", g.Approval.ID, tc.id)
			}
			if f.requested.Load() != before {
				t.Error("a presented id created an approval")
			}
		})
	}
}

// A denial refuses the identical call until it would have expired; then
// the call may ask again.
func TestGateDeniedStands(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	call := mkCall(t, "alice", "delete", nil)
	id := f.pending(t, call)
	if _, err := f.c.Resolve(context.Background(), boss, id, false, "no"); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		g := mustGate(t, f.c, call, GateRefused)
		if g.Reason.Code != CodeDenied || g.Approval == nil || g.Approval.ID != id {
			t.Fatalf("after denial: %+v", g)
		}
	}
	f.clk.Advance(15 * time.Minute)
	g := mustGate(t, f.c, call, GatePending)
	if g.Approval.ID == id {
		t.Error("the denied approval came back as pending")
	}
	if got := f.requested.Load(); got != 2 {
		t.Errorf("Requested called %d times, want 2", got)
	}
}

// The policy's TTL is honoured up to MaxTTL.
func TestGateTTL(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(o *Options) { o.TTL, o.MaxTTL = 10*time.Minute, time.Hour })
	now := f.clk.Now()
	for _, tc := range []struct {
		name string
		ttl  time.Duration
		want time.Duration
	}{
		{"default", 0, 10 * time.Minute},
		{"policy", 30 * time.Minute, 30 * time.Minute},
		{"capped", 48 * time.Hour, time.Hour},
	} {
		call := mkCall(t, "alice", tc.name, nil)
		call.TTL = tc.ttl
		g := mustGate(t, f.c, call, GatePending)
		if got := g.Approval.ExpiresAt.Sub(now); got != tc.want {
			t.Errorf("%s: expires after %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestGateBounds(t *testing.T) {
	t.Parallel()
	t.Run("per subject", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, func(o *Options) { o.MaxPendingPerSubject = 2 })
		f.pending(t, mkCall(t, "alice", "a", nil))
		f.pending(t, mkCall(t, "alice", "b", nil))
		g := mustGate(t, f.c, mkCall(t, "alice", "c", nil), GateRefused)
		if g.Reason.Code != CodeLimit {
			t.Errorf("code = %s, want %s", g.Reason.Code, CodeLimit)
		}
		f.pending(t, mkCall(t, "bob", "c", nil))
		// An expired approval no longer counts.
		f.clk.Advance(time.Hour)
		f.pending(t, mkCall(t, "alice", "c", nil))
	})
	t.Run("records", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, func(o *Options) { o.MaxRecords = 2 })
		f.pending(t, mkCall(t, "alice", "a", nil))
		f.pending(t, mkCall(t, "bob", "a", nil))
		g := mustGate(t, f.c, mkCall(t, "carol", "a", nil), GateRefused)
		if g.Reason.Code != CodeLimit {
			t.Errorf("code = %s, want %s", g.Reason.Code, CodeLimit)
		}
		if _, err := f.c.Grant(context.Background(), boss, GrantRequest{Subject: "carol", Tools: []string{"files/*"}, Duration: time.Hour}); codeOf(err) != CodeLimit {
			t.Errorf("Grant over MaxRecords = %v, want %s", err, CodeLimit)
		}
		if got := f.c.Stats().Records; got != 2 {
			t.Errorf("records = %d, want 2", got)
		}
		// The kill switch has room of its own, itself bounded.
		if _, err := f.c.Quarantine(context.Background(), boss, QuarantineRequest{Kind: QuarantineServer, Server: "files"}); err != nil {
			t.Errorf("Quarantine over MaxRecords = %v, want it set", err)
		}
		for i := range quarantineReserve {
			if _, err := f.c.Quarantine(context.Background(), boss, QuarantineRequest{Kind: QuarantineSubject, Subject: fmt.Sprint("s", i)}); err != nil {
				if codeOf(err) != CodeLimit || i != quarantineReserve-1 {
					t.Fatalf("quarantine %d: %v", i, err)
				}
			}
		}
		if got := f.c.Stats().Records; got != int64(2+quarantineReserve) {
			t.Errorf("records = %d, want %d", got, 2+quarantineReserve)
		}
	})
}

// A store that cannot write never lets a call through, and nothing
// changes in memory.
func TestStoreFailure(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	broken := errors.New("disk full")

	t.Run("gate", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, nil)
		f.store.Fail(broken)
		g := mustGate(t, f.c, mkCall(t, "alice", "a", nil), GateRefused)
		if g.Reason.Code != CodeUnavailable {
			t.Errorf("code = %s", g.Reason.Code)
		}
		if s := f.c.Stats(); s.Pending != 0 || s.Records != 0 {
			t.Errorf("stats after a failed write = %+v", s)
		}
		if f.requested.Load() != 0 || len(f.ev.of(EventRequested)) != 0 {
			t.Error("a failed write was announced")
		}
	})
	t.Run("resolve", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, nil)
		call := mkCall(t, "alice", "a", nil)
		id := f.pending(t, call)
		f.store.Fail(broken)
		_, err := f.c.Resolve(ctx, boss, id, true, "")
		if e := ErrorOf(err); err == nil || e.Code != CodeUnavailable || !errors.Is(err, broken) {
			t.Errorf("Resolve = %v, want %s wrapping the cause", err, CodeUnavailable)
		}
		if st := f.status(t, id); st != Pending {
			t.Errorf("status = %s, want pending", st)
		}
		mustGate(t, f.c, call, GatePending)
		if len(f.ev.of(EventApproved)) != 0 {
			t.Error("an approval that was not recorded was announced")
		}
	})
	t.Run("consume", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, nil)
		call := mkCall(t, "alice", "a", nil)
		id := f.approved(t, call)
		f.store.Fail(broken)
		if _, e := f.c.Consume(ctx, id, "dec"); e == nil || e.Code != CodeUnavailable {
			t.Errorf("Consume = %v, want %s", e, CodeUnavailable)
		}
		if st := f.status(t, id); st != Approved {
			t.Errorf("status = %s, want approved", st)
		}
		f.store.Fail(nil)
		if _, e := f.c.Consume(ctx, id, "dec"); e != nil {
			t.Errorf("Consume once the store works = %v", e)
		}
	})
}

// Callbacks get copies: changing what they are handed changes nothing the
// controls read.
func TestCallbacksCannotChangeRecords(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(o *Options) {
		o.Requested = func(a *Approval) { a.Status, a.ExpiresAt = Approved, a.ExpiresAt.Add(time.Hour) }
		o.Events = func(e Event) {
			if a, ok := e.Detail.(*Approval); ok {
				a.Status = Approved
			}
			if e.Binding != nil {
				e.Binding.Subject = "mallory"
			}
		}
	})
	call := mkCall(t, "alice", "a", nil)
	id := mustGate(t, f.c, call, GatePending).Approval.ID
	mustGate(t, f.c, call, GatePending)
	if _, e := f.c.Consume(context.Background(), id, "dec"); e == nil {
		t.Fatal("an approval a callback changed was consumed")
	}
	v := mustGate(t, f.c, call, GatePending).Approval
	v.Status, v.Subject = Approved, "mallory"
	v.Arguments[0] = 'X'
	if g := mustGate(t, f.c, call, GatePending); g.Approval.Subject != "alice" || g.Approval.Arguments[0] == 'X' {
		t.Errorf("changing a Gate answer changed the record: %+v", g.Approval)
	}
}
