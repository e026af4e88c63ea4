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

	"github.com/gobwas/glob"
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

// GrantRequest asks for a grant.
type GrantRequest struct {
	Subject string   `json:"subject"`
	Group   string   `json:"group"`
	Tools   []string `json:"tools"`
	// Duration or ExpiresAt bounds it; exactly one is given.
	Duration   time.Duration `json:"-"`
	ExpiresAt  time.Time     `json:"-"`
	Conditions []Condition   `json:"conditions"`
	Note       string        `json:"note"`
}

func (c *Controls) checkGrant(r *GrantRequest, now time.Time) (time.Time, *Error) {
	bad := func(msg string) (time.Time, *Error) {
		return time.Time{}, refuse(CodeInvalidGrant, http.StatusBadRequest, msg)
	}
	if (r.Subject == "") == (r.Group == "") {
		return bad("a grant names exactly one of subject or group")
	}
	if len(r.Subject) > maxNameBytes || len(r.Group) > maxNameBytes {
		return bad("subject and group are at most 256 bytes")
	}
	if len(r.Tools) == 0 || len(r.Tools) > maxTools {
		return bad("a grant names 1 to 32 tool patterns (\"server/tool\" globs)")
	}
	for _, t := range r.Tools {
		if t == "" || len(t) > maxNameBytes || !strings.Contains(t, "/") {
			return bad("a tool pattern is \"server/tool\", at most 256 bytes")
		}
		if _, err := glob.Compile(t, '/'); err != nil {
			return bad("tool pattern " + strconvQuote(t) + " is not a valid glob")
		}
	}
	if len(r.Conditions) > maxConditions {
		return bad("a grant has at most 16 conditions")
	}
	for _, cd := range r.Conditions {
		if cd.Path == "" || len(cd.Path) > maxNameBytes {
			return bad("a condition names the argument's path")
		}
		if !slices.Contains(conditionOps, cd.Op) {
			return bad("condition op must be one of " + strings.Join(conditionOps, ", "))
		}
		if len(cd.Value) == 0 || len(cd.Value) > maxValueBytes || !json.Valid(cd.Value) {
			return bad("a condition's value is JSON of at most 4096 bytes")
		}
	}
	var exp time.Time
	switch {
	case r.Duration != 0 && !r.ExpiresAt.IsZero():
		return bad("give duration or expires_at, not both")
	case r.Duration != 0:
		if r.Duration < 0 {
			return bad("the duration must be positive")
		}
		exp = now.Add(r.Duration)
	case !r.ExpiresAt.IsZero():
		exp = r.ExpiresAt
	default:
		return time.Time{}, refuse(CodeInvalidGrant, http.StatusBadRequest, "a grant needs a duration or expires_at: grants are never unbounded")
	}
	if !exp.After(now) {
		return bad("the grant would already have expired")
	}
	if exp.Sub(now) > c.opts.MaxGrantDuration {
		return time.Time{}, refuse(CodeGrantTooLong, http.StatusBadRequest, "a grant lasts at most "+c.opts.MaxGrantDuration.String())
	}
	return exp, c.checkNote(r.Note)
}

func strconvQuote(s string) string { b, _ := json.Marshal(s); return string(b) }

// Grant creates a grant. Nobody may grant to themselves or to a group they
// are in.
func (c *Controls) Grant(ctx context.Context, approver Approver, r GrantRequest) (Grant, error) {
	if approver.ID == "" {
		return Grant{}, refuse(CodeUnauthenticated, http.StatusUnauthorized, "a verified bearer token is required")
	}
	now := c.opts.Now()
	exp, e := c.checkGrant(&r, now)
	if e != nil {
		return Grant{}, c.refused(approver, ActionGrant, "", e)
	}
	if r.Subject == approver.ID || (r.Group != "" && slices.Contains(approver.Groups, r.Group)) {
		return Grant{}, c.refused(approver, ActionGrant, "", refuse(CodeSelf, http.StatusForbidden, "nobody may grant to themselves or to a group they are in"))
	}
	g := &Grant{
		ID: newID(grantPrefix), Subject: r.Subject, Group: r.Group, Tools: slices.Clone(r.Tools),
		Conditions: cloneConditions(r.Conditions), Status: GrantActive, GrantedBy: approver.ID, Note: r.Note,
		CreatedAt: now.UTC(), ExpiresAt: exp.UTC(),
	}
	obj := map[string]any{"id": g.ID, "subject": g.Subject, "group": g.Group, "tools": g.Tools, "conditions": g.Conditions,
		"expires_at": g.ExpiresAt, "duration_seconds": int64(exp.Sub(now).Seconds())}
	if e := c.authorize(ctx, approver, ActionGrant, "grant", obj, g.ID); e != nil {
		return Grant{}, e
	}
	c.mu.Lock()
	var evict []change
	if need := int(c.records.Load()) - c.opts.MaxRecords + 1; need > 0 {
		// Full: the oldest final approvals make room, as for a new approval.
		if evict = c.oldestFinal(need); len(evict) < need {
			c.mu.Unlock()
			return Grant{}, refuse(CodeLimit, http.StatusTooManyRequests, "too many records are held; try again later")
		}
	}
	err := c.apply(ctx, append(evict, change{kind: KindGrant, id: g.ID, rec: g}))
	c.mu.Unlock()
	if err != nil {
		return Grant{}, err
	}
	c.opts.Events(Event{Type: EventGranted, Time: now, ID: g.ID, By: approver.ID, Note: r.Note, Subject: g.Subject, Detail: g})
	return *g, nil
}

