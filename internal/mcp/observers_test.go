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

func (s *sessionObserver) SessionInput(_, _, session string) map[string]any {
	if session == "" {
		return nil
	}
	return s.state
}

func TestObservers(t *testing.T) {
	t.Parallel()
	plain, first, second := &countingObserver{}, &sessionObserver{state: map[string]any{"calls": 1}}, &sessionObserver{state: map[string]any{"calls": 2}}
	obs := mcp.Observers{plain, nil, first, second}
	obs.Observe(context.Background(), &mcp.Observation{Subject: "alice"})
	if plain.n != 1 || first.n != 1 || second.n != 1 {
		t.Errorf("observed %d, %d, %d times; want each once", plain.n, first.n, second.n)
	}
	if st := obs.SessionInput("acme", "alice", "s-1"); st["calls"] != 1 {
		t.Errorf("SessionInput = %v, want the first session observer's", st)
	}
	if st := obs.SessionInput("acme", "alice", ""); st != nil {
		t.Errorf("SessionInput without a session = %v", st)
	}
	if st := (mcp.Observers{plain}).SessionInput("acme", "alice", "s-1"); st != nil {
		t.Errorf("no session observer: %v", st)
	}
	var _ mcp.SessionState = mcp.Observers{}
}
