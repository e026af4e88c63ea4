package session_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/verdictpdp/verdict/internal/mcp"
	"github.com/verdictpdp/verdict/internal/pipeline"
	"github.com/verdictpdp/verdict/internal/redistest"
	"github.com/verdictpdp/verdict/internal/session"
)

// newClient returns a client of the test server, closed at the end.
func newClient(t testing.TB, srv *redistest.Server) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	opts.ContextTimeoutEnabled = true
	opts.MaxRetries = -1
	c := redis.NewClient(opts)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// newRedis returns a Redis store on srv under prefix, with c's clock.
func newRedis(t testing.TB, srv *redistest.Server, prefix string, o session.Options, c *clock) *session.Redis {
	t.Helper()
	if c != nil {
		o.Now = c.now
	}
	st, err := session.NewRedis(newClient(t, srv), o, session.RedisOptions{Prefix: prefix, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// feeder records observations in both stores as the MCP decider would.
type feeder struct {
	mem *session.Store
	red *session.Redis
}

func (f feeder) feed(t testing.TB, ob *mcp.Observation) {
	t.Helper()
	f.mem.Observe(context.Background(), ob)
	if err := f.red.Record(context.Background(), ob); err != nil {
		t.Fatalf("Record: %v", err)
	}
	f.red.Observe(context.Background(), ob) // records nothing more
}

type who struct{ tenant, subject, session string }

// agree checks that both stores give the same input.session for every
// caller in whos.
func (f feeder) agree(t testing.TB, whos []who) {
	t.Helper()
	for _, w := range whos {
		want := sessionInput(t, f.mem, w.tenant, w.subject, w.session)
		got := sessionInput(t, f.red, w.tenant, w.subject, w.session)
		capped(want, got)
		if d := cmp.Diff(want, got); d != "" {
			t.Fatalf("%v: redis differs from memory (-memory +redis):\n%s", w, d)
		}
	}
}

// capped makes categories comparable when a merge hit MaxCategories: the
// memory store then keeps whichever categories its map iteration offers
// first, so only the count and the sources of the categories both kept
// must agree.
func capped(a, b map[string]any) {
	ca, _ := a["categories"].(map[string]any)
	cb, _ := b["categories"].(map[string]any)
	if len(ca) < session.MaxCategories && len(cb) < session.MaxCategories {
		return
	}
	for k := range ca {
		if _, ok := cb[k]; !ok {
			delete(ca, k)
		}
	}
	for k := range cb {
		if _, ok := ca[k]; !ok {
			delete(cb, k)
		}
	}
}

func newFeeder(t *testing.T, srv *redistest.Server, o session.Options) (feeder, *clock) {
	t.Helper()
	mem, c := newStore(t, o)
	return feeder{mem: mem, red: newRedis(t, srv, "t"+strings.ReplaceAll(t.Name(), "/", "_")+":", o, c)}, c
}

func result(tenant, subject, sess string, findings map[string]int) *mcp.Observation {
	return &mcp.Observation{Stage: mcp.StageResult, Tenant: tenant, Subject: subject, Session: sess, Verdict: pipeline.Allow, Findings: findings}
}

// TestRedisAgreesWithMemory feeds the same observations to both stores and
// compares what policy reads: table cases, then seeded random runs.
func TestRedisAgreesWithMemory(t *testing.T) {
	srv := redistest.Start(t)
	many := func(n int, f func(i int) *mcp.Observation) []*mcp.Observation {
		out := make([]*mcp.Observation, n)
		for i := range out {
			out[i] = f(i)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		opts session.Options
		obs  []*mcp.Observation
	}{
		{name: "highest class keeps its first source", obs: []*mcp.Observation{
			read("acme", "alice", "s1", "web", "fetch", "public"),
			read("acme", "alice", "s1", "ehr", "chart", "restricted", "phi"),
			read("acme", "alice", "s1", "crm", "get", "confidential", "phi"),
			read("acme", "alice", "s1", "x", "y", "restricted"),
		}},
		{name: "unknown class counts as restricted", obs: []*mcp.Observation{
			read("acme", "alice", "s1", "a", "b", "confidential"),
			read("acme", "alice", "s1", "c", "d", "top-secret"),
			read("acme", "alice", "s1", "e", "f", "restricted"),
		}},
		{name: "resources and prompts", obs: func() []*mcp.Observation {
			r := read("acme", "alice", "s1", "files", "file:///hr/pay.csv?token=abc#x", "confidential", "personal_data")
			r.Method = mcp.MethodResourcesRead
			p := read("acme", "alice", "s1", "prompts", "summarize", "internal")
			p.Method = mcp.MethodPromptsGet
			return []*mcp.Observation{r, p}
		}()},
		{name: "findings add up, beyond the cap", obs: many(session.MaxFindings+6, func(i int) *mcp.Observation {
			return result("acme", "alice", "s1", map[string]int{fmt.Sprintf("d%d", i%(session.MaxFindings+3)): 2})
		})},
		{name: "categories beyond the cap", obs: many(session.MaxCategories+10, func(i int) *mcp.Observation {
			return read("acme", "alice", "s1", "srv", "get", "internal", fmt.Sprintf("c%d", i), "shared")
		})},
		{name: "tools beyond the cap and long names", obs: many(session.MaxTools+10, func(i int) *mcp.Observation {
			return read("acme", "alice", "s1", "srv", fmt.Sprintf("t%d-%s", i%(session.MaxTools+5), strings.Repeat("x", 300)), "public", strings.Repeat("c", 1000))
		})},
		{name: "folding keeps reads", opts: session.Options{MaxPerSubject: 3}, obs: append(
			[]*mcp.Observation{
				read("acme", "alice", "s1", "ehr", "chart", "restricted", "phi"),
				result("acme", "alice", "s2", map[string]int{"secret": 1}),
			},
			many(8, func(i int) *mcp.Observation {
				return read("acme", "alice", fmt.Sprintf("n%d", i), "web", "fetch", "public", "web")
			})...)},
		{name: "subject scope", opts: session.Options{Scope: session.ScopeSubject}, obs: []*mcp.Observation{
			read("acme", "alice", "s1", "crm", "get", "confidential", "personal_data"),
			read("acme", "alice", "s2", "mail", "send", "public"),
			read("acme", "bob", "s2", "mail", "send", "public"),
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, c := newFeeder(t, srv, tc.opts)
			seen := map[who]bool{{"acme", "alice", "s1"}: true, {"acme", "nobody", ""}: true}
			for _, ob := range tc.obs {
				c.t = c.t.Add(time.Millisecond)
				f.feed(t, ob)
				seen[who{ob.Tenant, ob.Subject, ob.Session}] = true
			}
			f.agree(t, slicesOf(seen))
		})
	}
	for _, scope := range []string{session.ScopeSession, session.ScopeSubject} {
		for seed := range uint64(4) {
			t.Run(fmt.Sprintf("random/%s/%d", scope, seed), func(t *testing.T) {
				f, c := newFeeder(t, srv, session.Options{Scope: scope, MaxPerSubject: 4})
				randomRun(t, f, c, rand.New(rand.NewPCG(seed, 42)))
			})
		}
	}
}

func slicesOf(m map[who]bool) []who {
	var out []who
	for w := range maps.Keys(m) {
		out = append(out, w)
	}
	return out
}

var classes = []string{"", "public", "internal", "confidential", "restricted", "top-secret"}

func randomRun(t *testing.T, f feeder, c *clock, r *rand.Rand) {
	t.Helper()
	seen := map[who]bool{}
	for i := range 600 {
		w := who{[]string{"acme", "globex"}[r.IntN(2)], fmt.Sprintf("u%d", r.IntN(3)), ""}
		if r.IntN(8) > 0 {
			w.session = fmt.Sprintf("s%d", r.IntN(14)) // well beyond MaxPerSubject
		}
		var ob *mcp.Observation
		switch k := r.IntN(10); {
		case k < 6:
			var cats []string
			for range r.IntN(4) {
				cats = append(cats, fmt.Sprintf("cat%d", r.IntN(90)))
			}
			ob = read(w.tenant, w.subject, w.session, fmt.Sprintf("srv%d", r.IntN(3)), fmt.Sprintf("t%d", r.IntN(6)), classes[r.IntN(len(classes))], cats...)
			ob.Method = []string{mcp.MethodToolsCall, mcp.MethodResourcesRead, mcp.MethodPromptsGet, mcp.MethodToolsList}[r.IntN(4)]
			if ob.Method == mcp.MethodToolsList {
				ob.Stage = mcp.StageList
			}
		case k < 8:
			ob = result(w.tenant, w.subject, w.session, map[string]int{fmt.Sprintf("d%d", r.IntN(8)): 1 + r.IntN(3)})
		default:
			ob = read(w.tenant, w.subject, w.session, "srv", "t", "restricted", "phi")
			ob.Verdict = []pipeline.Verdict{pipeline.Deny, pipeline.RequireApproval}[r.IntN(2)]
			ob.Unverified = r.IntN(2) == 0
		}
		c.t = c.t.Add(time.Millisecond)
		f.feed(t, ob)
		seen[w] = true
		if i%50 == 49 {
			f.agree(t, slicesOf(seen))
		}
	}
	f.agree(t, slicesOf(seen))
}

// TestRedisReplicas: two stores on one Redis are two replicas; what a
// session read through one, the other sees.
func TestRedisReplicas(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	a := newRedis(t, srv, "", session.Options{}, nil)
	b := newRedis(t, srv, "", session.Options{}, nil)
	if err := a.Record(ctx, read("acme", "alice", "s1", "crm", "get", "confidential", "personal_data")); err != nil {
		t.Fatal(err)
	}
	got := sessionInput(t, b, "acme", "alice", "s1")
	if got["classification"] != "confidential" || got["categories"] == nil {
		t.Fatalf("replica B does not see the read through A: %v", got)
	}
	if got := sessionInput(t, b, "acme", "alice", "s2"); got != nil {
		t.Fatalf("another session sees it: %v", got)
	}
	// Keys are hashes under the prefix: no caller data in Redis.
	keys, err := newClient(t, srv).Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, "verdict:session:") || strings.Contains(k, "alice") || strings.Contains(k, "acme") {
			t.Errorf("key %q is not a hash under verdict:session:", k)
		}
	}
}

// TestRedisTTL: a session idle past the TTL is gone; a recorded call
// keeps it.
func TestRedisTTL(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	st := newRedis(t, srv, "", session.Options{TTL: 300 * time.Millisecond}, nil)
	for range 3 {
		if err := st.Record(ctx, read("acme", "alice", "s1", "crm", "get", "confidential")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(150 * time.Millisecond)
	}
	if sessionInput(t, st, "acme", "alice", "s1") == nil {
		t.Fatal("a session in use expired")
	}
	time.Sleep(400 * time.Millisecond)
	if got := sessionInput(t, st, "acme", "alice", "s1"); got != nil {
		t.Fatalf("an idle session outlived its TTL: %v", got)
	}
}

// TestRedisDown: an unreachable Redis is an error, never a clean session;
// once it answers again the store works.
func TestRedisDown(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	var observed []error
	st, err := session.NewRedis(newClient(t, srv), session.Options{}, session.RedisOptions{
		Timeout: 200 * time.Millisecond, Observe: func(_ time.Duration, err error) { observed = append(observed, err) },
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	if in, err := st.SessionInput(ctx, "acme", "alice", "s1"); err == nil {
		t.Fatalf("SessionInput with redis down = %v, nil error", in)
	}
	if err := st.Record(ctx, read("acme", "alice", "s1", "crm", "get", "confidential")); err == nil {
		t.Fatal("Record with redis down succeeded")
	}
	if len(observed) != 2 || observed[0] == nil || observed[1] == nil {
		t.Fatalf("observed %v, want two errors", observed)
	}
	srv.Restart()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := st.Record(ctx, read("acme", "alice", "s1", "crm", "get", "confidential"))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery after restart: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := sessionInput(t, st, "acme", "alice", "s1"); got["classification"] != "confidential" {
		t.Fatalf("after restart: %v", got)
	}
}

// TestRedisGarbage: state the store did not write is an error, for reads
// and writes, never a clean session.
func TestRedisGarbage(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	raw := newClient(t, srv)
	st := newRedis(t, srv, "", session.Options{}, nil)
	ob := read("acme", "alice", "s1", "crm", "get", "confidential", "personal_data")
	if err := st.Record(ctx, ob); err != nil {
		t.Fatal(err)
	}
	keys, err := raw.Keys(ctx, "verdict:session:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	var sess string
	for _, k := range keys {
		if raw.HExists(ctx, k, "st").Val() {
			sess = k
		}
	}
	if sess == "" {
		t.Fatalf("no session hash among %v", keys)
	}
	for _, tc := range []struct {
		name   string
		mangle func() error
		// corrupt: the store finds state it did not write (else Redis
		// refuses the read).
		corrupt bool
	}{
		{"a count that is not a number", func() error { return raw.HSet(ctx, sess, "calls", "many").Err() }, true},
		{"a finding that is not a number", func() error { return raw.HSet(ctx, sess, "f:email", "x").Err() }, true},
		{"an unknown field", func() error { return raw.HSet(ctx, sess, "zz", "1").Err() }, true},
		{"a level that disagrees", func() error { return raw.HSet(ctx, sess, "lv", "0").Err() }, true},
		{"a category count that disagrees", func() error { return raw.HSet(ctx, sess, "nk", "7").Err() }, true},
		{"not a hash", func() error { return raw.Set(ctx, sess, "clean", 0).Err() }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := raw.Del(ctx, sess).Err(); err != nil {
				t.Fatal(err)
			}
			if err := st.Record(ctx, ob); err != nil {
				t.Fatal(err)
			}
			if err := tc.mangle(); err != nil {
				t.Fatal(err)
			}
			in, err := st.SessionInput(ctx, "acme", "alice", "s1")
			if err == nil {
				t.Fatalf("garbage read as %v", in)
			}
			if errors.Is(err, session.ErrCorrupt) != tc.corrupt {
				t.Fatalf("error %v: ErrCorrupt %v, want %v", err, !tc.corrupt, tc.corrupt)
			}
			if strings.Contains(err.Error(), "alice") || strings.Contains(err.Error(), "s1") {
				t.Fatalf("error quotes caller data: %v", err)
			}
		})
	}
	if err := raw.Set(ctx, sess, "clean", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := st.Record(ctx, ob); err == nil {
		t.Fatal("Record over a value that is not a hash succeeded")
	}
	if err := raw.Del(ctx, sess).Err(); err != nil {
		t.Fatal(err)
	}
	if err := raw.HSet(ctx, sess, "nk", "x", "st", "1").Err(); err != nil {
		t.Fatal(err)
	}
	if err := st.Record(ctx, ob); err == nil {
		t.Fatal("Record over a count that is not a number succeeded")
	}
}
