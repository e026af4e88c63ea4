package mcp_test

import (
	"context"
	"testing"

	"github.com/verdictpdp/verdict/internal/mcp"
)

type countingObserver struct{ n int }

func (c *countingObserver) Observe(context.Context, *mcp.Observation) { c.n++ }

type sessionObserver struct {
	countingObserver
	state map[string]any
}

func (s *sessionObserver) SessionInput(_ context.Context, _, _, session string) (map[string]any, error) {
	if session == "" {
		return nil, nil
	}
	return s.state, nil
}

func TestObservers(t *testing.T) {
	t.Parallel()
	plain, first, second := &countingObserver{}, &sessionObserver{state: map[string]any{"calls": 1}}, &sessionObserver{state: map[string]any{"calls": 2}}
	ctx := context.Background()
	obs := mcp.Observers{plain, nil, first, second}
	obs.Observe(context.Background(), &mcp.Observation{Subject: "alice"})
	if plain.n != 1 || first.n != 1 || second.n != 1 {
		t.Errorf("observed %d, %d, %d times; want each once", plain.n, first.n, second.n)
	}
	if st := must(t)(obs.SessionInput(ctx, "acme", "alice", "s-1")); st["calls"] != 1 {
		t.Errorf("SessionInput = %v, want the first session observer's", st)
	}
	if st := must(t)(obs.SessionInput(ctx, "acme", "alice", "")); st != nil {
		t.Errorf("SessionInput without a session = %v", st)
	}
	if st := must(t)((mcp.Observers{plain}).SessionInput(ctx, "acme", "alice", "s-1")); st != nil {
		t.Errorf("no session observer: %v", st)
	}
	var _ mcp.SessionState = mcp.Observers{}
}

func must(t *testing.T) func(map[string]any, error) map[string]any {
	return func(m map[string]any, err error) map[string]any {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
}
