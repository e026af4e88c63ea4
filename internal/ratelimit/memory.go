package ratelimit

import (
	"context"
	"hash/maphash"
	"math"
	"math/bits"
	"strings"
	"sync"
	"time"
)

// Defaults for MemoryOptions fields left zero.
const (
	DefaultMaxKeys = 1 << 18
	DefaultShards  = 64
)

// maxShards bounds MemoryOptions.Shards.
const maxShards = 1 << 16

// sampleSize is the number of entries a full shard looks at to make room
// for a new key: it drops the idle ones among them or, if none is idle,
// evicts the one with the smallest TAT.
const sampleSize = 8

// A full shard sweeps itself whole, to make room for a new key, when it has
// not done so for sweepInterval (by the requests' clock), or when it has
// made room capacity/sweepRatio times since its last sweep. A sweep visits
// every entry (about 10ns each), so this costs at most one sweep per shard
// a second plus sweepRatio visits per insert, amortized.
const (
	sweepInterval = int64(time.Second)
	sweepRatio    = 4
)

// MemoryOptions configure a Memory store; zero fields take the defaults.
type MemoryOptions struct {
	// MaxKeys bounds the keys held (default DefaultMaxKeys, 262144: about
	// 21 MiB with keys of 25 bytes, at most 141 MiB with keys of MaxKeyLen;
	// see the package documentation).
	MaxKeys int
	// Shards is the number of independently locked shards, a power of two
	// (default DefaultShards, 64; other values are rounded up). It is
	// lowered when MaxKeys is smaller, so every shard holds a key.
	Shards int
}

// MemoryStats are counters of a Memory store.
type MemoryStats struct {
	// Keys is the number of keys held.
	Keys int
	// Evicted counts live keys dropped to make room for new ones: each was
	// forgiven what it owed.
	Evicted uint64
	// Expired counts idle keys dropped, by Sweep or to make room. Dropping
	// an idle key changes no answer.
	Expired uint64
}

// Memory is an in-memory Store, bounded in keys, for one replica. It is
// safe for concurrent use. See the package documentation for how it makes
// room when full.
type Memory struct {
	seed   maphash.Seed
	mask   uint64
	shards []shard
}

var _ Store = (*Memory)(nil)

// shard is one independently locked part of a Memory store.
type shard struct {
	mu sync.Mutex
	// tats maps a key to its theoretical arrival time in Unix nanoseconds.
	tats     map[string]int64
	capacity int
	// pressure counts the times the shard made room since its last sweep,
	// at lastSweep (Unix nanoseconds).
	pressure  int
	lastSweep int64
	evicted   uint64
	expired   uint64
	_         [64]byte // keep shards' mutexes on separate cache lines
}

// NewMemory returns an empty in-memory store.
func NewMemory(opts MemoryOptions) *Memory {
	maxKeys := opts.MaxKeys
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	n := opts.Shards
	if n <= 0 {
		n = DefaultShards
	}
	n = min(n, maxShards, maxKeys)
	shift := bits.Len(uint(n - 1)) // round up to a power of two,
	if 1<<shift > maxKeys {
		shift-- // and back down within MaxKeys, so each shard holds a key
	}
	n = 1 << shift
	m := &Memory{
		seed:   maphash.MakeSeed(),
		mask:   1<<shift - 1,
		shards: make([]shard, n),
	}
	for i := range m.shards {
		m.shards[i].tats = make(map[string]int64)
		m.shards[i].capacity = maxKeys / n
		m.shards[i].lastSweep = math.MinInt64
	}
	return m
}

// Take counts one request at now against r. It only fails for an invalid
// rule or a time out of the range of Unix nanoseconds. The context is not
// used. Taking a request for a key already held does not allocate.
func (m *Memory) Take(_ context.Context, r Rule, now time.Time) (Result, error) {
	p, err := r.compile()
	if err != nil {
		return Result{}, err
	}
	ns, err := unixNano(now)
	if err != nil {
		return Result{}, err
	}
	s := &m.shards[m.shardIndex(r.Key)]
	s.mu.Lock()
	defer s.mu.Unlock()
	tat, held := s.tats[r.Key]
	if !held {
		tat = noTAT
	}
	tat, res := p.take(tat, ns)
	if held {
		s.tats[r.Key] = tat
	} else {
		// A new key is always allowed, and always stored: it now owes T.
		if len(s.tats) >= s.capacity {
			s.makeRoom(ns)
		}
		// Clone so that the map does not pin the request's buffer.
		s.tats[strings.Clone(r.Key)] = tat
	}
	return res, nil
}

// Stats returns the store's counters.
func (m *Memory) Stats() MemoryStats {
	var st MemoryStats
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		st.Keys += len(s.tats)
		st.Evicted += s.evicted
		st.Expired += s.expired
		s.mu.Unlock()
	}
	return st
}

// Sweep drops every idle key, whose TAT is at or before now, and returns
// how many it dropped. An idle key answers as a key never seen, so Sweep
// changes no answer; it only returns memory, and is never needed for the
// store to stay within MaxKeys. It locks one shard at a time.
func (m *Memory) Sweep(now time.Time) int {
	ns, err := unixNano(now)
	if err != nil {
		return 0
	}
	n := 0
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		n += s.sweep(ns)
		s.mu.Unlock()
	}
	return n
}

// sweep drops the shard's idle keys. s.mu must be held.
func (s *shard) sweep(now int64) int {
	n := 0
	for k, tat := range s.tats {
		if tat <= now {
			delete(s.tats, k)
			n++
		}
	}
	s.expired += uint64(n)
	s.pressure = 0
	s.lastSweep = now
	return n
}

// makeRoom drops at least one key of the full shard. It sweeps the whole
// shard when due (see sweepInterval); if that dropped nothing, it drops the
// idle keys among a sample of sampleSize entries (Go's map iteration starts
// at a random place), else the sampled key with the smallest TAT, which is
// the closest to a full budget. s.mu must be held.
func (s *shard) makeRoom(now int64) {
	s.pressure++
	if (s.pressure >= s.capacity/sweepRatio || now >= addSat(s.lastSweep, sweepInterval)) && s.sweep(now) > 0 {
		return
	}
	var (
		victim    string
		victimTAT int64 = math.MaxInt64
		seen      int
		dropped   bool
	)
	for k, tat := range s.tats {
		if tat <= now {
			delete(s.tats, k)
			s.expired++
			dropped = true
		} else if !dropped && tat <= victimTAT {
			victim, victimTAT = k, tat
		}
		seen++
		if seen == sampleSize {
			break
		}
	}
	if !dropped && seen > 0 {
		delete(s.tats, victim)
		s.evicted++
	}
}

// shardIndex returns the index of key's shard.
func (m *Memory) shardIndex(key string) uint64 {
	return maphash.String(m.seed, key) & m.mask
}
