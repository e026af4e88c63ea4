package cache

import (
	"crypto/sha256"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func key(gen uint64, ep, input string) *Key {
	return &Key{Generation: gen, Entrypoint: ep, Hash: sha256.Sum256([]byte(input))}
}

func newCache(t *testing.T, l Limits) *Cache {
	t.Helper()
	c, err := New(l)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestGetPut(t *testing.T) {
	t.Parallel()
	c := newCache(t, Limits{})
	k := key(1, "envoy/authz/allow", "a")
	if _, ok := c.Get(k); ok {
		t.Fatal("hit on an empty cache")
	}
	c.Put(k, "alice", "allow", 10)
	c.Flush()
	if v, ok := c.Get(k); !ok || v != "allow" {
		t.Fatalf("Get = %v %v", v, ok)
	}
	c.Put(k, "alice", "deny", 10) // an existing key keeps its entry
	c.Flush()
	if v, _ := c.Get(k); v != "allow" {
		t.Fatalf("Get after second Put = %v", v)
	}
	for _, other := range []*Key{key(2, "envoy/authz/allow", "a"), key(1, "verdict/mcp/decision", "a"), key(1, "envoy/authz/allow", "b")} {
		if _, ok := c.Get(other); ok {
			t.Fatalf("hit for a different key %+v", other)
		}
	}
	s := c.Stats()
	if s.Hits != 2 || s.Misses != 4 || s.Inserts != 1 || s.Entries != 1 || s.Bytes <= entryOverhead {
		t.Fatalf("stats %+v", s)
	}
}

func TestNilCacheIsDisabled(t *testing.T) {
	t.Parallel()
	var c *Cache
	c.Flush()
	c.Close()
	c.Put(key(1, "p", "a"), "", 1, 1)
	if _, ok := c.Get(key(1, "p", "a")); ok {
		t.Fatal("nil cache hit")
	}
	if c.Stats().Enabled || c.InvalidateSubject("x") != 0 {
		t.Fatal("nil cache reports itself enabled")
	}
	c.InvalidateBefore(3)
}

func TestTTL(t *testing.T) {
	t.Parallel()
	c := newCache(t, Limits{TTL: time.Minute})
	var now atomic.Int64
	now.Store(time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC).UnixNano())
	c.now = func() time.Time { return time.Unix(0, now.Load()) }
	c.Put(key(1, "p", "a"), "", true, 1)
	c.Flush()
	now.Add(int64(59 * time.Second))
	if _, ok := c.Get(key(1, "p", "a")); !ok {
		t.Fatal("miss before the TTL")
	}
	now.Add(int64(time.Second))
	if _, ok := c.Get(key(1, "p", "a")); ok {
		t.Fatal("hit at the TTL")
	}
	c.Put(key(1, "p", "b"), "", true, 1) // trims the expired entry
	c.Flush()
	if s := c.Stats(); s.Entries != 1 || s.Expirations != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestBoundedUnderFlood(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		limits Limits
		size   int
	}{
		{"entries", Limits{MaxEntries: 500}, 10},
		{"bytes", Limits{MaxEntries: 1_000_000, MaxBytes: 100 * (entryOverhead + 200)}, 150},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newCache(t, tc.limits)
			for i := range 5000 {
				c.Put(key(1, "p", strconv.Itoa(i)), "", i, tc.size)
				if i%100 != 99 {
					continue
				}
				c.Flush()
				if s := c.Stats(); s.Entries > int64(s.MaxEntries) || s.Bytes > s.MaxBytes {
					t.Fatalf("after %d puts: %+v", i+1, s)
				}
			}
			s := c.Stats()
			if s.Evictions == 0 || s.Entries == 0 || uint64(s.Entries)+s.Evictions != 5000 {
				t.Fatalf("stats %+v", s)
			}
			// The newest entries survive, the oldest were evicted first.
			if _, ok := c.Get(key(1, "p", "4999")); !ok {
				t.Fatal("newest entry evicted")
			}
			if _, ok := c.Get(key(1, "p", "0")); ok {
				t.Fatal("oldest entry kept")
			}
		})
	}
}

