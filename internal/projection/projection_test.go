package projection_test

import (
	"context"
	"crypto/sha256"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"sigs.k8s.io/yaml"

	"github.com/verdictpdp/verdict/internal/projection"
)

type projectionCase struct {
	Name             string            `json:"name"`
	Entrypoint       string            `json:"entrypoint"`
	Modules          map[string]string `json:"modules"`
	Data             map[string]any    `json:"data"`
	Paths            []string          `json:"paths"`
	Whole            bool              `json:"whole"`
	Nondeterministic []string          `json:"nondeterministic"`
	Same             [][2]any          `json:"same"`
	Differ           [][2]any          `json:"differ"`
	// NoPartialEval says why OPA's partial evaluation cannot cross-check
	// this case (it keeps references to rules it could not inline).
	NoPartialEval string `json:"no_partial_eval"`
	// LocalSchemas is what the engine works out from the bundle's data.
	LocalSchemas bool `json:"local_schemas"`
}

func loadCases(t *testing.T) []projectionCase {
	t.Helper()
	raw, err := os.ReadFile("testdata/cases.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Cases []projectionCase `json:"cases"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Cases) == 0 {
		t.Fatal("no cases")
	}
	return doc.Cases
}

type compiled struct {
	compiler *ast.Compiler
	store    storage.Store
	ref      ast.Ref
	local    bool
}

func compile(t *testing.T, c projectionCase, prints bool) compiled {
	t.Helper()
	mods := map[string]*ast.Module{}
	for name, src := range c.Modules {
		m, err := ast.ParseModuleWithOpts(name, src, ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			t.Fatal(err)
		}
		mods[name] = m
	}
	comp := ast.NewCompiler().WithDefaultRegoVersion(ast.RegoV1).WithEnablePrintStatements(prints)
	if comp.Compile(mods); comp.Failed() {
		t.Fatal(comp.Errors)
	}
	data := c.Data
	if data == nil {
		data = map[string]any{}
	}
	ref := ast.Ref{ast.DefaultRootDocument}
	for seg := range strings.SplitSeq(c.Entrypoint, "/") {
		ref = append(ref, ast.StringTerm(seg))
	}
	return compiled{compiler: comp, store: inmem.NewFromObject(data), ref: ref, local: c.LocalSchemas}
}

func (c compiled) analyze(t *testing.T) *projection.Projection {
	t.Helper()
	live := projection.LiveWithData(t.Context(), c.compiler, c.store, time.Second)
	return projection.Analyze(c.compiler, c.ref, projection.Options{Live: live, LocalSchemas: c.local})
}

func (c compiled) key(t *testing.T, p *projection.Projection, input any) [32]byte {
	t.Helper()
	v, err := ast.InterfaceToValue(input)
	if err != nil {
		t.Fatal(err)
	}
	viaAST := sha256.Sum256(p.AppendKey(nil, v))
	return viaAST
}

func (c compiled) goKey(t *testing.T, p *projection.Projection, input any) [32]byte {
	t.Helper()
	k, ok := p.AppendGoKey(nil, input)
	if !ok {
		t.Fatalf("AppendGoKey refused %v", input)
	}
	return sha256.Sum256(k)
}

func (c compiled) eval(t *testing.T, input any) any {
	t.Helper()
	rs, err := rego.New(rego.ParsedQuery(ast.NewBody(ast.NewExpr(ast.NewTerm(c.ref)))),
		rego.Compiler(c.compiler), rego.Store(c.store), rego.Input(input)).Eval(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) == 0 {
		return nil
	}
	return rs[0].Expressions[0].Value
}

func TestAnalyzeCorpus(t *testing.T) {
	t.Parallel()
	for _, tc := range loadCases(t) {
		t.Run(tc.Name, func(t *testing.T) {
			t.Parallel()
			c := compile(t, tc, true)
			p := c.analyze(t)
			if p.Whole != tc.Whole {
				t.Fatalf("Whole = %v (%s), want %v; paths %v", p.Whole, p.Reason, tc.Whole, p.Strings())
			}
			if !tc.Whole {
				if diff := cmp.Diff(tc.Paths, p.Strings()); diff != "" {
					t.Errorf("paths (-want +got):\n%s", diff)
				}
			}
			if diff := cmp.Diff(tc.Nondeterministic, p.Nondeterministic, cmp.Comparer(func(a, b []string) bool {
				return slices.Equal(a, b) || len(a)+len(b) == 0
			})); diff != "" {
				t.Errorf("nondeterministic (-want +got):\n%s", diff)
			}
			if p.Cacheable() != (len(tc.Nondeterministic) == 0) {
				t.Errorf("Cacheable = %v", p.Cacheable())
			}
			for i, pair := range slices.Concat(tc.Same, tc.Differ) {
				for _, in := range pair {
					if c.key(t, p, in) != c.goKey(t, p, in) {
						t.Errorf("pair %d: AppendGoKey and AppendKey disagree on %v", i, in)
					}
				}
			}
			for i, pair := range tc.Same {
				if c.key(t, p, pair[0]) != c.key(t, p, pair[1]) {
					t.Errorf("same[%d]: keys differ", i)
				}
				if a, b := c.eval(t, pair[0]), c.eval(t, pair[1]); !cmp.Equal(a, b) {
					t.Errorf("same[%d]: the fixture is wrong, decisions differ: %v vs %v", i, a, b)
				}
			}
			for i, pair := range tc.Differ {
				if c.key(t, p, pair[0]) == c.key(t, p, pair[1]) {
					t.Errorf("differ[%d]: keys are equal", i)
				}
			}
		})
	}
}

// TestAnalyzeCoversPartialEvaluation checks the analysis against OPA's own
// partial evaluation with input unknown: every input reference left in the
// residual policy must be related to a projected path (equal, under it, or
// above it). A field the analysis forgot shows up here.
func TestAnalyzeCoversPartialEvaluation(t *testing.T) {
	t.Parallel()
	for _, tc := range loadCases(t) {
		if tc.Whole || len(tc.Nondeterministic) > 0 || tc.NoPartialEval != "" {
			continue
		}
		t.Run(tc.Name, func(t *testing.T) {
			t.Parallel()
			// print is erased: OPA keeps what it reads in the residual,
			// the analysis rightly does not.
			c := compile(t, tc, false)
			p := c.analyze(t)
			pq, err := rego.New(rego.ParsedQuery(ast.NewBody(ast.NewExpr(ast.NewTerm(c.ref)))),
				rego.Compiler(c.compiler), rego.Store(c.store), rego.Unknowns([]string{"input"})).Partial(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			var refs []ast.Ref
			collect := func(x any) {
				ast.WalkRefs(x, func(r ast.Ref) bool {
					if r[0].Equal(ast.InputRootDocument) {
						refs = append(refs, r.GroundPrefix()[1:])
					}
					return false
				})
			}
			for _, q := range pq.Queries {
				collect(q)
			}
			for _, m := range pq.Support {
				collect(m)
			}
			if len(refs) == 0 {
				t.Fatal("partial evaluation left no input reference: the case tests nothing")
			}
			for _, r := range refs {
				if len(r) == 0 {
					continue // an alias of the whole input in a support rule
				}
				if !slices.ContainsFunc(p.Paths, func(x projection.Path) bool {
					return r.HasPrefix(x.Ref) || x.Ref.HasPrefix(r)
				}) {
					t.Errorf("partial evaluation reads input%v, which no projected path covers: %v", r, p.Strings())
				}
			}
		})
	}
}
