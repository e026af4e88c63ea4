package mcpnative

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/open-policy-agent/opa/v1/topdown/cache"
)

// OPA's own built-ins, called directly where the library's answer depends
// on their exact behaviour.
var (
	builtinSprintf     = topdown.GetBuiltin(ast.Sprintf.Name)
	builtinMatchSchema = topdown.GetBuiltin(ast.JSONMatchSchema.Name)
	builtinParseNs     = topdown.GetBuiltin(ast.ParseRFC3339Nanos.Name)
	builtinClock       = topdown.GetBuiltin(ast.Clock.Name)
	builtinWeekday     = topdown.GetBuiltin(ast.Weekday.Name)
	builtinCIDR        = topdown.GetBuiltin(ast.NetCIDRContains.Name)
)

var errUndefined = errors.New("undefined")

// call runs a built-in and returns its one value; an error or no value is
// an undefined result, as in a non-strict evaluation.
func call(ctx context.Context, fn topdown.BuiltinFunc, vc cache.InterQueryValueCache, caps *ast.Capabilities, args ...*ast.Term) (ast.Value, error) {
	if fn == nil {
		return nil, errors.New("built-in is not registered")
	}
	bctx := topdown.BuiltinContext{
		Context:                     ctx,
		Metrics:                     noMetrics,
		InterQueryBuiltinValueCache: vc,
		Capabilities:                caps,
	}
	var out ast.Value
	err := fn(bctx, args, func(t *ast.Term) error {
		out = t.Value
		return nil
	})
	if err != nil {
		return nil, err
	}
	if out == nil {
		return nil, errUndefined
	}
	return out, nil
}

var noMetrics = metrics.NoOp()

// sprintf formats like Rego's sprintf (values other than strings and
// numbers are written in Rego syntax).
func sprintf(format string, args ...ast.Value) (string, error) {
	terms := make([]*ast.Term, len(args))
	for i, a := range args {
		terms[i] = ast.NewTerm(a)
	}
	v, err := call(context.Background(), builtinSprintf, nil, nil, ast.StringTerm(format), ast.ArrayTerm(terms...))
	if err != nil {
		return "", err
	}
	s, ok := v.(ast.String)
	if !ok {
		return "", errors.New("sprintf returned a non-string")
	}
	return string(s), nil
}

// schemaSlot is an inter-query value cache holding one compiled schema: the
// one json.match_schema call that uses it always passes the same schema, so
// the compiled schema is found without hashing the schema value.
type schemaSlot struct{ v atomic.Value }

type slotValue struct{ v any }

func (s *schemaSlot) Get(ast.Value) (any, bool) {
	sv, ok := s.v.Load().(slotValue)
	return sv.v, ok
}

func (s *schemaSlot) Insert(_ ast.Value, v any) int {
	s.v.Store(slotValue{v})
	return 1
}

func (s *schemaSlot) Delete(ast.Value)                                 {}
func (s *schemaSlot) GetCache(string) cache.InterQueryValueCacheBucket { return s }
func (s *schemaSlot) UpdateConfig(*cache.Config)                       {}
func (s *schemaSlot) loaded() bool                                     { _, ok := s.Get(nil); return ok }

var _ cache.InterQueryValueCache = (*schemaSlot)(nil)
