package control

import (
	"encoding/json"
	"time"
)

// Status is where an approval is in its life.
type Status string

// Approval statuses. Pending and Approved are live; the others are final.
const (
	Pending  Status = "pending"
	Approved Status = "approved"
	Denied   Status = "denied"
	Consumed Status = "consumed"
	Expired  Status = "expired"
)

// Live reports whether an approval in status s can still change.
func (s Status) Live() bool { return s == Pending || s == Approved }

// Binding is the exact call an approval is for. Two calls with the same
// binding are the same call; any difference needs another approval.
type Binding struct {
	Subject string `json:"subject"`
	Server  string `json:"server"`
	Method  string `json:"method"`
	// Target is the tool or prompt name (tools/call, prompts/get) or the
	// resource URI (resources/read).
	Target string `json:"target"`
	// ArgumentsSHA256 is the hex SHA-256 of the call's arguments in
	// RFC 8785 canonical JSON (see ArgumentsDigest).
	ArgumentsSHA256 string `json:"arguments_sha256"`
}

// key is the binding as one index value: a JSON array, so no field's
// content can run into the next.
func (b Binding) key() string {
	raw, _ := json.Marshal([5]string{b.Subject, b.Server, b.Method, b.Target, b.ArgumentsSHA256})
	return string(raw)
}

// Approval is a call paused until a person approves or denies it.
type Approval struct {
	ID string `json:"id"`
	Binding
	// Revision is the policy revision that asked for the approval. A later
	// revision honours it only while it still asks for approval of the call.
	Revision string `json:"revision"`
	Status   Status `json:"status"`
	// DecisionID is the decision that asked for approval; every lifecycle
	// event names it.
	DecisionID string `json:"decision_id"`
	// Reason is the policy's words for why approval is needed.
	Reason string `json:"reason,omitempty"`
	// Arguments are the call's arguments masked as the audit log masks
	// them, for the approver to read.
	Arguments json.RawMessage `json:"arguments,omitempty"`
	// SubjectRoles and SubjectGroups are the caller's at the time.
	SubjectRoles  []string `json:"subject_roles,omitempty"`
	SubjectGroups []string `json:"subject_groups,omitempty"`
	// SubjectTenant is the caller's tenant: the library's approvals policy
	// lets only approvers of that tenant resolve it.
	SubjectTenant string    `json:"subject_tenant,omitempty"`
	CreatedAt     time.Time `json:"created_at"`
	ExpiresAt     time.Time `json:"expires_at"`
	// TTLSeconds is the approval's life: how long it waits, and how long
	// the approved call may then be retried.
	TTLSeconds int64 `json:"ttl_seconds,omitempty"`
	// ResolvedBy, ResolvedAt and Note record the approver's answer.
	ResolvedBy string    `json:"resolved_by,omitempty"`
	ResolvedAt time.Time `json:"resolved_at,omitzero"`
	Note       string    `json:"note,omitempty"`
	// ConsumedBy is the decision that used the approval.
	ConsumedBy string    `json:"consumed_by,omitempty"`
	ConsumedAt time.Time `json:"consumed_at,omitzero"`
}

// Condition is a grant's condition on the call's arguments, in the form of
// an access rule's when.arguments entry.
type Condition struct {
	Path     string          `json:"path"`
	Op       string          `json:"op"`
	Value    json.RawMessage `json:"value"`
	Optional bool            `json:"optional,omitempty"`
}

// GrantStatus is where a grant is in its life.
type GrantStatus string

// Grant statuses.
const (
	GrantActive  GrantStatus = "active"
	GrantRevoked GrantStatus = "revoked"
	GrantExpired GrantStatus = "expired"
)

// Grant is a time-boxed permission: a subject (or everyone in a group) may
// call the matching tools, under the conditions, until it expires.
type Grant struct {
	ID      string `json:"id"`
	Subject string `json:"subject,omitempty"`
	Group   string `json:"group,omitempty"`
	// Tools are "server/tool" globs, as access rules name tools.
	Tools      []string    `json:"tools"`
	Conditions []Condition `json:"conditions,omitempty"`
	Status     GrantStatus `json:"status"`
	GrantedBy  string      `json:"granted_by"`
	Note       string      `json:"note,omitempty"`
	CreatedAt  time.Time   `json:"created_at"`
	ExpiresAt  time.Time   `json:"expires_at"`
	RevokedBy  string      `json:"revoked_by,omitempty"`
	RevokedAt  time.Time   `json:"revoked_at,omitzero"`
}

