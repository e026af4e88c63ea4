package session_test

import (
	"context"
	"runtime"
	"strconv"
	"testing"

	"github.com/verdictpdp/verdict/internal/mcp"
	"github.com/verdictpdp/verdict/internal/pipeline"
	"github.com/verdictpdp/verdict/internal/session"
)

// BenchmarkSessionMemory reports the heap one session holds: 100,000
// sessions of 10,000 subjects, each with a confidential read of personal
// data and three tools called.
func BenchmarkSessionMemory(b *testing.B) {
	ctx := context.Background()
	const n = 100_000
	for b.Loop() {
		b.StopTimer()
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		st, err := session.New(session.Options{MaxSessions: n, MaxPerSubject: 64})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		for i := range n {
			sub, sess := "user-"+strconv.Itoa(i%10_000), "session-"+strconv.Itoa(i)
			for _, tool := range []string{"get_contact", "search_contacts", "list_issues"} {
				st.Observe(ctx, &mcp.Observation{Stage: mcp.StageCall, Tenant: "acme", Subject: sub, Session: sess,
					Method: mcp.MethodToolsCall, Server: "crm", Target: tool, Verdict: pipeline.Allow,
					Classification: "confidential", Categories: []string{"personal_data"}})
			}
		}
		b.StopTimer()
		runtime.GC()
		runtime.ReadMemStats(&after)
		if s := st.Stats(); s.Sessions != n {
			b.Fatalf("%d sessions held", s.Sessions)
		}
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/session")
		runtime.KeepAlive(st)
		b.StartTimer()
	}
}
