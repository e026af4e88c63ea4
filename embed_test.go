package verdict_test

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"

	opabundle "github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/tester"

	"github.com/verdictpdp/verdict"
	"github.com/verdictpdp/verdict/internal/bundle"
)

// TestRegoLibrary runs the Rego unit tests in policies/ (the same tests
// `opa test policies/` runs).
func TestRegoLibrary(t *testing.T) {
	t.Parallel()
	results, err := tester.Run(context.Background(), "policies")
	if err != nil {
		t.Fatal(err)
	}
	if len(results) == 0 {
		t.Fatal("no Rego tests found under policies/")
	}
	for _, r := range results {
		if r.Fail || r.Error != nil {
			t.Errorf("%s.%s: fail=%v err=%v\n%s", r.Package, r.Name, r.Fail, r.Error, r.Output)
		}
	}
	t.Logf("%d Rego tests", len(results))
}

// TestDefaultBundles reads each built-in bundle as the service does and
// checks what it claims: the Envoy default and the MCP library must have
// disjoint roots, so that a user bundle replacing one leaves the other.
func TestDefaultBundles(t *testing.T) {
	t.Parallel()
	want := map[string]struct {
		roots   []string
		modules []string
		data    bool
	}{
		verdict.EnvoyBundle: {[]string{"envoy", "verdict/default"}, []string{"envoy/authz/authz.rego"}, true},
		verdict.MCPBundle:   {[]string{"verdict/mcp", "verdict/approvals"}, []string{"verdict/approvals/approvals.rego", "verdict/mcp/access.rego", "verdict/mcp/catalog.rego", "verdict/mcp/compliance.rego", "verdict/mcp/decision.rego", "verdict/mcp/flows.rego", "verdict/mcp/lists.rego"}, false},
	}
	fss := verdict.DefaultBundles()
	if len(fss) != len(want) {
		t.Fatalf("built-in bundles %v, want %d", slices.Sorted(maps.Keys(fss)), len(want))
	}
	reader := bundle.NewReader(bundle.Limits{}, nil)
	read := map[string]*bundle.Bundle{}
	for name, w := range want {
		b, err := reader.ReadFS(name, fss[name])
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		read[name] = b
		if got := *b.Manifest.Roots; !slices.Equal(got, w.roots) {
			t.Errorf("%s roots = %v, want %v", name, got, w.roots)
		}
		if b.Manifest.Revision == "" {
			t.Errorf("%s has no revision", name)
		}
		var mods []string
		for _, m := range b.Modules {
			mods = append(mods, strings.TrimPrefix(m.Path, "/"))
		}
		slices.Sort(mods)
		if !slices.Equal(mods, w.modules) {
			t.Errorf("%s modules = %v, want %v (no *_test.rego)", name, mods, w.modules)
		}
		if got := len(b.Data) > 0; got != w.data {
			t.Errorf("%s has data = %v, want %v", name, got, w.data)
		}
	}
	for _, ra := range *read[verdict.EnvoyBundle].Manifest.Roots {
		for _, rb := range *read[verdict.MCPBundle].Manifest.Roots {
			if opabundle.RootPathsOverlap(ra, rb) {
				t.Errorf("built-in roots %q and %q overlap", ra, rb)
			}
		}
	}
}
