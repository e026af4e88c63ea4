package mcp

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/verdictpdp/verdict/internal/challenge"
	"github.com/verdictpdp/verdict/internal/enforce"
	"github.com/verdictpdp/verdict/internal/engine"
	"github.com/verdictpdp/verdict/internal/projection"
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
	Decide(ctx context.Context, entrypoint string, in engine.Input, derive engine.Derive) (engine.Decision, error)
	// Revision is the active policy's revision, empty before the first
	// activation.
	Revision() string
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
	// Cached is set when the decision cache answered.
	Cached bool
	// Bundles are the revisions that decided; EvalTook the evaluation's
	// time (zero for a cache hit).
	Bundles  map[string]engine.BundleInfo
	EvalTook time.Duration
	// TraceID and SpanID name the decision's span when tracing is on.
	TraceID, SpanID string
	// RateLimit is set when a rate limit applied; Challenge when a denied
	// request must get an HTTP authorization challenge.
	RateLimit *enforce.Status
	Challenge *challenge.Challenge
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

// Reject fills o with a deny for a request that could not become input,
// stamped with the revision that would have decided it: every answer names
// the policy it was given under.
func (d *Decider) Reject(o *Outcome, err error) {
	o.Revision = d.eval.Revision()
	o.Reject(err)
}

// ErrorObject returns the JSON-RPC error for the outcome, or false when it
// allows.
func (o *Outcome) ErrorObject() (ErrorObject, bool) {
	e, ok := o.Decision.ErrorObject(o.DecisionID)
	if ok && o.rpcCode != 0 {
		e.Code = o.rpcCode
		e.Message = o.Decision.Reasons[0].Message
	}
	if ok && o.RateLimit != nil && o.RateLimit.Refused && o.RateLimit.RetryAfter > 0 {
		e.Data["retry_after_seconds"] = enforce.Seconds(o.RateLimit.RetryAfter)
	}
	return e, ok
}

// Decide decides in (an input built by Request.Input, possibly with more
// members) and fills o. It never returns an allow by accident: every failure
// is a deny with a reason unless the decider fails open.
func (d *Decider) Decide(ctx context.Context, o *Outcome, in map[string]any) {
	start := time.Now()
	defer func() { o.Took += time.Since(start) }()
	o.Input = in
	dec, err := d.eval.Decide(ctx, d.path, goInput{in}, deriveDecision)
	o.Revision = dec.Revision
	o.Cached = dec.Cached
	o.Bundles = dec.Bundles
	o.EvalTook = dec.EvalTook
	if err == nil {
		o.Result = dec.Value
		o.Decision, _ = dec.Derived.(Decision)
	}
	if err != nil {
		if _, ok := errors.AsType[*inputError](err); ok {
			o.Reject(err)
			return
		}
		o.Err = err
		code, msg := failureReason(err)
		o.Decision = Decision{Allow: d.failOpen, Reasons: []Reason{{Code: code, Message: msg}}}
		if d.failOpen {
			o.Decision.Reasons = append(o.Decision.Reasons, Reason{Code: ReasonFailOpen, Message: "allowed because the service is configured to fail open"})
		}
	}
}

// deriveDecision parses the policy's value once per evaluation; the cache
// shares the result between requests, so nothing may modify it afterwards.
func deriveDecision(r engine.Result) (any, error) {
	dec, err := ParseDecision(r.Value)
	if err != nil {
		return nil, err
	}
	if dec.Verdict() != Allow && len(dec.Reasons) == 0 {
		dec.Reasons = []Reason{{Code: "policy.deny", Message: "denied by policy"}}
	}
	return dec, nil
}

// goInput keys the cache on the input's Go values, converting them to an
// ast.Value only when the policy has to be evaluated.
type goInput struct{ m map[string]any }

// AppendKey writes the bytes Projection.AppendKey writes for Value, or
// declines (a type AppendGoKey does not encode, a value that does not
// convert), and the engine keys the converted input. FuzzMCPKey and
// FuzzMCPEnvoyKey hold it to that.
func (in goInput) AppendKey(dst []byte, p *projection.Projection) ([]byte, bool) {
	return p.AppendGoKey(dst, in.m)
}

// GoValue hands native evaluators the input without converting it.
func (in goInput) GoValue() map[string]any { return in.m }

func (in goInput) Subject() string {
	subject, _ := in.m["subject"].(map[string]any)
	id, _ := subject["id"].(string)
	return id
}

func (in goInput) Value() (ast.Value, error) {
	v, err := ast.InterfaceToValue(in.m)
	if err != nil {
		return nil, &inputError{err}
	}
	return v, nil
}

// inputError is an input that cannot become a Rego value.
type inputError struct{ err error }

func (e *inputError) Error() string { return "input cannot be converted: " + e.err.Error() }
func (e *inputError) Unwrap() error { return e.err }

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
