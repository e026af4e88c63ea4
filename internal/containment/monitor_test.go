package containment

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/internal/control"
	"github.com/verdictpdp/verdict/internal/mcp"
	"github.com/verdictpdp/verdict/internal/pipeline"
)

// fakeControls records what containment asks and answers Quarantined
// from what it set.
type fakeControls struct {
	mu     sync.Mutex
	asked  []control.QuarantineRequest
	active map[string]bool // subject or subject/session
	err    error
}

func (f *fakeControls) Contain(_ context.Context, by string, r control.QuarantineRequest) (control.Quarantine, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, r)
	if f.err != nil {
		return control.Quarantine{}, false, f.err
	}
	k := r.Subject
	if r.Kind == control.QuarantineSession {
		k += "/" + r.Session
	}
	if f.active[k] {
		return control.Quarantine{ID: "q-old"}, false, nil
	}
	f.active[k] = true
	return control.Quarantine{ID: fmt.Sprintf("q-%d", len(f.asked)), Kind: r.Kind, Subject: r.Subject, Session: r.Session, Rule: r.Rule, CreatedBy: by, Note: r.Note}, true, nil
}

func (f *fakeControls) Quarantined(subject, _, _, session string) (*control.Quarantine, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.active[subject] || f.active[subject+"/"+session] {
		return &control.Quarantine{}, nil
	}
	return nil, nil
}

func (f *fakeControls) release(k string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.active, k)
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type harness struct {
	m         *Monitor
	fc        *fakeControls
	clk       *clock
	contained []Contained
}

func newHarness(t *testing.T, rules *Rules, maxKeys int) *harness {
	t.Helper()
	h := &harness{fc: &fakeControls{active: map[string]bool{}}, clk: &clock{t: time.Unix(1_800_000_000, 0)}}
	h.m = New(Options{
		Rules: func() *Rules { return rules }, Controls: h.fc, Now: h.clk.now, MaxKeys: maxKeys,
		Contained: func(c Contained) { h.contained = append(h.contained, c) },
	})
	return h
}

// drain sets the queued quarantines, as Run would.
func (h *harness) drain() {
	for {
		select {
		case j := <-h.m.queue:
			h.m.contain(context.Background(), j)
		default:
			return
		}
	}
}

func call(subject, session string, v pipeline.Verdict) *mcp.Observation {
	return &mcp.Observation{Stage: mcp.StageCall, Tenant: "acme", Subject: subject, Session: session,
		Method: mcp.MethodToolsCall, Server: "crm", Target: "search", Verdict: v}
}

