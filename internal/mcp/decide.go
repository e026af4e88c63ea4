package mcp

import (
	"context"
	"errors"
	"time"

	"github.com/verdictpdp/verdict/internal/audit"
	"github.com/verdictpdp/verdict/internal/control"
	"github.com/verdictpdp/verdict/internal/enforce"
	"github.com/verdictpdp/verdict/internal/engine"
	"github.com/verdictpdp/verdict/internal/pipeline"
)

// DefaultPath is the MCP entrypoint the policy library defines.
const DefaultPath = "verdict/mcp/decision"

// Reason codes for decisions Verdict made without the policy's answer.
const (
	ReasonInvalidRequest  = "request.invalid"
	ReasonInvalidDecision = pipeline.ReasonInvalidDecision
	ReasonFailOpen        = pipeline.ReasonFailOpen
)

// Decider runs MCP decisions at one entrypoint on the shared pipeline:
// every MCP adapter (the native API, MCP over Envoy, ToolHive, ExtMcp)
// asks it the same questions and gets the same answers.
type Decider struct {
	p        *pipeline.Pipeline
	path     string
	failOpen bool
	now      func() time.Time
	// controls are the approvals, grants and quarantines (nil: none).
	controls *control.Controls
	// observer learns from final decisions; sessions, when the observer
	// keeps session state, offers it to policy as input.session.
	observer Observer
	sessions SessionState
	// recorder is the observer's part that records synchronously and may
	// fail (shared session state); nil for in-memory state.
	recorder SessionRecorder
}

// NewDecider returns a decider for the entrypoint path (canonical slash
// form). With failOpen, a missing or broken decision allows; otherwise it
// denies with the reason.
func NewDecider(p *pipeline.Pipeline, path string, failOpen bool) *Decider {
	if path == "" {
		path = DefaultPath
	}
	d := &Decider{p: p, path: path, failOpen: failOpen, now: time.Now, controls: p.Controls()}
	if obs := p.Observer(); obs != nil {
		d.observer = obs
		d.sessions, _ = obs.(SessionState)
		d.recorder = recorder(obs)
	}
	return d
}

// WithControls returns a decider that applies the runtime controls:
// quarantines deny, grants are offered to policy as input.grants, and a
// decision asking for approval waits for, or uses, a human approval.
func (d *Decider) WithControls(c *control.Controls) *Decider {
	cp := *d
	cp.controls = c
	return &cp
}

// Path returns the entrypoint.
func (d *Decider) Path() string { return d.path }

// Pipeline returns the pipeline the decider runs on.
func (d *Decider) Pipeline() *pipeline.Pipeline { return d.p }

// WithClock returns a decider whose requests without a time are decided at
// now() (tests, `pdp eval`).
func (d *Decider) WithClock(now func() time.Time) *Decider {
	c := *d
	c.now = now
	return &c
}

// Check decides one request and applies the stateful checks (rate limits,
// challenges). extend, when set, adds members to the input. The caller
// finishes the outcome with Finish.
func (d *Decider) Check(ctx context.Context, kind audit.Kind, r *Request, extend func(map[string]any) error) pipeline.Outcome {
	o := d.Evaluate(ctx, kind, r, extend)
	d.Enforce(ctx, &o)
	return o
}

// Evaluate decides one request without the stateful checks: list filtering
// and result checks, which must not count against a rate limit.
func (d *Decider) Evaluate(ctx context.Context, kind audit.Kind, r *Request, extend func(map[string]any) error) pipeline.Outcome {
	ctx, o := d.p.Start(ctx, kind, d.path, "verdict.mcp."+r.Method, nil)
	d.evaluate(ctx, &o, r, extend)
	return o
}

// CheckAs decides r into an outcome another adapter began (an AuthZEN
// evaluation that describes an MCP call): the outcome becomes an MCP
// decision at this decider's entrypoint, with the stateful checks, and
// keeps its decision id and span.
func (d *Decider) CheckAs(ctx context.Context, o *pipeline.Outcome, r *Request) {
	d.EvaluateAs(ctx, o, r)
	d.Enforce(ctx, o)
}

