package control

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestQuarantineValidation(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("s", 257)
	for _, tc := range []struct {
		name string
		req  QuarantineRequest
		code string
	}{
		{"server", QuarantineRequest{Kind: QuarantineServer, Server: "files"}, ""},
		{"tool", QuarantineRequest{Kind: QuarantineTool, Server: "files", Tool: "delete"}, ""},
		{"subject", QuarantineRequest{Kind: QuarantineSubject, Subject: "mallory"}, ""},
		{"timed", QuarantineRequest{Kind: QuarantineServer, Server: "files", Duration: time.Hour}, ""},
		{"no kind", QuarantineRequest{Server: "files"}, CodeInvalidQuar},
		{"unknown kind", QuarantineRequest{Kind: "tenant", Server: "files"}, CodeInvalidQuar},
		{"server without name", QuarantineRequest{Kind: QuarantineServer}, CodeInvalidQuar},
		{"server with tool", QuarantineRequest{Kind: QuarantineServer, Server: "files", Tool: "delete"}, CodeInvalidQuar},
		{"server with subject", QuarantineRequest{Kind: QuarantineServer, Server: "files", Subject: "bob"}, CodeInvalidQuar},
		{"tool without server", QuarantineRequest{Kind: QuarantineTool, Tool: "delete"}, CodeInvalidQuar},
		{"tool without tool", QuarantineRequest{Kind: QuarantineTool, Server: "files"}, CodeInvalidQuar},
		{"tool with subject", QuarantineRequest{Kind: QuarantineTool, Server: "files", Tool: "delete", Subject: "bob"}, CodeInvalidQuar},
		{"subject without name", QuarantineRequest{Kind: QuarantineSubject}, CodeInvalidQuar},
		{"subject with server", QuarantineRequest{Kind: QuarantineSubject, Subject: "bob", Server: "files"}, CodeInvalidQuar},
		{"session", QuarantineRequest{Kind: QuarantineSession, Subject: "mallory", Session: "s-1"}, ""},
		{"session without subject", QuarantineRequest{Kind: QuarantineSession, Session: "s-1"}, CodeInvalidQuar},
		{"session without session", QuarantineRequest{Kind: QuarantineSession, Subject: "mallory"}, CodeInvalidQuar},
		{"session with server", QuarantineRequest{Kind: QuarantineSession, Subject: "mallory", Session: "s-1", Server: "files"}, CodeInvalidQuar},
		{"subject with session", QuarantineRequest{Kind: QuarantineSubject, Subject: "mallory", Session: "s-1"}, CodeInvalidQuar},
		{"tool with session", QuarantineRequest{Kind: QuarantineTool, Server: "files", Tool: "delete", Session: "s-1"}, CodeInvalidQuar},
		{"session too long", QuarantineRequest{Kind: QuarantineSession, Subject: "mallory", Session: long}, CodeInvalidQuar},
		{"name too long", QuarantineRequest{Kind: QuarantineServer, Server: long}, CodeInvalidQuar},
		{"negative duration", QuarantineRequest{Kind: QuarantineServer, Server: "files", Duration: -time.Second}, CodeInvalidQuar},
		{"bad note", QuarantineRequest{Kind: QuarantineServer, Server: "files", Note: "\x7f"}, CodeInvalidNote},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, nil)
			q, err := f.c.Quarantine(context.Background(), boss, tc.req)
			if codeOf(err) != tc.code {
				t.Fatalf("Quarantine = %v, want %q", err, tc.code)
			}
			if tc.code != "" {
				if f.c.Quarantining() || len(f.ev.of(EventQuarantined)) != 0 {
					t.Error("a refused quarantine applies")
				}
				return
			}
			if !q.Active || !validID(q.ID, quarantinePrefix) || q.CreatedBy != "boss" || !f.c.Quarantining() {
				t.Errorf("quarantine = %+v", q)
			}
		})
	}
	if _, err := newFixture(t, nil).c.Quarantine(context.Background(), Approver{}, QuarantineRequest{Kind: QuarantineSubject, Subject: "x"}); codeOf(err) != CodeUnauthenticated {
		t.Errorf("anonymous Quarantine = %v", err)
	}
}

