package control

import (
	"context"
	"net/http"
	"slices"
	"time"
)

// QuarantineRequest asks for a quarantine.
type QuarantineRequest struct {
	Kind    QuarantineKind `json:"kind"`
	Server  string         `json:"server"`
	Tool    string         `json:"tool"`
	Subject string         `json:"subject"`
	// Session is the MCP session id of a session quarantine.
	Session string `json:"session"`
	Note    string `json:"note"`
	// Rule names the containment rule of a quarantine Verdict sets itself
	// (see Contain); never taken from an approver.
	Rule string `json:"-"`
	// Duration, when set, releases it on its own.
	Duration time.Duration `json:"-"`
}

func checkQuarantine(r *QuarantineRequest) *Error {
	bad := func(msg string) *Error { return refuse(CodeInvalidQuar, http.StatusBadRequest, msg) }
	if len(r.Server) > maxNameBytes || len(r.Tool) > maxNameBytes || len(r.Subject) > maxNameBytes || len(r.Session) > maxNameBytes {
		return bad("server, tool, subject and session are at most 256 bytes")
	}
	switch r.Kind {
	case QuarantineServer:
		if r.Server == "" || r.Tool != "" || r.Subject != "" || r.Session != "" {
			return bad("a server quarantine names the server only")
		}
	case QuarantineTool:
		if r.Server == "" || r.Tool == "" || r.Subject != "" || r.Session != "" {
			return bad("a tool quarantine names the server and the tool")
		}
	case QuarantineSubject:
		if r.Subject == "" || r.Server != "" || r.Tool != "" || r.Session != "" {
			return bad("a subject quarantine names the subject only")
		}
	case QuarantineSession:
		if r.Subject == "" || r.Session == "" || r.Server != "" || r.Tool != "" {
			return bad("a session quarantine names the subject and the session")
		}
	default:
		return bad("kind must be server, tool, subject or session")
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
	r.Rule = ""
	q, _, err := c.setQuarantine(ctx, approver, r, true)
	return q, err
}

// Contain sets a quarantine on Verdict's own behalf (automated
// containment): by names the system approver, r.Rule the rule that asked
// and r.Note what was measured. The approvals policy is not asked, but
// the quarantine is audited like any other. created is false when one was
// already active for the target: it is returned unchanged.
func (c *Controls) Contain(ctx context.Context, by string, r QuarantineRequest) (q Quarantine, created bool, err error) {
	if by == "" {
		return Quarantine{}, false, refuse(CodeUnauthenticated, http.StatusUnauthorized, "containment needs a system approver id")
	}
	return c.setQuarantine(ctx, Approver{ID: by}, r, false)
}

func (c *Controls) setQuarantine(ctx context.Context, approver Approver, r QuarantineRequest, authorize bool) (Quarantine, bool, error) {
	type set struct {
		q       Quarantine
		created bool
	}
	s, err := retry(func() (set, error) {
		q, created, err := c.setQuarantineOnce(ctx, approver, r, authorize)
		return set{q, created}, err
	})
	return s.q, s.created, err
}

func (c *Controls) setQuarantineOnce(ctx context.Context, approver Approver, r QuarantineRequest, authorize bool) (Quarantine, bool, error) {
	if e := checkQuarantine(&r); e != nil {
		return Quarantine{}, false, c.refused(approver, ActionQuarantine, "", e)
	}
	if e := c.checkNote(r.Note); e != nil {
		return Quarantine{}, false, c.refused(approver, ActionQuarantine, "", e)
	}
	now := c.opts.Now()
	q := &Quarantine{ID: newID(quarantinePrefix), Kind: r.Kind, Server: r.Server, Tool: r.Tool, Subject: r.Subject,
		Session: r.Session, Rule: r.Rule, Active: true, CreatedBy: approver.ID, Note: r.Note, CreatedAt: now.UTC()}
	if r.Duration > 0 {
		q.ExpiresAt = now.Add(r.Duration).UTC()
	}
	if authorize {
		if e := c.authorize(ctx, approver, ActionQuarantine, "quarantine", q, q.ID); e != nil {
			return Quarantine{}, false, e
		}
	}
	c.mu.Lock()
	// By its own key: a broader quarantine (the tool's server) that also
	// matches is not this one.
	if old := activeQuarantine(c.db.Txn(false), q.key(), now); old != nil {
		c.mu.Unlock()
		return *old, false, nil
	}
	// The kill switch has room of its own: callers filling the table with
	// approvals must not keep a quarantine from being set.
	if int(c.records.Load()) >= c.opts.MaxRecords+quarantineReserve {
		c.mu.Unlock()
		return Quarantine{}, false, c.refused(approver, ActionQuarantine, "", refuse(CodeLimit, http.StatusTooManyRequests, "too many records are held; try again later"))
	}
	err := c.save(ctx, KindQuarantine, q.ID, q)
	c.mu.Unlock()
	if err != nil {
		return Quarantine{}, false, err
	}
	c.opts.Events(Event{Type: EventQuarantined, Time: now, ID: q.ID, By: approver.ID, Note: r.Note, Subject: q.Subject, Detail: q})
	return *q, true, nil
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
	return retry(func() (Quarantine, error) { return c.release(ctx, approver, id, note) })
}

func (c *Controls) release(ctx context.Context, approver Approver, id, note string) (Quarantine, error) {
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