// QuarantineKind is what a quarantine stops.
type QuarantineKind string

// Quarantine kinds.
const (
	QuarantineServer  QuarantineKind = "server"
	QuarantineTool    QuarantineKind = "tool"
	QuarantineSubject QuarantineKind = "subject"
	// QuarantineSession stops one MCP session of a subject: the subject's
	// other sessions go on.
	QuarantineSession QuarantineKind = "session"
)

// Quarantine denies every matching decision until it is released.
type Quarantine struct {
	ID      string         `json:"id"`
	Kind    QuarantineKind `json:"kind"`
	Server  string         `json:"server,omitempty"`
	Tool    string         `json:"tool,omitempty"`
	Subject string         `json:"subject,omitempty"`
	// Session is the MCP session id (kind session, with Subject).
	Session string `json:"session,omitempty"`
	// Rule is the containment rule that set the quarantine (Verdict's
	// automated containment; empty for one a person set).
	Rule string `json:"rule,omitempty"`
	// Active is false once released (or expired).
	Active    bool      `json:"active"`
	CreatedBy string    `json:"created_by"`
	Note      string    `json:"note,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	// ExpiresAt, when set, releases the quarantine on its own.
	ExpiresAt  time.Time `json:"expires_at,omitzero"`
	ReleasedBy string    `json:"released_by,omitempty"`
	ReleasedAt time.Time `json:"released_at,omitzero"`
}

// key is the quarantine's target as one index value.
func (q *Quarantine) key() string {
	return quarantineKey(q.Kind, q.Server, q.Tool, q.Subject, q.Session)
}

func quarantineKey(kind QuarantineKind, server, tool, subject, session string) string {
	switch kind {
	case QuarantineServer:
		return "server\x00" + server
	case QuarantineTool:
		return "tool\x00" + server + "\x00" + tool
	case QuarantineSession:
		// A JSON array: no subject can run into the session id.
		raw, _ := json.Marshal([2]string{subject, session})
		return "session\x00" + string(raw)
	default:
		return "subject\x00" + subject
	}
}

// Approver is a verified person acting on approvals, grants or
// quarantines.
type Approver struct {
	ID     string         `json:"id"`
	Roles  []string       `json:"roles"`
	Groups []string       `json:"groups"`
	Scopes []string       `json:"scopes"`
	Tenant string         `json:"tenant,omitempty"`
	Claims map[string]any `json:"claims,omitempty"`
}

// Reason explains a refusal with a stable code.
type Reason struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// EventType names a lifecycle step.
type EventType string

// Lifecycle events, each an audit event.
const (
	EventRequested   EventType = "approval.requested"
	EventApproved    EventType = "approval.approved"
	EventDenied      EventType = "approval.denied"
	EventConsumed    EventType = "approval.consumed"
	EventExpired     EventType = "approval.expired"
	EventGranted     EventType = "grant.created"
	EventRevoked     EventType = "grant.revoked"
	EventGrantExpiry EventType = "grant.expired"
	EventQuarantined EventType = "quarantine.created"
	EventReleased    EventType = "quarantine.released"
	// EventRefused is an approver's action the policy or a rule refused.
	EventRefused EventType = "control.refused"
)

// Event is one lifecycle step, for the audit log.
type Event struct {
	Type EventType
	Time time.Time
	// ID is the approval, grant or quarantine the step is about (empty for
	// a refused action on something unknown).
	ID string
	// DecisionID is the decision the approval was asked by (approvals);
	// for a consumption, Consumer is the decision that used it.
	DecisionID string
	Consumer   string
	// By is who acted ("" for Verdict itself: requests, expiries).
	By   string
	Note string
	// Code is a refusal's reason code.
	Code    string
	Subject string
	Binding *Binding
	// Detail is the approval, grant or quarantine after the step.
	Detail any
}