// Grants lists grants (active ones unless all), newest first.
func (c *Controls) Grants(ctx context.Context, approver Approver, all bool) ([]Grant, error) {
	if e := c.authorize(ctx, approver, ActionView, "", nil, ""); e != nil {
		return nil, e
	}
	now := c.opts.Now()
	it, err := c.db.Txn(false).Get(tableGrants, "id")
	if err != nil {
		return nil, unavailable(err)
	}
	var out []Grant
	for obj := it.Next(); obj != nil; obj = it.Next() {
		g := *obj.(*grantRow).G
		if g.Status == GrantActive && !now.Before(g.ExpiresAt) {
			g.Status = GrantExpired
		}
		if all || g.Status == GrantActive {
			g.Tools, g.Conditions = slices.Clone(g.Tools), slices.Clone(g.Conditions)
			out = append(out, g)
		}
	}
	slices.SortFunc(out, func(x, y Grant) int { return y.CreatedAt.Compare(x.CreatedAt) })
	if len(out) > maxListEntries {
		out = out[:maxListEntries]
	}
	return out, nil
}

// Revoke ends grant id now.
func (c *Controls) Revoke(ctx context.Context, approver Approver, id, note string) (Grant, error) {
	if approver.ID == "" {
		return Grant{}, refuse(CodeUnauthenticated, http.StatusUnauthorized, "a verified bearer token is required")
	}
	if !validID(id, grantPrefix) {
		return Grant{}, c.refused(approver, ActionRevoke, id, refuse(CodeInvalidID, http.StatusBadRequest, "the grant id is malformed"))
	}
	if e := c.checkNote(note); e != nil {
		return Grant{}, c.refused(approver, ActionRevoke, id, e)
	}
	g := c.grant(c.db.Txn(false), id)
	if g == nil {
		return Grant{}, c.refused(approver, ActionRevoke, id, refuse(CodeGrantNotFound, http.StatusNotFound, "no such grant"))
	}
	if e := c.authorize(ctx, approver, ActionRevoke, "grant", g, id); e != nil {
		return Grant{}, e
	}
	now := c.opts.Now()
	c.mu.Lock()
	// Read again under the lock: the sweep may have deleted it meanwhile.
	if g = c.grant(c.db.Txn(false), id); g == nil {
		c.mu.Unlock()
		return Grant{}, c.refused(approver, ActionRevoke, id, refuse(CodeGrantNotFound, http.StatusNotFound, "no such grant"))
	}
	if g.Status != GrantActive || !now.Before(g.ExpiresAt) {
		c.mu.Unlock()
		return Grant{}, c.refused(approver, ActionRevoke, id, refuse(CodeGrantNotActive, http.StatusConflict, "the grant is no longer active"))
	}
	done := *g
	done.Status, done.RevokedBy, done.RevokedAt = GrantRevoked, approver.ID, now.UTC()
	if note != "" {
		done.Note = note
	}
	err := c.save(ctx, KindGrant, id, &done)
	c.mu.Unlock()
	if err != nil {
		return Grant{}, err
	}
	c.opts.Events(Event{Type: EventRevoked, Time: now, ID: id, By: approver.ID, Note: note, Subject: done.Subject, Detail: &done})
	return done, nil
}

// QuarantineRequest asks for a quarantine.
type QuarantineRequest struct {
	Kind    QuarantineKind `json:"kind"`
	Server  string         `json:"server"`
	Tool    string         `json:"tool"`
	Subject string         `json:"subject"`
	Note    string         `json:"note"`
	// Duration, when set, releases it on its own.
	Duration time.Duration `json:"-"`
}

func checkQuarantine(r *QuarantineRequest) *Error {
	bad := func(msg string) *Error { return refuse(CodeInvalidQuar, http.StatusBadRequest, msg) }
	if len(r.Server) > maxNameBytes || len(r.Tool) > maxNameBytes || len(r.Subject) > maxNameBytes {
		return bad("server, tool and subject are at most 256 bytes")
	}
	switch r.Kind {
	case QuarantineServer:
		if r.Server == "" || r.Tool != "" || r.Subject != "" {
			return bad("a server quarantine names the server only")
		}
	case QuarantineTool:
		if r.Server == "" || r.Tool == "" || r.Subject != "" {
			return bad("a tool quarantine names the server and the tool")
		}
	case QuarantineSubject:
		if r.Subject == "" || r.Server != "" || r.Tool != "" {
			return bad("a subject quarantine names the subject only")
		}
	default:
		return bad("kind must be server, tool or subject")
	}
	if r.Duration < 0 {
		return bad("the duration must be positive")
	}
	return nil
}

