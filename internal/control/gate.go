package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"time"

	memdb "github.com/hashicorp/go-memdb"
)

// Call is a decided call the policy asked a human to approve.
type Call struct {
	Binding
	Revision   string
	DecisionID string
	// PresentedID is the approval the caller says it holds ("" when it
	// relies on the binding alone).
	PresentedID string
	// Reason is the policy's message; Arguments the masked arguments.
	Reason    string
	Arguments json.RawMessage
	// SubjectRoles, SubjectGroups and SubjectTenant are kept for the
	// approver (and the approvals policy) to read.
	SubjectRoles, SubjectGroups []string
	SubjectTenant               string
	// TTL is the policy's wish for the approval's life (0: the default).
	TTL time.Duration
}

// GateOutcome is what the controls make of a call needing approval.
type GateOutcome int

// Gate outcomes.
const (
	// GatePending: the call waits for the approval in Gate.Approval.
	GatePending GateOutcome = iota + 1
	// GateApproved: Gate.Approval is approved for this exact call; the
	// caller consumes it (Consume) if nothing else refuses the call.
	GateApproved
	// GateRefused: the call is denied with Gate.Reason.
	GateRefused
)

// Gate is the answer for a call needing approval.
type Gate struct {
	Outcome  GateOutcome
	Approval *View
	Reason   Reason
}

func refused(code, msg string) Gate {
	return Gate{Outcome: GateRefused, Reason: Reason{Code: code, Message: msg}}
}

// Gate finds or creates the approval for call. Asking again for the same
// call while it is pending answers the same approval; once approved, the
// same call may go ahead once (see Consume). A failing store refuses with
// approval.unavailable: never an allow.
func (c *Controls) Gate(ctx context.Context, call Call) Gate {
	if call.Subject == "" {
		return refused(CodeNoSubject, "an approval needs an authenticated caller")
	}
	if c.stale() {
		return refused(CodeStateDown, "the approvals state cannot be read right now")
	}
	for i := 1; ; i++ {
		g, conflict := c.gate(ctx, call)
		if !conflict || i == maxAttempts {
			return g
		}
	}
}

// gate is Gate once; conflict reports a change that found its records
// changed by another replica (they are reloaded: try again).
func (c *Controls) gate(ctx context.Context, call Call) (Gate, bool) {
	now := c.opts.Now()
	if call.PresentedID != "" {
		return c.presented(call, now), false
	}
	if g, ok := c.byBinding(c.db.Txn(false), call.Binding, now); ok {
		return g, false
	}
	c.mu.Lock()
	// Under the lock again: two identical calls racing share one approval.
	if g, ok := c.byBinding(c.db.Txn(false), call.Binding, now); ok {
		c.mu.Unlock()
		return g, false
	}
	a, g, conflict := c.create(ctx, call, now)
	events := c.pendingEvents
	c.pendingEvents = nil
	c.mu.Unlock()
	for _, ev := range events {
		c.opts.Events(ev)
	}
	if a != nil {
		c.opts.Events(Event{Type: EventRequested, Time: now, ID: a.ID, DecisionID: a.DecisionID, Subject: a.Subject, Binding: &a.Binding, Detail: a})
		c.opts.Requested(a)
	}
	return g, conflict
}

// presented answers a call that names its approval: any difference from
// the approval's binding is refused with its own code.
func (c *Controls) presented(call Call, now time.Time) Gate {
	if !validID(call.PresentedID, approvalPrefix) {
		return refused(CodeInvalidID, "the approval id is malformed")
	}
	a := c.approval(c.db.Txn(false), call.PresentedID)
	switch {
	case a == nil:
		return refused(CodeNotFound, "no such approval")
	case a.Subject != call.Subject:
		return refused(CodeSubjectMismatch, "the approval is for another caller")
	case a.Server != call.Server || a.Method != call.Method || a.Target != call.Target:
		return refused(CodeTargetMismatch, "the approval is for another call")
	case a.ArgumentsSHA256 != call.ArgumentsSHA256:
		return refused(CodeArgsChanged, "the arguments differ from the approved ones")
	}
	switch st := effective(a, now); st {
	case Pending:
		v := c.view(a, now)
		return Gate{Outcome: GatePending, Approval: &v}
	case Approved:
		v := c.view(a, now)
		return Gate{Outcome: GateApproved, Approval: &v}
	default:
		e := errStatus[st]
		return refused(e.Code, e.Message)
	}
}

// byBinding answers from the approvals of the same call: an approved one
// is used first, then a pending one; a denial stands until it would have
// expired, so a refused call cannot page approvers again at once.
func (c *Controls) byBinding(txn *memdb.Txn, b Binding, now time.Time) (Gate, bool) {
	it, err := txn.Get(tableApprovals, "binding", b.key())
	if err != nil {
		return Gate{}, false
	}
	var pending, denied *Approval
	for obj := it.Next(); obj != nil; obj = it.Next() {
		a := obj.(*approvalRow).A
		if !now.Before(a.ExpiresAt) {
			continue
		}
		switch a.Status {
		case Approved:
			v := c.view(a, now)
			return Gate{Outcome: GateApproved, Approval: &v}, true
		case Pending:
			pending = a
		case Denied:
			denied = a
		case Consumed, Expired:
		}
	}
	switch {
	case pending != nil:
		v := c.view(pending, now)
		return Gate{Outcome: GatePending, Approval: &v}, true
	case denied != nil:
		v := c.view(denied, now)
		return Gate{Outcome: GateRefused, Approval: &v, Reason: Reason{Code: CodeDenied, Message: "an approver denied this call"}}, true
	}
	return Gate{}, false
}