// TestDoorkeeper: by default a decision is cached the second time it is
// made, so a flood of one-off decisions never reaches go-memdb.
func TestDoorkeeper(t *testing.T) {
	t.Parallel()
	c := newCache(t, Limits{})
	for i := range 5000 {
		if k := key(1, "p", strconv.Itoa(i)); c.Admit(k) {
			c.Put(k, "", i, 10)
		}
	}
	c.Flush()
	// A one-hash filter of 2^20 bits lets about a dozen of 5000 keys
	// collide and be admitted early.
	if s := c.Stats(); s.Entries > 50 || s.FirstSeen+uint64(s.Entries) != 5000 {
		t.Fatalf("after a flood of one-off keys: %+v", s)
	}
	if !c.Admit(key(1, "p", "7")) {
		t.Fatal("a key seen twice is not admitted")
	}
	// The same hash under a new generation is a new key.
	if c.Admit(key(2, "p", "7")) {
		t.Fatal("a key of a new generation was admitted on first sight")
	}
	c.InvalidateBefore(3)
	if c.Admit(key(2, "p", "7")) {
		t.Fatal("a key of an invalidated generation was admitted")
	}
}

func TestOversizedValueIsNotCached(t *testing.T) {
	t.Parallel()
	c := newCache(t, Limits{MaxBytes: 4096})
	c.Put(key(1, "p", "a"), "", "big", 10_000)
	c.Flush()
	if s := c.Stats(); s.Entries != 0 || s.Inserts != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestInvalidateBefore(t *testing.T) {
	t.Parallel()
	c := newCache(t, Limits{})
	for i := range 3000 {
		c.Put(key(1, "p", strconv.Itoa(i)), "", i, 1)
	}
	c.Put(key(2, "p", "new"), "", "new", 1)
	c.Flush()
	c.InvalidateBefore(2)
	c.Put(key(1, "p", "late"), "", "stale", 1) // an evaluation that finished after the swap
	waitFor(t, "the purge", func() bool { s := c.Stats(); return s.Entries == 1 && s.Invalidated == 3000 })
	if _, ok := c.Get(key(2, "p", "new")); !ok {
		t.Fatal("current generation purged")
	}
	if _, ok := c.Get(key(1, "p", "late")); ok {
		t.Fatal("a decision of a replaced generation was cached after invalidation")
	}
	if s := c.Stats(); s.Invalidated != 3000 {
		t.Fatalf("stats %+v", s)
	}
	// The purged entries are not kept alive by the FIFO.
	c.Flush() // the writer is done with them
	if n := c.fifo.len(); n != 1 {
		t.Fatalf("the FIFO holds %d entries", n)
	}
}

func TestInvalidateSubject(t *testing.T) {
	t.Parallel()
	c := newCache(t, Limits{})
	for i := range 1500 {
		c.Put(key(1, "p", "alice"+strconv.Itoa(i)), "alice", i, 1)
	}
	c.Put(key(1, "p", "bob"), "bob", 1, 1)
	c.Put(key(1, "p", "anon"), "", 1, 1)
	c.Flush()
	if n := c.InvalidateSubject("alice"); n != 1500 {
		t.Fatalf("InvalidateSubject = %d", n)
	}
	if _, ok := c.Get(key(1, "p", "alice7")); ok {
		t.Fatal("flushed subject still cached")
	}
	for _, k := range []*Key{key(1, "p", "bob"), key(1, "p", "anon")} {
		if _, ok := c.Get(k); !ok {
			t.Fatalf("other subject flushed: %+v", k)
		}
	}
	if n := c.InvalidateSubject("alice"); n != 0 {
		t.Fatalf("second InvalidateSubject = %d", n)
	}
	c.Flush()
	if _, ok := c.subjects["alice"]; ok || len(c.subjects) != 1 || c.fifo.len() != 2 {
		t.Fatalf("after the flush: %d subjects, %d entries in the FIFO", len(c.subjects), c.fifo.len())
	}
	if s := c.Stats(); s.Entries != 2 || s.Invalidated != 1500 {
		t.Fatalf("stats %+v", s)
	}
}

// TestSubjectListsStayBounded: evicted entries leave their subject's list
// (in batches), and a subject with none left is forgotten.
func TestSubjectListsStayBounded(t *testing.T) {
	t.Parallel()
	c := newCache(t, Limits{MaxEntries: 100})
	for i := range 10_000 {
		c.Put(key(1, "p", strconv.Itoa(i)), "carol", i, 1)
		if i%100 == 99 {
			c.Flush()
		}
	}
	c.Put(key(1, "p", "dave"), "dave", 0, 1)
	c.Flush()
	s := c.subjects["carol"]
	if s == nil || s.live != 99 || len(s.entries) > 2*s.live+17 {
		t.Fatalf("carol's list: %+v", s)
	}
	if n := c.InvalidateSubject("carol"); n != 99 {
		t.Fatalf("InvalidateSubject = %d", n)
	}
	for i := range 200 {
		c.Put(key(1, "p", "e"+strconv.Itoa(i)), "", i, 1)
	}
	c.Flush()
	if _, ok := c.Get(key(1, "p", "dave")); ok || len(c.subjects) != 0 {
		t.Fatalf("dave's entry is still cached or listed: %d subjects", len(c.subjects))
	}
	if st := c.Stats(); st.Entries != 100 {
		t.Fatalf("stats %+v", st)
	}
}

// TestOneBucket: with room for 16 entries every key of a generation and
// entrypoint shares one bucket; lookups, replacement and eviction work
// within it, and the entrypoint and generation still tell keys apart.
func TestOneBucket(t *testing.T) {
	t.Parallel()
	c := newCache(t, Limits{MaxEntries: 16})
	if c.bits != 0 {
		t.Fatalf("bits = %d", c.bits)
	}
	for i := range 40 {
		c.Put(key(1, "p", strconv.Itoa(i)), "", "p"+strconv.Itoa(i), 1)
	}
	c.Put(key(1, "q", "39"), "", "q39", 1)
	c.Put(key(2, "p", "39"), "", "p39@2", 1)
	c.Flush()
	for k, want := range map[*Key]any{key(1, "p", "39"): "p39", key(1, "q", "39"): "q39", key(2, "p", "39"): "p39@2", key(1, "p", "30"): "p30"} {
		if v, ok := c.Get(k); !ok || v != want {
			t.Fatalf("Get(%+v) = %v %v, want %v", k, v, ok, want)
		}
	}
	if _, ok := c.Get(key(1, "p", "0")); ok {
		t.Fatal("oldest entry kept")
	}
	if s := c.Stats(); s.Entries != 16 || s.Evictions != 26 {
		t.Fatalf("stats %+v", s)
	}
}

// TestBytesMatchHeap holds the estimate that --cache-max-bytes bounds to
// what entries cost on the live heap. It does not run in parallel: it
// measures the heap.
func TestBytesMatchHeap(t *testing.T) {
	if testing.Short() {
		t.Skip("fills a cache")
	}
	for _, subjects := range []int{0, 100, 20_000} {
		m := measureFill(t, 20_000, subjects)
		if ratio := m.est / m.heap; ratio < 0.8 || ratio > 1.25 {
			t.Errorf("%d subjects: the estimate is %.0f bytes per entry, the heap %.0f", subjects, m.est, m.heap)
		}
	}
}

// TestConcurrentReadersDuringInvalidation runs readers, writers and
// invalidations at once; with -race it checks the cache's own locking, and
// it checks that no reader ever sees a value under a key it was not put for.
func TestConcurrentReadersDuringInvalidation(t *testing.T) {
	t.Parallel()
	c := newCache(t, Limits{MaxEntries: 2000})
	var gen atomic.Uint64
	gen.Store(1)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				g := gen.Load()
				in := strconv.Itoa((i*7 + w) % 3000)
				k := key(g, "p", in)
				if v, ok := c.Get(k); ok {
					if v != strconv.FormatUint(g, 10)+"/"+in {
						t.Errorf("key %d/%s served %v", g, in, v)
						return
					}
					continue
				}
				c.Put(k, "s"+strconv.Itoa(i%5), strconv.FormatUint(g, 10)+"/"+in, 16)
			}
		})
	}
	for range 20 {
		time.Sleep(2 * time.Millisecond)
		c.InvalidateBefore(gen.Add(1))
		c.InvalidateSubject("s1")
	}
	close(stop)
	wg.Wait()
	c.Flush()
	if s := c.Stats(); s.Entries > 2000 || s.Hits == 0 {
		t.Fatalf("stats %+v", s)
	}
}
