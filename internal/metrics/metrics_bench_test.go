package metrics

import (
	"strconv"
	"testing"
	"time"
)

// BenchmarkObserveDecision measures one decision's observation on the
// request path once its series exist, with n entrypoints' series resolved
// (four results, cached or not: 8n combinations).
func BenchmarkObserveDecision(b *testing.B) {
	results := []string{ResultAllow, ResultDeny, ResultRequireApproval, ResultError}
	for _, n := range []int{1, 16, 256} {
		m := New(Sources{})
		entrypoints := make([]string, n)
		for i := range entrypoints {
			entrypoints[i] = "entrypoint/" + strconv.Itoa(i)
			for _, r := range results {
				m.ObserveDecision(entrypoints[i], r, false, time.Microsecond, time.Microsecond)
				m.ObserveDecision(entrypoints[i], r, true, 0, time.Microsecond)
			}
		}
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				m.ObserveDecision(entrypoints[i%n], results[i%len(results)], i%2 == 0, 300*time.Microsecond, 350*time.Microsecond)
			}
		})
		b.Run(strconv.Itoa(n)+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					i++
					m.ObserveDecision(entrypoints[i%n], results[i%len(results)], i%2 == 0, 300*time.Microsecond, 350*time.Microsecond)
				}
			})
		})
	}
}
