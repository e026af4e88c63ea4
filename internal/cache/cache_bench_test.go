package cache

import (
	"crypto/sha256"
	"encoding/binary"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkGet measures a hit: one go-memdb read transaction and lookup.
func BenchmarkGet(b *testing.B) {
	c, err := New(Limits{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	k := key(1, "envoy/authz/allow", "a")
	c.Put(k, "", "allow", 100)
	c.Flush()
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := c.Get(k); !ok {
			b.Fatal("miss")
		}
	}
}

// BenchmarkPutFlood measures inserting distinct decisions into a full
// cache (every insert evicts one), writer included: entries are queued and
// flushed in batches, as under a flood of unique requests.
func BenchmarkPutFlood(b *testing.B) {
	c, err := New(Limits{MaxEntries: 10_000})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	var buf [8]byte
	next := func(i uint64) *Key {
		binary.BigEndian.PutUint64(buf[:], i)
		return &Key{Generation: 1, Entrypoint: "envoy/authz/allow", Hash: sha256.Sum256(buf[:])}
	}
	var i uint64
	for ; i < 10_000; i++ {
		c.Put(next(i), "", "allow", 100)
	}
	c.Flush()
	b.ReportAllocs()
	for b.Loop() {
		i++
		c.Put(next(i), "", "allow", 100)
		if i%maxBatch == 0 {
			c.Flush()
		}
	}
	c.Flush()
}

// BenchmarkMemory fills a cache with 100,000 distinct decisions sharing one
// value (as the engine's interned decisions do) and reports what each
// costs: heap-B/entry is the live heap after a collection, rss-B/entry the
// growth of VmRSS (as bench/loadrun's memory measurement reads it, without
// forcing a collection), est-B/entry the cache's own estimate (Stats.Bytes)
// that --cache-max-bytes bounds. One iteration is one fill; run it on its own
// so that nothing else has grown the heap:
//
//	go test -run '^$' -bench 'BenchmarkMemory' -benchtime 1x ./internal/cache/
func BenchmarkMemory(b *testing.B) {
	for _, tc := range []struct {
		name     string
		subjects int
	}{{"subjects=none", 0}, {"subjects=1000", 1000}, {"subjects=distinct", 100_000}} {
		b.Run(tc.name, func(b *testing.B) {
			var heap, rss, est float64
			for b.Loop() {
				m := measureFill(b, 100_000, tc.subjects)
				heap += m.heap
				rss += m.rss
				est += m.est
			}
			n := float64(b.N)
			b.ReportMetric(heap/n, "heap-B/entry")
			b.ReportMetric(rss/n, "rss-B/entry")
			b.ReportMetric(est/n, "est-B/entry")
		})
	}
}

type fillCost struct{ heap, rss, est float64 }

// measureFill inserts n distinct decisions, the i-th for subject i%subjects
// (none when subjects is 0), and measures what they cost per entry.
func measureFill(tb testing.TB, n, subjects int) fillCost {
	tb.Helper()
	names := make([]string, subjects)
	for i := range names {
		names[i] = "user-" + strconv.Itoa(i) + "@example.com"
	}
	value := &struct{ allow bool }{true}
	runtime.GC()
	runtime.GC()
	debug.FreeOSMemory()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	rssBefore := vmRSS(tb)

	c, err := New(Limits{MaxEntries: 2 * n, MaxBytes: 1 << 40, TTL: time.Hour})
	if err != nil {
		tb.Fatal(err)
	}
	var buf [8]byte
	for i := range n {
		binary.BigEndian.PutUint64(buf[:], uint64(i))
		k := &Key{Generation: 1, Entrypoint: "envoy/authz/allow", Hash: sha256.Sum256(buf[:])}
		subject := ""
		if subjects > 0 {
			subject = names[i%subjects]
		}
		size := 0
		if i == 0 {
			size = 64
		}
		c.Put(k, subject, value, size)
		if i%1024 == 1023 {
			c.Flush()
		}
	}
	c.Flush()
	s := c.Stats()
	if s.Entries != int64(n) {
		tb.Fatalf("%d entries of %d: %+v", s.Entries, n, s)
	}
	rssAfter := vmRSS(tb)
	runtime.GC()
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(c)
	c.Close()
	return fillCost{
		heap: float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n),
		rss:  float64(rssAfter-rssBefore) / float64(n),
		est:  float64(s.Bytes) / float64(n),
	}
}

// vmRSS reads the process's resident set size from /proc/self/status, as
// bench/loadrun does for the server's; 0 where there is no /proc.
func vmRSS(tb testing.TB) int64 {
	tb.Helper()
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				tb.Fatal(err)
			}
			return kb << 10
		}
	}
	return 0
}
