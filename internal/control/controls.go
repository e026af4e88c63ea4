package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	memdb "github.com/hashicorp/go-memdb"
)

// Authorizer decides whether an approver may act: it evaluates the
// approvals policy on input (action, approver and the approval, grant or
// quarantine). An error means no decision: the action is refused.
type Authorizer interface {
	Authorize(ctx context.Context, input map[string]any) (allow bool, reasons []Reason, err error)
}

// Options configure the controls. Zero members take the defaults.
type Options struct {
	// TTL is how long an approval waits for an approver, and how long an
	// approved call may then be retried (default 15m). Policy may ask for
	// another, bounded by MaxTTL (default 24h).
	TTL, MaxTTL time.Duration
	// Retention keeps final records (denied, consumed, expired, revoked,
	// released) readable for this long (default 24h), then deletes them.
	Retention time.Duration
	// MaxPendingPerSubject bounds one caller's pending approvals (default
	// 16); MaxRecords all records (default 10000).
	MaxPendingPerSubject, MaxRecords int
	// MaxGrantDuration bounds a grant's life (default 24h).
	MaxGrantDuration time.Duration
	// MaxNoteBytes bounds an approver's note (default 1024).
	MaxNoteBytes int
	// URL returns the page where an approval is resolved.
	URL func(id string) string
	// Authorizer asks the approvals policy; nil refuses every approver.
	Authorizer Authorizer
	// Events receives every lifecycle step (the audit log).
	Events func(Event)
	// Requested is told of every new pending approval (the webhook).
	Requested func(*Approval)
	// SweepEvery is how often Run expires and deletes records (default 5s).
	SweepEvery time.Duration
	// StaleAfter bounds how long a store shared with other replicas
	// (a Watcher) may go unwatched (subscription down, resync failing)
	// before the request path stops trusting the local view (default
	// 1s). ResyncEvery is how often Run reloads everything anyway, as a
	// safety net for a lost change message (default 30s).
	StaleAfter, ResyncEvery time.Duration
	// FailOpen lets the request path read the last synced view while it
	// is stale, instead of refusing with CodeStateDown. Changes always
	// go to the store and fail closed.
	FailOpen bool
	Logger   *slog.Logger
	// Now is the clock (tests).
	Now func() time.Time
}

