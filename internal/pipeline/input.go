package pipeline

import (
	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/verdictpdp/verdict/internal/engine"
	"github.com/verdictpdp/verdict/internal/projection"
)

// MapInput is a policy input built as Go values (the MCP and AuthZEN
// inputs): the cache keys it on those values, and it is converted to an
// ast.Value only when the policy has to be evaluated.
type MapInput map[string]any

var _ engine.Input = MapInput(nil)

// AppendKey writes the bytes Projection.AppendKey writes for Value, or
// declines (a type AppendGoKey does not encode, a value that does not
// convert), and the engine keys the converted input. The adapters' key
// fuzzers (FuzzMCPKey, FuzzMCPEnvoyKey) hold it to that.
func (in MapInput) AppendKey(dst []byte, p *projection.Projection) ([]byte, bool) {
	return p.AppendGoKey(dst, map[string]any(in))
}

// GoValue hands native evaluators the input without converting it.
func (in MapInput) GoValue() map[string]any { return in }

// Subject is input.subject.id: flushing a subject's cached decisions
// flushes them.
func (in MapInput) Subject() string {
	s, _ := in["subject"].(map[string]any)
	id, _ := s["id"].(string)
	return id
}

// Value converts the input; a value Rego cannot hold (a number out of its
// range) is an *UnconvertibleError, the request's fault.
func (in MapInput) Value() (ast.Value, error) {
	v, err := ast.InterfaceToValue(map[string]any(in))
	if err != nil {
		return nil, &UnconvertibleError{Err: err}
	}
	return v, nil
}

// UnconvertibleError is an input that cannot become a Rego value.
type UnconvertibleError struct{ Err error }

func (e *UnconvertibleError) Error() string { return "input cannot be converted: " + e.Err.Error() }
func (e *UnconvertibleError) Unwrap() error { return e.Err }
