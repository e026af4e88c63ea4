package redisstore_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/internal/ratelimit"
)

// BenchmarkTake compares one Take on a real redis-server over loopback (one
// round trip, EVALSHA) with one on Memory, on held keys with the clock
// moving so that some requests are allowed and some refused.
func BenchmarkTake(b *testing.B) {
	ctx := context.Background()
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = "user-" + strconv.Itoa(i) + ":crm/export_contacts"
	}
	s, _, _ := newStore(b)
	stores := []struct {
		name  string
		store ratelimit.Store
	}{{"memory", ratelimit.NewMemory(ratelimit.MemoryOptions{})}, {"redis", s}}
	for _, st := range stores {
		b.Run(st.name, func(b *testing.B) {
			r := ratelimit.Rule{Limit: 100, Period: time.Second}
			now := t0
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				now = now.Add(time.Microsecond)
				r.Key = keys[i%len(keys)]
				i++
				if _, err := st.store.Take(ctx, r, now); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(st.name+"/parallel", func(b *testing.B) {
			r := ratelimit.Rule{Limit: 100, Period: time.Second}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					r := r
					r.Key = keys[i%len(keys)]
					i++
					if _, err := st.store.Take(ctx, r, time.Now()); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
