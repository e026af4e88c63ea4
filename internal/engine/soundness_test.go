package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"sigs.k8s.io/yaml"

	"github.com/verdictpdp/verdict/internal/bundle"
	"github.com/verdictpdp/verdict/internal/bundle/bundletest"
	"github.com/verdictpdp/verdict/internal/cache"
	"github.com/verdictpdp/verdict/internal/engine"
	"github.com/verdictpdp/verdict/internal/projection"
)

// soundnessDir holds the adversarial cases shared with internal/app, which
// runs their envoy and mcp requests against real servers.
const soundnessDir = "../../testdata/cache-soundness"

// soundnessCase is one file of testdata/cache-soundness (see its README).
type soundnessCase struct {
	File       string
	Class      string            `json:"class"`
	Entrypoint string            `json:"entrypoint"`
	Policy     string            `json:"policy"`
	Modules    map[string]string `json:"modules"`
	Data       map[string]any    `json:"data"`
	// BundleDirs are bundle directories of this repository (relative to
	// its root) activated together instead of Policy, Modules and Data.
	BundleDirs       []string `json:"bundle_dirs"`
	GoLists          bool     `json:"go_lists"`
	Nondeterministic bool     `json:"nondeterministic"`
	Inputs           []any    `json:"inputs"`
	Plain            []any    `json:"plain"`
	Hits             []int    `json:"hits"`
}

func loadSoundnessCases(tb testing.TB) []soundnessCase {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join(soundnessDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		tb.Fatalf("no cases in %s: %v", soundnessDir, err)
	}
	var out []soundnessCase
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		var c soundnessCase
		if err := yaml.Unmarshal(raw, &c); err != nil {
			tb.Fatalf("%s: %v", f, err)
		}
		if len(c.Inputs) == 0 {
			continue // an adapter case, run by internal/app
		}
		c.File = filepath.Base(f)
		if c.Entrypoint == "" {
			c.Entrypoint = "test/allow"
		}
		if c.Policy != "" {
			if c.Modules == nil {
				c.Modules = map[string]string{}
			}
			c.Modules["policy.rego"] = c.Policy
		}
		if c.Plain != nil && len(c.Plain) != len(c.Inputs) {
			tb.Fatalf("%s: %d plain answers for %d inputs", f, len(c.Plain), len(c.Inputs))
		}
		out = append(out, c)
	}
	return out
}

// soundnessEngine activates the case's bundle on an engine with the cache
// (every decision admitted at once) or without it.
func soundnessEngine(tb testing.TB, c soundnessCase, withCache bool) (*engine.Engine, *cache.Cache) {
	tb.Helper()
	deps := engine.Deps{Entrypoints: []string{c.Entrypoint}}
	var cc *cache.Cache
	if withCache {
		var err error
		if cc, err = cache.New(cache.Limits{AdmitFirst: true}); err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(cc.Close)
		deps.Cache = cc
	}
	e, err := engine.New(deps)
	if err != nil {
		tb.Fatal(err)
	}
	bundles := map[string]*bundle.Bundle{}
	r := bundle.NewReader(bundle.Limits{}, nil)
	for _, dir := range c.BundleDirs {
		b, err := r.ReadPath(dir, filepath.Join("../..", dir))
		if err != nil {
			tb.Fatal(err)
		}
		bundles[dir] = b
	}
	if len(c.BundleDirs) == 0 {
		b, err := r.ReadArchive("main", bundletest.Archive(tb, bundletest.Spec{Revision: "r1", Modules: c.Modules, Data: c.Data}))
		if err != nil {
			tb.Fatal(err)
		}
		bundles["main"] = b
	}
	if _, err := e.Activate(context.Background(), bundles); err != nil {
		tb.Fatalf("%s: %v", c.File, err)
	}
	return e, cc
}

// astInput is keyed by Projection.AppendKey on the built value.
type astInput struct{ v any }

func (astInput) AppendKey(dst []byte, _ *projection.Projection) ([]byte, bool) { return dst, false }
func (in astInput) Value() (ast.Value, error)                                  { return ast.InterfaceToValue(in.v) }
func (astInput) Subject() string                                               { return "" }

// goKeyed is keyed by Projection.AppendGoKey on the Go values, as the MCP
// adapters key theirs.
type goKeyed struct{ v any }

