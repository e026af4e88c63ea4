package mcp

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/verdictpdp/verdict/internal/engine"
)

// DefaultPath is the MCP entrypoint the policy library defines.
const DefaultPath = "verdict/mcp/decision"

// Reason codes for decisions Verdict made without the policy's answer.
const (
	ReasonInvalidRequest  = "request.invalid"
	ReasonInvalidDecision = "invalid_decision"
	ReasonFailOpen        = "fail_open"
)

// Evaluator is the decision core as MCP adapters see it.
type Evaluator interface {
	Eval(ctx context.Context, entrypoint string, input ast.Value) (engine.Result, error)
}

// Decider asks the policy at one entrypoint for MCP decisions.
type Decider struct {
	eval     Evaluator
	path     string
	failOpen bool
}

// NewDecider returns a decider for the entrypoint path (canonical slash
// form). With failOpen, a missing or broken decision allows; otherwise it
// denies with the reason.
func NewDecider(eval Evaluator, path string, failOpen bool) *Decider {
	if path == "" {
		path = DefaultPath
	}
	return &Decider{eval: eval, path: path, failOpen: failOpen}
}

// Path returns the entrypoint.
func (d *Decider) Path() string { return d.path }

// Outcome is everything one MCP decision produced.
type Outcome struct {
	DecisionID string
	Input      map[string]any
	// Result is the policy's raw value (nil when there was none).
	Result   any
	Revision string
	Decision Decision
	// Err is why the policy's answer was not used: a *RequestError, an
	// *engine.Error or an error wrapping ErrInvalidDecision.
	Err  error
	Took time.Duration
	// rpcCode overrides the JSON-RPC error code (malformed requests).
	rpcCode int
}

// NewOutcome starts an outcome with a fresh decision id.
func NewOutcome() Outcome { return Outcome{DecisionID: uuid.NewString()} }

// Reject fills o with a deny for a request that could not become input.
func (o *Outcome) Reject(err error) {
	o.Err = err
	msg := "request is not a valid MCP request"
	o.rpcCode = CodeInvalidRequest
	if re, ok := errors.AsType[*RequestError](err); ok {
		msg, o.rpcCode = re.Reason, re.JSONRPCCode
	}
	o.Decision = Decision{Reasons: []Reason{{Code: ReasonInvalidRequest, Message: msg}}}
}

// ErrorObject returns the JSON-RPC error for the outcome, or false when it
// allows.
func (o *Outcome) ErrorObject() (ErrorObject, bool) {
	e, ok := o.Decision.ErrorObject(o.DecisionID)
	if ok && o.rpcCode != 0 {
		e.Code = o.rpcCode
		e.Message = o.Decision.Reasons[0].Message
	}
	return e, ok
}

// Decide evaluates in (an input built by Request.Input, possibly with more
// members) and fills o. It never returns an allow by accident: every failure
// is a deny with a reason unless the decider fails open.
func (d *Decider) Decide(ctx context.Context, o *Outcome, in map[string]any) {
	start := time.Now()
	defer func() { o.Took += time.Since(start) }()
	o.Input = in
	value, err := ast.InterfaceToValue(in)
	if err != nil {
		o.Reject(fmt.Errorf("input cannot be converted: %w", err))
		return
	}
	res, err := d.eval.Eval(ctx, d.path, value)
	o.Revision = res.Revision
	if err == nil {
		o.Result = res.Value
		o.Decision, err = ParseDecision(res.Value)
	}
	if err != nil {
		o.Err = err
		code, msg := failureReason(err)
		o.Decision = Decision{Allow: d.failOpen, Reasons: []Reason{{Code: code, Message: msg}}}
		if d.failOpen {
			o.Decision.Reasons = append(o.Decision.Reasons, Reason{Code: ReasonFailOpen, Message: "allowed because the service is configured to fail open"})
		}
		return
	}
	if o.Decision.Verdict() != Allow && len(o.Decision.Reasons) == 0 {
		o.Decision.Reasons = []Reason{{Code: "policy.deny", Message: "denied by policy"}}
	}
}

// failureReason returns a stable code and a caller-safe message.
func failureReason(err error) (string, string) {
	if e, ok := errors.AsType[*engine.Error](err); ok {
		return string(e.Code), e.Message
	}
	if errors.Is(err, ErrInvalidDecision) {
		return ReasonInvalidDecision, "policy decision is malformed"
	}
	return string(engine.CodeEvalError), "policy evaluation failed"
}
