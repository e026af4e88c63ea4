package session_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/internal/mcp"
	"github.com/verdictpdp/verdict/internal/pipeline"
	"github.com/verdictpdp/verdict/internal/session"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newStore(t *testing.T, o session.Options) (*session.Store, *clock) {
	t.Helper()
	c := &clock{t: time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)}
	o.Now = c.now
	st, err := session.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return st, c
}

func read(tenant, subject, sess, server, target, class string, cats ...string) *mcp.Observation {
	return &mcp.Observation{Stage: mcp.StageCall, Tenant: tenant, Subject: subject, Session: sess,
		Method: mcp.MethodToolsCall, Server: server, Target: target, Verdict: pipeline.Allow,
		Classification: class, Categories: cats}
}

func TestRecords(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		obs  []*mcp.Observation
		// want is input.session's members for acme/alice/s1 (nil: none).
		want map[string]any
	}{
		{name: "nothing recorded", want: nil},
		{
			name: "an allowed read records class, categories and the tool",
			obs:  []*mcp.Observation{read("acme", "alice", "s1", "crm", "get", "confidential", "personal_data")},
			want: map[string]any{"calls": 1, "classification": "confidential", "classification_source": "crm/get",
				"categories": map[string]any{"personal_data": "crm/get"}, "tools": map[string]any{"crm/get": 1}},
		},
		{
			name: "the highest class wins and keeps its first source",
			obs: []*mcp.Observation{
				read("acme", "alice", "s1", "web", "fetch", "public"),
				read("acme", "alice", "s1", "ehr", "chart", "restricted", "phi"),
				read("acme", "alice", "s1", "crm", "get", "confidential", "phi"),
			},
			want: map[string]any{"calls": 3, "classification": "restricted", "classification_source": "ehr/chart",
				"categories": map[string]any{"phi": "ehr/chart"},
				"tools":      map[string]any{"web/fetch": 1, "ehr/chart": 1, "crm/get": 1}},
		},
		{
			name: "denied, failed, approval-pending calls and claimed subjects record nothing",
			obs: func() []*mcp.Observation {
				d := read("acme", "alice", "s1", "crm", "get", "confidential")
				d.Verdict = pipeline.Deny
				f := read("acme", "alice", "s1", "crm", "get", "confidential")
				f.Failed = true
				a := read("acme", "alice", "s1", "crm", "get", "confidential")
				a.Verdict = pipeline.RequireApproval
				u := read("acme", "alice", "s1", "crm", "get", "confidential")
				u.Unverified = true
				return []*mcp.Observation{d, f, a, u}
			}(),
			want: nil,
		},
		{
			name: "lists and anonymous callers record nothing",
			obs: func() []*mcp.Observation {
				l := read("acme", "alice", "s1", "crm", "", "")
				l.Method, l.Stage = mcp.MethodToolsList, mcp.StageList
				anon := read("acme", "", "s1", "crm", "get", "confidential")
				return []*mcp.Observation{l, anon}
			}(),
			want: nil,
		},
		{
			name: "a question decided as the call records (fail closed)",
			obs: func() []*mcp.Observation {
				q := read("acme", "alice", "s1", "crm", "get", "confidential")
				q.Question = true
				return []*mcp.Observation{q}
			}(),
			want: map[string]any{"calls": 1, "classification": "confidential", "classification_source": "crm/get", "tools": map[string]any{"crm/get": 1}},
		},
		{
			name: "findings of delivered results add up",
			obs: []*mcp.Observation{
				{Stage: mcp.StageResult, Tenant: "acme", Subject: "alice", Session: "s1", Verdict: pipeline.Allow, Findings: map[string]int{"email": 2, "secret": 0}},
				{Stage: mcp.StageResult, Tenant: "acme", Subject: "alice", Session: "s1", Verdict: pipeline.Allow, Findings: map[string]int{"email": 1}},
				{Stage: mcp.StageResult, Tenant: "acme", Subject: "alice", Session: "s1", Verdict: pipeline.Deny, Findings: map[string]int{"secret": 5}},
			},
			want: map[string]any{"calls": 0, "findings": map[string]any{"email": 3}},
		},
		{
			name: "other sessions, subjects and tenants are not this one",
			obs: []*mcp.Observation{
				read("acme", "alice", "s2", "crm", "get", "confidential"),
				read("acme", "bob", "s1", "crm", "get", "confidential"),
				read("globex", "alice", "s1", "crm", "get", "confidential"),
				read("acme", "alice", "", "crm", "get", "confidential"),
			},
			want: nil,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, _ := newStore(t, session.Options{})
			for _, ob := range tc.obs {
				st.Observe(ctx, ob)
			}
			got := sessionInput(t, st, "acme", "alice", "s1")
			delete(got, "started_at")
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("got  %v\nwant %v", got, tc.want)
			}
		})
	}
}