func TestQuarantined(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, nil)
	ids := map[string]string{}
	for name, r := range map[string]QuarantineRequest{
		"subject": {Kind: QuarantineSubject, Subject: "mallory"},
		"server":  {Kind: QuarantineServer, Server: "shell"},
		"tool":    {Kind: QuarantineTool, Server: "files", Tool: "delete"},
		"session": {Kind: QuarantineSession, Subject: "sally", Session: "s-1"},
	} {
		q, err := f.c.Quarantine(ctx, boss, r)
		if err != nil {
			t.Fatal(err)
		}
		ids[name] = q.ID
	}
	for _, tc := range []struct {
		subject, server, tool, session string
		want                           string
	}{
		{"sally", "files", "read", "s-1", "session"},
		{"sally", "", "", "s-1", "session"},
		{"sally", "files", "read", "s-2", ""},
		{"sally", "files", "read", "", ""},
		{"s-1", "files", "read", "sally", ""},
		{"", "files", "read", "s-1", ""},
		{"mallory", "files", "read", "s-9", "subject"},

		{"mallory", "", "", "", "subject"},
		{"alice", "shell", "exec", "", "server"},
		{"alice", "shell", "", "", "server"},
		{"alice", "files", "delete", "", "tool"},
		{"alice", "files", "read", "", ""},
		{"alice", "files", "", "", ""},
		{"alice", "db", "delete", "", ""},
		{"", "", "delete", "", ""},
		{"", "files", "delete", "", "tool"},
	} {
		q := must(f.c.Quarantined(tc.subject, tc.server, tc.tool, tc.session))
		switch {
		case tc.want == "" && q != nil:
			t.Errorf("Quarantined(%q, %q, %q, %q) = %s, want none", tc.subject, tc.server, tc.tool, tc.session, q.ID)
		case tc.want != "" && (q == nil || q.ID != ids[tc.want]):
			t.Errorf("Quarantined(%q, %q, %q, %q) = %v, want the %s quarantine", tc.subject, tc.server, tc.tool, tc.session, q, tc.want)
		}
	}

	// Asking again answers the same quarantine, even while a broader one
	// (the tool's server) also applies.
	if _, err := f.c.Quarantine(ctx, boss, QuarantineRequest{Kind: QuarantineServer, Server: "files"}); err != nil {
		t.Fatal(err)
	}
	again, err := f.c.Quarantine(ctx, boss2, QuarantineRequest{Kind: QuarantineTool, Server: "files", Tool: "delete"})
	if err != nil || again.ID != ids["tool"] {
		t.Errorf("asking again = %s, %v; want %s", again.ID, err, ids["tool"])
	}
	if n := len(f.ev.of(EventQuarantined)); n != 5 {
		t.Errorf("%d quarantine.created events, want 5", n)
	}

	released, err := f.c.Release(ctx, boss2, ids["subject"], "cleared")
	if err != nil || released.Active || released.ReleasedBy != "boss2" {
		t.Fatalf("Release = %+v, %v", released, err)
	}
	if q := must(f.c.Quarantined("mallory", "db", "read", "")); q != nil {
		t.Errorf("released quarantine still applies: %+v", q)
	}
	if ev := f.ev.of(EventReleased); len(ev) != 1 || ev[0].By != "boss2" || ev[0].Note != "cleared" || ev[0].ID != ids["subject"] {
		t.Errorf("quarantine.released events = %+v", ev)
	}
	if _, err := f.c.Release(ctx, boss2, ids["subject"], ""); codeOf(err) != CodeQuarNotActive {
		t.Errorf("releasing twice = %v, want %s", err, CodeQuarNotActive)
	}
	if _, err := f.c.Release(ctx, boss2, newID(quarantinePrefix), ""); codeOf(err) != CodeQuarNotFound {
		t.Errorf("releasing an unknown quarantine = %v", err)
	}
	if _, err := f.c.Release(ctx, boss2, ids["tool"][:10], ""); codeOf(err) != CodeInvalidID {
		t.Errorf("releasing a malformed id = %v", err)
	}
	active, err := f.c.Quarantines(ctx, boss, false)
	if err != nil || len(active) != 4 {
		t.Errorf("active quarantines = %d, %v; want 4", len(active), err)
	}
}

func TestQuarantinedNil(t *testing.T) {
	t.Parallel()
	var c *Controls
	if must(c.Quarantined("alice", "files", "delete", "")) != nil || c.Quarantining() || must(c.GrantsFor("alice", nil)) != nil {
		t.Error("nil controls stop or grant something")
	}
}

// TestContain: Verdict's own quarantine needs no approvals policy, is
// audited as created by the system approver with its rule, and is not set
// twice while active.
func TestContain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, nil)
	f.c.opts.Authorizer = nil // no policy: a person could not quarantine
	r := QuarantineRequest{Kind: QuarantineSession, Subject: "mallory", Session: "s-1", Rule: "leaky", Note: "findings 12 >= 10", Duration: time.Minute}
	q, created, err := f.c.Contain(ctx, "verdict:containment", r)
	if err != nil || !created || q.CreatedBy != "verdict:containment" || q.Rule != "leaky" || q.ExpiresAt.IsZero() {
		t.Fatalf("Contain = %+v, %v, %v", q, created, err)
	}
	if got := must(f.c.Quarantined("mallory", "files", "read", "s-1")); got == nil || got.ID != q.ID {
		t.Errorf("the session is not quarantined: %v", got)
	}
	if got := must(f.c.Quarantined("mallory", "files", "read", "s-2")); got != nil {
		t.Errorf("another session is quarantined: %v", got)
	}
	again, created, err := f.c.Contain(ctx, "verdict:containment", r)
	if err != nil || created || again.ID != q.ID {
		t.Errorf("containing again = %+v, %v, %v; want the same, not created", again, created, err)
	}
	ev := f.ev.of(EventQuarantined)
	if len(ev) != 1 || ev[0].By != "verdict:containment" || ev[0].Note != r.Note || ev[0].Detail.(*Quarantine).Rule != "leaky" {
		t.Errorf("quarantine.created events = %+v", ev)
	}
	if _, _, err := f.c.Contain(ctx, "", r); codeOf(err) != CodeUnauthenticated {
		t.Errorf("Contain without a system id = %v", err)
	}
	// A person's request never carries a rule.
	p, err := f.c.Quarantine(ctx, boss, QuarantineRequest{Kind: QuarantineSubject, Subject: "x", Rule: "forged"})
	if err == nil && p.Rule != "" {
		t.Errorf("an approver set the rule: %+v", p)
	}
}
