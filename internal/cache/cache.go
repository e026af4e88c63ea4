// Package cache holds policy decisions in memory, in a go-memdb table keyed
// by (engine generation, entrypoint, hash of the input's projection), with
// secondary indexes by generation and age (to drop a replaced bundle's
// decisions, and to evict the oldest) and by subject (to flush one
// identity's decisions).
//
// The cache stores opaque values: it must not import the engine, OPA or any
// adapter. Entries are immutable once inserted; go-memdb's snapshots keep
// reading them after they are replaced or deleted.
package cache

import (
	"encoding/binary"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	memdb "github.com/hashicorp/go-memdb"
)

// Defaults for Limits fields left zero.
const (
	DefaultMaxEntries = 100_000
	DefaultMaxBytes   = 128 << 20
	DefaultTTL        = time.Minute
)

// entryOverhead approximates what one entry costs beyond its key and value:
// the entry itself and its nodes (with their watch channels) in go-memdb's
// three radix-tree indexes, as measured on the live heap with 100,000
// entries (about 1.5 KB each).
const entryOverhead = 1500

// purgeSize bounds how many entries one write transaction deletes, so an
// invalidation never holds the writer lock for long.
const purgeSize = 1024

// maxBatch bounds how many queued entries one write transaction inserts;
// queueSize bounds the queue between the request path and the writer.
const (
	maxBatch  = 256
	queueSize = 4096
)

const table = "decisions"

// Limits bound the cache.
type Limits struct {
	MaxEntries int
	MaxBytes   int64
	TTL        time.Duration
	// AdmitFirst caches a decision the first time it is made rather than
	// the second.
	AdmitFirst bool
}

// Key identifies one decision.
type Key struct {
	// Generation is the engine activation that produced the decision.
	Generation uint64
	Entrypoint string
	// Hash is the hash of the input's projection for the entrypoint.
	Hash [32]byte
}

func (k *Key) appendID(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint64(dst, k.Generation)
	dst = append(dst, k.Hash[:]...)
	return append(dst, k.Entrypoint...)
}

// entry is one cached decision. It is never modified after insertion.
type entry struct {
	id         []byte
	Generation uint64
	Subject    string
	Seq        uint64
	expires    int64 // unix nanoseconds
	size       int64
	value      any
}

// Stats are the cache's counters.
type Stats struct {
	Enabled     bool    `json:"enabled"`
	Entries     int64   `json:"entries"`
	Bytes       int64   `json:"bytes"`
	MaxEntries  int     `json:"max_entries"`
	MaxBytes    int64   `json:"max_bytes"`
	TTLSeconds  float64 `json:"ttl_seconds"`
	Hits        uint64  `json:"hits"`
	Misses      uint64  `json:"misses"`
	Inserts     uint64  `json:"inserts"`
	Evictions   uint64  `json:"evictions"`
	Expirations uint64  `json:"expirations"`
	// Invalidated counts entries removed because their bundle was replaced
	// or their subject flushed.
	Invalidated uint64 `json:"invalidated"`
	// Dropped counts decisions not cached because the writer's queue was
	// full (the decision itself was answered as usual).
	Dropped uint64 `json:"dropped"`
	// FirstSeen counts decisions not cached because they were made for the
	// first time (the next identical one is).
	FirstSeen uint64 `json:"first_seen"`
}

// Cache is safe for concurrent use. A nil *Cache is a disabled cache: Get
// always misses and Put does nothing.
type Cache struct {
	db     *memdb.MemDB
	limits Limits
	now    func() time.Time

	// floor is the oldest generation still served; Put refuses older ones.
	floor atomic.Uint64

	queue     chan *entry
	purgeReq  chan struct{}
	syncReq   chan chan struct{}
	closing   chan struct{}
	done      chan struct{}
	closeOnce sync.Once

	seq uint64 // owned by the writer goroutine

	// snap is a read transaction on the latest commit, replaced after every
	// write. Readers share it: a go-memdb read transaction only reads its
	// immutable radix trees, so concurrent lookups on it are safe, and
	// sharing it saves two allocations per lookup.
	snap   atomic.Pointer[memdb.Txn]
	snapMu sync.Mutex

	entries, bytes atomic.Int64
	hits, misses   atomic.Uint64
	inserts        atomic.Uint64
	evictions      atomic.Uint64
	expirations    atomic.Uint64
	invalidated    atomic.Uint64
	dropped        atomic.Uint64
	deferred       atomic.Uint64

	door doorkeeper
}