// EvaluateAs is CheckAs without the stateful checks (a search proposing
// candidates must not spend the caller's rate limits).
func (d *Decider) EvaluateAs(ctx context.Context, o *pipeline.Outcome, r *Request) {
	o.Kind, o.Path = audit.KindMCP, d.path
	d.evaluate(ctx, o, r, nil)
	// A search's candidates skip the stateful checks, but not a quarantine:
	// a search must not offer what an evaluation denies.
	if d.controls != nil && (o.Err == nil || o.Verdict == pipeline.Allow) {
		d.quarantine(o)
	}
}

// FilterAs is Filter into an outcome another adapter began.
func (d *Decider) FilterAs(ctx context.Context, o *pipeline.Outcome, r *Request, method string, result map[string]any) Listing {
	o.Kind, o.Path = audit.KindMCP, d.path
	d.evaluate(ctx, o, r, func(in map[string]any) error { return d.addListInput(in, r.Server, method, result) })
	l := d.listing(o, method, result)
	d.observe(ctx, o, StageList, nil, poisoned(l.Removed))
	return l
}

func (d *Decider) evaluate(ctx context.Context, o *pipeline.Outcome, r *Request, extend func(map[string]any) error) {
	d.describe(o, r)
	in, err := r.Input(d.now())
	if err == nil && extend != nil {
		err = extend(in)
	}
	if err != nil {
		d.Reject(o, err)
		return
	}
	d.Decide(ctx, o, in)
}

// Start begins the outcome of a message that is part of a larger request
// (MCP over Envoy): no span of its own, the given decision id when set.
func (d *Decider) Start(kind audit.Kind, r *Request, decisionID string) pipeline.Outcome {
	o := d.p.Sub(kind, d.path)
	if decisionID != "" {
		o.DecisionID = decisionID
	}
	d.describe(&o, r)
	return o
}

// describe fills what the outcome knows of r before any input exists.
func (d *Decider) describe(o *pipeline.Outcome, r *Request) {
	o.Request = &audit.Request{Method: r.Method, Server: r.Server}
	o.PresentedApproval, o.NoApproval = r.approvalID(), r.NoApproval
	s := &r.Subject
	o.Subject = pipeline.Subject{ID: s.ID, Authenticated: s.Authenticated, TokenPresented: s.TokenPresented(), Challengeable: true, Claimed: s.Claimed}
	if s.AuthError != nil {
		o.Subject.AuthError = s.AuthError.Message
	}
}

// Reject fills o with a deny for a request that could not become input.
func (d *Decider) Reject(o *pipeline.Outcome, err error) {
	d.p.Refuse(o, err, rejection(err))
}

func rejection(err error) pipeline.Failure {
	f := pipeline.Failure{Code: ReasonInvalidRequest, Message: "request is not a valid MCP request", WireCode: CodeInvalidRequest}
	if re, ok := errors.AsType[*RequestError](err); ok {
		f.Message, f.WireCode = re.Reason, re.JSONRPCCode
	}
	return f
}

// Decide decides in (an input built by Request.Input, possibly with more
// members) and fills o. It never returns an allow by accident: every
// failure is a deny with a reason unless the decider fails open.
func (d *Decider) Decide(ctx context.Context, o *pipeline.Outcome, in map[string]any) {
	if err := d.addSession(ctx, in); err != nil {
		o.Input = in
		o.Request = auditRequest(in)
		o.Revision = d.p.Revision()
		stateUnavailable(o, err)
		return
	}
	grants, grantsErr := d.grantsFor(in)
	if grants != nil {
		in["grants"] = grants
	}
	o.Input = in
	o.Request = auditRequest(in)
	inputErr := func(err error) (pipeline.Failure, bool) {
		if _, ok := errors.AsType[*pipeline.UnconvertibleError](err); ok {
			return rejection(err), true
		}
		return pipeline.Failure{}, false
	}
	if !d.p.Decide(ctx, o, pipeline.MapInput(in), deriveDecision, d.failOpen, inputErr) {
		return
	}
	dec := DecisionOf(o)
	o.Verdict, o.Reasons = dec.Verdict(), dec.Reasons
	ob := &dec.Obligations
	o.Obligations = ob
	o.Classification, o.RetentionDays, o.Redact = ob.Classification, ob.RetentionDays, ob.Redact
	if grantsErr != nil {
		// Decided without the grants, which may have been revoked
		// elsewhere: refused, whatever the policy said.
		stateDown(o)
	}
}

