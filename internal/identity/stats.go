package identity

import (
	"sync/atomic"
	"time"
)

// Stats is a snapshot of a Verifier's counters.
type Stats struct {
	// Verified counts authenticated Verify calls, cache hits included.
	Verified uint64
	// Refused counts refused Verify calls by Code; every code is present.
	Refused map[string]uint64
	// CacheHits counts Verify calls answered from the verified-token cache.
	CacheHits uint64
	// RefreshesOK and RefreshesFailed count JWKS loads, the initial one
	// included.
	RefreshesOK, RefreshesFailed uint64
	// KeysLoaded is the number of usable keys in the current key set.
	KeysLoaded int
	// LastRefresh is when the JWKS last loaded successfully (zero if never).
	LastRefresh time.Time
}

// counters are the live values behind Stats.
type counters struct {
	verified        atomic.Uint64
	refused         map[string]*atomic.Uint64 // fixed at init: read without locking
	cacheHits       atomic.Uint64
	refreshesOK     atomic.Uint64
	refreshesFailed atomic.Uint64
	keysLoaded      atomic.Int64
	lastRefresh     atomic.Int64 // UnixNano; 0 when never
	panics          atomic.Uint64
}

func (c *counters) init() {
	c.refused = make(map[string]*atomic.Uint64, len(Codes()))
	for _, code := range Codes() {
		c.refused[code] = new(atomic.Uint64)
	}
}

func (c *counters) count(res Result) {
	if res.Authenticated {
		c.verified.Add(1)
		return
	}
	if res.Err != nil {
		if n, ok := c.refused[res.Err.Code]; ok {
			n.Add(1)
		}
	}
}

// Stats returns a snapshot of the verifier's counters.
func (v *Verifier) Stats() Stats {
	s := Stats{
		Verified:        v.stats.verified.Load(),
		Refused:         make(map[string]uint64, len(v.stats.refused)),
		CacheHits:       v.stats.cacheHits.Load(),
		RefreshesOK:     v.stats.refreshesOK.Load(),
		RefreshesFailed: v.stats.refreshesFailed.Load(),
		KeysLoaded:      int(v.stats.keysLoaded.Load()),
	}
	for code, n := range v.stats.refused {
		s.Refused[code] = n.Load()
	}
	if ns := v.stats.lastRefresh.Load(); ns != 0 {
		s.LastRefresh = time.Unix(0, ns)
	}
	return s
}
