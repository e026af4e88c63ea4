package control

import (
	"context"
	"time"
)

// Sweep records expiries (approvals, grants, timed quarantines) as audit
// events and deletes final records older than the retention, all in one
// durable step. Reads never wait for it: an expired record is treated as
// expired at once.
func (c *Controls) Sweep(ctx context.Context) error {
	_, err := retry(func() (struct{}, error) { return struct{}{}, c.sweep(ctx) })
	return err
}

func (c *Controls) sweep(ctx context.Context) error {
	now := c.opts.Now()
	c.mu.Lock()
	changes, events := c.sweepChanges(now)
	err := c.apply(ctx, changes)
	c.mu.Unlock()
	if err != nil {
		return err // nothing changed: the next sweep tries again
	}
	for _, ev := range events {
		c.opts.Events(ev)
	}
	return nil
}

// sweepChanges lists what the sweep changes at now, and the events to tell
// once it is done.
func (c *Controls) sweepChanges(now time.Time) ([]change, []Event) {
	txn := c.db.Txn(false)
	old := now.Add(-c.opts.Retention)
	var changes []change
	var events []Event
	if it, err := txn.Get(tableApprovals, "id"); err == nil {
		for obj := it.Next(); obj != nil; obj = it.Next() {
			a := obj.(*approvalRow).A
			switch {
			case a.Status.Live() && !now.Before(a.ExpiresAt):
				done := *a
				done.Status = Expired
				changes = append(changes, change{kind: KindApproval, id: a.ID, rec: &done})
				cp := done
				events = append(events, Event{Type: EventExpired, Time: now, ID: a.ID, DecisionID: a.DecisionID, Subject: a.Subject, Binding: &cp.Binding, Detail: &cp})
			case !a.Status.Live() && a.ExpiresAt.Before(old) && finalAt(a).Before(old):
				changes = append(changes, change{kind: KindApproval, id: a.ID})
			}
		}
	}
	if it, err := txn.Get(tableGrants, "id"); err == nil {
		for obj := it.Next(); obj != nil; obj = it.Next() {
			g := obj.(*grantRow).G
			switch {
			case g.Status == GrantActive && !now.Before(g.ExpiresAt):
				done := *g
				done.Status = GrantExpired
				changes = append(changes, change{kind: KindGrant, id: g.ID, rec: &done})
				cp := done
				events = append(events, Event{Type: EventGrantExpiry, Time: now, ID: g.ID, Subject: g.Subject, Detail: &cp})
			case g.Status != GrantActive && g.ExpiresAt.Before(old) && g.RevokedAt.Before(old):
				changes = append(changes, change{kind: KindGrant, id: g.ID})
			}
		}
	}
	if it, err := txn.Get(tableQuarantines, "id"); err == nil {
		for obj := it.Next(); obj != nil; obj = it.Next() {
			q := obj.(*quarantineRow).Q
			switch {
			case q.Active && !q.ExpiresAt.IsZero() && !now.Before(q.ExpiresAt):
				done := *q
				done.Active, done.ReleasedAt = false, now.UTC()
				changes = append(changes, change{kind: KindQuarantine, id: q.ID, rec: &done})
				cp := done
				events = append(events, Event{Type: EventReleased, Time: now, ID: q.ID, Subject: q.Subject, Note: "expired", Detail: &cp})
			case !q.Active && q.ReleasedAt.Before(old):
				changes = append(changes, change{kind: KindQuarantine, id: q.ID})
			}
		}
	}
	return changes, events
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
