package authzen

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/verdictpdp/verdict/internal/audit"
	"github.com/verdictpdp/verdict/internal/engine"
	"github.com/verdictpdp/verdict/internal/pipeline"
)

// Reason codes of AuthZEN outcomes.
const (
	ReasonDeny      = "authzen.deny"
	ReasonUndefined = "authzen.undefined"
)

// Decision is the policy's answer to one evaluation: the value at the
// decision entrypoint, {"decision": bool, "context": {...}} or a bare
// boolean. It is shared with the decision cache: never modify it.
type Decision struct {
	Decision bool
	// Context is the policy's context object; nil when it gave none.
	Context map[string]any
}

// ParseDecision reads the policy's value at the decision entrypoint.
// Members of the object other than decision and context are ignored;
// anything else wraps pipeline.ErrInvalidDecision.
func ParseDecision(v any) (Decision, error) {
	switch v := v.(type) {
	case bool:
		return Decision{Decision: v}, nil
	case map[string]any:
		b, ok := v["decision"].(bool)
		if !ok {
			return Decision{}, fmt.Errorf("%w: decision must be a boolean", pipeline.ErrInvalidDecision)
		}
		d := Decision{Decision: b}
		if c, ok := v["context"]; ok {
			if d.Context, ok = c.(map[string]any); !ok {
				return Decision{}, fmt.Errorf("%w: context must be an object", pipeline.ErrInvalidDecision)
			}
		}
		return d, nil
	default:
		return Decision{}, fmt.Errorf("%w: the value is neither a boolean nor an object with a boolean decision", pipeline.ErrInvalidDecision)
	}
}

func deriveDecision(r engine.Result) (any, error) { return ParseDecision(r.Value) }

// inputRefused marks a failure to build the input as the request's fault.
func inputRefused(err error) (pipeline.Failure, bool) {
	if _, ok := errors.AsType[*pipeline.UnconvertibleError](err); ok {
		return pipeline.Failure{Code: CodeInvalidRequest, Message: "the request holds a value the policy cannot read (a number out of range)", WireCode: http.StatusBadRequest}, true
	}
	return pipeline.Failure{}, false
}

// caller is the PEP that asked, for the audit log.
type caller struct {
	// id is the verified token's subject, else the peer's address.
	id string
}

// failure is why an evaluation got no decision, as the caller sees it.
type failure struct {
	status  int
	code    string
	message string
}

// describe fills what the outcome knows of an evaluation before deciding.
func describe(o *pipeline.Outcome, endpoint string, in map[string]any, c caller) {
	o.Input = in
	o.RequestedBy = c.id
	r := &audit.Request{Path: endpoint}
	if a, ok := in[memberAction].(map[string]any); ok {
		r.Method, _ = a["name"].(string)
	}
	if res, ok := in[memberResource].(map[string]any); ok {
		t, _ := res["type"].(string)
		r.Resource = t
		if id, _ := res["id"].(string); id != "" {
			r.Resource += "/" + id
		}
	}
	o.Request = r
	o.Subject = pipeline.Subject{ID: pipeline.MapInput(in).Subject()}
}

// decide asks the pipeline at path for in (a checked evaluation request)
// and fills o. An undefined decision is a deny, not a failure. The service's
// fail_open does not apply: a PDP that cannot decide says so (HTTP 500, or
// an error in the item) and the PEP chooses what to do.
func (s *Server) decide(ctx context.Context, o *pipeline.Outcome, in map[string]any) (Decision, *failure) {
	return s.decideAs(ctx, o, in, true)
}

// decideAs is decide; checks is false for a search's candidates, which
// must not spend the caller's rate limits.
func (s *Server) decideAs(ctx context.Context, o *pipeline.Outcome, in map[string]any, checks bool) (Decision, *failure) {
	if s.isMCP(in) {
		return s.decideMCP(ctx, o, in, checks)
	}
	if !s.p.Decide(ctx, o, pipeline.MapInput(in), deriveDecision, false, inputRefused) {
		if engine.CodeOf(o.Err) == engine.CodeUndefined {
			o.Err, o.Failure = nil, nil
			o.Verdict = pipeline.Deny
			o.Reasons = []pipeline.Reason{{Code: ReasonUndefined, Message: "the policy decision is undefined: denied"}}
			return Decision{}, nil
		}
		return Decision{}, decideFailure(o)
	}
	d, _ := o.Derived.(Decision)
	o.Verdict = pipeline.Allow
	if !d.Decision {
		o.Verdict = pipeline.Deny
		o.Reasons = []pipeline.Reason{{Code: ReasonDeny, Message: "denied by policy"}}
	}
	return d, nil
}

// decideFailure is the caller's view of an outcome without a decision.
func decideFailure(o *pipeline.Outcome) *failure {
	f := &failure{status: http.StatusInternalServerError, code: string(engine.CodeEvalError), message: "policy evaluation failed"}
	if o.Failure != nil {
		f.code, f.message = o.Failure.Code, o.Failure.Message
		if o.Failure.Request {
			f.status = http.StatusBadRequest
		}
	}
	if e, ok := errors.AsType[*engine.Error](o.Err); ok && e.Code == engine.CodeUnknownEntrypoint {
		f.code, f.message = CodeNoPolicy, "no active policy defines the AuthZEN decision"
	}
	return f
}
