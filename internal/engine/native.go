package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/storage"
)

// Native compiles one entrypoint of an activated policy into Go that
// decides exactly as the policy does, when it can. The Rego policy stays the
// source of truth: a compiler must refuse any policy or data whose meaning it
// does not reproduce, and the entrypoint is then evaluated in Rego.
type Native interface {
	// Compile returns an evaluator for the activated policy, or an error
	// that says why the entrypoint must be evaluated in Rego (logged at
	// activation and shown in the status).
	Compile(ctx context.Context, p *Policy) (NativeEvaluator, error)
}

// NativeEvaluator decides one entrypoint in Go.
type NativeEvaluator interface {
	// Eval returns the value the policy gives in, as JSON-like Go values
	// exactly as a Rego evaluation returns them, or false when in is outside
	// what the evaluator decides; the engine then evaluates in in Rego.
	Eval(ctx context.Context, in Input) (value any, ok bool)
}

// GoValuer is implemented by inputs that hold their Go form (maps of
// JSON-like values), which native evaluators read without building the Rego
// value.
type GoValuer interface {
	GoValue() map[string]any
}

// Policy is what a native compiler may read of one activation. It must not
// be modified.
type Policy struct {
	Compiler *ast.Compiler
	Store    storage.Store
	Bundles  map[string]*bundle.Bundle
}

// Evaluator names how an entrypoint is evaluated on a snapshot.
type Evaluator struct {
	// Kind is "native" or "rego".
	Kind string `json:"evaluator"`
	// Reason says why an entrypoint with a native compiler runs in Rego.
	Reason string `json:"reason,omitempty"`
	// Native and Fallbacks count the decisions made natively and those the
	// native evaluator handed back to Rego, on this snapshot.
	Native    uint64 `json:"native_decisions,omitempty"`
	Fallbacks uint64 `json:"rego_fallbacks,omitempty"`
}

// Evaluator kinds.
const (
	EvaluatorNative = "native"
	EvaluatorRego   = "rego"
)

var errNativeOff = errors.New("native evaluation is switched off in the configuration")

type nativeEntry struct {
	eval      NativeEvaluator
	reason    string // why there is no eval
	native    atomic.Uint64
	fallbacks atomic.Uint64
}

// compileNatives compiles the entrypoints that have a native compiler.
func (e *Engine) compileNatives(ctx context.Context, snap *Snapshot, p *Policy) {
	for ep, n := range e.natives {
		if _, ok := snap.queries[ep]; !ok {
			continue
		}
		ne := &nativeEntry{}
		var ev NativeEvaluator
		err := errNativeOff
		if !e.nativeOff {
			ev, err = compileNative(ctx, n, p)
		}
		if err != nil {
			ne.reason = err.Error()
			e.logger.LogAttrs(ctx, slog.LevelInfo, "entrypoint is evaluated in Rego: the native evaluator cannot decide this policy",
				slog.String("entrypoint", ep), slog.String("reason", ne.reason))
		} else {
			ne.eval = ev
			e.logger.LogAttrs(ctx, slog.LevelInfo, "entrypoint is evaluated natively", slog.String("entrypoint", ep))
		}
		if snap.natives == nil {
			snap.natives = map[string]*nativeEntry{}
		}
		snap.natives[ep] = ne
	}
}

// compileNative turns a compiler's panic into a refusal: a bug in a native
// compiler must cost speed, never an activation.
func compileNative(ctx context.Context, n Native, p *Policy) (ev NativeEvaluator, err error) {
	defer func() {
		if r := recover(); r != nil {
			ev, err = nil, fmt.Errorf("native compiler failed: %v", r)
		}
	}()
	return n.Compile(ctx, p)
}

// evalNative decides in natively when the entrypoint has a native
// evaluator that accepts it.
func (s *Snapshot) evalNative(ctx context.Context, entrypoint string, in Input) (any, bool) {
	ne := s.natives[entrypoint]
	if ne == nil || ne.eval == nil {
		return nil, false
	}
	v, ok := safeEval(ctx, ne.eval, in)
	if ok {
		ne.native.Add(1)
	} else {
		ne.fallbacks.Add(1)
	}
	return v, ok
}

// safeEval turns a native evaluator's panic into a hand-back to Rego.
func safeEval(ctx context.Context, ev NativeEvaluator, in Input) (v any, ok bool) {
	defer func() {
		if r := recover(); r != nil {
			v, ok = nil, false
		}
	}()
	return ev.Eval(ctx, in)
}

// Evaluators reports, for every configured entrypoint, whether it is
// evaluated natively or in Rego, and why.
func (s *Snapshot) Evaluators() map[string]Evaluator {
	out := make(map[string]Evaluator, len(s.projections))
	for ep := range s.projections {
		ev := Evaluator{Kind: EvaluatorRego, Reason: "no native evaluator exists for this entrypoint"}
		if ne := s.natives[ep]; ne != nil {
			ev.Reason = ""
			ev.Native, ev.Fallbacks = ne.native.Load(), ne.fallbacks.Load()
			if ne.eval != nil {
				ev.Kind = EvaluatorNative
			} else {
				ev.Reason = ne.reason
			}
		}
		out[ep] = ev
	}
	return out
}

// Native returns the native evaluator of entrypoint on this snapshot, or
// nil when it is evaluated in Rego.
func (s *Snapshot) Native(entrypoint string) NativeEvaluator {
	if ne := s.natives[entrypoint]; ne != nil {
		return ne.eval
	}
	return nil
}
