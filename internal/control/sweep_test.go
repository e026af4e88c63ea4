package control

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestExpiry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, func(o *Options) { o.TTL, o.Retention = 10*time.Minute, time.Hour })
	call := mkCall(t, "alice", "delete", nil)
	pending := f.pending(t, call)
	approved := f.approved(t, mkCall(t, "alice", "wipe", nil))
	g, err := f.c.Grant(ctx, boss, GrantRequest{Subject: "alice", Tools: []string{"files/*"}, Duration: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	timed, err := f.c.Quarantine(ctx, boss, QuarantineRequest{Kind: QuarantineServer, Server: "shell", Duration: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	held, err := f.c.Quarantine(ctx, boss, QuarantineRequest{Kind: QuarantineServer, Server: "db"})
	if err != nil {
		t.Fatal(err)
	}

	f.clk.Advance(10 * time.Minute)
	// Expired at once, before any sweep.
	presented := call
	presented.PresentedID = pending
	if g := mustGate(t, f.c, presented, GateRefused); g.Reason.Code != CodeExpired {
		t.Errorf("presented expired approval: %s", g.Reason.Code)
	}
	if st := f.status(t, pending); st != Expired {
		t.Errorf("status = %s, want expired", st)
	}
	if _, e := f.c.Consume(ctx, approved, "dec"); e == nil || e.Code != CodeExpired {
		t.Errorf("consuming an expired approval = %v", e)
	}
	if f.c.Stats().Pending != 0 || must(f.c.GrantsFor("alice", nil)) != nil || must(f.c.Quarantined("alice", "shell", "", "")) != nil {
		t.Error("an expired record still applies")
	}
	list, err := f.c.Approvals(ctx, boss, Filter{Status: Expired})
	if err != nil || len(list) != 2 {
		t.Errorf("expired approvals = %d, %v; want 2", len(list), err)
	}
	if len(f.ev.of(EventExpired)) != 0 {
		t.Error("expiry recorded before the sweep")
	}
	// The identical call asks again.
	fresh := f.pending(t, call)

	if err := f.c.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	exp := f.ev.of(EventExpired)
	if len(exp) != 2 {
		t.Fatalf("approval.expired events = %+v", exp)
	}
	for _, e := range exp {
		if (e.ID != pending && e.ID != approved) || e.DecisionID == "" || e.Detail.(*Approval).Status != Expired {
			t.Errorf("approval.expired = %+v", e)
		}
	}
	if ev := f.ev.of(EventGrantExpiry); len(ev) != 1 || ev[0].ID != g.ID {
		t.Errorf("grant.expired events = %+v", ev)
	}
	if ev := f.ev.of(EventReleased); len(ev) != 1 || ev[0].ID != timed.ID || ev[0].Note != "expired" {
		t.Errorf("quarantine.released events = %+v", ev)
	}
	if must(f.c.Quarantined("alice", "db", "", "")) == nil {
		t.Error("the sweep released a quarantine without expiry")
	}
	// A second sweep records nothing new.
	if err := f.c.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if len(f.ev.of(EventExpired)) != 2 || len(f.ev.of(EventGrantExpiry)) != 1 {
		t.Error("a second sweep recorded expiries again")
	}

	// Past the retention, final records are deleted, from memory and from
	// the store; live ones stay.
	if _, err := f.c.Release(ctx, boss, held.ID, ""); err != nil {
		t.Fatal(err)
	}
	f.clk.Advance(61 * time.Minute)
	if err := f.c.Sweep(ctx); err != nil { // expires the fresh approval
		t.Fatal(err)
	}
	kept := f.pending(t, mkCall(t, "bob", "delete", nil))
	if err := f.c.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*Controls{f.c, f.reopen(t)} {
		if _, err := c.Approval(ctx, boss, pending); codeOf(err) != CodeNotFound {
			t.Errorf("swept approval = %v", err)
		}
		if v, err := c.Approval(ctx, boss, fresh); err != nil || v.Status != Expired {
			t.Errorf("approval within retention = %+v, %v", v.Status, err)
		}
		if v, err := c.Approval(ctx, boss, kept); err != nil || v.Status != Pending {
			t.Errorf("live approval = %+v, %v", v.Status, err)
		}
		grants, _ := c.Grants(ctx, boss, true)
		quars, _ := c.Quarantines(ctx, boss, true)
		if len(grants) != 0 || len(quars) != 0 {
			t.Errorf("after retention: %d grants, %d quarantines; want none", len(grants), len(quars))
		}
		if got := c.Stats().Records; got != 2 {
			t.Errorf("records = %d, want 2", got)
		}
	}
	docs, _ := f.store.Load(ctx)
	if n := len(docs[KindApproval]) + len(docs[KindGrant]) + len(docs[KindQuarantine]); n != 2 {
		t.Errorf("store holds %d records, want 2", n)
	}
}

// A sweep that cannot write says so and records nothing; the next one
// catches up.
func TestSweepStoreFailure(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, nil)
	id := f.pending(t, mkCall(t, "alice", "a", nil))
	f.clk.Advance(time.Hour)
	broken := errors.New("io")
	f.store.Fail(broken)
	if err := f.c.Sweep(ctx); !errors.Is(err, broken) {
		t.Errorf("Sweep = %v, want the store's error", err)
	}
	if len(f.ev.of(EventExpired)) != 0 {
		t.Error("an expiry that was not recorded was announced")
	}
	f.store.Fail(nil)
	if err := f.c.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if ev := f.ev.of(EventExpired); len(ev) != 1 || ev[0].ID != id {
		t.Errorf("approval.expired events = %+v", ev)
	}
}

func TestRun(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(o *Options) { o.SweepEvery = time.Millisecond })
	f.pending(t, mkCall(t, "alice", "a", nil))
	f.clk.Advance(time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.c.Run(ctx); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for len(f.ev.of(EventExpired)) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	if len(f.ev.of(EventExpired)) != 1 {
		t.Error("Run did not sweep")
	}
}

func TestNewRefusesCorruptStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		kind Kind
		id   string
		doc  string
	}{
		{"garbage", KindApproval, "apr_x", "\x00\x01garbage"},
		{"other id", KindGrant, "grt_a", `{"id":"grt_b"}`},
		{"unknown table", Kind("secrets"), "x", `{}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := NewMemoryStore()
			if err := s.Apply(ctx, []Change{{Kind: tc.kind, ID: tc.id, Doc: []byte(tc.doc)}}); err != nil {
				t.Fatal(err)
			}
			if _, err := New(ctx, s, Options{}); err == nil {
				t.Error("New loaded a corrupt store")
			}
		})
	}
	s := NewMemoryStore()
	s.Fail(errors.New("unreadable"))
	if _, err := New(ctx, s, Options{}); err == nil {
		t.Error("New started over an unreadable store")
	}
}