func TestThresholds(t *testing.T) {
	t.Parallel()
	destructive := func(s, sess string) *mcp.Observation {
		o := call(s, sess, pipeline.RequireApproval)
		o.Approval = true
		return o
	}
	result := func(s, sess string, f map[string]int) *mcp.Observation {
		o := call(s, sess, pipeline.Allow)
		o.Stage, o.Findings = mcp.StageResult, f
		return o
	}
	list := func(s, sess string, n int) *mcp.Observation {
		o := call(s, sess, pipeline.Allow)
		o.Stage, o.Method, o.Poisoned = mcp.StageList, "tools/list", n
		return o
	}
	type step struct {
		ob    *mcp.Observation
		after time.Duration // the clock moves first
	}
	repeat := func(n int, every time.Duration, ob func(i int) *mcp.Observation) []step {
		var out []step
		for i := range n {
			out = append(out, step{ob(i), every})
		}
		return out
	}
	for _, c := range []struct {
		name  string
		rule  Rule
		steps []step
		// want is the quarantines asked for, as kind:subject[/session].
		want []string
	}{
		{
			"deny rate reached", Rule{ID: "storm", Signal: DenyRate, Scope: ScopeSubject, Window: time.Minute, MinCalls: 4, Threshold: 0.5},
			repeat(4, time.Second, func(i int) *mcp.Observation {
				return call("mal", "s1", []pipeline.Verdict{pipeline.Allow, pipeline.Deny}[i%2])
			}),
			[]string{"subject:mal"},
		},
		{
			"deny rate below min_calls", Rule{ID: "storm", Signal: DenyRate, Scope: ScopeSubject, Window: time.Minute, MinCalls: 5, Threshold: 0.5},
			repeat(4, time.Second, func(int) *mcp.Observation { return call("mal", "", pipeline.Deny) }),
			nil,
		},
		{
			"deny rate under the threshold", Rule{ID: "storm", Signal: DenyRate, Scope: ScopeSubject, Window: time.Minute, MinCalls: 2, Threshold: 0.5},
			repeat(9, time.Second, func(i int) *mcp.Observation {
				return call("mal", "", []pipeline.Verdict{pipeline.Allow, pipeline.Allow, pipeline.Deny}[i%3])
			}),
			nil,
		},
		{
			"denies spread beyond the window", Rule{ID: "storm", Signal: DenyRate, Scope: ScopeSubject, Window: 10 * time.Second, MinCalls: 3, Threshold: 1},
			repeat(6, 6*time.Second, func(int) *mcp.Observation { return call("mal", "", pipeline.Deny) }),
			nil,
		},
		{
			"failed decisions do not count", Rule{ID: "storm", Signal: DenyRate, Scope: ScopeSubject, Window: time.Minute, MinCalls: 2, Threshold: 0.5},
			repeat(5, time.Second, func(int) *mcp.Observation { o := call("mal", "", pipeline.Deny); o.Failed = true; return o }),
			nil,
		},
		{
			"questions that are not calls are not counted", Rule{ID: "storm", Signal: DenyRate, Scope: ScopeSubject, Window: time.Minute, MinCalls: 2, Threshold: 0.5},
			repeat(5, time.Second, func(int) *mcp.Observation { o := call("mal", "", pipeline.Deny); o.Question = true; return o }),
			nil,
		},
		{
			"anonymous callers are not counted", Rule{ID: "storm", Signal: DenyRate, Scope: ScopeSubject, Window: time.Minute, MinCalls: 2, Threshold: 0.5},
			repeat(5, time.Second, func(int) *mcp.Observation { return call("", "", pipeline.Deny) }),
			nil,
		},
		{
			"destructive burst", Rule{ID: "burst", Signal: Destructive, Scope: ScopeSubject, Window: time.Minute, Threshold: 3},
			repeat(3, time.Second, func(int) *mcp.Observation { return destructive("carl", "") }),
			[]string{"subject:carl"},
		},
		{
			"destructive calls too slow", Rule{ID: "burst", Signal: Destructive, Scope: ScopeSubject, Window: time.Minute, Threshold: 3},
			repeat(6, 31*time.Second, func(int) *mcp.Observation { return destructive("carl", "") }),
			nil,
		},
		{
			"destructive calls by different callers", Rule{ID: "burst", Signal: Destructive, Scope: ScopeSubject, Window: time.Minute, Threshold: 3},
			repeat(4, time.Second, func(i int) *mcp.Observation { return destructive([]string{"carl", "dana"}[i%2], "") }),
			nil,
		},
		{
			"findings of the named detectors", Rule{ID: "leaky", Signal: Findings, Scope: ScopeSession, Window: 10 * time.Minute, Threshold: 10, Detectors: []string{"private_key", "secret"}},
			[]step{
				{result("eve", "s1", map[string]int{"email": 50}), time.Second},
				{result("eve", "s1", map[string]int{"secret": 6}), time.Second},
				{result("eve", "s2", map[string]int{"secret": 6}), time.Second},
				{result("eve", "s1", map[string]int{"private_key": 4}), time.Second},
			},
			[]string{"session:eve/s1"},
		},
		{
			"findings of every detector", Rule{ID: "leaky", Signal: Findings, Scope: ScopeSubject, Window: time.Minute, Threshold: 3},
			[]step{{result("eve", "", map[string]int{"email": 2, "card_number": 1}), time.Second}},
			[]string{"subject:eve"},
		},
		{
			"session rules skip calls without a session", Rule{ID: "leaky", Signal: Findings, Scope: ScopeSession, Window: time.Minute, Threshold: 1},
			[]step{{result("eve", "", map[string]int{"secret": 5}), time.Second}},
			nil,
		},
		{
			"an overlong session id answers as its subject", Rule{ID: "leaky", Signal: Findings, Scope: ScopeSession, Window: time.Minute, Threshold: 1},
			[]step{{result("eve", strings.Repeat("s", 300), map[string]int{"secret": 1}), time.Second}},
			[]string{"subject:eve"},
		},
		{
			"poisoned lists", Rule{ID: "poison", Signal: Poisoned, Scope: ScopeSession, Window: 10 * time.Minute, Threshold: 2},
			[]step{{list("pat", "s9", 0), time.Second}, {list("pat", "s9", 1), time.Second}, {list("pat", "s9", 1), time.Second}},
			[]string{"session:pat/s9"},
		},
		{
			"signals of other stages do not count", Rule{ID: "poison", Signal: Poisoned, Scope: ScopeSubject, Window: time.Minute, Threshold: 1},
			[]step{{destructive("pat", ""), time.Second}, {result("pat", "", map[string]int{"secret": 3}), time.Second}},
			nil,
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, &Rules{Rules: []Rule{c.rule}, QuarantineFor: time.Hour}, 0)
			for _, s := range c.steps {
				h.clk.advance(s.after)
				h.m.Observe(context.Background(), s.ob)
				h.drain()
			}
			var got []string
			for _, r := range h.fc.asked {
				k := string(r.Kind) + ":" + r.Subject
				if r.Session != "" {
					k += "/" + r.Session
				}
				got = append(got, k)
				if r.Rule != c.rule.ID || r.Duration != time.Hour || !strings.HasPrefix(r.Note, "containment rule "+c.rule.ID+": ") {
					t.Errorf("request %+v", r)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("quarantines asked = %v, want %v", got, c.want)
			}
			if len(h.contained) != len(c.want) {
				t.Errorf("%d alerts, want %d", len(h.contained), len(c.want))
			}
		})
	}
}