// Quarantine denies every decision matching r until released. Asking
// again for an active quarantine returns it.
func (c *Controls) Quarantine(ctx context.Context, approver Approver, r QuarantineRequest) (Quarantine, error) {
	if approver.ID == "" {
		return Quarantine{}, refuse(CodeUnauthenticated, http.StatusUnauthorized, "a verified bearer token is required")
	}
	if e := checkQuarantine(&r); e != nil {
		return Quarantine{}, c.refused(approver, ActionQuarantine, "", e)
	}
	if e := c.checkNote(r.Note); e != nil {
		return Quarantine{}, c.refused(approver, ActionQuarantine, "", e)
	}
	now := c.opts.Now()
	q := &Quarantine{ID: newID(quarantinePrefix), Kind: r.Kind, Server: r.Server, Tool: r.Tool, Subject: r.Subject,
		Active: true, CreatedBy: approver.ID, Note: r.Note, CreatedAt: now.UTC()}
	if r.Duration > 0 {
		q.ExpiresAt = now.Add(r.Duration).UTC()
	}
	if e := c.authorize(ctx, approver, ActionQuarantine, "quarantine", q, q.ID); e != nil {
		return Quarantine{}, e
	}
	c.mu.Lock()
	// By its own key: a broader quarantine (the tool's server) that also
	// matches is not this one.
	if old := activeQuarantine(c.db.Txn(false), q.key(), now); old != nil {
		c.mu.Unlock()
		return *old, nil
	}
	// The kill switch has room of its own: callers filling the table with
	// approvals must not keep a quarantine from being set.
	if int(c.records.Load()) >= c.opts.MaxRecords+quarantineReserve {
		c.mu.Unlock()
		return Quarantine{}, c.refused(approver, ActionQuarantine, "", refuse(CodeLimit, http.StatusTooManyRequests, "too many records are held; try again later"))
	}
	err := c.save(ctx, KindQuarantine, q.ID, q)
	c.mu.Unlock()
	if err != nil {
		return Quarantine{}, err
	}
	c.opts.Events(Event{Type: EventQuarantined, Time: now, ID: q.ID, By: approver.ID, Note: r.Note, Subject: q.Subject, Detail: q})
	return *q, nil
}

// Quarantines lists quarantines (active ones unless all).
func (c *Controls) Quarantines(ctx context.Context, approver Approver, all bool) ([]Quarantine, error) {
	if e := c.authorize(ctx, approver, ActionView, "", nil, ""); e != nil {
		return nil, e
	}
	it, err := c.db.Txn(false).Get(tableQuarantines, "id")
	if err != nil {
		return nil, unavailable(err)
	}
	var out []Quarantine
	for obj := it.Next(); obj != nil; obj = it.Next() {
		q := *obj.(*quarantineRow).Q
		if all || q.Active {
			out = append(out, q)
		}
	}
	slices.SortFunc(out, func(x, y Quarantine) int { return y.CreatedAt.Compare(x.CreatedAt) })
	if len(out) > maxListEntries {
		out = out[:maxListEntries]
	}
	return out, nil
}

// Release ends quarantine id.
func (c *Controls) Release(ctx context.Context, approver Approver, id, note string) (Quarantine, error) {
	if approver.ID == "" {
		return Quarantine{}, refuse(CodeUnauthenticated, http.StatusUnauthorized, "a verified bearer token is required")
	}
	if !validID(id, quarantinePrefix) {
		return Quarantine{}, c.refused(approver, ActionRelease, id, refuse(CodeInvalidID, http.StatusBadRequest, "the quarantine id is malformed"))
	}
	if e := c.checkNote(note); e != nil {
		return Quarantine{}, c.refused(approver, ActionRelease, id, e)
	}
	q := c.quarantine(c.db.Txn(false), id)
	if q == nil {
		return Quarantine{}, c.refused(approver, ActionRelease, id, refuse(CodeQuarNotFound, http.StatusNotFound, "no such quarantine"))
	}
	if e := c.authorize(ctx, approver, ActionRelease, "quarantine", q, id); e != nil {
		return Quarantine{}, e
	}
	now := c.opts.Now()
	c.mu.Lock()
	// Read again under the lock: the sweep may have deleted it meanwhile.
	if q = c.quarantine(c.db.Txn(false), id); q == nil {
		c.mu.Unlock()
		return Quarantine{}, c.refused(approver, ActionRelease, id, refuse(CodeQuarNotFound, http.StatusNotFound, "no such quarantine"))
	}
	if !q.Active {
		c.mu.Unlock()
		return Quarantine{}, c.refused(approver, ActionRelease, id, refuse(CodeQuarNotActive, http.StatusConflict, "the quarantine was already released"))
	}
	done := *q
	done.Active, done.ReleasedBy, done.ReleasedAt = false, approver.ID, now.UTC()
	err := c.save(ctx, KindQuarantine, id, &done)
	c.mu.Unlock()
	if err != nil {
		return Quarantine{}, err
	}
	c.opts.Events(Event{Type: EventReleased, Time: now, ID: id, By: approver.ID, Note: note, Subject: done.Subject, Detail: &done})
	return done, nil
}