// MaxArgumentBytes bounds the masked arguments an approval keeps for the
// approver to read: a larger call cannot be shown whole, so it cannot be
// approved.
const MaxArgumentBytes = 64 << 10

// create records a new pending approval. Call with mu held.
func (c *Controls) create(ctx context.Context, call Call, now time.Time) (*Approval, Gate, bool) {
	if len(call.Arguments) > MaxArgumentBytes {
		return nil, refused(CodeTooLarge, "the call's arguments are larger than an approver can review (64 KiB)"), false
	}
	if c.pendingOf(call.Subject, now) >= c.opts.MaxPendingPerSubject {
		return nil, refused(CodeLimit, "too many of your calls are waiting for approval"), false
	}
	var evict []change
	if int(c.records.Load()) >= c.opts.MaxRecords {
		// Full: record the expiries the sweep has not yet, then evict.
		if changes, events := c.sweepChanges(now); len(changes) > 0 && c.apply(ctx, changes) == nil {
			c.pendingEvents = append(c.pendingEvents, events...)
		}
	}
	if int(c.records.Load()) >= c.opts.MaxRecords {
		// Full: the oldest final approvals go first (the audit log keeps
		// their story); live ones are never dropped.
		need := int(c.records.Load()) - c.opts.MaxRecords + 1
		if evict = c.oldestFinal(need); len(evict) < need {
			return nil, refused(CodeLimit, "too many approvals are open; try again later"), false
		}
	}
	ttl := call.TTL
	if ttl <= 0 {
		ttl = c.opts.TTL
	}
	ttl = min(ttl, c.opts.MaxTTL)
	a := &Approval{
		ID: newID(approvalPrefix), Binding: call.Binding, Revision: call.Revision, Status: Pending,
		DecisionID: call.DecisionID, Reason: call.Reason, Arguments: bytes.Clone(call.Arguments),
		SubjectRoles: slices.Clone(call.SubjectRoles), SubjectGroups: slices.Clone(call.SubjectGroups),
		SubjectTenant: call.SubjectTenant, CreatedAt: now.UTC(), ExpiresAt: now.Add(ttl).UTC(),
		TTLSeconds: int64(ttl / time.Second),
	}
	if err := c.apply(ctx, append(evict, change{kind: KindApproval, id: a.ID, rec: a})); err != nil {
		c.opts.Logger.Warn("approval not recorded", "decision_id", call.DecisionID, "err", err)
		return nil, refused(CodeUnavailable, "the approval could not be recorded"), errors.Is(err, ErrConflict)
	}
	v := c.view(a, now)
	return a, Gate{Outcome: GatePending, Approval: &v}, false
}

// oldestFinal lists deletions of the n oldest final approvals (fewer when
// there are not as many).
func (c *Controls) oldestFinal(n int) []change {
	it, err := c.db.Txn(false).Get(tableApprovals, "id")
	if err != nil {
		return nil
	}
	var final []*Approval
	for obj := it.Next(); obj != nil; obj = it.Next() {
		if a := obj.(*approvalRow).A; !a.Status.Live() {
			final = append(final, a)
		}
	}
	slices.SortFunc(final, func(x, y *Approval) int { return finalAt(x).Compare(finalAt(y)) })
	out := make([]change, 0, min(n, len(final)))
	for _, a := range final[:min(n, len(final))] {
		out = append(out, change{kind: KindApproval, id: a.ID})
	}
	return out
}

func (c *Controls) pendingOf(subject string, now time.Time) int {
	it, err := c.db.Txn(false).Get(tableApprovals, "subject", subject)
	if err != nil {
		return 0
	}
	n := 0
	for obj := it.Next(); obj != nil; obj = it.Next() {
		if a := obj.(*approvalRow).A; a.Status == Pending && now.Before(a.ExpiresAt) {
			n++
		}
	}
	return n
}

// Consume uses approval id for the decision decisionID: once, and only
// while it is approved and unexpired. An error refuses the call.
func (c *Controls) Consume(ctx context.Context, id, decisionID string) (*Approval, *Error) {
	if c.stale() {
		return nil, staleError()
	}
	for i := 1; ; i++ {
		a, e := c.consume(ctx, id, decisionID)
		if e == nil || i == maxAttempts || !errors.Is(e, ErrConflict) {
			return a, e
		}
	}
}

