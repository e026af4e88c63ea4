package control

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestResolveRefusals(t *testing.T) {
	t.Parallel()
	policyReasons := []Reason{{Code: "approvals.role_required", Message: "approvers of files need the files-admin role"}, {Code: "approvals.second", Message: "and more"}}
	for _, tc := range []struct {
		name     string
		approver Approver
		auth     Authorizer
		noPolicy bool
		id       func(pending string) string
		note     string
		code     string
		status   int
		reasons  []Reason
		refused  bool // a control.refused event is recorded
	}{
		{name: "unauthenticated", approver: Approver{}, code: CodeUnauthenticated, status: http.StatusUnauthorized},
		{name: "self even when the policy allows", approver: Approver{ID: "alice"}, code: CodeSelf, status: http.StatusForbidden, refused: true},
		{name: "policy refuses with reasons", approver: boss,
			auth: authFunc(func(context.Context, map[string]any) (bool, []Reason, error) { return false, policyReasons, nil }),
			code: "approvals.role_required", status: http.StatusForbidden, reasons: policyReasons, refused: true},
		{name: "policy refuses without reasons", approver: boss,
			auth: authFunc(func(context.Context, map[string]any) (bool, []Reason, error) { return false, nil, nil }),
			code: CodeNotAuthorized, status: http.StatusForbidden, refused: true},
		{name: "policy fails", approver: boss,
			auth: authFunc(func(context.Context, map[string]any) (bool, []Reason, error) { return true, nil, errors.New("eval") }),
			code: CodeUnavailable, status: http.StatusServiceUnavailable},
		{name: "no policy", approver: boss, noPolicy: true, code: CodeNotAuthorized, status: http.StatusForbidden, refused: true},
		{name: "malformed id", approver: boss, id: func(string) string { return "apr_../../etc" }, code: CodeInvalidID, status: http.StatusBadRequest, refused: true},
		{name: "unknown id", approver: boss, id: func(string) string { return newID(approvalPrefix) }, code: CodeNotFound, status: http.StatusNotFound, refused: true},
		{name: "note too long", approver: boss, note: strings.Repeat("x", 1025), code: CodeInvalidNote, status: http.StatusBadRequest, refused: true},
		{name: "note not UTF-8", approver: boss, note: "ok \xff", code: CodeInvalidNote, status: http.StatusBadRequest, refused: true},
		{name: "note with control characters", approver: boss, note: "ok\x1b[31m", code: CodeInvalidNote, status: http.StatusBadRequest, refused: true},
	} {
		for _, approve := range []bool{true, false} {
			t.Run(tc.name+map[bool]string{true: "/approve", false: "/deny"}[approve], func(t *testing.T) {
				t.Parallel()
				f := newFixture(t, func(o *Options) {
					switch {
					case tc.noPolicy:
						o.Authorizer = nil
					case tc.auth != nil:
						o.Authorizer = tc.auth
					}
				})
				call := mkCall(t, "alice", "delete", nil)
				id := f.pending(t, call)
				target := id
				if tc.id != nil {
					target = tc.id(id)
				}
				_, err := f.c.Resolve(context.Background(), tc.approver, target, approve, tc.note)
				var e *Error
				if !errors.As(err, &e) {
					t.Fatalf("Resolve = %v, want an *Error", err)
				}
				if e.Code != tc.code || e.Status != tc.status {
					t.Errorf("Resolve = %s (%d), want %s (%d)", e.Code, e.Status, tc.code, tc.status)
				}
				if diff := cmp.Diff(tc.reasons, e.Reasons); diff != "" {
					t.Errorf("reasons (-want +got):\n%s", diff)
				}
				refusals := f.ev.of(EventRefused)
				if got := len(refusals) == 1; got != tc.refused {
					t.Fatalf("control.refused events = %+v, want one: %v", refusals, tc.refused)
				}
				if tc.refused && (refusals[0].Code != tc.code || refusals[0].By != tc.approver.ID) {
					t.Errorf("control.refused = %+v", refusals[0])
				}
				// Nothing was resolved: the call still waits.
				mustGate(t, f.c, call, GatePending)
				if n := len(f.ev.of(EventApproved)) + len(f.ev.of(EventDenied)); n != 0 {
					t.Errorf("%d resolutions recorded", n)
				}
			})
		}
	}
}