// TestQuarantineOnceThenAfresh: while quarantined, the caller's denied
// calls neither count nor ask again; once released it starts from zero.
func TestQuarantineOnceThenAfresh(t *testing.T) {
	t.Parallel()
	rule := Rule{ID: "storm", Signal: DenyRate, Scope: ScopeSubject, Window: time.Minute, MinCalls: 3, Threshold: 1}
	h := newHarness(t, &Rules{Rules: []Rule{rule}}, 0)
	deny := func(n int) {
		for range n {
			h.clk.advance(time.Second)
			h.m.Observe(context.Background(), call("mal", "", pipeline.Deny))
			h.drain()
		}
	}
	deny(3)
	if len(h.fc.asked) != 1 || len(h.contained) != 1 {
		t.Fatalf("asked %d, alerts %d; want 1", len(h.fc.asked), len(h.contained))
	}
	c := h.contained[0]
	if c.Value != 1 || c.Calls != 3 || c.Quarantine.CreatedBy != SystemApprover || c.Rule.ID != "storm" {
		t.Errorf("alert = %+v", c)
	}
	if want := "containment rule storm: deny_rate 1 over 3 calls in 60s reached 1"; c.Quarantine.Note != want {
		t.Errorf("note = %q, want %q", c.Quarantine.Note, want)
	}
	deny(10) // denied by the quarantine
	if len(h.fc.asked) != 1 {
		t.Fatalf("asked again while quarantined: %d", len(h.fc.asked))
	}
	h.fc.release("mal")
	deny(2)
	if len(h.fc.asked) != 1 {
		t.Fatalf("after release, 2 denies asked again: the window was not reset")
	}
	deny(1)
	if len(h.fc.asked) != 2 || len(h.contained) != 2 {
		t.Fatalf("after release, crossing again: asked %d, alerts %d; want 2", len(h.fc.asked), len(h.contained))
	}
}

// TestAlreadyQuarantinedNoAlert: a quarantine active for the target (set
// by a person, say) is not set twice nor alerted.
func TestAlreadyQuarantinedNoAlert(t *testing.T) {
	t.Parallel()
	rule := Rule{ID: "burst", Signal: Destructive, Scope: ScopeSubject, Window: time.Minute, Threshold: 1}
	h := newHarness(t, &Rules{Rules: []Rule{rule}}, 0)
	h.fc.active["carl"] = true
	o := call("carl", "", pipeline.RequireApproval)
	o.Approval = true
	h.m.Observe(context.Background(), o)
	h.drain()
	if len(h.fc.asked) != 1 || len(h.contained) != 0 {
		t.Errorf("asked %d, alerts %d; want 1 ask and no alert", len(h.fc.asked), len(h.contained))
	}
}

