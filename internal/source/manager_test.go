package source_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/verdictpdp/verdict/internal/bundle"
	"github.com/verdictpdp/verdict/internal/bundle/bundletest"
	"github.com/verdictpdp/verdict/internal/engine"
	"github.com/verdictpdp/verdict/internal/source"
	"github.com/verdictpdp/verdict/internal/status"
)

// step is one thing a source does: deliver a bundle, or fail.
type step struct {
	name string
	spec *bundletest.Spec // nil: the source fails to deliver
	// wantErr says the activation must be refused.
	wantErr bool
}

// sourceWant is what /v1/status must say of one source after the steps.
type sourceWant struct {
	revision  string
	lastError bool
	leftOut   string // a substring of the reason; "" means served
}

func allow(rev string, roots ...string) *bundletest.Spec {
	return &bundletest.Spec{
		Revision: rev, Roots: roots,
		Modules: map[string]string{"p.rego": "package envoy.authz\n\nallow := true\n"},
	}
}

func data(rev string, roots []string, d map[string]any) *bundletest.Spec {
	return &bundletest.Spec{Revision: rev, Roots: roots, Data: d}
}

var broken = &bundletest.Spec{Revision: "broken", Modules: map[string]string{"p.rego": "package envoy.authz\n\nallow := x\n"}}

func TestManager(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		sources  []string
		optional []string
		steps    []step
		// activations counts the successful activations the steps cause.
		activations uint64
		active      string
		status      map[string]sourceWant
		// logs must appear in the WARN output.
		logs []string
	}{
		{
			name:        "a manifest-only change activates the new revision",
			sources:     []string{"main"},
			steps:       []step{{name: "main", spec: allow("r1")}, {name: "main", spec: allow("r2")}},
			activations: 2, active: "r2",
			status: map[string]sourceWant{"main": {revision: "r2"}},
		},
		{
			name:        "an identical bundle keeps the active snapshot",
			sources:     []string{"main"},
			steps:       []step{{name: "main", spec: allow("r1")}, {name: "main", spec: allow("r1")}},
			activations: 1, active: "r1",
			status: map[string]sourceWant{"main": {revision: "r1"}},
		},
		{
			name:        "a source that delivers its active bundle again after a read failure clears its last error",
			sources:     []string{"main"},
			steps:       []step{{name: "main", spec: allow("r1")}, {name: "main"}, {name: "main", spec: allow("r1")}},
			activations: 1, active: "r1",
			status: map[string]sourceWant{"main": {revision: "r1"}},
		},
		{
			name:        "a read failure stays reported until the source recovers",
			sources:     []string{"main"},
			steps:       []step{{name: "main", spec: allow("r1")}, {name: "main"}},
			activations: 1, active: "r1",
			status: map[string]sourceWant{"main": {revision: "r1", lastError: true}},
		},
		{
			name:    "a rejected bundle stays reported while another source activates",
			sources: []string{"main", "other"},
			steps: []step{
				{name: "main", spec: allow("m1", "envoy")},
				{name: "other", spec: data("o1", []string{"other"}, map[string]any{"other": map[string]any{"v": 1}})},
				{name: "main", spec: broken, wantErr: true},
				{name: "other", spec: data("o2", []string{"other"}, map[string]any{"other": map[string]any{"v": 2}})},
			},
			activations: 2, active: "main=m1,other=o2",
			status: map[string]sourceWant{"main": {revision: "m1", lastError: true}, "other": {revision: "o2"}},
		},
		{
			name:    "a rejected bundle's error clears when the source delivers the good one again",
			sources: []string{"main"},
			steps: []step{
				{name: "main", spec: allow("r1")},
				{name: "main", spec: broken, wantErr: true},
				{name: "main", spec: allow("r1")},
			},
			activations: 1, active: "r1",
			status: map[string]sourceWant{"main": {revision: "r1"}},
		},
		{
			name:     "an optional bundle gives way to a bundle claiming its roots; the other optional bundle keeps serving",
			sources:  []string{"builtin-envoy", "builtin-mcp", "user"},
			optional: []string{"builtin-envoy", "builtin-mcp"},
			steps: []step{
				{name: "builtin-envoy", spec: allow("lib", "envoy")},
				{name: "builtin-mcp", spec: data("lib", []string{"verdict/mcp"}, map[string]any{"verdict": map[string]any{"mcp": map[string]any{"x": 1}}})},
				{name: "user", spec: allow("u1", "envoy")},
			},
			activations: 1, active: "builtin-mcp=lib,user=u1",
			status: map[string]sourceWant{
				"builtin-envoy": {leftOut: `bundle "user" claims its roots envoy`},
				"builtin-mcp":   {revision: "lib"},
				"user":          {revision: "u1"},
			},
			logs: []string{"optional bundle left out", "bundle=builtin-envoy", "claimed_by=user"},
		},
		{
			name:     "an optional bundle serves again once no bundle claims its roots",
			sources:  []string{"builtin-envoy", "user"},
			optional: []string{"builtin-envoy"},
			steps: []step{
				{name: "builtin-envoy", spec: allow("lib", "envoy")},
				{name: "user", spec: allow("u1", "envoy")},
				{name: "user", spec: data("u2", []string{"mcp"}, map[string]any{"mcp": map[string]any{}})},
			},
			activations: 2, active: "builtin-envoy=lib,user=u2",
			status: map[string]sourceWant{"builtin-envoy": {revision: "lib"}, "user": {revision: "u2"}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var logs bytes.Buffer
			logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
			eng, err := engine.New(engine.Deps{Entrypoints: []string{"envoy/authz/allow"}, Logger: logger})
			if err != nil {
				t.Fatal(err)
			}
			reg := status.NewRegistry()
			var srcs []source.Source
			for _, n := range tc.sources {
				srcs = append(srcs, source.NewStatic(n, "test:"+n, nil, nil))
			}
			mgr, err := source.NewManager(eng, reg, logger, srcs)
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range tc.optional {
				mgr.MarkOptional(n)
			}
			reader := bundle.NewReader(bundle.Limits{}, nil)
			for i, s := range tc.steps {
				if s.spec == nil {
					mgr.Failure(s.name, errors.New("data.json: invalid JSON"))
					continue
				}
				b, err := reader.ReadArchive(s.name, bundletest.Archive(t, *s.spec))
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				if err := mgr.Update(context.Background(), s.name, b); (err != nil) != s.wantErr {
					t.Fatalf("step %d (%s %s): Update = %v, want error %v", i, s.name, s.spec.Revision, err, s.wantErr)
				}
			}
			snap := eng.Snapshot()
			if snap == nil || snap.Revision != tc.active || snap.Generation != tc.activations {
				t.Fatalf("active = %+v, want revision %q after %d activations", snap, tc.active, tc.activations)
			}
			for _, got := range reg.Sources() {
				want := tc.status[got.Name]
				if got.Revision != want.revision || (got.LastError != "") != want.lastError ||
					(want.leftOut == "") != (got.LeftOut == "") || !strings.Contains(got.LeftOut, want.leftOut) {
					t.Errorf("status of %s = %+v, want %+v", got.Name, got, want)
				}
			}
			for _, l := range tc.logs {
				if !strings.Contains(logs.String(), l) {
					t.Errorf("WARN log lacks %q:\n%s", l, logs.String())
				}
			}
		})
	}
}
