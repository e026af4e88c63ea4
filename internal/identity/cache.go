package identity

import (
	"crypto/sha256"
	"sync"
	"time"
)

// evictScan bounds how many entries one eviction looks at.
const evictScan = 32

// tokenCache remembers verified tokens by the SHA-256 of the token until
// they expire or the key set changes. A nil *tokenCache is a disabled
// cache.
type tokenCache struct {
	mu      sync.RWMutex
	max     int
	gen     uint64 // key-set generation the entries were verified under
	entries map[[sha256.Size]byte]Result
}

func newTokenCache(size int) *tokenCache {
	return &tokenCache{max: size, entries: make(map[[sha256.Size]byte]Result)}
}

// get returns the cached result for digest if it has not expired at now
// (allowing leeway, as jwx does: expired when now >= exp+leeway). An
// expired entry is dropped so that a full verification reports why.
func (c *tokenCache) get(digest [sha256.Size]byte, now time.Time, leeway time.Duration) (Result, bool) {
	if c == nil {
		return Result{}, false
	}
	c.mu.RLock()
	res, ok := c.entries[digest]
	c.mu.RUnlock()
	if !ok {
		return Result{}, false
	}
	if now.Before(res.ExpiresAt.Add(leeway)) {
		return res, true
	}
	c.mu.Lock()
	delete(c.entries, digest)
	c.mu.Unlock()
	return Result{}, false
}

// put stores res unless the key set changed since it was verified (gen).
func (c *tokenCache) put(digest [sha256.Size]byte, res Result, gen uint64) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if _, ok := c.entries[digest]; !ok && len(c.entries) >= c.max {
		c.evictLocked()
	}
	c.entries[digest] = res
}

// evictLocked frees one slot: among a few entries sampled in map order
// (randomised by the runtime) it drops the one expiring first.
func (c *tokenCache) evictLocked() {
	var (
		victim  [sha256.Size]byte
		soonest time.Time
		found   bool
		seen    int
	)
	for digest, res := range c.entries {
		if !found || res.ExpiresAt.Before(soonest) {
			victim, soonest, found = digest, res.ExpiresAt, true
		}
		if seen++; seen >= evictScan {
			break
		}
	}
	if found {
		delete(c.entries, victim)
	}
}

// reset drops every entry; from now on only results verified under key-set
// generation gen are stored.
func (c *tokenCache) reset(gen uint64) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen = gen
	clear(c.entries)
}

// len returns the number of entries.
func (c *tokenCache) len() int {
	if c == nil {
		return 0
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}
