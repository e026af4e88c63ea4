// Package enginetest holds what the adapters' tests share about their
// contract with the engine: an evaluator that holds every input's fast cache
// key to the key of the input it builds, and the projections of test
// policies. Tests only: nothing outside *_test.go files may import it.
package enginetest

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/verdictpdp/verdict"
	"github.com/verdictpdp/verdict/internal/bundle"
	"github.com/verdictpdp/verdict/internal/bundle/bundletest"
	"github.com/verdictpdp/verdict/internal/cache"
	"github.com/verdictpdp/verdict/internal/engine"
	"github.com/verdictpdp/verdict/internal/mcpnative"
	"github.com/verdictpdp/verdict/internal/projection"
)

// Engine returns an engine deciding entrypoint (slash form) with the policy
// activated as one bundle, answering from c (nil: no cache).
func Engine(tb testing.TB, entrypoint, policy string, c *cache.Cache) *engine.Engine {
	tb.Helper()
	raw := bundletest.Archive(tb, bundletest.Spec{Revision: "r1", Modules: map[string]string{"p.rego": policy}})
	b, err := bundle.NewReader(bundle.Limits{}, nil).ReadArchive("p", raw)
	if err != nil {
		tb.Fatal(err)
	}
	e, err := engine.New(engine.Deps{Entrypoints: []string{entrypoint}, Cache: c})
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := e.Activate(context.Background(), map[string]*bundle.Bundle{"p": b}); err != nil {
		tb.Fatal(err)
	}
	return e
}

// ErrNotDeciding is what KeyChecker answers every Decide with.
var ErrNotDeciding = errors.New("enginetest: KeyChecker does not decide")

// KeyChecker is an evaluator that decides nothing: it holds every input it
// is asked about to the cache's contract under each projection. A fast key,
// when written, is the bytes Projection.AppendKey writes for the built
// input; an input that does not build gets no fast key. A pruned input
// (engine.PrunedInput) is held to CheckPruned.
type KeyChecker struct {
	T           testing.TB
	Projections []*projection.Projection
	// Checked counts the inputs, Keyed the fast keys written, Pruned the
	// pruned inputs built.
	Checked, Keyed, Pruned int
}

// Revision names no bundle.
func (*KeyChecker) Revision() string { return "enginetest" }

// Decide checks in's keys (and its pruned inputs, when it can build them)
// and returns ErrNotDeciding.
func (k *KeyChecker) Decide(_ context.Context, _ string, in engine.Input, _ engine.Derive) (engine.Decision, error) {
	k.T.Helper()
	k.Checked++
	v, err := in.Value()
	for _, p := range k.Projections {
		fast, ok := in.AppendKey(nil, p)
		if ok {
			k.Keyed++
		}
		switch {
		case !ok:
		case err != nil:
			k.T.Fatalf("fast key written for an input that does not build (%v); paths %v", err, p.Strings())
		case !bytes.Equal(fast, p.AppendKey(nil, v)):
			k.T.Fatalf("paths %v:\nfast key  %q\nbuilt key %q", p.Strings(), fast, p.AppendKey(nil, v))
		}
		if pi, ok := in.(engine.PrunedInput); ok && CheckPruned(k.T, pi, p, v, err) {
			k.Pruned++
		}
	}
	return engine.Decision{}, ErrNotDeciding
}

// CheckPruned holds in's pruned input under p to its contract against the
// whole input (whole, or the error building it): when in builds one, the
// whole input builds too, and the two hold the same value (or none) at
// every path of p, whatever the kind of its read. It reports whether in
// built one.
func CheckPruned(tb testing.TB, in engine.PrunedInput, p *projection.Projection, whole ast.Value, wholeErr error) bool {
	tb.Helper()
	pruned, ok := in.PrunedValue(p)
	switch {
	case !ok:
		return false
	case wholeErr != nil:
		tb.Fatalf("pruned input built for an input that does not build (%v); paths %v", wholeErr, p.Strings())
	case p.Whole:
		tb.Fatalf("pruned input built for a projection that reads the input whole")
	}
	full := &projection.Projection{Paths: slices.Clone(p.Paths)}
	for i := range full.Paths {
		full.Paths[i].Kind = projection.Full
	}
	if got, want := full.AppendKey(nil, pruned), full.AppendKey(nil, whole); !bytes.Equal(got, want) {
		tb.Fatalf("paths %v: the pruned input holds other values than the whole input\npruned %v\nwhole  %v", p.Strings(), pruned, whole)
	}
	return true
}

// Projections compiles each policy (Rego v1) on its own and returns what a
// decision at entrypoint (a ref under data) reads, each followed by a copy
// that reads the same paths for their type only, since the analysis emits
// type reads for few constructs.
func Projections(tb testing.TB, entrypoint string, policies ...string) []*projection.Projection {
	tb.Helper()
	var out []*projection.Projection
	for _, src := range policies {
		m := ast.MustParseModuleWithOpts(src, ast.ParserOptions{RegoVersion: ast.RegoV1})
		c := ast.NewCompiler().WithDefaultRegoVersion(ast.RegoV1)
		if c.Compile(map[string]*ast.Module{"p": m}); c.Failed() {
			tb.Fatal(c.Errors)
		}
		p := projection.Analyze(c, ast.MustParseRef(entrypoint), projection.Options{})
		typed := &projection.Projection{Paths: slices.Clone(p.Paths), Whole: p.Whole}
		for i := range typed.Paths {
			typed.Paths[i].Kind = projection.Type
		}
		out = append(out, p, typed)
	}
	return out
}

// MCPLibrary returns an engine serving the built-in MCP policy library with
// data (the bundle data, {"mcp": …}) as a catalog bundle, answering from c
// (nil: no cache), deciding natively unless rego.
func MCPLibrary(tb testing.TB, data map[string]any, c *cache.Cache, rego bool) *engine.Engine {
	tb.Helper()
	reader := bundle.NewReader(bundle.Limits{}, nil)
	lib, err := reader.ReadFS(verdict.MCPBundle, verdict.DefaultBundles()[verdict.MCPBundle])
	if err != nil {
		tb.Fatal(err)
	}
	catalog, err := reader.ReadArchive("catalog", bundletest.Archive(tb, bundletest.Spec{Revision: "catalog", Roots: []string{"mcp"}, Data: data}))
	if err != nil {
		tb.Fatal(err)
	}
	e, err := engine.New(engine.Deps{
		Entrypoints: []string{mcpnative.Entrypoint}, Cache: c, DisableNative: rego,
		Natives: map[string]engine.Native{mcpnative.Entrypoint: mcpnative.Builtin()},
	})
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := e.Activate(context.Background(), map[string]*bundle.Bundle{verdict.MCPBundle: lib, "catalog": catalog}); err != nil {
		tb.Fatal(err)
	}
	return e
}
