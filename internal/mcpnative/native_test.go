package mcpnative_test

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/verdictpdp/verdict"
	"github.com/verdictpdp/verdict/internal/engine"
	"github.com/verdictpdp/verdict/internal/mcpnative"
)

// TestFingerprint fails when the shipped library changes: bring this
// package in line with the change (the differential tests show where it
// differs), then update LibraryFingerprint.
func TestFingerprint(t *testing.T) {
	got := mcpnative.Fingerprint(verdict.DefaultBundles()[verdict.MCPBundle], "verdict/mcp")
	if got != mcpnative.LibraryFingerprint {
		t.Fatalf("library fingerprint %s, this package reproduces %s", got, mcpnative.LibraryFingerprint)
	}
}

func exampleData(t *testing.T) map[string]any {
	t.Helper()
	return exampleDataB(t)
}

func exampleDataB(t testing.TB) map[string]any {
	t.Helper()
	raw, err := os.ReadFile("../../bundles/mcp-example/data.json")
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	return jsonData(t, v)
}

// TestDifferentialExample compares native and Rego decisions on the
// example catalog for generated requests.
func TestDifferentialExample(t *testing.T) {
	lib := libraryBundle(t)
	data := exampleData(t)
	snap, ev := activate(t, lib, data)
	if ev.Kind != engine.EvaluatorNative {
		t.Fatalf("example catalog runs in %s: %s", ev.Kind, ev.Reason)
	}
	g := newGen(1)
	// The example has flow rules: requests from sessions that read
	// something are Rego's; every other one is the native evaluator's.
	decided, eligible := 0, 0
	for i := range 2000 {
		in := g.request()
		if i%4 == 0 {
			in = g.listRequest(data)
		}
		if !sessionRead(in) {
			eligible++
		}
		ok, err := differ(snap, in)
		if err != nil {
			t.Fatalf("request %d %s:\n%v", i, short(in), err)
		}
		if ok {
			decided++
		}
	}
	if decided < eligible*95/100 || eligible < 1400 {
		t.Fatalf("native decided %d of %d requests without session reads", decided, eligible)
	}
}

// TestDifferentialGenerated compares native and Rego decisions on
// generated catalogs.
func TestDifferentialGenerated(t *testing.T) {
	lib := libraryBundle(t)
	catalogs := 40
	if testing.Short() {
		catalogs = 8
	}
	native := 0
	for seed := range uint64(catalogs) {
		g := newGen(seed)
		rules := 12
		if seed%2 == 1 {
			rules = 60 // enough to go through the subject index
		}
		data := jsonData(t, g.catalog(rules))
		snap, ev := activate(t, lib, data)
		if ev.Kind != engine.EvaluatorNative {
			t.Logf("seed %d runs in Rego: %s", seed, ev.Reason)
			continue
		}
		native++
		for i := range 300 {
			var in map[string]any
			if i%5 == 0 {
				in = g.listRequest(data)
			} else {
				in = g.request()
			}
			if _, err := differ(snap, in); err != nil {
				t.Fatalf("seed %d request %d %s\ncatalog %s:\n%v", seed, i, short(in), short(data), err)
			}
		}
	}
	if native < catalogs*3/4 {
		t.Fatalf("only %d of %d generated catalogs compiled natively", native, catalogs)
	}
}

// sessionRead mirrors the evaluator's test for a session that read
// something a flow rule could act on.
func sessionRead(in map[string]any) bool {
	s, ok := in["session"].(map[string]any)
	if !ok {
		return false
	}
	for _, k := range []string{"classification", "categories", "findings"} {
		if _, has := s[k]; has {
			return true
		}
	}
	return false
}
