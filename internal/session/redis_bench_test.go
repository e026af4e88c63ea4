package session_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/verdictpdp/verdict/internal/mcp"
	"github.com/verdictpdp/verdict/internal/pipeline"
	"github.com/verdictpdp/verdict/internal/redistest"
	"github.com/verdictpdp/verdict/internal/session"
)

// sessionStore is what the MCP decider does with session state on one
// call: read it, then record the call.
type sessionStore interface {
	mcp.SessionState
	mcp.Observer
}

// BenchmarkSessionCall is one call's session work (SessionInput, then
// recording an allowed read) on one goroutine, in memory and on a local
// Redis, over n sessions of one subject each.
func BenchmarkSessionCall(b *testing.B) {
	srv := redistest.Start(b)
	ctx := context.Background()
	mem, err := session.New(session.Options{})
	if err != nil {
		b.Fatal(err)
	}
	red := newRedis(b, srv, "", session.Options{}, nil)
	for _, store := range []struct {
		name string
		st   sessionStore
		rec  func(*mcp.Observation) error
	}{
		{"memory", mem, func(ob *mcp.Observation) error { mem.Observe(ctx, ob); return nil }},
		{"redis", red, func(ob *mcp.Observation) error { return red.Record(ctx, ob) }},
	} {
		for _, n := range []int{1, 1000} {
			b.Run(store.name+"/"+strconv.Itoa(n), func(b *testing.B) {
				b.ReportAllocs()
				obs := make([]*mcp.Observation, n)
				for i := range obs {
					obs[i] = &mcp.Observation{Stage: mcp.StageCall, Tenant: "acme", Subject: "user-" + strconv.Itoa(i), Session: "s",
						Method: mcp.MethodToolsCall, Server: "crm", Target: "get_contact", Verdict: pipeline.Allow,
						Classification: "confidential", Categories: []string{"personal_data"}}
				}
				i := 0
				for b.Loop() {
					ob := obs[i%n]
					i++
					if _, err := store.st.SessionInput(ctx, ob.Tenant, ob.Subject, ob.Session); err != nil {
						b.Fatal(err)
					}
					if err := store.rec(ob); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
