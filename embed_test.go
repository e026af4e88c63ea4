package verdict_test

import (
	"context"
	"testing"

	"github.com/open-policy-agent/opa/v1/tester"

	"github.com/verdictpdp/verdict"
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

func TestDefaultBundlesAreEmbedded(t *testing.T) {
	t.Parallel()
	fss := verdict.DefaultBundles()
	for _, name := range []string{"policies", "default"} {
		if _, ok := fss[name]; !ok {
			t.Fatalf("built-in bundle %q missing", name)
		}
	}
}
