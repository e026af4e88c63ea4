package control

import (
	"context"
	"maps"
	"sync"
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

// Change is one record to write (Doc set) or delete (Doc nil).
type Change struct {
	Kind Kind
	ID   string
	Doc  []byte
}

// MemoryStore keeps records in memory only: a restart loses them. It is
// the store when no directory is configured, and a test double for
// failures (Fail).
type MemoryStore struct {
	mu   sync.Mutex
	docs map[Kind]map[string][]byte
	fail error
}

var _ Store = (*MemoryStore)(nil)

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

// Close implements Store.
func (m *MemoryStore) Close() error { return nil }