func (o *Options) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.TTL, 15*time.Minute)
	def(&o.MaxTTL, 24*time.Hour)
	def(&o.Retention, 24*time.Hour)
	def(&o.MaxGrantDuration, 24*time.Hour)
	def(&o.SweepEvery, 5*time.Second)
	def(&o.StaleAfter, time.Second)
	def(&o.ResyncEvery, 30*time.Second)
	if o.MaxPendingPerSubject <= 0 {
		o.MaxPendingPerSubject = 16
	}
	if o.MaxRecords <= 0 {
		o.MaxRecords = 10000
	}
	if o.MaxNoteBytes <= 0 {
		o.MaxNoteBytes = 1024
	}
	if o.URL == nil {
		o.URL = func(string) string { return "" }
	}
	if o.Events == nil {
		o.Events = func(Event) {}
	}
	if o.Requested == nil {
		o.Requested = func(*Approval) {}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Controls holds the approvals, grants and quarantines.
type Controls struct {
	opts  Options
	store Store
	db    *memdb.MemDB
	// mu serialises changes, so a change is durable in the store before
	// readers see it, and two identical calls share one approval.
	mu sync.Mutex
	// pendingEvents are events of changes made under mu, told once it is
	// released.
	pendingEvents []Event
	// activeGrants and activeQuarantines let the request path skip the
	// tables when nothing is granted or quarantined.
	activeGrants, activeQuarantines atomic.Int64
	records                         atomic.Int64
	// sync is the state of the watch of a shared store (nil for a store
	// only this process writes: never stale).
	sync *syncState
}

// New returns controls kept in store, loading what it holds.
func New(ctx context.Context, store Store, opts Options) (*Controls, error) {
	opts.defaults()
	// Callbacks get copies: the records go-memdb holds must not change.
	events, requested := opts.Events, opts.Requested
	opts.Events = func(e Event) { events(detach(e)) }
	opts.Requested = func(a *Approval) { requested(a.clone()) }
	db, err := memdb.NewMemDB(schema())
	if err != nil {
		return nil, fmt.Errorf("controls: %w", err)
	}
	c := &Controls{opts: opts, store: store, db: db}
	if w, ok := store.(Watcher); ok {
		c.sync = newSyncState(w)
	}
	docs, err := store.Load(ctx)
	if err == nil {
		err = c.replaceAll(docs)
	}
	if err != nil {
		if c.sync == nil {
			return nil, fmt.Errorf("loading approvals, grants and quarantines: %w", err)
		}
		// A shared store that does not answer yet: start with an empty,
		// stale view (the request path refuses) and let Run load it.
		opts.Logger.Warn("approvals, grants and quarantines not loaded: refusing until the store answers", "err", err)
		c.sync.staleAt.Store(1)
		return c, nil
	}
	if c.sync != nil {
		// Not watched until Run subscribes.
		c.sync.staleAt.Store(nowNano() + int64(opts.StaleAfter))
	}
	return c, nil
}

// replaceAll makes docs the whole view, in one memdb transaction. A
// record that does not decode keeps the old view and is an error.
func (c *Controls) replaceAll(docs map[Kind]map[string][]byte) error {
	txn := c.db.Txn(true)
	for _, table := range []string{tableApprovals, tableGrants, tableQuarantines} {
		if _, err := txn.DeleteAll(table, "id"); err != nil {
			txn.Abort()
			return err
		}
	}
	for kind, table := range docs {
		for id, doc := range table {
			name, row, err := decodeRow(kind, id, doc)
			if err != nil {
				txn.Abort()
				return err
			}
			if err := txn.Insert(name, row); err != nil {
				txn.Abort()
				return fmt.Errorf("loading %s: %w", kind, err)
			}
		}
	}
	txn.Commit()
	c.recount()
	return nil
}

// replace makes the view of kind's records ids what docs holds: a record
// absent from docs is deleted. A record that does not decode keeps the old
// view and is an error. Call with mu held.
func (c *Controls) replace(kind Kind, ids []string, docs map[string][]byte) error {
	table, ok := tableOf[kind]
	if !ok {
		return fmt.Errorf("unknown table %q", kind)
	}
	txn := c.db.Txn(true)
	for _, id := range ids {
		doc, ok := docs[id]
		if !ok {
			if _, err := txn.DeleteAll(table, "id", id); err != nil {
				txn.Abort()
				return err
			}
			continue
		}
		_, row, err := decodeRow(kind, id, doc)
		if err == nil {
			err = txn.Insert(table, row)
		}
		if err != nil {
			txn.Abort()
			return err
		}
	}
	txn.Commit()
	c.recount()
	return nil
}

// Close closes the store.
func (c *Controls) Close() error { return c.store.Close() }

// URL is the page where approval id is resolved.
func (c *Controls) URL(id string) string { return c.opts.URL(id) }

// Run expires and deletes records until ctx ends. Over a shared store it
// also watches the other replicas' changes (see Watcher) and reloads
// everything on every subscription and every ResyncEvery.
func (c *Controls) Run(ctx context.Context) {
	if c.sync != nil {
		var wg sync.WaitGroup
		wg.Go(func() { c.watch(ctx) })
		wg.Go(func() { c.resyncLoop(ctx) })
		defer wg.Wait()
	}
	t := time.NewTicker(c.opts.SweepEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := c.Sweep(ctx); err != nil {
				c.opts.Logger.Warn("expiring approvals failed; retrying", "err", err)
			}
		}
	}
}

// Stats counts what the controls hold.
type Stats struct {
	Records           int64 `json:"records"`
	ActiveGrants      int64 `json:"active_grants"`
	ActiveQuarantines int64 `json:"active_quarantines"`
	Pending           int64 `json:"pending_approvals"`
}

// Stats returns the current counts.
func (c *Controls) Stats() Stats {
	s := Stats{Records: c.records.Load(), ActiveGrants: c.activeGrants.Load(), ActiveQuarantines: c.activeQuarantines.Load()}
	it, err := c.db.Txn(false).Get(tableApprovals, "id")
	if err == nil {
		now := c.opts.Now()
		for obj := it.Next(); obj != nil; obj = it.Next() {
			if a := obj.(*approvalRow).A; a.Status == Pending && now.Before(a.ExpiresAt) {
				s.Pending++
			}
		}
	}
	return s
}

// recount refreshes the counters (under mu, or at start). Approvals are
// counted by the changes (see apply); grants and quarantines, few and
// changed by people, are counted afresh.
func (c *Controls) recount() {
	txn := c.db.Txn(false)
	var records, grants, quars int64
	now := c.opts.Now()
	for _, table := range []string{tableApprovals, tableGrants, tableQuarantines} {
		it, err := txn.Get(table, "id")
		if err != nil {
			continue
		}
		for obj := it.Next(); obj != nil; obj = it.Next() {
			records++
			switch r := obj.(type) {
			case *grantRow:
				if r.G.Status == GrantActive && now.Before(r.G.ExpiresAt) {
					grants++
				}
			case *quarantineRow:
				if r.Q.Active {
					quars++
				}
			}
		}
	}
	c.records.Store(records)
	c.activeGrants.Store(grants)
	c.activeQuarantines.Store(quars)
}

