package ratelimit

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// benchKeys returns n distinct keys shaped like policy's ("user-N:crm/tool").
func benchKeys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = "user-" + strconv.Itoa(i) + ":crm/export_contacts"
	}
	return keys
}

// BenchmarkTakeHotKey takes one held key over and over, the clock moving on
// so that some requests are allowed and some refused.
func BenchmarkTakeHotKey(b *testing.B) {
	ctx := context.Background()
	m := NewMemory(MemoryOptions{})
	r := Rule{Key: "alice:crm/export_contacts", Limit: 100, Period: time.Second}
	now := t0
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(time.Millisecond)
		if _, err := m.Take(ctx, r, now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTakeDistinctKeys cycles through a million distinct keys in a
// store of the default size (262144): almost every request is a new key
// that evicts a live one, the steady state of a key-minting flood.
func BenchmarkTakeDistinctKeys(b *testing.B) {
	ctx := context.Background()
	keys := benchKeys(1_000_000)
	m := NewMemory(MemoryOptions{})
	r := Rule{Limit: 60, Period: time.Hour}
	for _, k := range keys[:DefaultMaxKeys] { // start full
		r.Key = k
		if _, err := m.Take(ctx, r, t0); err != nil {
			b.Fatal(err)
		}
	}
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		r.Key = keys[i%len(keys)]
		i++
		if _, err := m.Take(ctx, r, t0); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	st := m.Stats()
	b.ReportMetric(float64(st.Evicted)/float64(b.N), "evictions/op")
}

// BenchmarkTakeParallel takes 65536 held keys from every P, each goroutine
// walking them from its own offset.
func BenchmarkTakeParallel(b *testing.B) {
	ctx := context.Background()
	keys := benchKeys(1 << 16)
	m := NewMemory(MemoryOptions{})
	r := Rule{Limit: 1000, Period: time.Second}
	for _, k := range keys {
		r.Key = k
		if _, err := m.Take(ctx, r, t0); err != nil {
			b.Fatal(err)
		}
	}
	var offset atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		r := Rule{Limit: 1000, Period: time.Second}
		i := int(offset.Add(7919))
		now := t0
		for pb.Next() {
			r.Key = keys[i%len(keys)]
			i++
			now = now.Add(time.Microsecond)
			if _, err := m.Take(ctx, r, now); err != nil {
				b.Fatal(err)
			}
		}
	})
}
