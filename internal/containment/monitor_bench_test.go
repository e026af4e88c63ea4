package containment

import (
	"context"
	"fmt"
	"testing"

	"github.com/verdictpdp/verdict/internal/mcp"
	"github.com/verdictpdp/verdict/internal/pipeline"
)

// BenchmarkObserve is the request path's cost with the four example rules
// (one subject, many sessions).
func BenchmarkObserve(b *testing.B) {
	r, err := Parse(decode(b, `{"rules": [
	  {"id": "deny-storm", "signal": "deny_rate", "scope": "subject", "window_seconds": 300, "min_calls": 20, "threshold": 0.99},
	  {"id": "leaky", "signal": "findings", "scope": "session", "window_seconds": 600, "threshold": 10, "detectors": ["secret","private_key"]},
	  {"id": "destructive-burst", "signal": "destructive", "scope": "subject", "window_seconds": 60, "threshold": 5},
	  {"id": "poisoned", "signal": "poisoned", "scope": "session", "window_seconds": 600, "threshold": 1}]}`))
	if err != nil {
		b.Fatal(err)
	}
	m := New(Options{Rules: func() *Rules { return r }, Controls: &fakeControls{active: map[string]bool{}}})
	obs := make([]*mcp.Observation, 1024)
	for i := range obs {
		obs[i] = call("u"+fmt.Sprint(i%64), fmt.Sprint("s-", i), pipeline.Allow)
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			m.Observe(ctx, obs[i%len(obs)])
			i++
		}
	})
}
