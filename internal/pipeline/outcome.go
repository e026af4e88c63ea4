// Package pipeline is the one sequence every adapter runs around the
// decision core: ask the core (cache, then policy) at an entrypoint, apply
// the stateful checks that follow a decision on every request (rate
// limits, authorization challenges), then log and hand one audit event to
// the recorder. Adapters (internal/adapter/...) only turn their wire format
// into an input and an Outcome back into their wire format: none of them
// builds an audit entry, applies a limit or picks a challenge itself.
package pipeline

import (
	"errors"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/verdictpdp/verdict/internal/audit"
	"github.com/verdictpdp/verdict/internal/challenge"
	"github.com/verdictpdp/verdict/internal/enforce"
	"github.com/verdictpdp/verdict/internal/engine"
)

// Verdict is what a decision came to.
type Verdict int

// Verdicts, from most to least permissive. The zero value is not a verdict:
// an outcome nobody decided denies.
const (
	Allow Verdict = iota + 1
	RequireApproval
	Deny
)

func (v Verdict) String() string {
	switch v {
	case Allow:
		return audit.Allow
	case RequireApproval:
		return audit.RequireApproval
	case Deny:
		return audit.Deny
	default:
		return "unspecified"
	}
}

// Reason explains a decision.
type Reason struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// ErrInvalidDecision is wrapped when the value at an entrypoint does not
// have the shape its adapter's contract asks for.
var ErrInvalidDecision = errors.New("invalid decision")

// Reason codes of decisions made without the policy's answer.
const (
	ReasonInvalidDecision = "invalid_decision"
	ReasonFailOpen        = "fail_open"
)

// Failure is why a decision was made without the policy's answer, in
// words a caller may see.
type Failure struct {
	Code    string
	Message string
	// Request is set when the request was refused before evaluation (the
	// caller's fault, logged at info); otherwise deciding failed (no
	// bundle, evaluation error, malformed decision: logged as a warning).
	Request bool
	// WireCode is the protocol's own code for the refusal when the adapter
	// chose one (a JSON-RPC error code, an HTTP status); zero otherwise.
	WireCode int
}

// Subject is what the stateful checks need to know about the caller.
type Subject struct {
	ID            string
	Authenticated bool
	// TokenPresented is set when a bearer token came with the request;
	// AuthError then says why it did not authenticate (caller-safe).
	TokenPresented bool
	AuthError      string
	// Challengeable is set when a deny may carry an authorization
	// challenge: the adapter answers for the caller's credentials (it
	// verifies tokens, or the gateway relies on it to ask for them).
	Challengeable bool
	// Claimed is set when the subject is only claimed by an asker that
	// did not prove it may speak for it (see Observation.Unverified).
	Claimed bool
}

// Outcome is everything one decision produced, whatever the adapter.
type Outcome struct {
	DecisionID string
	Kind       audit.Kind
	// Path is the entrypoint in slash form.
	Path     string
	Revision string
	Bundles  map[string]engine.BundleInfo
	// Cached is set when the decision cache answered; EvalTook is the
	// evaluation's time (zero for a cache hit); Took the whole decision's.
	Cached   bool
	EvalTook time.Duration
	Took     time.Duration
	// TraceID and SpanID name the decision's span when tracing is on.
	TraceID, SpanID string

	// Input is the policy input for the audit log: a map[string]any, an
	// ast.Value or an audit.InputSource; nil when the request never became
	// input.
	Input any
	// Result is the policy's value (nil without one); Derived the adapter's
	// parsed form of it, shared with the cache: read, never modify.
	Result  any
	Derived any

	// Verdict and Reasons are the answer after the stateful checks.
	Verdict Verdict
	Reasons []Reason
	// Obligations, Classification, RetentionDays and Redact are the
	// decision's obligations as the audit log keeps them.
	Obligations    any
	Classification string
	RetentionDays  int
	Redact         []string
	// Findings counts, per detector, the data-loss detectors' matches in
	// a checked result (never the matched values).
	Findings map[string]int

	// Err is why the policy's answer was not used; Failure says it in
	// caller-safe words.
	Err     error
	Failure *Failure

	Subject Subject
	// Request summarises what was asked; RequestedBy is the peer that
	// asked; HTTPStatus the status the caller's client is answered with
	// when the adapter knows it.
	Request     *audit.Request
	RequestedBy string
	HTTPStatus  int
	DryRun      bool

	// RateLimit is set when a rate limit applied; Challenge when a denied
	// request is answered with an HTTP authorization challenge.
	RateLimit *enforce.Status
	Challenge *challenge.Challenge
	// Approval is the human approval the decision waits for or used;
	// PresentedApproval the approval id the caller said it holds.
	Approval          *Approval
	PresentedApproval string
	// NoApproval is set when the asker cannot wait for a person (a
	// question about a list entry): a decision asking for approval records
	// none.
	NoApproval bool

	start time.Time
	span  trace.Span
}

// Approval is the human approval a decision refers to.
type Approval struct {
	ID     string
	Status string
	// URL is the page where a person resolves it.
	URL       string
	ExpiresAt time.Time
}

// NewDecisionID returns a fresh decision id.
func NewDecisionID() string { return engine.NewDecisionID() }

// Allowed reports whether the outcome lets the request go ahead.
func (o *Outcome) Allowed() bool { return o.Verdict == Allow }

// Refuse makes o a deny for a request that never reached the policy.
func (o *Outcome) Refuse(err error, f Failure) {
	f.Request = true
	o.Err, o.Failure = err, &f
	o.Verdict = Deny
	o.Reasons = []Reason{{Code: f.Code, Message: f.Message}}
}