// New returns a cache with the given limits (zero fields take defaults) and
// starts its writer; Close stops it.
func New(l Limits) (*Cache, error) {
	if l.MaxEntries < 0 || l.MaxBytes < 0 || l.TTL < 0 {
		return nil, errors.New("cache: limits must not be negative")
	}
	if l.MaxEntries == 0 {
		l.MaxEntries = DefaultMaxEntries
	}
	if l.MaxBytes == 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	if l.TTL == 0 {
		l.TTL = DefaultTTL
	}
	db, err := memdb.NewMemDB(schema())
	if err != nil {
		return nil, err
	}
	c := &Cache{
		db: db, limits: l, now: time.Now,
		queue:    make(chan *entry, queueSize),
		purgeReq: make(chan struct{}, 1),
		syncReq:  make(chan chan struct{}),
		closing:  make(chan struct{}),
		done:     make(chan struct{}),
	}
	c.snap.Store(db.Txn(false))
	go c.run()
	return c, nil
}

func schema() *memdb.DBSchema {
	return &memdb.DBSchema{Tables: map[string]*memdb.TableSchema{
		table: {
			Name: table,
			Indexes: map[string]*memdb.IndexSchema{
				"id": {Name: "id", Unique: true, Indexer: idIndex{}},
				// age orders entries by generation, then insertion: a
				// replaced bundle's entries are a prefix of it (invalidation
				// deletes them) and, within a generation, the oldest come
				// first (eviction and expiry take them). One index serves
				// both: each index costs every entry several radix nodes.
				"age": {Name: "age", Unique: true, Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{
					&memdb.UintFieldIndex{Field: "Generation"},
					&memdb.UintFieldIndex{Field: "Seq"},
				}}},
				"subject": {Name: "subject", AllowMissing: true, Indexer: &memdb.StringFieldIndex{Field: "Subject"}},
			},
		},
	}}
}

// idIndex indexes entries by their key bytes, without copying them.
type idIndex struct{}

func (idIndex) FromObject(obj any) (bool, []byte, error) {
	e, ok := obj.(*entry)
	if !ok {
		return false, nil, errors.New("cache: not an entry")
	}
	return true, e.id, nil
}

func (idIndex) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 1 {
		return nil, errors.New("cache: id index takes one argument")
	}
	id, ok := args[0].([]byte)
	if !ok {
		return nil, errors.New("cache: id index takes a []byte")
	}
	return id, nil
}

// Get returns the value cached for k, if any and not expired.
func (c *Cache) Get(k *Key) (any, bool) {
	if c == nil {
		return nil, false
	}
	var buf [128]byte
	raw, err := c.snap.Load().First(table, "id", k.appendID(buf[:0]))
	if err != nil || raw == nil {
		c.misses.Add(1)
		return nil, false
	}
	e, _ := raw.(*entry)
	if e == nil || c.now().UnixNano() >= e.expires {
		c.misses.Add(1)
		return nil, false
	}
	c.hits.Add(1)
	return e.value, true
}

// Admit reports whether a decision for k should be cached: not for a
// generation older than the last invalidation, and not the first time k is
// seen (see doorkeeper) unless Limits.AdmitFirst is set. Asking records the
// sighting; callers ask before building what Put would store.
func (c *Cache) Admit(k *Key) bool {
	if c == nil || k.Generation < c.floor.Load() {
		return false
	}
	if !c.limits.AdmitFirst && !c.door.admit(k) {
		c.deferred.Add(1)
		return false
	}
	return true
}

