package control

import (
	"context"
	"time"
)

// Sweep records expiries (approvals, grants, timed quarantines) as audit
// events and deletes final records older than the retention. Reads never
// wait for it: an expired record is treated as expired at once.
func (c *Controls) Sweep(ctx context.Context) error {
	now := c.opts.Now()
	var events []Event
	c.mu.Lock()
	err := c.sweep(ctx, now, &events)
	c.mu.Unlock()
	for _, ev := range events {
		c.opts.Events(ev)
	}
	return err
}

func (c *Controls) sweep(ctx context.Context, now time.Time, events *[]Event) error {
	txn := c.db.Txn(false)
	old := now.Add(-c.opts.Retention)
	var firstErr error
	keep := func(err error) {
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	it, err := txn.Get(tableApprovals, "id")
	if err != nil {
		return err
	}
	for obj := it.Next(); obj != nil; obj = it.Next() {
		a := obj.(*approvalRow).A
		switch {
		case a.Status.Live() && !now.Before(a.ExpiresAt):
			done := *a
			done.Status = Expired
			if err := c.save(ctx, KindApproval, a.ID, &done); err != nil {
				keep(err)
				continue
			}
			*events = append(*events, Event{Type: EventExpired, Time: now, ID: a.ID, DecisionID: a.DecisionID, Subject: a.Subject, Binding: &done.Binding, Detail: &done})
		case !a.Status.Live() && a.ExpiresAt.Before(old) && finalAt(a).Before(old):
			keep(c.remove(ctx, KindApproval, tableApprovals, a.ID))
		}
	}
	it, err = txn.Get(tableGrants, "id")
	if err != nil {
		return err
	}
	for obj := it.Next(); obj != nil; obj = it.Next() {
		g := obj.(*grantRow).G
		switch {
		case g.Status == GrantActive && !now.Before(g.ExpiresAt):
			done := *g
			done.Status = GrantExpired
			if err := c.save(ctx, KindGrant, g.ID, &done); err != nil {
				keep(err)
				continue
			}
			*events = append(*events, Event{Type: EventGrantExpiry, Time: now, ID: g.ID, Subject: g.Subject, Detail: &done})
		case g.Status != GrantActive && g.ExpiresAt.Before(old) && g.RevokedAt.Before(old):
			keep(c.remove(ctx, KindGrant, tableGrants, g.ID))
		}
	}
	it, err = txn.Get(tableQuarantines, "id")
	if err != nil {
		return err
	}
	for obj := it.Next(); obj != nil; obj = it.Next() {
		q := obj.(*quarantineRow).Q
		switch {
		case q.Active && !q.ExpiresAt.IsZero() && !now.Before(q.ExpiresAt):
			done := *q
			done.Active, done.ReleasedAt = false, now.UTC()
			if err := c.save(ctx, KindQuarantine, q.ID, &done); err != nil {
				keep(err)
				continue
			}
			*events = append(*events, Event{Type: EventReleased, Time: now, ID: q.ID, Subject: q.Subject, Note: "expired", Detail: &done})
		case !q.Active && q.ReleasedAt.Before(old):
			keep(c.remove(ctx, KindQuarantine, tableQuarantines, q.ID))
		}
	}
	c.recount()
	return firstErr
}

// finalAt is when an approval reached its final status.
func finalAt(a *Approval) time.Time {
	t := a.CreatedAt
	for _, u := range []time.Time{a.ResolvedAt, a.ConsumedAt} {
		if u.After(t) {
			t = u
		}
	}
	return t
}
