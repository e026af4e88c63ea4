// Package cache holds policy decisions in memory, in a go-memdb table of
// buckets with one index, the bucket's key: engine generation, a number
// standing for the entrypoint, and the leading bits of the hash of the
// input's projection. A bucket holds the decisions whose keys share it,
// sorted by hash; the table sizes the prefix from its limits so that a full
// cache has 8 to 16 decisions per bucket. Every object in a go-memdb index
// costs it a few radix-tree nodes, each with a watch channel (over 400
// bytes), so a bucket shares that among its decisions, and the table has no
// second index. The generation leads the key, so a replaced bundle's
// decisions are the front of the index (invalidation deletes them from
// there).
//
// The writer goroutine keeps two plain structures beside the table: a FIFO
// of the decisions in insertion order (with one TTL for every entry, also
// expiry order: expiry and eviction take its front) and, per subject, its
// decisions (to flush one identity's).
//
// The cache stores opaque values: it must not import the engine, OPA or any
// adapter. Buckets and entries are immutable once inserted (but for a flag
// only the writer reads): the writer replaces a bucket with a copy, and
// go-memdb's snapshots keep reading the old one.
package cache

import (
	"errors"
	"math"
	"strings"
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

// entryOverhead, bucketOverhead and subjectOverhead approximate what the
// cache holds beyond values and subjects' names, as measured on the live
// heap with 100,000 entries (BenchmarkMemory at several bucket sizes): per
// entry, the entry (its id included) and its slots in its bucket, the FIFO
// and its subject's list; per bucket, the bucket and its nodes in
// go-memdb's radix tree (with their watch channels); per subject, its list
// and map entry. Stats.Bytes counts all three and the names.
const (
	entryOverhead   = 104
	bucketOverhead  = 416
	subjectOverhead = 56
)

// bucketFill is the most decisions a bucket holds, on average, in a full
// cache.
const bucketFill = 16

// purgeSize bounds how many entries one write transaction deletes, so an
// invalidation never keeps the writer from inserting for long.
const purgeSize = 1024

// maxBatch bounds how many queued entries one write transaction inserts;
// queueSize bounds the queue between the request path and the writer.
const (
	maxBatch  = 256
	queueSize = 4096
)

// maxEntrypoints bounds the distinct entrypoints the cache numbers; a
// decision of any other is not cached.
const maxEntrypoints = 1 << 10

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
	// bits is how many leading bits of a key's hash its bucket key holds.
	bits int

	// floor is the oldest generation still served; Put refuses older ones.
	floor atomic.Uint64

	eps entrypoints

	queue      chan pending
	purgeReq   chan struct{}
	subjectReq chan subjectReq
	syncReq    chan chan struct{}
	closing    chan struct{}
	done       chan struct{}
	closeOnce  sync.Once

	// Owned by the writer goroutine: the write transaction, entries in
	// insertion order (dead counts those already deleted from the table)
	// and each subject's.
	w        wtxn
	fifo     fifo
	dead     int
	subjects map[string]*subject

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
		// Nothing watches the table: a snapshot of the new database is a
		// database of its own whose write transactions do not track the
		// watch channels they would close on commit (a primary database's
		// track up to 8,192 per index and transaction).
		db: db.Snapshot(), limits: l, now: time.Now,
		bits:       prefixBits(l),
		queue:      make(chan pending, queueSize),
		purgeReq:   make(chan struct{}, 1),
		subjectReq: make(chan subjectReq),
		syncReq:    make(chan chan struct{}),
		closing:    make(chan struct{}),
		done:       make(chan struct{}),
		subjects:   map[string]*subject{},
	}
	c.snap.Store(c.db.Txn(false))
	go c.run()
	return c, nil
}

// prefixBits sizes bucket keys' hash prefix for at most bucketFill entries
// per bucket, on average, when the cache is full.
func prefixBits(l Limits) int {
	capacity := min(int64(l.MaxEntries), l.MaxBytes/entryOverhead)
	bits := 0
	for bits < 16 && capacity>>bits > bucketFill {
		bits++
	}
	return bits
}

func schema() *memdb.DBSchema {
	return &memdb.DBSchema{Tables: map[string]*memdb.TableSchema{
		table: {
			Name: table,
			Indexes: map[string]*memdb.IndexSchema{
				"id": {Name: "id", Unique: true, Indexer: bucketIndex{}},
			},
		},
	}}
}