func TestTTL(t *testing.T) {
	ctx := context.Background()
	st, c := newStore(t, session.Options{TTL: time.Minute})
	st.Observe(ctx, read("acme", "alice", "s1", "crm", "get", "confidential"))
	c.t = c.t.Add(59 * time.Second)
	if sessionInput(t, st, "acme", "alice", "s1") == nil {
		t.Fatal("forgotten before its TTL")
	}
	// Activity keeps it: the TTL runs from the last call.
	st.Observe(ctx, read("acme", "alice", "s1", "web", "fetch", "public"))
	c.t = c.t.Add(59 * time.Second)
	if sessionInput(t, st, "acme", "alice", "s1") == nil {
		t.Fatal("forgotten although active")
	}
	c.t = c.t.Add(2 * time.Second)
	if got := sessionInput(t, st, "acme", "alice", "s1"); got != nil {
		t.Fatalf("idle past its TTL: %v", got)
	}
	// An expired session starts afresh.
	st.Observe(ctx, read("acme", "alice", "s1", "web", "fetch", "public"))
	if got := sessionInput(t, st, "acme", "alice", "s1"); got["classification"] != "public" || got["calls"] != 1 {
		t.Fatalf("after expiry: %v", got)
	}
	c.t = c.t.Add(2 * time.Minute)
	st.Sweep()
	if s := st.Stats(); s.Sessions != 0 || s.Expired != 1 {
		t.Fatalf("after sweep: %+v", s)
	}
}

// TestEvictionKeepsReads: a caller opening many sessions cannot make one
// that read restricted data forget it; the subject's overflow record
// carries it to every session.
func TestEvictionKeepsReads(t *testing.T) {
	ctx := context.Background()
	st, c := newStore(t, session.Options{MaxPerSubject: 4})
	st.Observe(ctx, read("acme", "mallory", "tainted", "ehr", "chart", "restricted", "phi"))
	for i := range 10 {
		c.t = c.t.Add(time.Second)
		st.Observe(ctx, read("acme", "mallory", fmt.Sprintf("s%d", i), "web", "fetch", "public"))
	}
	got := sessionInput(t, st, "acme", "mallory", "tainted")
	if got["classification"] != "restricted" || got["categories"] == nil {
		t.Fatalf("the evicted session forgot its read: %v", got)
	}
	if got := sessionInput(t, st, "acme", "mallory", "s9"); got["classification"] != "restricted" {
		t.Fatalf("the subject's other sessions do not carry the folded read: %v", got)
	}
	if got := sessionInput(t, st, "acme", "alice", "tainted"); got != nil {
		t.Fatalf("another subject sees mallory's reads: %v", got)
	}
	if s := st.Stats(); s.Sessions > 5 || s.Folded == 0 {
		t.Fatalf("bounds not kept: %+v", s)
	}
}

func TestGlobalBound(t *testing.T) {
	ctx := context.Background()
	st, c := newStore(t, session.Options{MaxSessions: 8})
	for i := range 20 {
		c.t = c.t.Add(time.Second)
		st.Observe(ctx, read("acme", fmt.Sprintf("u%d", i), "", "crm", "get", "internal"))
	}
	s := st.Stats()
	if s.Sessions != 8 || s.Evicted != 12 {
		t.Fatalf("stats %+v, want 8 sessions and 12 evicted", s)
	}
	if sessionInput(t, st, "acme", "u19", "") == nil || sessionInput(t, st, "acme", "u0", "") != nil {
		t.Fatal("the least recently used sessions must go first")
	}
}

func TestBoundedMaps(t *testing.T) {
	ctx := context.Background()
	st, _ := newStore(t, session.Options{})
	long := string(make([]byte, 1000))
	for i := range session.MaxTools + 10 {
		st.Observe(ctx, read("acme", "alice", "s1", "srv", fmt.Sprintf("t%d", i), "public", long))
	}
	got := sessionInput(t, st, "acme", "alice", "s1")
	if n := len(got["tools"].(map[string]any)); n != session.MaxTools {
		t.Fatalf("%d tools recorded, want %d", n, session.MaxTools)
	}
	if got["calls"] != session.MaxTools+10 {
		t.Fatalf("calls %v", got["calls"])
	}
	for k := range got["categories"].(map[string]any) {
		if len(k) > session.MaxNameBytes {
			t.Fatalf("category name of %d bytes kept", len(k))
		}
	}
}

