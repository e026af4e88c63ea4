package redisstore_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/verdictpdp/verdict/internal/control"
	"github.com/verdictpdp/verdict/internal/control/redisstore"
	"github.com/verdictpdp/verdict/internal/redistest"
)

const (
	aprA = "apr_aaaaaaaaaaaaaaaaaaaaaaaaaa"
	aprB = "apr_bbbbbbbbbbbbbbbbbbbbbbbbbb"
	grtA = "grt_aaaaaaaaaaaaaaaaaaaaaaaaaa"
	quaA = "qua_aaaaaaaaaaaaaaaaaaaaaaaaaa"
)

func newStore(t *testing.T, s *redistest.Server, opts redisstore.Options) *redisstore.Store {
	t.Helper()
	client := redis.NewClient(&redis.Options{Addr: s.Addr(), ContextTimeoutEnabled: true, MaxRetries: -1})
	if opts.Timeout == 0 {
		opts.Timeout = time.Second // loaded test machines; TestDeadline sets its own
	}
	st := redisstore.New(client, opts)
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func rawClient(t *testing.T, s *redistest.Server) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr()})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestApplyLoadGet(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	st := newStore(t, srv, redisstore.Options{})
	ctx := context.Background()
	if err := st.Apply(ctx, []control.Change{
		{Kind: control.KindApproval, ID: aprA, Doc: []byte(`{"a":1}`)},
		{Kind: control.KindGrant, ID: grtA, Doc: []byte(`{"g":1}`)},
	}); err != nil {
		t.Fatal(err)
	}
	got, err := st.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[control.Kind]map[string][]byte{
		control.KindApproval:   {aprA: []byte(`{"a":1}`)},
		control.KindGrant:      {grtA: []byte(`{"g":1}`)},
		control.KindQuarantine: {},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("Load (-want +got):\n%s", d)
	}
	one, err := st.Get(ctx, control.KindApproval, []string{aprA, aprB})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(map[string][]byte{aprA: []byte(`{"a":1}`)}, one); d != "" {
		t.Errorf("Get (-want +got):\n%s", d)
	}
	// Keys live under the prefix.
	keys, err := rawClient(t, srv).Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, "verdict:control:") {
			t.Errorf("key %q is outside verdict:control:", k)
		}
	}
}

// TestConditional: a change applies only while the record is the one it
// was decided on; otherwise nothing of the batch is written and the error
// names the records.
func TestConditional(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	st := newStore(t, srv, redisstore.Options{})
	ctx := context.Background()
	v1, v2 := []byte(`{"v":1}`), []byte(`{"v":2}`)
	if err := st.Apply(ctx, []control.Change{{Kind: control.KindApproval, ID: aprA, Doc: v1}}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		changes  []control.Change
		conflict string // "" applies
	}{
		{"create over an existing record", []control.Change{{Kind: control.KindApproval, ID: aprA, Doc: v2}}, "approvals " + aprA},
		{"update from another version", []control.Change{{Kind: control.KindApproval, ID: aprA, Doc: v2, Prev: v2}}, "approvals " + aprA},
		{"delete of a missing record", []control.Change{{Kind: control.KindGrant, ID: grtA, Prev: v1}}, "grants " + grtA},
		{"all or none", []control.Change{
			{Kind: control.KindQuarantine, ID: quaA, Doc: v1},
			{Kind: control.KindApproval, ID: aprA, Doc: v2, Prev: []byte(`{"v":0}`)},
		}, "approvals " + aprA},
		{"update from the stored version", []control.Change{{Kind: control.KindApproval, ID: aprA, Doc: v2, Prev: v1}}, ""},
		{"delete of the stored version", []control.Change{{Kind: control.KindApproval, ID: aprA, Prev: v2}}, ""},
	} {
		before, err := st.Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		err = st.Apply(ctx, tc.changes)
		after, lerr := st.Load(ctx)
		if lerr != nil {
			t.Fatal(lerr)
		}
		if tc.conflict == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if !errors.Is(err, control.ErrConflict) || !strings.Contains(err.Error(), tc.conflict) {
			t.Errorf("%s: error %v, want a conflict naming %s", tc.name, err, tc.conflict)
		}
		if d := cmp.Diff(before, after); d != "" {
			t.Errorf("%s: a refused batch wrote (-before +after):\n%s", tc.name, d)
		}
	}
}

