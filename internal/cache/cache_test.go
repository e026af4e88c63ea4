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