func TestConcurrent(t *testing.T) {
	ctx := context.Background()
	st, _ := newStore(t, session.Options{MaxSessions: 50, MaxPerSubject: 3})
	done := make(chan struct{})
	for g := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 500 {
				sess := fmt.Sprintf("s%d", i%7)
				st.Observe(ctx, read("acme", fmt.Sprintf("u%d", g), sess, "crm", "get", "confidential", "personal_data"))
				_ = sessionInput(t, st, "acme", fmt.Sprintf("u%d", g), sess)
			}
		}()
	}
	for range 4 {
		<-done
	}
	if s := st.Stats(); s.Sessions > 50 {
		t.Fatalf("stats %+v", s)
	}
}

// TestFoldedReadOutlivesTTLWhileActive: folding a tainted session into the
// subject's overflow record must not start a clock on its read that the
// session's own activity no longer resets. Without folding, a session
// that keeps calling keeps its read for as long as it is active (TestTTL).
// Once folded (the caller opened MaxPerSubject other sessions), the read
// lives only in the overflow record, whose last call is the victim's: the
// session keeps calling under the same id (a fresh record that merges the
// overflow) and one TTL after the fold the overflow expires, so the active
// session forgets its restricted read and an egress call is allowed.
func TestFoldedReadOutlivesTTLWhileActive(t *testing.T) {
	ctx := context.Background()
	st, c := newStore(t, session.Options{TTL: time.Minute, MaxPerSubject: 4})
	st.Observe(ctx, read("acme", "mallory", "tainted", "ehr", "chart", "restricted", "phi"))
	// Four other sessions: the fourth folds "tainted" into the overflow record.
	for i := range 4 {
		c.t = c.t.Add(time.Second)
		st.Observe(ctx, read("acme", "mallory", fmt.Sprintf("s%d", i), "web", "fetch", "public"))
	}
	// The tainted session stays active: a public read every 20 seconds,
	// never idle for a TTL.
	for range 5 {
		c.t = c.t.Add(20 * time.Second)
		st.Observe(ctx, read("acme", "mallory", "tainted", "web", "fetch", "public"))
		got := sessionInput(t, st, "acme", "mallory", "tainted")
		if got["classification"] != "restricted" || got["categories"] == nil {
			t.Fatalf("after %v of continuous activity the session forgot its restricted read: %v", c.t.Sub(time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)), got)
		}
	}
}

// TestGlobalEvictionKeepsTaint: beyond MaxSessions the least recently used
// records are forgotten, tainted ones and overflow records included,
// before untainted ones. Whoever can create sessions for many subjects
// (a gateway, ToolHive's endpoint, or AuthZEN with require_token and any
// user's token, where the subject is claimed) fills the table with clean
// sessions and the tainted session forgets its read, so its egress is
// allowed. Clean sessions should go first; a tainted one should not be
// forgotten while it is live (or the store should fail closed).
func TestGlobalEvictionKeepsTaint(t *testing.T) {
	ctx := context.Background()
	st, c := newStore(t, session.Options{MaxSessions: 8})
	st.Observe(ctx, read("acme", "mallory", "s1", "ehr", "chart", "restricted", "phi"))
	for i := range 8 {
		c.t = c.t.Add(time.Second)
		st.Observe(ctx, read("acme", fmt.Sprintf("claimed-%d", i), "", "github", "list_issues", "internal"))
	}
	if got := sessionInput(t, st, "acme", "mallory", "s1"); got["classification"] != "restricted" {
		t.Fatalf("a live tainted session was evicted for clean ones: %v (stats %+v)", got, st.Stats())
	}
}

// TestSubjectScope: with scope subject, a read in one session counts in
// every session of the caller (and no other caller's).
func TestSubjectScope(t *testing.T) {
	ctx := context.Background()
	st, _ := newStore(t, session.Options{Scope: session.ScopeSubject})
	st.Observe(ctx, read("acme", "alice", "crm-session", "crm", "get", "confidential", "personal_data"))
	for _, sess := range []string{"github-session", "", "crm-session"} {
		if got := sessionInput(t, st, "acme", "alice", sess); got["classification"] != "confidential" {
			t.Fatalf("session %q: %v, want alice's read", sess, got)
		}
	}
	if got := sessionInput(t, st, "acme", "bob", "crm-session"); got != nil {
		t.Fatalf("bob sees alice's reads: %v", got)
	}
	if _, err := session.New(session.Options{Scope: "tenant"}); err == nil {
		t.Fatal("scope tenant: want an error")
	}
}

// sessionInput reads a session of a store that must not fail.
func sessionInput(t testing.TB, st mcp.SessionState, tenant, subject, session string) map[string]any {
	t.Helper()
	in, err := st.SessionInput(context.Background(), tenant, subject, session)
	if err != nil {
		t.Fatalf("SessionInput: %v", err)
	}
	return in
}
