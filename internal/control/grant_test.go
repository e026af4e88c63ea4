package control

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestGrantValidation(t *testing.T) {
	t.Parallel()
	now := newClock().Now()
	ok := func(mod func(*GrantRequest)) GrantRequest {
		r := GrantRequest{Subject: "alice", Tools: []string{"files/read_*"}, Duration: time.Hour,
			Conditions: []Condition{{Path: "path", Op: "prefix", Value: json.RawMessage(`"/tmp/"`)}}}
		mod(&r)
		return r
	}
	tools := make([]string, 33)
	for i := range tools {
		tools[i] = "files/t" + strconv.Itoa(i)
	}
	for _, tc := range []struct {
		name string
		req  GrantRequest
		code string
	}{
		{"subject and group", ok(func(r *GrantRequest) { r.Group = "devs" }), CodeInvalidGrant},
		{"neither subject nor group", ok(func(r *GrantRequest) { r.Subject = "" }), CodeInvalidGrant},
		{"subject too long", ok(func(r *GrantRequest) { r.Subject = strings.Repeat("a", 257) }), CodeInvalidGrant},
		{"no tools", ok(func(r *GrantRequest) { r.Tools = nil }), CodeInvalidGrant},
		{"pattern without server", ok(func(r *GrantRequest) { r.Tools = []string{"read_file"} }), CodeInvalidGrant},
		{"empty pattern", ok(func(r *GrantRequest) { r.Tools = []string{""} }), CodeInvalidGrant},
		{"invalid glob", ok(func(r *GrantRequest) { r.Tools = []string{"files/[a"} }), CodeInvalidGrant},
		{"33 tools", ok(func(r *GrantRequest) { r.Tools = tools }), CodeInvalidGrant},
		{"17 conditions", ok(func(r *GrantRequest) {
			for range 17 {
				r.Conditions = append(r.Conditions, r.Conditions[0])
			}
		}), CodeInvalidGrant},
		{"condition without path", ok(func(r *GrantRequest) { r.Conditions[0].Path = "" }), CodeInvalidGrant},
		{"bad op", ok(func(r *GrantRequest) { r.Conditions[0].Op = "startswith" }), CodeInvalidGrant},
		{"value not JSON", ok(func(r *GrantRequest) { r.Conditions[0].Value = json.RawMessage(`/tmp/`) }), CodeInvalidGrant},
		{"no value", ok(func(r *GrantRequest) { r.Conditions[0].Value = nil }), CodeInvalidGrant},
		{"value over 4096 bytes", ok(func(r *GrantRequest) {
			r.Conditions[0].Value = json.RawMessage(`"` + strings.Repeat("x", 4095) + `"`)
		}), CodeInvalidGrant},
		{"negative duration", ok(func(r *GrantRequest) { r.Duration = -time.Hour }), CodeInvalidGrant},
		{"duration and expires_at", ok(func(r *GrantRequest) { r.ExpiresAt = now.Add(time.Hour) }), CodeInvalidGrant},
		{"neither duration nor expires_at", ok(func(r *GrantRequest) { r.Duration = 0 }), CodeInvalidGrant},
		{"past expires_at", ok(func(r *GrantRequest) { r.Duration, r.ExpiresAt = 0, now.Add(-time.Second) }), CodeInvalidGrant},
		{"expires_at now", ok(func(r *GrantRequest) { r.Duration, r.ExpiresAt = 0, now }), CodeInvalidGrant},
		{"too long", ok(func(r *GrantRequest) { r.Duration = 8*time.Hour + time.Second }), CodeGrantTooLong},
		{"expires_at too far", ok(func(r *GrantRequest) { r.Duration, r.ExpiresAt = 0, now.Add(9*time.Hour) }), CodeGrantTooLong},
		{"bad note", ok(func(r *GrantRequest) { r.Note = "\x00" }), CodeInvalidNote},
		{"self", ok(func(r *GrantRequest) { r.Subject = "boss" }), CodeSelf},
		{"own group", ok(func(r *GrantRequest) { r.Subject, r.Group = "", "ops" }), CodeSelf},
		{"valid", ok(func(*GrantRequest) {}), ""},
		{"valid at the longest", ok(func(r *GrantRequest) { r.Duration = 8 * time.Hour }), ""},
		{"valid by expires_at", ok(func(r *GrantRequest) {
			r.Duration, r.ExpiresAt, r.Subject, r.Group = 0, now.Add(time.Minute), "", "devs"
		}), ""},
		{"value at 4096 bytes", ok(func(r *GrantRequest) {
			r.Conditions[0].Value = json.RawMessage(`"` + strings.Repeat("x", 4094) + `"`)
		}), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, func(o *Options) { o.MaxGrantDuration = 8 * time.Hour })
			g, err := f.c.Grant(context.Background(), boss, tc.req)
			if got := codeOf(err); got != tc.code {
				t.Fatalf("Grant = %v, want %q", err, tc.code)
			}
			granted := len(f.ev.of(EventGranted))
			if tc.code != "" {
				if granted != 0 || g.ID != "" {
					t.Error("a refused grant was recorded")
				}
				return
			}
			if granted != 1 || !validID(g.ID, grantPrefix) || g.Status != GrantActive || g.GrantedBy != "boss" {
				t.Errorf("grant = %+v, %d events", g, granted)
			}
		})
	}
}

