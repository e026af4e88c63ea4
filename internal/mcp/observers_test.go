package mcp_test

import (
	"context"
	"errors"
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
	t.Helper()
	return func(m map[string]any, err error) map[string]any {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
}

type recordingObserver struct {
	countingObserver
	err      error
	recorded int
}

func (r *recordingObserver) Record(context.Context, *mcp.Observation) error {
	r.recorded++
	return r.err
}

// TestObserversRecord: Record reaches the members that record, in order,
// and stops at the first failure.
func TestObserversRecord(t *testing.T) {
	t.Parallel()
	down := errors.New("down")
	plain, first, second := &countingObserver{}, &recordingObserver{err: down}, &recordingObserver{}
	if err := (mcp.Observers{plain, first, second}).Record(context.Background(), &mcp.Observation{}); !errors.Is(err, down) {
		t.Fatalf("Record = %v, want the first member's error", err)
	}
	if first.recorded != 1 || second.recorded != 0 || plain.n != 0 {
		t.Fatalf("recorded %d, %d, observed %d: want the first only", first.recorded, second.recorded, plain.n)
	}
	first.err = nil
	if err := (mcp.Observers{plain, first, second}).Record(context.Background(), &mcp.Observation{}); err != nil || second.recorded != 1 {
		t.Fatalf("Record = %v, second recorded %d", err, second.recorded)
	}
	var _ mcp.SessionRecorder = mcp.Observers{}
}
