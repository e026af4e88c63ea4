package control

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Actions an approver can take, as the approvals policy sees them.
const (
	ActionView       = "view"
	ActionApprove    = "approve"
	ActionDeny       = "deny"
	ActionGrant      = "grant"
	ActionRevoke     = "revoke"
	ActionQuarantine = "quarantine"
	ActionRelease    = "release"
)

// Bounds on what approvers send.
const (
	maxNameBytes   = 256
	maxTools       = 32
	maxConditions  = 16
	maxValueBytes  = 4096
	maxListEntries = 1000
	// quarantineReserve is how many records beyond MaxRecords quarantines
	// may still take.
	quarantineReserve = 1024
)

var conditionOps = []string{"eq", "ne", "lt", "lte", "gt", "gte", "in", "not_in", "prefix", "matches", "max_length", "max_items", "path_under"}

// authorize asks the policy whether approver may take action on object
// (under key: "approval", "grant" or "quarantine"; none for a listing).
// A refusal is audited.
func (c *Controls) authorize(ctx context.Context, approver Approver, action, key string, object any, id string) *Error {
	if approver.ID == "" {
		return refuse(CodeUnauthenticated, http.StatusUnauthorized, "a verified bearer token is required")
	}
	if c.opts.Authorizer == nil {
		return c.refused(approver, action, id, refuse(CodeNotAuthorized, http.StatusForbidden, "no approvals policy is configured"))
	}
	in := map[string]any{"action": action, "approver": approverInput(approver)}
	if key != "" {
		doc, err := toInput(object)
		if err != nil {
			return unavailable(err)
		}
		in[key] = doc
	}
	allow, reasons, err := c.opts.Authorizer.Authorize(ctx, in)
	if err != nil {
		c.opts.Logger.Warn("approvals policy failed", "action", action, "err", err)
		return &Error{Code: CodeUnavailable, Message: "the approvals policy could not decide", Status: http.StatusServiceUnavailable, Err: err}
	}
	if !allow {
		e := refuse(CodeNotAuthorized, http.StatusForbidden, "not authorized to "+action)
		if len(reasons) > 0 {
			e.Code, e.Message, e.Reasons = reasons[0].Code, reasons[0].Message, reasons
		}
		return c.refused(approver, action, id, e)
	}
	return nil
}

func (c *Controls) refused(approver Approver, action, id string, e *Error) *Error {
	if action == ActionView {
		return e
	}
	ev := Event{Type: EventRefused, Time: c.opts.Now(), ID: id, By: approver.ID, Code: e.Code, Note: action}
	if strings.HasPrefix(id, approvalPrefix) {
		// Linked to the decision that asked, like every step of it.
		if a := c.approval(c.db.Txn(false), id); a != nil {
			ev.DecisionID, ev.Subject = a.DecisionID, a.Subject
		}
	}
	c.opts.Events(ev)
	return e
}

func approverInput(a Approver) map[string]any {
	list := func(ss []string) []any {
		out := make([]any, len(ss))
		for i, s := range ss {
			out[i] = s
		}
		return out
	}
	m := map[string]any{"id": a.ID, "roles": list(a.Roles), "groups": list(a.Groups), "scopes": list(a.Scopes), "tenant": a.Tenant}
	if a.Claims != nil {
		m["claims"] = a.Claims
	}
	return m
}

// toInput turns a record into JSON-like Go values for policy input.
func toInput(v any) (any, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return decodeValue(raw), nil
}

func decodeValue(raw json.RawMessage) any {
	if len(raw) == 0 {
		return nil
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil
	}
	return v
}

// checkNote refuses an oversized note or one with control characters.
func (c *Controls) checkNote(note string) *Error {
	if len(note) > c.opts.MaxNoteBytes {
		return refuse(CodeInvalidNote, http.StatusBadRequest, "the note is longer than "+strconv.Itoa(c.opts.MaxNoteBytes)+" bytes of UTF-8")
	}
	if !utf8.ValidString(note) {
		return refuse(CodeInvalidNote, http.StatusBadRequest, "the note is not valid UTF-8")
	}
	for _, r := range note {
		if (unicode.IsControl(r) && r != '\n' && r != '\r' && r != '\t') || unicode.Is(unicode.Cf, r) {
			return refuse(CodeInvalidNote, http.StatusBadRequest, "the note contains control or invisible formatting characters")
		}
	}
	return nil
}

// Filter selects approvals to list.
type Filter struct {
	// Status keeps approvals in this status ("" all).
	Status  Status
	Subject string
	// Limit bounds the answer (default and maximum 1000).
	Limit int
}