func TestResolve(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var seen []map[string]any
	f := newFixture(t, func(o *Options) {
		o.URL = func(id string) string { return "https://verdict.example/approvals/" + id }
		o.Authorizer = authFunc(func(_ context.Context, in map[string]any) (bool, []Reason, error) {
			seen = append(seen, in)
			return true, nil, nil
		})
	})
	call := mkCall(t, "alice", "delete", map[string]any{"path": "/srv"})
	id := f.pending(t, call)
	created := f.clk.Now()
	f.clk.Advance(10 * time.Minute)

	v, err := f.c.Resolve(ctx, boss, id, true, "checked with\talice\n")
	if err != nil {
		t.Fatal(err)
	}
	if v.Status != Approved || v.ResolvedBy != "boss" || v.Note != "checked with\talice\n" || v.URL != "https://verdict.example/approvals/"+id {
		t.Errorf("resolved view = %+v", v)
	}
	if want := created.Add(25 * time.Minute); !v.ExpiresAt.Equal(want) {
		t.Errorf("approved until %s, want a fresh TTL: %s", v.ExpiresAt, want)
	}
	ev := f.ev.of(EventApproved)
	if len(ev) != 1 || ev[0].By != "boss" || ev[0].Note != v.Note || ev[0].DecisionID != call.DecisionID || ev[0].ID != id {
		t.Errorf("approval.approved events = %+v", ev)
	}
	// The policy saw the action, the approver and the approval.
	if len(seen) != 1 || seen[0]["action"] != ActionApprove || seen[0]["approval"].(map[string]any)["subject"] != "alice" ||
		seen[0]["approver"].(map[string]any)["id"] != "boss" {
		t.Errorf("policy input = %v", seen)
	}
	// Still usable 24 minutes after it was asked for: the fresh TTL counts.
	f.clk.Advance(14 * time.Minute)
	mustGate(t, f.c, call, GateApproved)

	if _, err := f.c.Resolve(ctx, boss2, id, true, ""); codeOf(err) != CodeNotPending {
		t.Errorf("approving again = %v, want %s", err, CodeNotPending)
	}
	if n := len(f.ev.of(EventRefused)); n != 1 {
		t.Errorf("%d control.refused events, want 1", n)
	}

	deny := f.pending(t, mkCall(t, "alice", "wipe", nil))
	if _, err := f.c.Resolve(ctx, boss, deny, false, "no"); err != nil {
		t.Fatal(err)
	}
	if ev := f.ev.of(EventDenied); len(ev) != 1 || ev[0].By != "boss" || ev[0].Note != "no" || ev[0].DecisionID != "dec-alice-wipe" {
		t.Errorf("approval.denied events = %+v", ev)
	}

	// Denying an approved approval that was not used yet takes it back:
	// the call is refused, and it cannot be denied twice.
	if _, err := f.c.Resolve(ctx, boss2, id, false, "approved by mistake"); err != nil {
		t.Fatalf("taking back an approval: %v", err)
	}
	if g := f.c.Gate(ctx, call); g.Outcome != GateRefused || g.Reason.Code != CodeDenied {
		t.Errorf("call after the approval was taken back = %+v, want refused %s", g, CodeDenied)
	}
	if _, err := f.c.Resolve(ctx, boss2, id, false, ""); codeOf(err) != CodeNotPending {
		t.Errorf("denying twice = %v, want %s", err, CodeNotPending)
	}

	expiring := f.pending(t, mkCall(t, "alice", "late", nil))
	f.clk.Advance(16 * time.Minute)
	if _, err := f.c.Resolve(ctx, boss, expiring, true, ""); codeOf(err) != CodeExpired {
		t.Errorf("resolving an expired approval = %v, want %s", err, CodeExpired)
	}
}

// The sweep may delete a record while the policy decides on it: the
// action then finds nothing, and does not panic.
func TestActionOnRecordSweptMeanwhile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sweepDuring := func(fp **fixture, action string) Authorizer {
		return authFunc(func(_ context.Context, in map[string]any) (bool, []Reason, error) {
			f := *fp
			// The first sweep expires the record, the second deletes it.
			for i := 0; in["action"] == action && i < 2; i++ {
				f.clk.Advance(72 * time.Hour)
				if err := f.c.Sweep(ctx); err != nil {
					return false, nil, err
				}
			}
			return true, nil, nil
		})
	}
	t.Run("resolve", func(t *testing.T) {
		t.Parallel()
		var f *fixture
		f = newFixture(t, func(o *Options) { o.Authorizer = sweepDuring(&f, ActionApprove) })
		id := f.pending(t, mkCall(t, "alice", "a", nil))
		if _, err := f.c.Resolve(ctx, boss, id, true, ""); codeOf(err) != CodeNotFound {
			t.Errorf("Resolve = %v, want %s", err, CodeNotFound)
		}
	})
	t.Run("revoke", func(t *testing.T) {
		t.Parallel()
		var f *fixture
		f = newFixture(t, func(o *Options) { o.Authorizer = sweepDuring(&f, ActionRevoke) })
		g, err := f.c.Grant(ctx, boss, GrantRequest{Subject: "alice", Tools: []string{"files/*"}, Duration: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.c.Revoke(ctx, boss, g.ID, ""); codeOf(err) != CodeGrantNotFound {
			t.Errorf("Revoke = %v, want %s", err, CodeGrantNotFound)
		}
	})
	t.Run("release", func(t *testing.T) {
		t.Parallel()
		var f *fixture
		f = newFixture(t, func(o *Options) { o.Authorizer = sweepDuring(&f, ActionRelease) })
		q, err := f.c.Quarantine(ctx, boss, QuarantineRequest{Kind: QuarantineServer, Server: "files", Duration: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.c.Release(ctx, boss, q.ID, ""); codeOf(err) != CodeQuarNotFound {
			t.Errorf("Release = %v, want %s", err, CodeQuarNotFound)
		}
	})
}
