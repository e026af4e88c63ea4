package control

import (
	"errors"
	"net/http"
)

// Error is a refused action: a stable code, a message the caller may read,
// and the HTTP status the admin API answers with.
type Error struct {
	Code    string
	Message string
	Status  int
	// Reasons are the policy's, when it refused.
	Reasons []Reason
	// Err is the cause, for the operator's log only.
	Err error
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func (e *Error) Unwrap() error { return e.Err }

// Codes of refused actions and of decisions the controls changed. They are
// stable: callers and alerts match on them.
const (
	CodeNotFound        = "approval.not_found"
	CodeInvalidID       = "approval.invalid_id"
	CodeNotPending      = "approval.not_pending"
	CodeExpired         = "approval.expired"
	CodeDenied          = "approval.denied"
	CodeConsumed        = "approval.consumed"
	CodeSelf            = "approval.self"
	CodeArgsChanged     = "approval.arguments_changed"
	CodeSubjectMismatch = "approval.subject_mismatch"
	CodeTargetMismatch  = "approval.target_mismatch"
	CodeNoSubject       = "approval.subject_required"
	CodeLimit           = "approval.limit"
	CodeTooLarge        = "approval.too_large"
	CodeUnavailable     = "approval.unavailable"
	CodeUnauthenticated = "approver.unauthenticated"
	CodeNotAuthorized   = "approver.not_authorized"
	CodeInvalidNote     = "note.invalid"
	CodeInvalidGrant    = "grant.invalid"
	CodeGrantTooLong    = "grant.too_long"
	CodeGrantNotFound   = "grant.not_found"
	CodeGrantNotActive  = "grant.not_active"
	CodeInvalidQuar     = "quarantine.invalid"
	CodeQuarNotFound    = "quarantine.not_found"
	CodeQuarNotActive   = "quarantine.not_active"
	CodeQuarantined     = "quarantined"
)

func refuse(code string, status int, msg string) *Error {
	return &Error{Code: code, Message: msg, Status: status}
}

// unavailable is the store failing: the action did not happen.
func unavailable(err error) *Error {
	return &Error{Code: CodeUnavailable, Message: "the approval store is unavailable", Status: http.StatusServiceUnavailable, Err: err}
}

// ErrorOf returns err as an *Error, or an unavailable one.
func ErrorOf(err error) *Error {
	if e, ok := errors.AsType[*Error](err); ok {
		return e
	}
	return unavailable(err)
}