// Approvals lists approvals the approver may view, newest first.
func (c *Controls) Approvals(ctx context.Context, approver Approver, f Filter) ([]View, error) {
	if e := c.authorize(ctx, approver, ActionView, "", nil, ""); e != nil {
		return nil, e
	}
	switch f.Status {
	case "", Pending, Approved, Denied, Consumed, Expired:
	default:
		return nil, refuse("approval.invalid_status", http.StatusBadRequest, "status must be pending, approved, denied, consumed or expired")
	}
	if f.Limit <= 0 || f.Limit > maxListEntries {
		f.Limit = maxListEntries
	}
	now := c.opts.Now()
	txn := c.db.Txn(false)
	it, err := txn.Get(tableApprovals, "id")
	if err != nil {
		return nil, unavailable(err)
	}
	var out []View
	for obj := it.Next(); obj != nil; obj = it.Next() {
		a := obj.(*approvalRow).A
		if (f.Status != "" && effective(a, now) != f.Status) || (f.Subject != "" && a.Subject != f.Subject) {
			continue
		}
		out = append(out, c.view(a, now))
	}
	slices.SortFunc(out, func(x, y View) int { return y.CreatedAt.Compare(x.CreatedAt) })
	// Each entry is shown only to an approver the policy lets view it.
	kept := out[:0]
	for _, v := range out {
		if len(kept) == f.Limit {
			break
		}
		if c.authorizeQuiet(ctx, approver, ActionView, "approval", &v.Approval) {
			kept = append(kept, v)
		}
	}
	return kept, nil
}

func (c *Controls) authorizeQuiet(ctx context.Context, approver Approver, action, key string, object any) bool {
	if c.opts.Authorizer == nil {
		return false
	}
	doc, err := toInput(object)
	if err != nil {
		return false
	}
	allow, _, err := c.opts.Authorizer.Authorize(ctx, map[string]any{"action": action, "approver": approverInput(approver), key: doc})
	return err == nil && allow
}

// Approval returns one approval the approver may view.
func (c *Controls) Approval(ctx context.Context, approver Approver, id string) (View, error) {
	if approver.ID == "" {
		return View{}, refuse(CodeUnauthenticated, http.StatusUnauthorized, "a verified bearer token is required")
	}
	if !validID(id, approvalPrefix) {
		return View{}, refuse(CodeInvalidID, http.StatusBadRequest, "the approval id is malformed")
	}
	a := c.approval(c.db.Txn(false), id)
	if a == nil {
		return View{}, refuse(CodeNotFound, http.StatusNotFound, "no such approval")
	}
	if e := c.authorize(ctx, approver, ActionView, "approval", a, id); e != nil {
		return View{}, e
	}
	return c.view(a, c.opts.Now()), nil
}

// Resolve approves (approve) or denies approval id. Self-approval is always
// refused; anything else the approvals policy decides. Approving gives the
// caller a fresh TTL to retry the call.
func (c *Controls) Resolve(ctx context.Context, approver Approver, id string, approve bool, note string) (View, error) {
	return retry(func() (View, error) { return c.resolve(ctx, approver, id, approve, note) })
}

func (c *Controls) resolve(ctx context.Context, approver Approver, id string, approve bool, note string) (View, error) {
	action, status, event := ActionDeny, Denied, EventDenied
	if approve {
		action, status, event = ActionApprove, Approved, EventApproved
	}
	if approver.ID == "" {
		return View{}, refuse(CodeUnauthenticated, http.StatusUnauthorized, "a verified bearer token is required")
	}
	if !validID(id, approvalPrefix) {
		return View{}, c.refused(approver, action, "", refuse(CodeInvalidID, http.StatusBadRequest, "the approval id is malformed"))
	}
	if e := c.checkNote(note); e != nil {
		return View{}, c.refused(approver, action, id, e)
	}
	a := c.approval(c.db.Txn(false), id)
	if a == nil {
		return View{}, c.refused(approver, action, id, refuse(CodeNotFound, http.StatusNotFound, "no such approval"))
	}
	if a.Subject == approver.ID {
		return View{}, c.refused(approver, action, id, refuse(CodeSelf, http.StatusForbidden, "nobody may resolve an approval for their own call"))
	}
	if e := c.authorize(ctx, approver, action, "approval", a, id); e != nil {
		return View{}, e
	}
	now := c.opts.Now()
	c.mu.Lock()
	// Read again under the lock: the sweep may have deleted it meanwhile.
	if a = c.approval(c.db.Txn(false), id); a == nil {
		c.mu.Unlock()
		return View{}, c.refused(approver, action, id, refuse(CodeNotFound, http.StatusNotFound, "no such approval"))
	}
	// Denying an approved approval that was not used yet takes it back.
	if st := effective(a, now); st != Pending && (approve || st != Approved) {
		c.mu.Unlock()
		e := refuse(CodeNotPending, http.StatusConflict, "the approval is "+string(st)+", not pending")
		if st == Expired {
			e = errStatus[Expired]
		}
		return View{}, c.refused(approver, action, id, e)
	}
	done := *a
	done.Status, done.ResolvedBy, done.ResolvedAt, done.Note = status, approver.ID, now.UTC(), note
	if approve {
		ttl := c.opts.TTL
		if done.TTLSeconds > 0 {
			ttl = min(time.Duration(done.TTLSeconds)*time.Second, c.opts.MaxTTL)
		}
		done.ExpiresAt = now.Add(ttl).UTC()
	}
	err := c.save(ctx, KindApproval, done.ID, &done)
	c.mu.Unlock()
	if err != nil {
		return View{}, err
	}
	c.opts.Events(Event{Type: event, Time: now, ID: done.ID, DecisionID: done.DecisionID, By: approver.ID, Note: note, Subject: done.Subject, Binding: &done.Binding, Detail: &done})
	return c.view(&done, now), nil
}
