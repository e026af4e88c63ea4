package control

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// CodeStateDown refuses a call the controls cannot vouch for: the store
// shared with other replicas has not been watched for longer than
// Options.StaleAfter. It is enforce.ReasonStateDown, the code of every
// stateful check that cannot reach its state.
const CodeStateDown = "state.unavailable"

// ErrStale is a read of a view that may be stale (see Options.StaleAfter).
var ErrStale = errors.New("the approvals, grants and quarantines may be stale")

// maxAttempts bounds how often a change that found its records changed
// by another replica is decided again.
const maxAttempts = 3

// syncState is the watch of a shared store.
type syncState struct {
	w Watcher
	// staleAt is when the view turns stale (unix ns), staleNever while
	// it is watched and synced.
	staleAt atomic.Int64
	// mu orders the watch's transitions: a resync marks the view fresh
	// only while the subscription it followed still holds.
	mu         sync.Mutex
	subscribed bool
	gen        uint64
	// resync asks the resync loop to reload everything now.
	resync chan struct{}
	// loggedDown is set while the log says the view is stale.
	loggedDown atomic.Bool
}

func newSyncState(w Watcher) *syncState {
	return &syncState{w: w, resync: make(chan struct{}, 1)}
}

func (s *syncState) poke() {
	select {
	case s.resync <- struct{}{}:
	default:
	}
}

// stale reports whether the request path must not trust the view: one
// atomic load while it is watched (and always over a local store).
func (c *Controls) stale() bool {
	if c.sync == nil {
		return false
	}
	t := c.sync.staleAt.Load()
	return t != staleNever && !c.opts.FailOpen && nowNano() >= t
}

// Stale reports whether the request path refuses because the view of a
// shared store may be stale (never over a local store, nor with
// Options.FailOpen).
func (c *Controls) Stale() bool { return c != nil && c.stale() }

// down records that the view is no longer watched: it turns stale after
// StaleAfter unless a resync succeeds first.
func (c *Controls) down(err error) {
	s := c.sync
	s.mu.Lock()
	s.subscribed = false
	s.gen++
	s.mu.Unlock()
	c.unsynced(err)
}

// unsynced starts the staleness clock (once) and logs it (once).
func (c *Controls) unsynced(err error) {
	s := c.sync
	s.staleAt.CompareAndSwap(staleNever, nowNano()+int64(c.opts.StaleAfter))
	if !s.loggedDown.Swap(true) {
		c.opts.Logger.Warn("approvals, grants and quarantines not synced with the shared store: refusing after the bound unless it answers",
			"bound", c.opts.StaleAfter, "fail_open", c.opts.FailOpen, "err", err)
	}
	s.poke()
}

// watch keeps a subscription to the shared store until ctx ends.
func (c *Controls) watch(ctx context.Context) {
	s := c.sync
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		var gen uint64
		err := s.w.Watch(ctx, WatchHandler{
			Subscribed: func() {
				s.mu.Lock()
				s.subscribed = true
				s.gen++
				gen = s.gen
				s.mu.Unlock()
				backoff = 50 * time.Millisecond
				// Changes may have been missed while unsubscribed.
				c.resyncNow(ctx, gen)
			},
			Changed: func(kind Kind, ids []string) {
				if err := c.reload(ctx, kind, ids); err != nil {
					c.unsynced(err)
				}
			},
			All: func() { c.resyncNow(ctx, gen) },
		})
		if ctx.Err() != nil {
			return
		}
		c.down(err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// resyncLoop reloads everything every ResyncEvery, and soon after a
// failure until one succeeds.
func (c *Controls) resyncLoop(ctx context.Context) {
	s := c.sync
	for {
		every := c.opts.ResyncEvery
		if s.staleAt.Load() != staleNever {
			every = min(every, 100*time.Millisecond)
		}
		t := time.NewTimer(every)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-s.resync:
			t.Stop()
		}
		s.mu.Lock()
		gen := s.gen
		s.mu.Unlock()
		c.resyncNow(ctx, gen)
	}
}

// resyncNow reloads everything; the view is fresh again when that
// succeeds while subscription gen still holds.
func (c *Controls) resyncNow(ctx context.Context, gen uint64) {
	s := c.sync
	c.mu.Lock()
	// Under mu: no change of this process lands between the load and the
	// view it replaces.
	held := c.records.Load()
	docs, err := c.store.Load(ctx)
	if err == nil {
		err = c.replaceAll(docs)
	}
	if err == nil && held > 0 && c.records.Load() == 0 {
		// The store is the truth, even empty: say so, since an empty Redis
		// after a restart without persistence forgot every record.
		c.opts.Logger.Warn("the shared store holds no approvals, grants or quarantines any more; was Redis restarted without persistence?", "records_before", held)
	}
	c.mu.Unlock()
	if err != nil {
		c.unsynced(err)
		return
	}
	s.mu.Lock()
	fresh := s.subscribed && s.gen == gen
	if fresh {
		s.staleAt.Store(staleNever)
	}
	s.mu.Unlock()
	if fresh && s.loggedDown.Swap(false) {
		c.opts.Logger.Info("approvals, grants and quarantines synced with the shared store again")
	}
}

// reload reads kind's records ids from the store into the view.
func (c *Controls) reload(ctx context.Context, kind Kind, ids []string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reloadLocked(ctx, kind, ids)
}

func (c *Controls) reloadLocked(ctx context.Context, kind Kind, ids []string) error {
	g, ok := c.store.(Getter)
	if !ok {
		return errors.New("the store cannot read single records")
	}
	docs, err := g.Get(ctx, kind, ids)
	if err != nil {
		return err
	}
	return c.replace(kind, ids, docs)
}

// reloadConflicts reads again the records a conflict names. Call with mu
// held.
func (c *Controls) reloadConflicts(ctx context.Context, err error) {
	for _, ce := range conflicts(err) {
		if rerr := c.reloadLocked(ctx, ce.Kind, ce.IDs); rerr != nil {
			if c.sync != nil {
				c.unsynced(rerr)
			}
			c.opts.Logger.Warn("reloading changed records failed", "kind", ce.Kind, "err", rerr)
		}
	}
}

// retry runs op again, from the start, while it fails on records another
// replica changed meanwhile (ErrConflict): at most maxAttempts times, then
// its error (approval.unavailable) stands.
func retry[T any](op func() (T, error)) (T, error) {
	for i := 1; ; i++ {
		v, err := op()
		if i == maxAttempts || !errors.Is(err, ErrConflict) {
			return v, err
		}
	}
}

// staleError refuses a call while the view is stale.
func staleError() *Error {
	return &Error{Code: CodeStateDown, Message: "the approvals state cannot be read right now", Status: http.StatusServiceUnavailable, Err: ErrStale}
}