// TestGarbage: what Verdict did not write is an error, never an empty
// (allowing) answer.
func TestGarbage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		setup func(c *redis.Client) error
		load  bool // Load itself fails (else New does, decoding)
	}{
		{"malformed id", func(c *redis.Client) error {
			return c.HSet(ctx, "verdict:control:quarantines", "qua_../../x", `{}`).Err()
		}, true},
		{"not a hash", func(c *redis.Client) error { return c.Set(ctx, "verdict:control:grants", "x", 0).Err() }, true},
		{"empty document", func(c *redis.Client) error {
			return c.HSet(ctx, "verdict:control:approvals", aprA, "").Err()
		}, true},
		{"document that does not decode", func(c *redis.Client) error {
			return c.HSet(ctx, "verdict:control:quarantines", quaA, "\x00garbage").Err()
		}, false},
		{"document of another id", func(c *redis.Client) error {
			return c.HSet(ctx, "verdict:control:approvals", aprA, `{"id":"`+aprB+`"}`).Err()
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := redistest.Start(t)
			if err := tc.setup(rawClient(t, srv)); err != nil {
				t.Fatal(err)
			}
			st := newStore(t, srv, redisstore.Options{})
			_, err := st.Load(ctx)
			if tc.load != (err != nil) {
				t.Fatalf("Load: %v", err)
			}
			// Over a shared store New starts anyway, refusing every read.
			c, err := control.New(ctx, st, control.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if !c.Stale() {
				t.Error("controls over a corrupt store are not stale")
			}
			if _, err := c.Quarantined("alice", "files", "read", ""); !errors.Is(err, control.ErrStale) {
				t.Errorf("Quarantined over a corrupt store: %v, want ErrStale", err)
			}
		})
	}
}

// TestDeadline: a call to a Redis that does not answer ends within the
// timeout, as an error.
func TestDeadline(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	st := newStore(t, srv, redisstore.Options{Timeout: 50 * time.Millisecond})
	// CLIENT PAUSE holds every other client's commands.
	if err := rawClient(t, srv).Do(context.Background(), "CLIENT", "PAUSE", "1000").Err(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err := st.Apply(context.Background(), []control.Change{{Kind: control.KindApproval, ID: aprA, Doc: []byte(`{}`)}})
	if took := time.Since(start); err == nil || took > 500*time.Millisecond {
		t.Errorf("Apply against a sleeping redis: %v after %v, want an error within the timeout", err, took)
	}
}

// TestWatch: a change published by another store reaches the watcher; the
// watcher's own do not.
func TestWatch(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	a, b := newStore(t, srv, redisstore.Options{}), newStore(t, srv, redisstore.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type seen struct {
		kind control.Kind
		ids  []string
	}
	var mu sync.Mutex
	var got []seen
	subscribed := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		done <- a.Watch(ctx, control.WatchHandler{
			Subscribed: func() { subscribed <- struct{}{} },
			Changed: func(k control.Kind, ids []string) {
				mu.Lock()
				defer mu.Unlock()
				got = append(got, seen{k, ids})
			},
			All: func() { t.Error("All for a small change") },
		})
	}()
	<-subscribed
	if err := a.Apply(ctx, []control.Change{{Kind: control.KindGrant, ID: grtA, Doc: []byte(`{}`)}}); err != nil {
		t.Fatal(err)
	}
	if err := b.Apply(ctx, []control.Change{
		{Kind: control.KindApproval, ID: aprA, Doc: []byte(`{}`)},
		{Kind: control.KindApproval, ID: aprB, Doc: []byte(`{}`)},
		{Kind: control.KindQuarantine, ID: quaA, Doc: []byte(`{}`)},
	}); err != nil {
		t.Fatal(err)
	}
	want := []seen{{control.KindApproval, []string{aprA, aprB}}, {control.KindQuarantine, []string{quaA}}}
	deadline := time.Now().Add(2 * time.Second)
	for {
		mu.Lock()
		d := cmp.Diff(want, got, cmp.AllowUnexported(seen{}))
		mu.Unlock()
		if d == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("changes seen (-want +got):\n%s", d)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Redis gone: Watch returns.
	srv.Kill()
	select {
	case err := <-done:
		if err == nil {
			t.Error("Watch returned no error when redis died")
		}
	case <-time.After(2 * time.Second):
		t.Error("Watch did not notice redis dying")
	}
}
