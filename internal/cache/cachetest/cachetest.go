// Package cachetest holds helpers for benchmarks that run with the decision
// cache.
package cachetest

import (
	"testing"

	"github.com/verdictpdp/verdict/internal/cache"
)

// ReportHitRate reports the share of the cache's lookups since before that
// it answered (hit-%), as the cache counted them; nothing without a cache.
func ReportHitRate(b *testing.B, c *cache.Cache, before cache.Stats) {
	b.Helper()
	if c == nil {
		return
	}
	c.Flush()
	st := c.Stats()
	if hits, misses := st.Hits-before.Hits, st.Misses-before.Misses; hits+misses > 0 {
		b.ReportMetric(100*float64(hits)/float64(hits+misses), "hit-%")
	}
}