func (in goKeyed) AppendKey(dst []byte, p *projection.Projection) ([]byte, bool) {
	return p.AppendGoKey(dst, in.v)
}
func (in goKeyed) Value() (ast.Value, error) { return ast.InterfaceToValue(in.v) }
func (goKeyed) Subject() string              { return "" }

// outcome is a decision as a caller sees it: the value, or the error code.
func outcome(d engine.Decision, err error) string {
	if err != nil {
		var e *engine.Error
		if errors.As(err, &e) {
			return "error:" + string(e.Code)
		}
		return "error:" + err.Error()
	}
	b, _ := json.Marshal(d.Value)
	return string(b)
}

func identity(r engine.Result) (any, error) { return r.Value, nil }

// stringLists turns every list of strings into a []string, as the native
// MCP adapter builds peer names and roles.
func stringLists(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = stringLists(e)
		}
		return out
	case []any:
		ss := make([]string, 0, len(x))
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				out := make([]any, len(x))
				for i, e := range x {
					out[i] = stringLists(e)
				}
				return out
			}
			ss = append(ss, s)
		}
		if len(ss) == 0 {
			return x
		}
		return ss
	}
	return v
}

// TestCacheSoundnessCorpus sends every case's inputs, in order, to an engine
// with the decision cache and to one without, keyed both from the built
// value and from Go values: every answer must be the same.
func TestCacheSoundnessCorpus(t *testing.T) {
	t.Parallel()
	for _, c := range loadSoundnessCases(t) {
		for _, keying := range []string{"ast", "go"} {
			t.Run(c.File+"/"+keying, func(t *testing.T) {
				t.Parallel()
				cached, cc := soundnessEngine(t, c, true)
				plain, _ := soundnessEngine(t, c, false)
				p := cached.Snapshot().Projection(c.Entrypoint)
				if c.Nondeterministic == p.Cacheable() {
					t.Fatalf("%s: cacheable = %v, want %v (reads %v, non-deterministic %v)", c.Class, p.Cacheable(), !c.Nondeterministic, p.Strings(), p.Nondeterministic)
				}
				for i, in := range c.Inputs {
					var din engine.Input = astInput{in}
					if keying == "go" {
						v := in
						if c.GoLists {
							v = stringLists(in)
						}
						din = goKeyed{v}
					}
					d, err := cached.Decide(t.Context(), c.Entrypoint, din, identity)
					cc.Flush()
					got := outcome(d, err)
					if c.Nondeterministic {
						if d.Cached {
							t.Errorf("input %d: a non-deterministic decision was answered by the cache", i)
						}
						continue
					}
					want := outcome(plain.Decide(t.Context(), c.Entrypoint, astInput{in}, identity))
					if got != want {
						t.Errorf("%s: input %d %v: cache on answers %s (cached %v), cache off %s; projection %v",
							c.Class, i, in, got, d.Cached, want, p.Strings())
					}
					if c.Plain != nil {
						if exp := c.Plain[i]; (exp == "error" && !strings.HasPrefix(want, "error:")) || (exp != "error" && want != mustJSON(t, exp)) {
							t.Errorf("input %d: evaluation answers %s, the case expects %v: the case no longer tests its attack", i, want, exp)
						}
					}
					if slices.Contains(c.Hits, i) && !d.Cached {
						t.Errorf("input %d: not answered by the cache; the case no longer exercises it (projection %v)", i, p.Strings())
					}
				}
			})
		}
	}
}

func mustJSON(tb testing.TB, v any) string {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// soundnessEngines are built once per fuzzing process.
var soundnessEngines struct {
	once  sync.Once
	cases []soundnessCase
	plain []*engine.Engine
}

func fuzzEngines(tb testing.TB) ([]soundnessCase, []*engine.Engine) {
	tb.Helper()
	soundnessEngines.once.Do(func() {
		for _, c := range loadSoundnessCases(tb) {
			e, _ := soundnessEngine(tb, c, false)
			soundnessEngines.cases = append(soundnessEngines.cases, c)
			soundnessEngines.plain = append(soundnessEngines.plain, e)
		}
	})
	return soundnessEngines.cases, soundnessEngines.plain
}

func describe(c soundnessCase, p *projection.Projection) string {
	return fmt.Sprintf("%s (%s), projection %v", c.File, c.Class, p.Strings())
}