// entrypoints numbers entrypoint names for keys. Numbers are never reused.
// Lookups read an immutable map; numbering a new name replaces it with a
// copy (names are few: a bundle's entrypoints).
type entrypoints struct {
	names atomic.Pointer[map[string]uint16]
	mu    sync.Mutex
}

func (p *entrypoints) lookup(name string) (uint16, bool) {
	m := p.names.Load()
	if m == nil {
		return 0, false
	}
	n, ok := (*m)[name]
	return n, ok
}

// number returns name's number, giving it one if it has none; false once
// maxEntrypoints have one.
func (p *entrypoints) number(name string) (uint16, bool) {
	if n, ok := p.lookup(name); ok {
		return n, true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var old map[string]uint16
	if m := p.names.Load(); m != nil {
		old = *m
	}
	if n, ok := old[name]; ok {
		return n, true
	}
	if len(old) >= maxEntrypoints {
		return 0, false
	}
	m := make(map[string]uint16, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	n := uint16(len(old)) //nolint:gosec // below maxEntrypoints
	m[strings.Clone(name)] = n
	p.names.Store(&m)
	return n, true
}

// Get returns the value cached for k, if any and not expired.
func (c *Cache) Get(k *Key) (any, bool) {
	if c == nil {
		return nil, false
	}
	ep, ok := c.eps.lookup(k.Entrypoint)
	if !ok {
		c.misses.Add(1)
		return nil, false
	}
	id := makeID(k, ep)
	bk := id.bucket(c.bits)
	raw, err := c.snap.Load().First(table, "id", bk[:])
	if err != nil || raw == nil {
		c.misses.Add(1)
		return nil, false
	}
	b, _ := raw.(*bucket)
	e := b.find(&id)
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
	total := int64(max(size, 0)) + entryOverhead
	if total+bucketOverhead+subjectOverhead+int64(len(subject)) > c.limits.MaxBytes || total > math.MaxUint32 {
		return
	}
	ep, ok := c.eps.number(k.Entrypoint)
	if !ok {
		return
	}
	e := &entry{
		id:      makeID(k, ep),
		size:    uint32(total),
		expires: c.now().Add(c.limits.TTL).UnixNano(),
		value:   value,
	}
	select {
	case c.queue <- pending{e: e, subject: subject}:
	default:
		c.dropped.Add(1)
	}
}

// run is the single writer: it inserts queued entries in batches and purges
// invalidated generations and flushed subjects a chunk at a time between
// batches. It alone writes to the table and touches the FIFO and the
// subjects' lists.
func (c *Cache) run() {
	defer close(c.done)
	batch := make([]pending, 0, maxBatch)
	for {
		select {
		case <-c.closing:
			return
		case <-c.purgeReq:
			for c.purgeChunk() {
				c.drain(batch[:0])
			}
		case req := <-c.subjectReq:
			req.n <- c.invalidateSubject(req.name, batch[:0])
		case p := <-c.queue:
			c.drain(append(batch[:0], p))
		case ch := <-c.syncReq:
			for len(c.queue) > 0 {
				c.drain(batch[:0])
			}
			close(ch)
		}
	}
}

// drain inserts batch plus whatever else is queued, in one transaction.
func (c *Cache) drain(batch []pending) {
	for len(batch) < maxBatch {
		select {
		case p := <-c.queue:
			batch = append(batch, p)
			continue
		default:
		}
		break
	}
	if len(batch) == 0 {
		return
	}
	floor := c.floor.Load()
	w := c.begin()
	var inserted uint64
	for _, p := range batch {
		e := p.e
		if e.id.generation() < floor || !c.insert(w, e) {
			continue
		}
		c.fifo.push(e)
		if p.subject != "" {
			c.addToSubject(e, p.subject)
		}
		c.entries.Add(1)
		c.bytes.Add(int64(e.size))
		inserted++
	}
	c.trim(w, c.now().UnixNano())
	c.commit(w)
	// Counted once readers can see them: a caller that saw Inserts grow
	// can rely on a lookup finding the entry.
	c.inserts.Add(inserted)
}

func (c *Cache) addToSubject(e *entry, name string) {
	s := c.subjects[name]
	if s == nil {
		// A name of its own: the caller's string may be part of a larger one.
		s = &subject{name: strings.Clone(name)}
		c.subjects[s.name] = s
		c.bytes.Add(subjectOverhead + int64(len(name)))
	}
	s.entries = append(s.entries, e)
	s.live++
	e.subject = s
}

// commit commits w and points readers at the result. The lock makes the
// last refresh the newest: a snapshot taken before another commit can never
// replace one taken after it.
func (c *Cache) commit(w *wtxn) {
	w.txn.Commit()
	w.txn, w.before = nil, nil
	c.snapMu.Lock()
	defer c.snapMu.Unlock()
	c.snap.Store(c.db.Txn(false))
}

// trim deletes expired entries and then the oldest ones until the cache is
// within its limits. With one TTL for every entry, insertion order is also
// expiry order, so both come off the front of the FIFO.
func (c *Cache) trim(w *wtxn, now int64) {
	for c.fifo.len() > 0 {
		oldest := c.fifo.front()
		if !oldest.dead {
			over := c.entries.Load() > int64(c.limits.MaxEntries) || c.bytes.Load() > c.limits.MaxBytes
			expired := oldest.expires <= now
			if !over && !expired {
				return
			}
			if c.remove(w, oldest) {
				if expired {
					c.expirations.Add(1)
				} else {
					c.evictions.Add(1)
				}
			}
		}
		c.fifo.pop()
		if oldest.dead {
			c.dead--
		}
	}
}

// remove deletes e from its bucket and marks it dead; the FIFO and its
// subject's list drop it later.
func (c *Cache) remove(w *wtxn, e *entry) bool {
	if e.dead || !c.unlink(w, e) {
		return false
	}
	c.forget(e)
	return true
}

// forget marks e, no longer in the table, dead.
func (c *Cache) forget(e *entry) {
	e.dead = true
	c.dead++
	c.entries.Add(-1)
	c.bytes.Add(-int64(e.size))
	if s := e.subject; s != nil {
		s.live--
		switch {
		case s.live == 0:
			delete(c.subjects, s.name)
			c.bytes.Add(-subjectOverhead - int64(len(s.name)))
			s.entries = nil
		case len(s.entries) > 2*s.live+16:
			s.entries = liveOnly(s.entries, s.live)
		}
	}
}

// liveOnly returns a new slice of the live entries among list.
func liveOnly(list []*entry, live int) []*entry {
	out := make([]*entry, 0, live)
	for _, e := range list {
		if !e.dead {
			out = append(out, e)
		}
	}
	return out
}

// compact drops dead entries from the FIFO once they are the majority of
// it (so it costs each at most one step), so that the entries an
// invalidation deleted are not kept alive until they reach its front.
func (c *Cache) compact() {
	if 2*c.dead > c.fifo.len() {
		c.fifo.keep(func(e *entry) bool { return !e.dead })
		c.dead = 0
	}
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

// purgeChunk deletes the buckets below the floor, about purgeSize entries
// in one write transaction, and reports whether there may be more. They
// are the front of the index, which orders buckets by generation first.
func (c *Cache) purgeChunk() bool {
	floor := c.floor.Load()
	w := c.begin()
	it, err := w.before.LowerBound(table, "id", []byte{})
	if err != nil {
		c.commit(w)
		return false
	}
	n := 0
	for n < purgeSize {
		b, _ := it.Next().(*bucket)
		if b == nil || b.key.generation() >= floor {
			break
		}
		w.delete(b)
		c.bytes.Add(-bucketOverhead)
		for _, e := range b.entries {
			c.forget(e)
		}
		n += len(b.entries)
	}
	c.commit(w)
	c.compact()
	c.invalidated.Add(uint64(n))
	return n >= purgeSize
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
// many there were. It returns once lookups no longer find them.
func (c *Cache) InvalidateSubject(subject string) int {
	if c == nil || subject == "" {
		return 0
	}
	req := subjectReq{name: subject, n: make(chan int, 1)}
	select {
	case c.subjectReq <- req:
		return <-req.n
	case <-c.done:
		return 0
	}
}

// invalidateSubject deletes name's entries, purgeSize per write
// transaction, inserting what was queued between them (batch is the
// writer's buffer). Entries inserted meanwhile may stay.
func (c *Cache) invalidateSubject(name string, batch []pending) int {
	s := c.subjects[name]
	if s == nil {
		return 0
	}
	list := s.entries // forget replaces s.entries, never changes this one
	total := 0
	for len(list) > 0 {
		w := c.begin()
		n := 0
		for n < purgeSize && len(list) > 0 {
			if c.remove(w, list[0]) {
				n++
			}
			list = list[1:]
		}
		c.commit(w)
		total += n
		c.invalidated.Add(uint64(n))
		if len(list) > 0 {
			c.drain(batch)
		}
	}
	c.compact()
	return total
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