// Put queues value for caching under k and returns at once; a background
// writer inserts queued entries in batches (one go-memdb write transaction
// per batch, not per decision). size approximates the value's memory in
// bytes. A key that is already cached keeps its entry; a key of a generation
// older than the last invalidation is not cached; when the queue is full the
// entry is not cached and counted as dropped.
func (c *Cache) Put(k *Key, subject string, value any, size int) {
	if c == nil || k.Generation < c.floor.Load() {
		return
	}
	id := k.appendID(make([]byte, 0, 40+len(k.Entrypoint)))
	e := &entry{
		id:         id,
		Generation: k.Generation,
		Subject:    subject,
		size:       int64(len(id)+len(subject)+max(size, 0)) + entryOverhead,
		value:      value,
	}
	if e.size > c.limits.MaxBytes {
		return
	}
	e.expires = c.now().Add(c.limits.TTL).UnixNano()
	select {
	case c.queue <- e:
	default:
		c.dropped.Add(1)
	}
}

// run is the single writer: it inserts queued entries in batches and purges
// invalidated generations a chunk at a time between batches.
func (c *Cache) run() {
	defer close(c.done)
	batch := make([]*entry, 0, maxBatch)
	for {
		select {
		case <-c.closing:
			return
		case <-c.purgeReq:
			for c.purgeChunk() {
				c.drain(batch[:0])
			}
		case e := <-c.queue:
			c.drain(append(batch[:0], e))
		case ch := <-c.syncReq:
			for len(c.queue) > 0 {
				c.drain(batch[:0])
			}
			close(ch)
		}
	}
}

// drain inserts batch plus whatever else is queued, in one transaction.
// Lookups and the scan for the oldest entries use the snapshot taken before
// the transaction: reading a write transaction's modified index makes
// go-memdb clone it, which turns every later write into a full path copy.
func (c *Cache) drain(batch []*entry) {
	for len(batch) < maxBatch {
		select {
		case e := <-c.queue:
			batch = append(batch, e)
			continue
		default:
		}
		break
	}
	if len(batch) == 0 {
		return
	}
	floor := c.floor.Load()
	before := c.db.Txn(false)
	txn := c.db.Txn(true)
	inBatch := make(map[string]bool, len(batch))
	var inserted uint64
	for _, e := range batch {
		if e.Generation < floor || inBatch[string(e.id)] {
			continue
		}
		if existing, err := before.First(table, "id", e.id); err != nil || existing != nil {
			continue
		}
		c.seq++
		e.Seq = c.seq
		if err := txn.Insert(table, e); err != nil {
			continue
		}
		inBatch[string(e.id)] = true
		c.entries.Add(1)
		c.bytes.Add(e.size)
		inserted++
	}
	c.trim(before, txn, c.now().UnixNano())
	txn.Commit()
	c.refresh()
	// Counted once readers can see them: a caller that saw Inserts grow
	// can rely on a lookup finding the entry.
	c.inserts.Add(inserted)
}

// refresh points readers at the latest commit. The lock makes the last
// refresh the newest: a snapshot taken before another writer's commit can
// never replace one taken after it.
func (c *Cache) refresh() {
	c.snapMu.Lock()
	defer c.snapMu.Unlock()
	c.snap.Store(c.db.Txn(false))
}

