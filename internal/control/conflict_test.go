package control

import (
	"context"
	"errors"
	"testing"
)

// conflicting is a store on which every write finds its records changed.
type conflicting struct {
	*MemoryStore
	applies int
}

func (s *conflicting) Apply(context.Context, []Change) error {
	s.applies++
	return &ConflictError{Kind: KindApproval, IDs: []string{"apr_x"}}
}

// TestConflicts: two controls on one MemoryStore behave as two replicas
// without invalidation: a change decided on a record the other changed
// meanwhile is decided again on what is stored.
func TestConflicts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		// first runs on a, then second on b, whose view is older.
		first, second func(a, b *Controls, id string) error
		wantCode      string
	}{
		{"consumed on a, consumed on b", func(a, _ *Controls, id string) error {
			_, e := a.Consume(ctx, id, "dec-a")
			return errOf(e)
		}, func(_, b *Controls, id string) error {
			_, e := b.Consume(ctx, id, "dec-b")
			return errOf(e)
		}, CodeConsumed},
		{"denied on a, consumed on b", func(a, _ *Controls, id string) error {
			_, err := a.Resolve(ctx, boss2, id, false, "")
			return err
		}, func(_, b *Controls, id string) error {
			_, e := b.Consume(ctx, id, "dec-b")
			return errOf(e)
		}, CodeDenied},
		{"consumed on a, denied on b", func(a, _ *Controls, id string) error {
			_, e := a.Consume(ctx, id, "dec-a")
			return errOf(e)
		}, func(_, b *Controls, id string) error {
			_, err := b.Resolve(ctx, boss2, id, false, "")
			return err
		}, CodeNotPending},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, nil)
			g := mustGate(t, f.c, mkCall(t, "alice", "delete", nil), GatePending)
			if _, err := f.c.Resolve(ctx, boss, g.Approval.ID, true, ""); err != nil {
				t.Fatal(err)
			}
			b := f.reopen(t) // sees it approved
			if err := tc.first(f.c, b, g.Approval.ID); err != nil {
				t.Fatal(err)
			}
			err := tc.second(f.c, b, g.Approval.ID)
			if ErrorOf(err).Code != tc.wantCode {
				t.Errorf("second change: %v, want %s", err, tc.wantCode)
			}
		})
	}
	t.Run("bounded retries", func(t *testing.T) {
		t.Parallel()
		s := &conflicting{MemoryStore: NewMemoryStore()}
		c, err := New(ctx, s, Options{Authorizer: allowAll})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Quarantine(ctx, boss, QuarantineRequest{Kind: QuarantineServer, Server: "files"})
		if !errors.Is(err, ErrConflict) || ErrorOf(err).Code != CodeUnavailable || s.applies != maxAttempts {
			t.Errorf("after %d applies: %v, want %s after %d", s.applies, err, CodeUnavailable, maxAttempts)
		}
	})
}

// errOf turns a nil *Error into a nil error.
func errOf(e *Error) error {
	if e == nil {
		return nil
	}
	return e
}
