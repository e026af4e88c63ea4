package audit

import (
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/verdictpdp/verdict/internal/engine"
)

// Kind says which adapter made a decision, and so where in the input the
// parts masking cares about sit.
type Kind uint8

// Kinds of decisions.
const (
	// KindEnvoy is an ext_authz decision on the opa-envoy-plugin input.
	KindEnvoy Kind = iota + 1
	// KindMCP is a native MCP API decision: the input is the MCP input.
	KindMCP
	// KindMCPOverEnvoy is an MCP decision made over ext_authz: the input is
	// the MCP input, with the Envoy input (whose body repeats the call) at
	// input.envoy.
	KindMCPOverEnvoy
	// KindAuthZEN is an OpenID AuthZEN evaluation: the input is the
	// AuthZEN request (subject, action, resource, context).
	KindAuthZEN
	// KindControl is a lifecycle step of an approval, grant or quarantine:
	// no input, the step under "control".
	KindControl
	// KindGateway is what `pdp gateway` did with one MCP message: no input,
	// the message's description under "gateway", linked to the decision
	// that let it pass or refused it.
	KindGateway
)

// Decision values of an event.
const (
	Allow           = "allow"
	Deny            = "deny"
	RequireApproval = "require_approval"
	// Error is a decision made without the policy's answer (no bundle,
	// evaluation error, malformed request or decision).
	Error = "error"
	// Control marks a lifecycle event, not a decision.
	Control = "control"
	// Message marks a gateway's record of one message, not a decision.
	Message = "message"
)

// InputSource builds a decision's input when the decision itself did not
// (the cache answered). It is called on the audit worker, after the request
// is done.
type InputSource interface {
	AuditInput() (ast.Value, error)
}

// Entry is what the request path hands to the recorder: references, not
// copies. Nothing it points to may change after Record.
type Entry struct {
	DecisionID string
	Time       time.Time
	Kind       Kind
	// Path is the entrypoint in slash form ("envoy/authz/allow").
	Path    string
	Bundles map[string]engine.BundleInfo
	// Input is the policy input: a map[string]any, an ast.Value or an
	// InputSource; nil when the request never became input.
	Input any
	// Result is the policy's value (nil without one).
	Result any
	// Decision is Allow, Deny, RequireApproval or Error.
	Decision string
	Reasons  []Reason
	// Obligations are the MCP decision's obligations, written as given.
	Obligations any
	// Classification, RetentionDays and Redact come from the MCP decision's
	// obligations: they choose the record's retention and what is masked.
	Classification string
	RetentionDays  int
	Redact         []string
	// Findings counts, per detector, the data-loss detectors' matches in
	// a checked MCP result: counts only, never the matched values.
	Findings map[string]int
	Subject  string
	Request  *Request
	// HTTPStatus is the status the caller is answered with (ext_authz:
	// what Envoy answers; AuthZEN: the API's status).
	HTTPStatus int
	Cached     bool
	DryRun     bool
	// Err describes a decision made without the policy's answer.
	Err         *ErrorInfo
	RequestedBy string
	TraceID     string
	SpanID      string
	// EvalTook is the policy evaluation's time (zero for a cache hit);
	// Took the whole decision's.
	EvalTook time.Duration
	Took     time.Duration
	// Approval is the human approval the decision waits for or used.
	Approval *ApprovalRef
	// Control is a lifecycle step of an approval, grant or quarantine
	// (Kind KindControl): the event's only content besides its ids.
	Control *ControlEvent
	// Gateway is one message a gateway handled (Kind KindGateway).
	Gateway *GatewayEvent
}

// GatewayEvent is what a gateway did with one MCP message. It describes
// the message and never copies its params, arguments or results.
type GatewayEvent struct {
	// Direction is client (to the server) or server (to the client).
	Direction string `json:"direction"`
	// Type is request, notification, response or invalid.
	Type string `json:"type"`
	// ID is the JSON-RPC id as JSON text.
	ID string `json:"id,omitempty"`
	// Action is forwarded, denied, filtered, redacted, blocked, dropped or
	// failed.
	Action string `json:"action"`
	// Decision is the id of the decision that let the message pass or
	// refused it.
	Decision string   `json:"decision_id,omitempty"`
	Reasons  []string `json:"reasons,omitempty"`
	Session  string   `json:"session,omitempty"`
}

// ApprovalRef names the approval of a decision.
type ApprovalRef struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

// ControlEvent is a lifecycle step of a runtime control: an approval
// requested, approved, denied, consumed or expired; a grant created,
// revoked or expired; a quarantine created or released; or an approver's
// action refused.
type ControlEvent struct {
	Event string `json:"event"`
	// ID is the approval, grant or quarantine.
	ID string `json:"id,omitempty"`
	// Of is the decision that asked for the approval; ConsumedBy the one
	// that used it.
	Of         string `json:"of_decision,omitempty"`
	ConsumedBy string `json:"consumed_by,omitempty"`
	By         string `json:"by,omitempty"`
	Note       string `json:"note,omitempty"`
	Code       string `json:"code,omitempty"`
	// Detail is the record after the step, as the admin API shows it.
	Detail any `json:"detail,omitempty"`
}

// Reason explains a decision.
type Reason struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Request summarises what was asked, for readers who do not want to dig
// through the input.
type Request struct {
	Method   string `json:"method,omitempty"`
	Path     string `json:"path,omitempty"`
	Host     string `json:"host,omitempty"`
	Server   string `json:"server,omitempty"`
	Tool     string `json:"tool,omitempty"`
	Resource string `json:"resource,omitempty"`
	Prompt   string `json:"prompt,omitempty"`
}

// ErrorInfo is why a decision was made without the policy's answer; the
// message is the caller-safe one.
type ErrorInfo struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}