// trim deletes expired entries and then the oldest ones until the cache is
// within its limits. With one TTL for every entry, insertion order is also
// expiry order, so both come off the front of the age index (entries of a
// replaced generation, waiting for the purge, first). Entries older than
// the batch are found in the snapshot before it.
func (c *Cache) trim(before, txn *memdb.Txn, now int64) {
	it, err := before.LowerBound(table, "age", uint64(0), uint64(0))
	if err != nil {
		return
	}
	for {
		over := c.entries.Load() > int64(c.limits.MaxEntries) || c.bytes.Load() > c.limits.MaxBytes
		oldest, _ := it.Next().(*entry)
		if oldest == nil {
			return
		}
		expired := oldest.expires <= now
		if !over && !expired {
			return
		}
		if !c.remove(txn, oldest) {
			continue // deleted meanwhile (an invalidation)
		}
		if expired {
			c.expirations.Add(1)
		} else {
			c.evictions.Add(1)
		}
	}
}

func (c *Cache) remove(txn *memdb.Txn, e *entry) bool {
	if e == nil || txn.Delete(table, e) != nil {
		return false
	}
	c.entries.Add(-1)
	c.bytes.Add(-e.size)
	return true
}

// InvalidateBefore stops serving and caching decisions of generations older
// than gen; the writer deletes them in the background. It returns at once.
func (c *Cache) InvalidateBefore(gen uint64) {
	if c == nil {
		return
	}
	for {
		old := c.floor.Load()
		if gen <= old || c.floor.CompareAndSwap(old, gen) {
			break
		}
	}
	select {
	case c.purgeReq <- struct{}{}:
	default: // a purge is already pending; it reads the new floor
	}
}

// purgeChunk deletes up to purgeSize entries below the floor in one write
// transaction and reports whether there may be more.
func (c *Cache) purgeChunk() bool {
	floor := c.floor.Load()
	before := c.db.Txn(false)
	it, err := before.LowerBound(table, "age", uint64(0), uint64(0))
	if err != nil {
		return false
	}
	txn := c.db.Txn(true)
	n := 0
	for n < purgeSize {
		e, _ := it.Next().(*entry)
		if e == nil || e.Generation >= floor {
			break
		}
		if c.remove(txn, e) {
			n++
		}
	}
	txn.Commit()
	c.refresh()
	c.invalidated.Add(uint64(n))
	return n == purgeSize
}

// Close stops the writer. Queued entries are discarded.
func (c *Cache) Close() {
	if c == nil {
		return
	}
	c.closeOnce.Do(func() { close(c.closing) })
	<-c.done
}

// InvalidateSubject deletes every decision cached for subject and returns how
// many there were.
func (c *Cache) InvalidateSubject(subject string) int {
	if c == nil || subject == "" {
		return 0
	}
	total := 0
	for {
		before := c.db.Txn(false)
		it, err := before.Get(table, "subject", subject)
		if err != nil {
			return total
		}
		txn := c.db.Txn(true)
		n := 0
		for n < purgeSize {
			e, _ := it.Next().(*entry)
			if e == nil {
				break
			}
			if c.remove(txn, e) {
				n++
			}
		}
		txn.Commit()
		c.refresh()
		total += n
		c.invalidated.Add(uint64(n))
		if n < purgeSize {
			return total
		}
	}
}

// Stats returns the counters. A nil cache reports itself disabled.
func (c *Cache) Stats() Stats {
	if c == nil {
		return Stats{}
	}
	return Stats{
		Enabled:     true,
		Entries:     c.entries.Load(),
		Bytes:       c.bytes.Load(),
		MaxEntries:  c.limits.MaxEntries,
		MaxBytes:    c.limits.MaxBytes,
		TTLSeconds:  c.limits.TTL.Seconds(),
		Hits:        c.hits.Load(),
		Misses:      c.misses.Load(),
		Inserts:     c.inserts.Load(),
		Evictions:   c.evictions.Load(),
		Expirations: c.expirations.Load(),
		Invalidated: c.invalidated.Load(),
		Dropped:     c.dropped.Load(),
		FirstSeen:   c.deferred.Load(),
	}
}

// Flush waits until every entry queued before the call is inserted.
func (c *Cache) Flush() {
	if c == nil {
		return
	}
	ch := make(chan struct{})
	select {
	case c.syncReq <- ch:
		<-ch
	case <-c.done:
	}
}
