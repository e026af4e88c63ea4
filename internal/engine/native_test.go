package engine_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/verdictpdp/verdict/internal/bundle"
	"github.com/verdictpdp/verdict/internal/bundle/bundletest"
	"github.com/verdictpdp/verdict/internal/engine"
	"github.com/verdictpdp/verdict/internal/projection"
)

// fakeNative is a native compiler whose evaluator answers "native", hands
// back inputs with "rego" set, and panics on inputs with "panic" set.
type fakeNative struct {
	compileErr   error
	compilePanic bool
}

func (f fakeNative) Compile(context.Context, *engine.Policy) (engine.NativeEvaluator, error) {
	if f.compilePanic {
		panic("compiler bug")
	}
	if f.compileErr != nil {
		return nil, f.compileErr
	}
	return fakeEval{}, nil
}

type fakeEval struct{}

func (fakeEval) Eval(_ context.Context, in engine.Input) (any, bool) {
	m := in.(engine.GoValuer).GoValue()
	switch {
	case m["panic"] == true:
		panic("evaluator bug")
	case m["rego"] == true:
		return nil, false
	}
	return "native", true
}

type mapInput map[string]any

func (in mapInput) AppendKey(dst []byte, _ *projection.Projection) ([]byte, bool) { return dst, false }
func (in mapInput) Value() (ast.Value, error)                                     { return ast.InterfaceToValue(map[string]any(in)) }
func (in mapInput) Subject() string                                               { return "" }
func (in mapInput) GoValue() map[string]any                                       { return in }

func TestNativeEvaluator(t *testing.T) {
	const policy = "package test\n\ndecision := \"rego\"\n"
	activate := func(t *testing.T, n engine.Native, off bool) (*engine.Engine, engine.Evaluator) {
		t.Helper()
		e, err := engine.New(engine.Deps{Entrypoints: []string{"test/decision"},
			Natives: map[string]engine.Native{"test.decision": n}, DisableNative: off})
		if err != nil {
			t.Fatal(err)
		}
		snap, err := e.Activate(context.Background(), map[string]*bundle.Bundle{
			"main": readBundle(t, bundletest.Spec{Revision: "r1", Modules: map[string]string{"p.rego": policy}}),
		})
		if err != nil {
			t.Fatal(err)
		}
		return e, snap.Evaluators()["test/decision"]
	}
	decide := func(t *testing.T, e *engine.Engine, in mapInput) any {
		t.Helper()
		d, err := e.Decide(context.Background(), "test/decision", in, func(r engine.Result) (any, error) { return r.Value, nil })
		if err != nil {
			t.Fatal(err)
		}
		return d.Value
	}

	e, ev := activate(t, fakeNative{}, false)
	if ev.Kind != engine.EvaluatorNative {
		t.Fatalf("evaluator %+v", ev)
	}
	for _, tc := range []struct {
		in   mapInput
		want string
	}{
		{mapInput{}, "native"},
		{mapInput{"rego": true}, "rego"},  // handed back
		{mapInput{"panic": true}, "rego"}, // a native bug costs speed, not the decision
	} {
		if got := decide(t, e, tc.in); got != tc.want {
			t.Errorf("%v: decided %v, want %v", tc.in, got, tc.want)
		}
	}
	if ev := e.Snapshot().Evaluators()["test/decision"]; ev.Native != 1 || ev.Fallbacks != 2 {
		t.Errorf("counts %+v, want 1 native and 2 fallbacks", ev)
	}

	for _, tc := range []struct {
		name   string
		n      fakeNative
		off    bool
		reason string
	}{
		{"refused", fakeNative{compileErr: errors.New("data of the wrong shape")}, false, "data of the wrong shape"},
		{"compiler panics", fakeNative{compilePanic: true}, false, "native compiler failed"},
		{"switched off", fakeNative{}, true, "switched off"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, ev := activate(t, tc.n, tc.off)
			if ev.Kind != engine.EvaluatorRego || !strings.Contains(ev.Reason, tc.reason) {
				t.Fatalf("evaluator %+v, want rego because %q", ev, tc.reason)
			}
			if got := decide(t, e, mapInput{}); got != "rego" {
				t.Fatalf("decided %v", got)
			}
		})
	}
}
