package engine

import (
	"errors"
	"fmt"
)

// Code classifies why the engine could not produce a decision. Codes are
// stable: adapters return them to callers and operators alert on them.
type Code string

// Decision error codes.
const (
	// CodeNoBundle means no bundle has been activated yet.
	CodeNoBundle Code = "no_active_bundle"
	// CodeUnknownEntrypoint means the entrypoint was not prepared at activation.
	CodeUnknownEntrypoint Code = "unknown_entrypoint"
	// CodeUndefined means the policy produced no value at the entrypoint.
	CodeUndefined Code = "undefined_decision"
	// CodeConflict means the policy produced more than one value.
	CodeConflict Code = "conflicting_decision"
	// CodeTimeout means evaluation did not finish within its deadline.
	CodeTimeout Code = "evaluation_timeout"
	// CodeEvalError means evaluation failed (a built-in error, a conflict, ...).
	CodeEvalError Code = "evaluation_error"
)

// Error is a decision error. Message is safe to return to a caller; Err holds
// the detail for logs and must never be sent over the wire.
type Error struct {
	Code    Code
	Message string
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// CodeOf returns the code of err if it is (or wraps) an *Error, and
// CodeEvalError otherwise.
func CodeOf(err error) Code {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Code
	}
	return CodeEvalError
}

// ErrActivation is wrapped by every error Activate returns.
var ErrActivation = errors.New("bundle activation failed")
