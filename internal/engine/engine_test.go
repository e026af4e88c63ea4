package engine_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/verdictpdp/verdict/internal/bundle"
	"github.com/verdictpdp/verdict/internal/bundle/bundletest"
	"github.com/verdictpdp/verdict/internal/engine"
)

func readBundle(t *testing.T, s bundletest.Spec) *bundle.Bundle {
	t.Helper()
	b, err := bundle.NewReader(bundle.Limits{}, nil).ReadArchive("main", bundletest.Archive(t, s))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newEngine(t *testing.T, timeout time.Duration, policy string) *engine.Engine {
	t.Helper()
	e, err := engine.New(engine.Deps{Entrypoints: []string{"test/decision"}, EvalTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	if policy != "" {
		if _, err := e.Activate(context.Background(), map[string]*bundle.Bundle{
			"main": readBundle(t, bundletest.Spec{Revision: "r1", Modules: map[string]string{"p.rego": policy}}),
		}); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

func TestEvalFailuresCarryCodes(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		policy string
		input  string
		want   engine.Code
	}{
		{"no bundle", "", `{}`, engine.CodeNoBundle},
		{"undefined", "package test\n\ndecision if input.x == 1\n", `{"x": 2}`, engine.CodeUndefined},
		{"conflict", "package test\n\ndecision := input.a if true\ndecision := input.b if true\n", `{"a": 1, "b": 2}`, engine.CodeEvalError},
		{"timeout", "package test\n\ndecision := count([1 | some i in numbers.range(1, 4000); some j in numbers.range(1, 4000)])\n", `{}`, engine.CodeTimeout},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEngine(t, 50*time.Millisecond, tc.policy)
			start := time.Now()
			_, err := e.Eval(context.Background(), "test/decision", ast.MustParseTerm(tc.input).Value)
			if got := engine.CodeOf(err); err == nil || got != tc.want {
				t.Fatalf("Eval error = %v (code %q), want code %q", err, got, tc.want)
			}
			var ee *engine.Error
			if !errors.As(err, &ee) || ee.Message == "" {
				t.Fatalf("error %v has no caller-safe message", err)
			}
			if took := time.Since(start); took > 2*time.Second {
				t.Fatalf("Eval took %v; the timeout did not stop it", took)
			}
		})
	}
}

func TestEvalReturnsValueAndRevision(t *testing.T) {
	t.Parallel()
	e := newEngine(t, time.Second, "package test\n\ndecision := {\"n\": input.n + 1}\n")
	res, err := e.Eval(context.Background(), "test/decision", ast.MustParseTerm(`{"n": 41}`).Value)
	if err != nil {
		t.Fatal(err)
	}
	got := res.Value.(map[string]any)["n"].(json.Number)
	if got != "42" || res.Revision != "r1" {
		t.Fatalf("Eval = %v rev %q, want n=42 rev r1", res.Value, res.Revision)
	}
	if _, err := e.Eval(context.Background(), "other/path", ast.NewObject()); engine.CodeOf(err) != engine.CodeUnknownEntrypoint {
		t.Fatalf("unknown entrypoint: %v", err)
	}
}

func TestFailedActivationKeepsSnapshot(t *testing.T) {
	t.Parallel()
	e := newEngine(t, time.Second, "package test\n\ndecision := 1\n")
	before := e.Snapshot()
	_, err := e.Activate(context.Background(), map[string]*bundle.Bundle{
		"main": readBundle(t, bundletest.Spec{Revision: "bad", Modules: map[string]string{"p.rego": "package test\n\ndecision := x\n"}}),
	})
	if !errors.Is(err, engine.ErrActivation) {
		t.Fatalf("Activate of an uncompilable bundle = %v, want ErrActivation", err)
	}
	if e.Snapshot() != before {
		t.Fatal("a failed activation replaced the snapshot")
	}
	// Overlapping roots across bundles are refused by OPA's activation.
	_, err = e.Activate(context.Background(), map[string]*bundle.Bundle{
		"a": readBundle(t, bundletest.Spec{Revision: "a", Roots: []string{"test"}, Modules: map[string]string{"a.rego": "package test\n\ndecision := 1\n"}}),
		"b": readBundle(t, bundletest.Spec{Revision: "b", Roots: []string{"test/x"}, Data: map[string]any{"test": map[string]any{"x": 1}}}),
	})
	if err == nil || e.Snapshot() != before {
		t.Fatalf("overlapping roots: err=%v, snapshot replaced=%v", err, e.Snapshot() != before)
	}
}

func TestMultipleBundlesCompositeRevision(t *testing.T) {
	t.Parallel()
	e := newEngine(t, time.Second, "")
	snap, err := e.Activate(context.Background(), map[string]*bundle.Bundle{
		"rules": readBundle(t, bundletest.Spec{Revision: "p1", Roots: []string{"test"}, Modules: map[string]string{"a.rego": "package test\n\ndecision := data.cfg.limit\n"}}),
		"data":  readBundle(t, bundletest.Spec{Revision: "d7", Roots: []string{"cfg"}, Data: map[string]any{"cfg": map[string]any{"limit": 5}}}),
	})
	if err != nil {
		t.Fatal(err)
	}
	if snap.Revision != "data=d7,rules=p1" || snap.Generation != 1 {
		t.Fatalf("revision %q generation %d", snap.Revision, snap.Generation)
	}
	res, err := e.Eval(context.Background(), "test/decision", ast.NewObject())
	if err != nil || res.Value.(json.Number) != "5" {
		t.Fatalf("cross-bundle read: %v %v", res.Value, err)
	}
}

func TestNormalizeEntrypoint(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"envoy/authz/allow":       "envoy/authz/allow",
		"/envoy/authz/allow/":     "envoy/authz/allow",
		"data.envoy.authz.allow":  "envoy/authz/allow",
		"envoy.authz.allow":       "envoy/authz/allow",
		"data/envoy/authz/allow":  "envoy/authz/allow",
		"":                        "",
		"envoy//allow":            "",
		"envoy/authz/allow-extra": "",
		"envoy/9lives":            "",
	}
	for in, want := range cases {
		got, err := engine.NormalizeEntrypoint(in)
		if want == "" {
			if err == nil {
				t.Errorf("NormalizeEntrypoint(%q) = %q, want an error", in, got)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("NormalizeEntrypoint(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestUndefinedEntrypoints(t *testing.T) {
	t.Parallel()
	const authz = "package envoy.authz\n\nallow := {\"allowed\": true}\n"
	cases := []struct {
		name        string
		entrypoints []string
		spec        bundletest.Spec
		want        []string
	}{
		{"a rule at the entrypoint", []string{"envoy/authz/allow"}, bundletest.Spec{Modules: map[string]string{"p.rego": authz}}, nil},
		{"a typo", []string{"envoy/authz/alow", "envoy/authz/allow"}, bundletest.Spec{Modules: map[string]string{"p.rego": authz}}, []string{"envoy/authz/alow"}},
		{"a package: rules under the entrypoint", []string{"envoy/authz"}, bundletest.Spec{Modules: map[string]string{"p.rego": authz}}, nil},
		{"into a rule's value", []string{"envoy/authz/allow/allowed"}, bundletest.Spec{Modules: map[string]string{"p.rego": authz}}, nil},
		{"bundle data at the entrypoint", []string{"cfg/allow"}, bundletest.Spec{Data: map[string]any{"cfg": map[string]any{"allow": true}}}, nil},
		{"a data bundle alone", []string{"envoy/authz/allow", "verdict/mcp/decision"}, bundletest.Spec{Roots: []string{"mcp"}, Data: map[string]any{"mcp": map[string]any{}}}, []string{"envoy/authz/allow", "verdict/mcp/decision"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var logs bytes.Buffer
			e, err := engine.New(engine.Deps{
				Entrypoints: tc.entrypoints,
				Logger:      slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})),
			})
			if err != nil {
				t.Fatal(err)
			}
			tc.spec.Revision = "r1"
			snap, err := e.Activate(context.Background(), map[string]*bundle.Bundle{"main": readBundle(t, tc.spec)})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(snap.Undefined, tc.want) {
				t.Errorf("Undefined = %v, want %v", snap.Undefined, tc.want)
			}
			for _, ep := range tc.want {
				if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "entrypoint="+ep) {
					t.Errorf("no WARN names %s:\n%s", ep, logs.String())
				}
			}
			if len(tc.want) == 0 && logs.Len() > 0 {
				t.Errorf("unexpected warnings:\n%s", logs.String())
			}
		})
	}
}

// TestActivationLeavesBundlesUnchanged reads the same bundle twice and
// activates one: the two must still compare equal, or a source that
// delivers an unchanged bundle would replace the snapshot (and flush the
// cache) at every rescan.
func TestActivationLeavesBundlesUnchanged(t *testing.T) {
	t.Parallel()
	for _, spec := range []bundletest.Spec{
		{Revision: "rootless", Modules: map[string]string{"p.rego": "package test\n\ndecision := data.n\n"}, Data: map[string]any{"n": 1}},
		{Revision: "system data", Modules: map[string]string{"p.rego": "package test\n\ndecision := data.n\n"}, Data: map[string]any{"n": 1, "system": map[string]any{"x": 1}}},
		{Revision: "rooted", Roots: []string{"test"}, Modules: map[string]string{"p.rego": "package test\n\ndecision := data.test.n\n"}, Data: map[string]any{"test": map[string]any{"n": 1}}},
	} {
		t.Run(spec.Revision, func(t *testing.T) {
			t.Parallel()
			a, b := readBundle(t, spec), readBundle(t, spec)
			e := newEngine(t, time.Second, "")
			if _, err := e.Activate(context.Background(), map[string]*bundle.Bundle{"main": a}); err != nil {
				t.Fatal(err)
			}
			if !a.Equal(*b) {
				t.Fatalf("activation changed the bundle's data: %v, read again %v", a.Data, b.Data)
			}
			res, err := e.Eval(context.Background(), "test/decision", ast.NewObject())
			if err != nil || res.Value.(json.Number) != "1" {
				t.Fatalf("decision = %v, %v", res.Value, err)
			}
		})
	}
}