func TestStoreFailureRetries(t *testing.T) {
	t.Parallel()
	rule := Rule{ID: "burst", Signal: Destructive, Scope: ScopeSubject, Window: time.Minute, Threshold: 1}
	h := newHarness(t, &Rules{Rules: []Rule{rule}}, 0)
	h.fc.err = fmt.Errorf("disk full")
	o := call("carl", "", pipeline.RequireApproval)
	o.Approval = true
	h.m.Observe(context.Background(), o)
	h.drain()
	h.fc.err = nil
	h.m.Observe(context.Background(), o)
	h.drain()
	if len(h.fc.asked) != 2 || len(h.contained) != 1 {
		t.Errorf("asked %d, alerts %d; want a second try that succeeds", len(h.fc.asked), len(h.contained))
	}
}

func TestNoRulesDoNothing(t *testing.T) {
	t.Parallel()
	for _, rules := range []*Rules{nil, {}} {
		h := newHarness(t, rules, 0)
		for range 100 {
			h.m.Observe(context.Background(), call("mal", "", pipeline.Deny))
		}
		if h.m.Tracked() != 0 || len(h.m.queue) != 0 {
			t.Errorf("rules %v: tracked %d, queued %d", rules, h.m.Tracked(), len(h.m.queue))
		}
	}
}

// TestBoundedKeys: many callers (or session ids) never hold more than
// MaxKeys pairs; the least recently seen go first.
func TestBoundedKeys(t *testing.T) {
	t.Parallel()
	rule := Rule{ID: "leaky", Signal: DenyRate, Scope: ScopeSession, Window: time.Hour, MinCalls: 1000, Threshold: 1}
	h := newHarness(t, &Rules{Rules: []Rule{rule}}, 64)
	for i := range 10000 {
		h.m.Observe(context.Background(), call("mal", fmt.Sprint("s-", i), pipeline.Deny))
	}
	if n := h.m.Tracked(); n > 64 {
		t.Errorf("%d pairs tracked, want at most 64", n)
	}
}

func TestWindowBuckets(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		window        time.Duration
		buckets       int
		width         int64
		coveredAtMost time.Duration
	}{
		{time.Second, 1, 1, time.Second},
		{30 * time.Second, 30, 1, 30 * time.Second},
		{31 * time.Second, 16, 2, 32 * time.Second},
		{5 * time.Minute, 30, 10, 5 * time.Minute},
		{24 * time.Hour, 30, 2880, 24 * time.Hour},
	} {
		r := newRing(c.window)
		if len(r.buckets) != c.buckets || r.width != c.width || time.Duration(int64(len(r.buckets))*r.width)*time.Second != c.coveredAtMost {
			t.Errorf("window %v: %d buckets of %ds", c.window, len(r.buckets), r.width)
		}
	}
	r := newRing(10 * time.Second)
	for s := int64(100); s < 120; s++ {
		r.add(s, 1, 1)
	}
	if h, n := r.sum(119); h != 10 || n != 10 {
		t.Errorf("sum over the last 10s = %d, %d; want 10, 10", h, n)
	}
	if h, _ := r.sum(140); h != 0 {
		t.Errorf("sum after the window = %d", h)
	}
	b := bucket{hits: ^uint32(0)}
	r.buckets[0] = b
	if satAdd(^uint32(0), 5) != ^uint32(0) {
		t.Error("counts wrap")
	}
}

// TestConcurrentObserve runs under -race.
func TestConcurrentObserve(t *testing.T) {
	t.Parallel()
	rule := Rule{ID: "storm", Signal: DenyRate, Scope: ScopeSubject, Window: time.Minute, MinCalls: 50, Threshold: 0.9}
	h := newHarness(t, &Rules{Rules: []Rule{rule}}, 0)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.m.Run(ctx); close(done) }()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				h.m.Observe(context.Background(), call(fmt.Sprint("u", g, "-", i%7), "", pipeline.Deny))
			}
		})
	}
	wg.Wait()
	cancel()
	<-done
}