func TestGrantsFor(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, nil)
	if got := must(f.c.GrantsFor("alice", []string{"devs"})); got != nil {
		t.Errorf("GrantsFor with no grants = %v", got)
	}
	own, err := f.c.Grant(ctx, boss, GrantRequest{Subject: "alice", Tools: []string{"files/read_*", "db/query"}, Duration: time.Hour,
		Conditions: []Condition{
			{Path: "limit", Op: "lte", Value: json.RawMessage(`100`)},
			{Path: "path", Op: "prefix", Value: json.RawMessage(`"/tmp/"`), Optional: true},
		}})
	if err != nil {
		t.Fatal(err)
	}
	group, err := f.c.Grant(ctx, boss, GrantRequest{Group: "devs", Tools: []string{"files/*"}, Duration: 2 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.c.Grant(ctx, boss, GrantRequest{Subject: "bob", Tools: []string{"files/*"}, Duration: 3 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	now := f.clk.Now()
	want := []any{
		map[string]any{"id": own.ID, "tools": []any{"files/read_*", "db/query"}, "expires_at": now.Add(time.Hour).Format(time.RFC3339),
			"conditions": []any{
				map[string]any{"path": "limit", "op": "lte", "value": json.Number("100")},
				map[string]any{"path": "path", "op": "prefix", "value": "/tmp/", "optional": true},
			}},
		map[string]any{"id": group.ID, "tools": []any{"files/*"}, "expires_at": now.Add(2 * time.Hour).Format(time.RFC3339), "conditions": []any{}},
	}
	if diff := cmp.Diff(want, must(f.c.GrantsFor("alice", []string{"devs", ""}))); diff != "" {
		t.Errorf("GrantsFor alice (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want[1:], must(f.c.GrantsFor("carol", []string{"devs"}))); diff != "" {
		t.Errorf("GrantsFor a devs member (-want +got):\n%s", diff)
	}
	for _, tc := range []struct {
		subject string
		groups  []string
	}{{"carol", nil}, {"carol", []string{"ops"}}, {"", []string{"devs"}}} {
		if got := must(f.c.GrantsFor(tc.subject, tc.groups)); got != nil {
			t.Errorf("GrantsFor(%q, %v) = %v, want none", tc.subject, tc.groups, got)
		}
	}

	revoked, err := f.c.Revoke(ctx, boss2, own.ID, "done")
	if err != nil {
		t.Fatal(err)
	}
	if revoked.Status != GrantRevoked || revoked.RevokedBy != "boss2" || revoked.Note != "done" {
		t.Errorf("revoked grant = %+v", revoked)
	}
	if ev := f.ev.of(EventRevoked); len(ev) != 1 || ev[0].ID != own.ID || ev[0].By != "boss2" {
		t.Errorf("grant.revoked events = %+v", ev)
	}
	if diff := cmp.Diff(want[1:], must(f.c.GrantsFor("alice", []string{"devs"}))); diff != "" {
		t.Errorf("GrantsFor after Revoke (-want +got):\n%s", diff)
	}
	if _, err := f.c.Revoke(ctx, boss2, own.ID, ""); codeOf(err) != CodeGrantNotActive {
		t.Errorf("revoking twice = %v, want %s", err, CodeGrantNotActive)
	}
	for _, id := range []string{"grt_short", newID(approvalPrefix)} {
		if _, err := f.c.Revoke(ctx, boss2, id, ""); codeOf(err) != CodeInvalidID {
			t.Errorf("Revoke(%q) = %v, want %s", id, err, CodeInvalidID)
		}
	}
	if _, err := f.c.Revoke(ctx, boss2, newID(grantPrefix), ""); codeOf(err) != CodeGrantNotFound {
		t.Errorf("revoking an unknown grant = %v, want %s", err, CodeGrantNotFound)
	}

	// After expiry, before any sweep.
	f.clk.Advance(2 * time.Hour)
	if got := must(f.c.GrantsFor("alice", []string{"devs"})); got != nil {
		t.Errorf("GrantsFor after expiry = %v", got)
	}
	if _, err := f.c.Revoke(ctx, boss2, group.ID, ""); codeOf(err) != CodeGrantNotActive {
		t.Errorf("revoking an expired grant = %v, want %s", err, CodeGrantNotActive)
	}
	list, err := f.c.Grants(ctx, boss, false)
	if err != nil || len(list) != 1 || list[0].Subject != "bob" {
		t.Errorf("active grants = %+v, %v; want bob's", list, err)
	}
	all, err := f.c.Grants(ctx, boss, true)
	if err != nil || len(all) != 3 {
		t.Errorf("all grants = %+v, %v", all, err)
	}
}

func TestGrantRefusedByPolicy(t *testing.T) {
	t.Parallel()
	var input map[string]any
	f := newFixture(t, func(o *Options) {
		o.Authorizer = authFunc(func(_ context.Context, in map[string]any) (bool, []Reason, error) {
			input = in
			return false, []Reason{{Code: "grants.too_broad", Message: "no wildcards"}}, nil
		})
	})
	_, err := f.c.Grant(context.Background(), boss, GrantRequest{Subject: "alice", Tools: []string{"*/*"}, Duration: time.Hour})
	if codeOf(err) != "grants.too_broad" {
		t.Fatalf("Grant = %v", err)
	}
	g := input["grant"].(map[string]any)
	if g["subject"] != "alice" || g["duration_seconds"] != json.Number("3600") || input["action"] != ActionGrant {
		t.Errorf("policy input = %v", input)
	}
	if must(f.c.GrantsFor("alice", nil)) != nil {
		t.Error("a refused grant applies")
	}
	if ev := f.ev.of(EventRefused); len(ev) != 1 || ev[0].Note != ActionGrant || ev[0].Code != "grants.too_broad" {
		t.Errorf("control.refused events = %+v", ev)
	}
}
