package engine_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/verdictpdp/verdict/internal/bundle"
	"github.com/verdictpdp/verdict/internal/bundle/bundletest"
	"github.com/verdictpdp/verdict/internal/cache"
	"github.com/verdictpdp/verdict/internal/engine"
	"github.com/verdictpdp/verdict/internal/projection"
)

// valueInput is an already built input, keyed on its value.
type valueInput struct{ v ast.Value }

func (valueInput) AppendKey(dst []byte, _ *projection.Projection) ([]byte, bool) { return dst, false }
func (in valueInput) Value() (ast.Value, error)                                  { return in.v, nil }
func (valueInput) Subject() string                                               { return "alice" }

// rolePolicy allows the role named in data; it reads only input.role.
func rolePolicy(role string) bundletest.Spec {
	return bundletest.Spec{
		Revision: "allow-" + role,
		Modules: map[string]string{"p.rego": `package test

req := input

decision := {"allow": allowed, "role": req.role}

default allowed := false

allowed if req.role == data.allowed_role
`},
		Data: map[string]any{"allowed_role": role},
	}
}

func cachedEngine(t *testing.T) (*engine.Engine, *cache.Cache) {
	t.Helper()
	c, err := cache.New(cache.Limits{AdmitFirst: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	e, err := engine.New(engine.Deps{Entrypoints: []string{"test/decision"}, Cache: c})
	if err != nil {
		t.Fatal(err)
	}
	return e, c
}

func activate(t testing.TB, e *engine.Engine, s bundletest.Spec) {
	t.Helper()
	b, err := bundle.NewReader(bundle.Limits{}, nil).ReadArchive("main", bundletest.Archive(t, s))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Activate(context.Background(), map[string]*bundle.Bundle{"main": b}); err != nil {
		t.Fatal(err)
	}
}

// decide returns the policy's allow and whether the cache answered; derive
// counts the evaluations.
func decide(t testing.TB, e *engine.Engine, input string, evals *atomic.Int64) (bool, bool, string) {
	t.Helper()
	d, err := e.Decide(context.Background(), "test/decision", valueInput{ast.MustParseTerm(input).Value},
		func(r engine.Result) (any, error) {
			evals.Add(1)
			obj, _ := r.Value.(map[string]any)
			allow, _ := obj["allow"].(bool)
			return allow, nil
		})
	if err != nil {
		t.Fatal(err)
	}
	allow, _ := d.Derived.(bool)
	return allow, d.Cached, d.Revision
}

func TestDecideCachesOnTheProjection(t *testing.T) {
	t.Parallel()
	e, c := cachedEngine(t)
	activate(t, e, rolePolicy("admin"))
	var evals atomic.Int64
	steps := []struct {
		input       string
		allow, hit  bool
		evalsBefore int64
	}{
		{`{"role": "admin", "request_id": "1"}`, true, false, 0},
		// Only request_id changed: the policy never reads it.
		{`{"role": "admin", "request_id": "2", "time": "2026-11-21T10:00:00Z"}`, true, true, 1},
		// A field the policy reads changed: a distinct answer.
		{`{"role": "guest", "request_id": "3"}`, false, false, 1},
		{`{"role": "guest", "request_id": "4"}`, false, true, 2},
	}
	for i, s := range steps {
		if i > 0 {
			c.Flush()
		}
		if got := evals.Load(); got != s.evalsBefore {
			t.Fatalf("step %d: %d evaluations before, want %d", i, got, s.evalsBefore)
		}
		allow, hit, rev := decide(t, e, s.input, &evals)
		if allow != s.allow || hit != s.hit || rev != "allow-admin" {
			t.Fatalf("step %d: allow=%v cached=%v revision=%q, want %v %v", i, allow, hit, rev, s.allow, s.hit)
		}
	}
}

func TestDecideNeverServesAReplacedBundle(t *testing.T) {
	t.Parallel()
	e, c := cachedEngine(t)
	activate(t, e, rolePolicy("admin"))
	var evals atomic.Int64
	decide(t, e, `{"role": "admin"}`, &evals)
	c.Flush()
	if _, hit, _ := decide(t, e, `{"role": "admin"}`, &evals); !hit {
		t.Fatal("second decision was not cached")
	}
	activate(t, e, rolePolicy("guest"))
	allow, hit, rev := decide(t, e, `{"role": "admin"}`, &evals)
	if allow || hit || rev != "allow-guest" {
		t.Fatalf("after activation: allow=%v cached=%v revision=%q", allow, hit, rev)
	}
}

func TestDecideDoesNotCacheNondeterministicPolicies(t *testing.T) {
	t.Parallel()
	e, c := cachedEngine(t)
	activate(t, e, bundletest.Spec{Revision: "clock", Modules: map[string]string{"p.rego": `package test

decision := {"allow": recent(input.issued_at)}

recent(ns) := time.now_ns() - ns < 60000000000
`}})
	if p := e.Snapshot().Projection("test/decision"); p.Cacheable() {
		t.Fatalf("projection %+v is cacheable", p)
	}
	var evals atomic.Int64
	for range 3 {
		decide(t, e, `{"issued_at": 0}`, &evals)
		c.Flush()
	}
	if evals.Load() != 3 || c.Stats().Entries != 0 {
		t.Fatalf("%d evaluations, stats %+v", evals.Load(), c.Stats())
	}
}

// TestDecideDuringActivations decides from many goroutines while bundles
// are swapped: every answer must be the one its own revision gives, cached
// or not (run with -race).
func TestDecideDuringActivations(t *testing.T) {
	t.Parallel()
	e, _ := cachedEngine(t)
	activate(t, e, rolePolicy("admin"))
	var evals atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var decisions atomic.Int64
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				role := []string{"admin", "guest"}[(i+w)%2]
				allow, _, rev := decide(t, e, fmt.Sprintf(`{"role": %q, "id": %d}`, role, i), &evals)
				if want := rev == "allow-"+role; allow != want {
					t.Errorf("role %s under %s: allow=%v", role, rev, allow)
					return
				}
				decisions.Add(1)
			}
		})
	}
	for i := range 30 {
		activate(t, e, rolePolicy([]string{"guest", "admin"}[i%2]))
	}
	close(stop)
	wg.Wait()
	if decisions.Load() == 0 {
		t.Fatal("no decisions were made")
	}
}

