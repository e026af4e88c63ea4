package control

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"time"
)

// Kind is a table of the store.
type Kind string

// The store's tables.
const (
	KindApproval   Kind = "approvals"
	KindGrant      Kind = "grants"
	KindQuarantine Kind = "quarantines"
)

// Kinds lists every table.
var Kinds = []Kind{KindApproval, KindGrant, KindQuarantine}

// Store keeps the records across restarts: each one a JSON document under
// its id in its table. Put and Delete return only once the change is
// durable; an error means it did not happen. A shared store (Redis) for
// many replicas implements the same interface.
type Store interface {
	// Load returns every record, at start.
	Load(ctx context.Context) (map[Kind]map[string][]byte, error)
	// Apply writes and deletes records in one durable step: all of them,
	// or (with an error) none.
	Apply(ctx context.Context, changes []Change) error
	Close() error
}

// Change is one record to write (Doc set) or delete (Doc nil). Prev is
// the stored document the change was decided on: nil when the record must
// not exist. A store shared by replicas applies the change only while the
// record is still byte-identical to Prev (see ErrConflict); a store only
// one process writes may ignore it.
type Change struct {
	Kind Kind
	ID   string
	Doc  []byte
	Prev []byte
}

// ErrConflict is a conditional Apply that found a record other than the
// one the change was decided on: another replica changed it first.
// Nothing was written. Errors wrap it with *ConflictError, which names
// the records.
var ErrConflict = errors.New("record changed meanwhile")

// ConflictError names the records a conditional Apply found changed.
type ConflictError struct {
	Kind Kind
	IDs  []string
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("%s %s: %v", e.Kind, strings.Join(e.IDs, ","), ErrConflict)
}

func (e *ConflictError) Unwrap() error { return ErrConflict }

// Conflicts returns the *ConflictErrors err holds (errors.Join of them,
// or one).
func conflicts(err error) []*ConflictError {
	var out []*ConflictError
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			out = append(out, conflicts(e)...)
		}
		return out
	}
	if ce, ok := errors.AsType[*ConflictError](err); ok {
		out = append(out, ce)
	}
	return out
}

// Getter is a store that reads some records: the controls reload the
// records a conflict names from it. Absent ids are missing from the
// answer.
type Getter interface {
	Get(ctx context.Context, kind Kind, ids []string) (map[string][]byte, error)
}

// Watcher is a store other processes write to: the controls learn of
// their changes from it, and a local view of it may be stale.
type Watcher interface {
	// Watch subscribes to changes and blocks until ctx ends or the
	// subscription fails (the error says why). h.Subscribed is called
	// once the subscription is live (the caller then reloads everything:
	// changes may have been missed before), h.Changed for each change
	// another process made.
	Watch(ctx context.Context, h WatchHandler) error
}

// WatchHandler receives what a Watcher sees.
type WatchHandler struct {
	Subscribed func()
	Changed    func(kind Kind, ids []string)
	// All is a change too large to name its records: reload everything.
	All func()
}

// ValidID reports whether id is a well-formed id of kind's records: a
// store checks what it reads before handing it over.
func ValidID(kind Kind, id string) bool {
	switch kind {
	case KindApproval:
		return validID(id, approvalPrefix)
	case KindGrant:
		return validID(id, grantPrefix)
	case KindQuarantine:
		return validID(id, quarantinePrefix)
	}
	return false
}

// MaxIDBytes bounds an id of any kind.
const MaxIDBytes = 4 + 26

// staleNever marks a view that is not stale.
const staleNever = 0

// nowNano is the wall clock of the staleness bound (never the Options
// clock tests move: staleness is about real time passing).
func nowNano() int64 { return time.Now().UnixNano() }

// MemoryStore keeps records in memory only: a restart loses them. It is
// the store when no directory is configured, and a test double for
// failures (Fail) and conflicts: it honours Change.Prev, so several
// Controls on one MemoryStore behave as replicas do (without
// invalidation).
type MemoryStore struct {
	mu   sync.Mutex
	docs map[Kind]map[string][]byte
	fail error
}

var (
	_ Store  = (*MemoryStore)(nil)
	_ Getter = (*MemoryStore)(nil)
)

// NewMemoryStore returns an empty memory store.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{docs: map[Kind]map[string][]byte{}}
}

// Fail makes every later call return err (nil: work again).
func (m *MemoryStore) Fail(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fail = err
}

// Load implements Store.
func (m *MemoryStore) Load(context.Context) (map[Kind]map[string][]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return nil, m.fail
	}
	out := make(map[Kind]map[string][]byte, len(m.docs))
	for k, t := range m.docs {
		out[k] = maps.Clone(t)
	}
	return out, nil
}

// Apply implements Store.
func (m *MemoryStore) Apply(_ context.Context, changes []Change) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	var errs []error
	for _, ch := range changes {
		cur, ok := m.docs[ch.Kind][ch.ID]
		if (ch.Prev == nil && ok) || (ch.Prev != nil && (!ok || !bytes.Equal(cur, ch.Prev))) {
			errs = append(errs, &ConflictError{Kind: ch.Kind, IDs: []string{ch.ID}})
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	for _, ch := range changes {
		t := m.docs[ch.Kind]
		if t == nil {
			t = map[string][]byte{}
			m.docs[ch.Kind] = t
		}
		if ch.Doc == nil {
			delete(t, ch.ID)
		} else {
			t[ch.ID] = ch.Doc
		}
	}
	return nil
}

// Get implements Getter.
func (m *MemoryStore) Get(_ context.Context, kind Kind, ids []string) (map[string][]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return nil, m.fail
	}
	out := make(map[string][]byte, len(ids))
	for _, id := range ids {
		if doc, ok := m.docs[kind][id]; ok {
			out[id] = doc
		}
	}
	return out, nil
}

// Close implements Store.
func (m *MemoryStore) Close() error { return nil }
