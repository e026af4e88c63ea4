package control

import (
	"context"
	"strings"
	"testing"
)

// FuzzPresentedID: whatever id a caller presents, Gate does not panic and
// lets the call through only on the approved approval of that very call
// (or, presenting none, on its binding).
func FuzzPresentedID(f *testing.F) {
	fx := newFixture(f, nil)
	call := mkCall(f, "alice", "delete", map[string]any{"path": "/srv"})
	approved := fx.approved(f, call)
	other := fx.approved(f, mkCall(f, "alice", "delete", map[string]any{"path": "/etc"}))
	pending := fx.pending(f, mkCall(f, "alice", "wipe", nil))
	for _, seed := range []string{approved, other, pending, "", "apr_", "apr_" + strings.Repeat("a", 26),
		strings.ToUpper(approved), approved + "a", approved[:len(approved)-1], "grt_" + approved[4:], approved + "\x00", "apr_\u00e9" + approved[6:]} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, id string) {
		c := call
		c.PresentedID = id
		g := fx.c.Gate(context.Background(), c)
		switch g.Outcome {
		case GateApproved:
			if (id != approved && id != "") || g.Approval == nil || g.Approval.ID != approved {
				t.Fatalf("presented %q: approved with %+v", id, g.Approval)
			}
		case GatePending, GateRefused:
			if id == approved || id == "" {
				t.Fatalf("the approved approval was not honoured: %+v", g)
			}
			if g.Outcome == GateRefused && g.Reason.Code == "" {
				t.Fatal("refused without a code")
			}
		default:
			t.Fatalf("presented %q: outcome %d", id, g.Outcome)
		}
	})
}