// TestSchemaReferencesDecideCaching: json.match_schema is cached only when
// no schema in the bundle can fetch another document.
func TestSchemaReferencesDecideCaching(t *testing.T) {
	t.Parallel()
	policy := `package test

decision := {"allow": valid} if {
	[valid, _] := json.match_schema(input.args, data.schema)
}
`
	for _, tc := range []struct {
		name      string
		schema    map[string]any
		cacheable bool
	}{
		{"local", map[string]any{"type": "object", "properties": map[string]any{"a": map[string]any{"$ref": "#/$defs/a"}}}, true},
		{"remote", map[string]any{"$ref": "https://schemas.example.com/args.json"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e, _ := cachedEngine(t)
			activate(t, e, bundletest.Spec{Revision: tc.name, Modules: map[string]string{"p.rego": policy}, Data: map[string]any{"schema": tc.schema}})
			if got := e.Snapshot().Projection("test/decision").Cacheable(); got != tc.cacheable {
				t.Fatalf("cacheable = %v, want %v", got, tc.cacheable)
			}
		})
	}
}

// TestOptionalEntrypointsAreCached: an optional entrypoint the policy
// defines is prepared and analysed like a configured one, so its decisions
// are cached; one it does not define is neither prepared nor reported as
// undefined, and deciding there is an unknown entrypoint.
func TestOptionalEntrypointsAreCached(t *testing.T) {
	t.Parallel()
	c, err := cache.New(cache.Limits{AdmitFirst: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	e, err := engine.New(engine.Deps{Entrypoints: []string{"test/decision"}, Optional: []string{"opt/decision", "opt/missing"}, Cache: c})
	if err != nil {
		t.Fatal(err)
	}
	spec := rolePolicy("admin")
	spec.Modules["opt.rego"] = "package opt\n\ndecision := {\"allow\": input.role == \"admin\"}\n"
	activate(t, e, spec)
	snap := e.Snapshot()
	if p := snap.Projection("opt/decision"); !snap.Defines("opt/decision") || p == nil || !p.Cacheable() {
		t.Fatalf("opt/decision: defined %v, projection %v; want a cacheable one", snap.Defines("opt/decision"), p)
	}
	if snap.Defines("opt/missing") || slices.Contains(snap.Undefined, "opt/missing") {
		t.Fatalf("opt/missing: defined %v, undefined list %v; want neither", snap.Defines("opt/missing"), snap.Undefined)
	}
	derive := func(r engine.Result) (any, error) { return r.Value, nil }
	for i, in := range []string{`{"role": "admin", "n": 1}`, `{"role": "admin", "n": 2}`} {
		c.Flush()
		d, err := e.Decide(context.Background(), "opt/decision", valueInput{ast.MustParseTerm(in).Value}, derive)
		if err != nil {
			t.Fatal(err)
		}
		if d.Cached != (i == 1) {
			t.Fatalf("decision %d: cached %v, want %v", i, d.Cached, i == 1)
		}
	}
	_, err = e.Decide(context.Background(), "opt/missing", valueInput{ast.MustParseTerm(`{}`).Value}, derive)
	if engine.CodeOf(err) != engine.CodeUnknownEntrypoint {
		t.Fatalf("opt/missing: %v, want %s", err, engine.CodeUnknownEntrypoint)
	}
}