// recountActive refreshes the grant and quarantine counters.
func (c *Controls) recountActive() {
	txn := c.db.Txn(false)
	now := c.opts.Now()
	var grants, quars int64
	if it, err := txn.Get(tableGrants, "id"); err == nil {
		for obj := it.Next(); obj != nil; obj = it.Next() {
			if g := obj.(*grantRow).G; g.Status == GrantActive && now.Before(g.ExpiresAt) {
				grants++
			}
		}
	}
	if it, err := txn.Get(tableQuarantines, "id"); err == nil {
		for obj := it.Next(); obj != nil; obj = it.Next() {
			if obj.(*quarantineRow).Q.Active {
				quars++
			}
		}
	}
	c.activeGrants.Store(grants)
	c.activeQuarantines.Store(quars)
}

// change is one record to write (rec set) or delete (rec nil).
type change struct {
	kind Kind
	id   string
	rec  any
}

var tableOf = map[Kind]string{KindApproval: tableApprovals, KindGrant: tableGrants, KindQuarantine: tableQuarantines}

// apply writes changes to the store in one durable step, then makes them
// visible in one memdb transaction. Call with mu held.
func (c *Controls) apply(ctx context.Context, changes []change) error {
	if len(changes) == 0 {
		return nil
	}
	batch := make([]Change, len(changes))
	read := c.db.Txn(false)
	for i, ch := range changes {
		batch[i] = Change{Kind: ch.kind, ID: ch.id}
		if obj, _ := read.First(tableOf[ch.kind], "id", ch.id); obj != nil {
			batch[i].Prev = rowDoc(obj)
		}
		if ch.rec != nil {
			doc, err := json.Marshal(ch.rec)
			if err != nil {
				return unavailable(err)
			}
			batch[i].Doc = doc
		}
	}
	if err := c.store.Apply(ctx, batch); err != nil {
		if errors.Is(err, ErrConflict) {
			// Another replica changed them: read them again, so that the
			// caller's retry decides on what is stored.
			c.reloadConflicts(ctx, err)
		} else if c.sync != nil {
			// A shared store may have applied a write whose answer was
			// lost (a timeout): this replica skips its own change
			// messages, so it must not trust its view until a full
			// resync (started now) reads what the store holds.
			c.unsynced(err)
		}
		return unavailable(err)
	}
	txn := c.db.Txn(true)
	var added int64
	active := false
	for i, ch := range changes {
		table := tableOf[ch.kind]
		existed, _ := txn.First(table, "id", ch.id)
		if ch.rec == nil {
			if existed != nil {
				if _, err := txn.DeleteAll(table, "id", ch.id); err != nil {
					txn.Abort()
					c.recount() // the store holds the change: count from memory again
					return unavailable(err)
				}
				added--
			}
		} else {
			var row any
			switch r := ch.rec.(type) {
			case *Approval:
				row = newApprovalRow(r, batch[i].Doc)
			case *Grant:
				row = newGrantRow(r, batch[i].Doc)
			case *Quarantine:
				row = newQuarantineRow(r, batch[i].Doc)
			}
			if err := txn.Insert(table, row); err != nil {
				txn.Abort()
				return unavailable(err)
			}
			if existed == nil {
				added++
			}
		}
		active = active || ch.kind != KindApproval
	}
	txn.Commit()
	c.records.Add(added)
	if active {
		c.recountActive()
	}
	return nil
}

// save writes one record (see apply).
func (c *Controls) save(ctx context.Context, kind Kind, id string, rec any) error {
	return c.apply(ctx, []change{{kind: kind, id: id, rec: rec}})
}

func (c *Controls) approval(txn *memdb.Txn, id string) *Approval {
	obj, err := txn.First(tableApprovals, "id", id)
	if err != nil || obj == nil {
		return nil
	}
	return obj.(*approvalRow).A
}

func (c *Controls) grant(txn *memdb.Txn, id string) *Grant {
	obj, err := txn.First(tableGrants, "id", id)
	if err != nil || obj == nil {
		return nil
	}
	return obj.(*grantRow).G
}

func (c *Controls) quarantine(txn *memdb.Txn, id string) *Quarantine {
	obj, err := txn.First(tableQuarantines, "id", id)
	if err != nil || obj == nil {
		return nil
	}
	return obj.(*quarantineRow).Q
}

// effective is a's status at now: a live approval past its expiry has
// expired, whether or not the sweep has recorded it yet.
func effective(a *Approval, now time.Time) Status {
	if a.Status.Live() && !now.Before(a.ExpiresAt) {
		return Expired
	}
	return a.Status
}

// View is an approval as callers see it: with its page's URL and its
// status at the time it is read.
type View struct {
	Approval
	URL string `json:"url,omitempty"`
}

func (c *Controls) view(a *Approval, now time.Time) View {
	v := View{Approval: *a.clone(), URL: c.opts.URL(a.ID)}
	v.Status = effective(a, now)
	return v
}

var errStatus = map[Status]*Error{
	Denied:   refuse(CodeDenied, http.StatusConflict, "the approval was denied"),
	Consumed: refuse(CodeConsumed, http.StatusConflict, "the approval was already used"),
	Expired:  refuse(CodeExpired, http.StatusConflict, "the approval expired"),
}
