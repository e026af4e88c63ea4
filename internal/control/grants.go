package control

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gobwas/glob"
)

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
	return retry(func() (Grant, error) { return c.grantOnce(ctx, approver, r) })
}

func (c *Controls) grantOnce(ctx context.Context, approver Approver, r GrantRequest) (Grant, error) {
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
	return retry(func() (Grant, error) { return c.revoke(ctx, approver, id, note) })
}

func (c *Controls) revoke(ctx context.Context, approver Approver, id, note string) (Grant, error) {
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