func (c *Controls) consume(ctx context.Context, id, decisionID string) (*Approval, *Error) {
	now := c.opts.Now()
	c.mu.Lock()
	a := c.approval(c.db.Txn(false), id)
	if a == nil {
		c.mu.Unlock()
		return nil, refuse(CodeNotFound, http.StatusNotFound, "no such approval")
	}
	if st := effective(a, now); st != Approved {
		c.mu.Unlock()
		if e, ok := errStatus[st]; ok {
			return nil, e
		}
		return nil, refuse(CodeNotPending, http.StatusConflict, "the approval is not approved")
	}
	used := *a
	used.Status, used.ConsumedBy, used.ConsumedAt = Consumed, decisionID, now.UTC()
	err := c.save(ctx, KindApproval, used.ID, &used)
	c.mu.Unlock()
	if err != nil {
		return nil, ErrorOf(err)
	}
	c.opts.Events(Event{Type: EventConsumed, Time: now, ID: used.ID, DecisionID: used.DecisionID, Consumer: decisionID, Subject: used.Subject, Binding: &used.Binding, Detail: &used})
	return used.clone(), nil
}

// Quarantined returns the active quarantine that stops a call by subject,
// in MCP session session, to server's tool (tool and session may be
// empty), or nil. It costs two atomic loads when nothing is quarantined.
// While the view of a shared store is stale it returns ErrStale: the
// caller refuses the call (CodeStateDown).
func (c *Controls) Quarantined(subject, server, tool, session string) (*Quarantine, error) {
	if c == nil || (c.activeQuarantines.Load() == 0 && c.sync == nil) {
		return nil, nil // the fast path: one atomic load over a local store
	}
	if c.sync != nil && c.stale() {
		return nil, ErrStale
	}
	if c.activeQuarantines.Load() == 0 {
		return nil, nil
	}
	txn := c.db.Txn(false)
	now := c.opts.Now()
	var keys [4]string
	if subject != "" {
		keys[0] = quarantineKey(QuarantineSubject, "", "", subject, "")
		if session != "" {
			keys[1] = quarantineKey(QuarantineSession, "", "", subject, session)
		}
	}
	if server != "" {
		keys[2] = quarantineKey(QuarantineServer, server, "", "", "")
		if tool != "" {
			keys[3] = quarantineKey(QuarantineTool, server, tool, "", "")
		}
	}
	for _, k := range keys {
		if k == "" {
			continue
		}
		if q := activeQuarantine(txn, k, now); q != nil {
			return q, nil
		}
	}
	return nil, nil
}

// activeQuarantine returns the active quarantine with target key, or nil.
func activeQuarantine(txn *memdb.Txn, key string, now time.Time) *Quarantine {
	it, err := txn.Get(tableQuarantines, "key", key)
	if err != nil {
		return nil
	}
	for obj := it.Next(); obj != nil; obj = it.Next() {
		q := obj.(*quarantineRow).Q
		if q.Active && (q.ExpiresAt.IsZero() || now.Before(q.ExpiresAt)) {
			return q
		}
	}
	return nil
}

// Quarantining reports whether any quarantine is active, or the view may
// be stale (list filtering checks entries one by one only then).
func (c *Controls) Quarantining() bool {
	return c != nil && (c.activeQuarantines.Load() > 0 || (c.sync != nil && c.sync.staleAt.Load() != staleNever))
}

// GrantsFor returns the active grants of subject (and of its groups) as
// policy input: a list of {id, tools, expires_at, conditions}, or nil when
// there are none. It costs two atomic loads when nothing is granted.
// While the view of a shared store is stale it returns ErrStale: the
// caller refuses the call (CodeStateDown).
func (c *Controls) GrantsFor(subject string, groups []string) ([]any, error) {
	if c == nil || (c.activeGrants.Load() == 0 && c.sync == nil) {
		return nil, nil // the fast path: one atomic load over a local store
	}
	if c.sync != nil && c.stale() {
		return nil, ErrStale
	}
	if c.activeGrants.Load() == 0 || subject == "" {
		return nil, nil
	}
	txn := c.db.Txn(false)
	now := c.opts.Now()
	var out []any
	seen := map[string]bool{}
	add := func(index, value string) {
		it, err := txn.Get(tableGrants, index, value)
		if err != nil {
			return
		}
		for obj := it.Next(); obj != nil; obj = it.Next() {
			row := obj.(*grantRow)
			if g := row.G; g.Status == GrantActive && now.Before(g.ExpiresAt) && !seen[g.ID] {
				seen[g.ID] = true
				out = append(out, row.input)
			}
		}
	}
	add("subject", subject)
	for _, grp := range groups {
		if grp != "" {
			add("group", grp)
		}
	}
	return out, nil
}

func grantInput(g *Grant) map[string]any {
	tools := make([]any, len(g.Tools))
	for i, t := range g.Tools {
		tools[i] = t
	}
	conds := make([]any, 0, len(g.Conditions))
	for _, cd := range g.Conditions {
		m := map[string]any{"path": cd.Path, "op": cd.Op, "value": decodeValue(cd.Value)}
		if cd.Optional {
			m["optional"] = true
		}
		conds = append(conds, m)
	}
	return map[string]any{"id": g.ID, "tools": tools, "expires_at": g.ExpiresAt.UTC().Format(time.RFC3339), "conditions": conds}
}