// Enforce applies the stateful checks to a decided outcome, cached or
// not: a quarantine denies; a decision asking for approval waits for one
// or uses it; rate limits and challenges follow.
func (d *Decider) Enforce(ctx context.Context, o *pipeline.Outcome) {
	d.enforce(ctx, o)
	d.observe(ctx, o, StageCall, nil, 0)
}

func (d *Decider) enforce(ctx context.Context, o *pipeline.Outcome) {
	dec := DecisionOf(o)
	c := pipeline.Checks{RequiredScopes: dec.RequiredScopes, ScopeDescription: true}
	if rl := dec.Obligations.RateLimit; rl != nil {
		c.RateLimit = &enforce.RateLimit{Key: rl.Key, Limit: rl.Limit, PeriodSeconds: rl.PeriodSeconds, Burst: rl.Burst}
	}
	// A quarantine denies even a decision that failed open: the kill
	// switch is for the moment the policy cannot be trusted.
	if d.controls != nil && (o.Err == nil || o.Verdict == pipeline.Allow) && d.quarantine(o) {
		return
	}
	if d.controls != nil && o.Err == nil {
		if o.Verdict == pipeline.RequireApproval && !o.NoApproval {
			d.gate(ctx, o, dec, c)
			return
		}
	}
	d.p.Enforce(ctx, o, c)
}

// Finish logs and records the outcome: once per decision.
func (d *Decider) Finish(ctx context.Context, o *pipeline.Outcome) { d.p.Finish(ctx, o) }

var noDecision = &Decision{}

// DecisionOf returns the policy's MCP decision in o (an empty one when the
// policy gave none). It is shared with the cache: never modify it.
func DecisionOf(o *pipeline.Outcome) *Decision {
	if dec, ok := o.Derived.(*Decision); ok {
		return dec
	}
	return noDecision
}

// RPCError returns the JSON-RPC error for the outcome, or false when it
// allows.
func RPCError(o *pipeline.Outcome) (ErrorObject, bool) {
	e, ok := errorObject(o.Verdict, o.Reasons, o.DecisionID)
	if !ok {
		return e, false
	}
	if f := o.Failure; f != nil && f.Request && f.WireCode != 0 {
		e.Code, e.Message = f.WireCode, f.Message
	}
	if st := o.RateLimit; st != nil && st.Refused && st.RetryAfter > 0 {
		e.Data["retry_after_seconds"] = enforce.Seconds(st.RetryAfter)
	}
	if a := o.Approval; a != nil {
		addApproval(&e, o.Verdict, a)
	}
	return e, true
}

// deriveDecision parses the policy's value once per evaluation; the cache
// shares the result between requests, so nothing may modify it afterwards.
func deriveDecision(r engine.Result) (any, error) {
	dec, err := ParseDecision(r.Value)
	if err != nil {
		return nil, err
	}
	if dec.Verdict() != Allow && len(dec.Reasons) == 0 {
		dec.Reasons = []Reason{{Code: "policy.deny", Message: "denied by policy"}}
	}
	return &dec, nil // shared by the cache's entries: read, never modify
}

// auditRequest summarises the input for readers of the audit log.
func auditRequest(in map[string]any) *audit.Request {
	r := &audit.Request{}
	r.Method, _ = in["method"].(string)
	if s, ok := in["server"].(map[string]any); ok {
		r.Server, _ = s["name"].(string)
	}
	if t, ok := in["tool"].(map[string]any); ok {
		r.Tool, _ = t["name"].(string)
	}
	if res, ok := in["resource"].(map[string]any); ok {
		r.Resource, _ = res["uri"].(string)
	}
	if p, ok := in["prompt"].(map[string]any); ok {
		r.Prompt, _ = p["name"].(string)
	}
	return r
}
