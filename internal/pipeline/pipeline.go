package pipeline

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/verdictpdp/verdict/internal/audit"
	"github.com/verdictpdp/verdict/internal/challenge"
	"github.com/verdictpdp/verdict/internal/control"
	"github.com/verdictpdp/verdict/internal/enforce"
	"github.com/verdictpdp/verdict/internal/engine"
	"github.com/verdictpdp/verdict/internal/tracing"
)

// Evaluator is the decision core as the pipeline sees it.
type Evaluator interface {
	Decide(ctx context.Context, entrypoint string, in engine.Input, derive engine.Derive) (engine.Decision, error)
	// Revision is the active policy's revision, empty before the first
	// activation.
	Revision() string
}

// Options configure a pipeline. Every member may be left zero.
type Options struct {
	// Limiter applies rate_limit obligations (nil: none).
	Limiter *enforce.Limiter
	// Controls are the runtime controls (approvals, grants, quarantines)
	// the MCP decider applies (nil: none).
	Controls *control.Controls
	// Observer learns from every final MCP decision (session state,
	// containment); when it is also a SessionState, MCP deciders offer
	// that state to policy as input.session (nil: none).
	Observer Observer
	// SessionsFailOpen lets an MCP call through without session state
	// when the state cannot be read or recorded (state.redis.fail_open:
	// sessions); otherwise such a call is refused as state.unavailable.
	SessionsFailOpen bool
	// ResourceMetadata is the RFC 9728 metadata URL put in challenges.
	ResourceMetadata string
	// Audit, when enabled, records every decision.
	Audit *audit.Recorder
	// Tracer, when set, gives each decision a span.
	Tracer *tracing.Tracer
	Logger *slog.Logger
}

// Pipeline runs decisions for every adapter: one per service, shared.
type Pipeline struct {
	eval Evaluator
	opts Options
	now  func() time.Time
}

// New returns the pipeline deciding with eval.
func New(eval Evaluator, opts Options) *Pipeline {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Pipeline{eval: eval, opts: opts, now: time.Now}
}

// Revision is the active policy's revision.
func (p *Pipeline) Revision() string { return p.eval.Revision() }

// Component returns what the named engine component compiled for the
// active policy (engine.AddComponent), or nil when the evaluator has no
// snapshots or the component is not registered.
func (p *Pipeline) Component(name string) any {
	if s, ok := p.eval.(interface{ Snapshot() *engine.Snapshot }); ok {
		return s.Snapshot().Component(name)
	}
	return nil
}

// Controls are the runtime controls (nil when off).
func (p *Pipeline) Controls() *control.Controls { return p.opts.Controls }

// Observer learns from final MCP decisions (nil when none).
func (p *Pipeline) Observer() Observer { return p.opts.Observer }

// SessionsFailOpen reports whether an MCP call proceeds without session
// state when that state cannot be read or recorded.
func (p *Pipeline) SessionsFailOpen() bool { return p.opts.SessionsFailOpen }

// Limiter is the rate limiter (nil when limits are off).
func (p *Pipeline) Limiter() *enforce.Limiter { return p.opts.Limiter }

// ResourceMetadata is the RFC 9728 metadata URL challenges name.
func (p *Pipeline) ResourceMetadata() string { return p.opts.ResourceMetadata }

// Start begins an outcome for a decision at path made by an adapter of
// kind, with a fresh decision id. With tracing on it starts the decision's
// span (named name, child of the trace context in the gRPC metadata or in
// headers) and returns the context that carries it.
func (p *Pipeline) Start(ctx context.Context, kind audit.Kind, path, name string, headers map[string]string) (context.Context, Outcome) {
	o := Outcome{DecisionID: NewDecisionID(), Kind: kind, Path: path, start: p.now()}
	if p.opts.Tracer.Enabled() {
		ctx, o.span = p.opts.Tracer.Start(ctx, name, headers)
	}
	return ctx, o
}

// Sub begins an outcome that is part of another's request (one message of
// a JSON-RPC batch): its own decision id, no span of its own.
func (p *Pipeline) Sub(kind audit.Kind, path string) Outcome {
	return Outcome{DecisionID: NewDecisionID(), Kind: kind, Path: path, start: p.now()}
}

// Decide asks the decision core at o.Path for in. derive parses the
// policy's value once per evaluation (the cache shares what it returns).
// On success o holds the result and its derived form and Decide returns
// true; the adapter then sets the verdict from the derived form. On failure
// o is a deny (an allow when failOpen) with the failure's reason, and
// Decide returns false. inputErr, when it matches the failure, marks it as
// the request's fault.
func (p *Pipeline) Decide(ctx context.Context, o *Outcome, in engine.Input, derive engine.Derive, failOpen bool, inputErr func(error) (Failure, bool)) bool {
	dec, err := p.eval.Decide(ctx, o.Path, in, derive)
	o.Revision, o.Cached, o.Bundles, o.EvalTook = dec.Revision, dec.Cached, dec.Bundles, dec.EvalTook
	if o.Revision == "" {
		o.Revision = p.eval.Revision()
	}
	if err == nil {
		o.Result, o.Derived = dec.Value, dec.Derived
		return true
	}
	if inputErr != nil {
		if f, ok := inputErr(err); ok {
			o.Refuse(err, f)
			return false
		}
	}
	f := FailureOf(err)
	o.Err, o.Failure = err, &f
	o.Verdict = Deny
	o.Reasons = []Reason{{Code: f.Code, Message: f.Message}}
	if failOpen {
		o.Verdict = Allow
		o.Reasons = append(o.Reasons, Reason{Code: ReasonFailOpen, Message: "allowed because the service is configured to fail open"})
	}
	return false
}

// Refuse makes o a deny for a request that never became input, stamped
// with the revision that would have decided it: every answer names the
// policy it was given under.
func (p *Pipeline) Refuse(o *Outcome, err error, f Failure) {
	o.Revision = p.eval.Revision()
	o.Refuse(err, f)
}

// FailureOf returns a stable code and a caller-safe message for a failure
// to decide.
func FailureOf(err error) Failure {
	if e, ok := errors.AsType[*engine.Error](err); ok {
		return Failure{Code: string(e.Code), Message: e.Message}
	}
	if errors.Is(err, ErrInvalidDecision) {
		return Failure{Code: ReasonInvalidDecision, Message: "policy decision is malformed"}
	}
	return Failure{Code: string(engine.CodeEvalError), Message: "policy evaluation failed"}
}

// Checks are what the stateful checks read from a decision.
type Checks struct {
	// RateLimit is the decision's rate_limit obligation (nil: none).
	RateLimit *enforce.RateLimit
	// RequiredScopes are the scopes a denied, authenticated caller is asked
	// to step up to.
	RequiredScopes []string
	// NoChallenge is set when the policy chose the denied answer's status
	// or WWW-Authenticate header itself: no challenge replaces them.
	NoChallenge bool
	// ScopeDescription puts the first reason in a step-up challenge's
	// error_description.
	ScopeDescription bool
}

// Enforce applies the stateful checks that follow a decision on every
// request, cached or not. An allowed request over its rate limit becomes a
// deny with reason rate_limited (or rate_limit.invalid/unavailable: fail
// closed). A policy's deny gets an authorization challenge when the
// service verifies tokens: 401 when the caller is not authenticated, 403
// insufficient_scope when the decision names required scopes. A refused
// request or a failure to decide gets no challenge: it is not the
// credentials' fault.
func (p *Pipeline) Enforce(ctx context.Context, o *Outcome, c Checks) {
	if o.Err != nil {
		return
	}
	if o.Verdict == Allow {
		st, ok := p.opts.Limiter.Take(ctx, o.Path, c.RateLimit)
		if !ok {
			return
		}
		o.RateLimit = &st
		if st.Refused {
			o.Verdict = Deny
			o.Reasons = []Reason{{Code: st.Code, Message: st.Message}}
		}
		return
	}
	if o.Verdict != Deny || c.NoChallenge || !o.Subject.Challengeable {
		return
	}
	var ch challenge.Challenge
	switch {
	case !o.Subject.Authenticated:
		desc := ""
		if o.Subject.TokenPresented {
			desc = o.Subject.AuthError
		}
		ch = challenge.Unauthorized(p.opts.ResourceMetadata, o.Subject.TokenPresented, desc)
	case len(c.RequiredScopes) > 0:
		desc := ""
		if c.ScopeDescription && len(o.Reasons) > 0 {
			desc = o.Reasons[0].Message
		}
		ch = challenge.InsufficientScope(p.opts.ResourceMetadata, c.RequiredScopes, desc)
	default:
		return
	}
	o.Challenge = &ch
}

// EndSpan closes the decision's span without logging or recording it (a
// decision made for `pdp eval`).
func (p *Pipeline) EndSpan(o *Outcome) {
	if o.span != nil {
		o.TraceID, o.SpanID = tracing.End(o.span, o.DecisionID, o.Path, o.Verdict.String(), o.Cached)
		o.span = nil
	}
}

// Warn logs a problem with a decision that the operator must fix (a
// policy asking for something that cannot be done); the caller's answer
// already reflects it.
func (p *Pipeline) Warn(ctx context.Context, o *Outcome, msg string, err error) {
	p.opts.Logger.LogAttrs(ctx, slog.LevelWarn, msg,
		slog.String("decision_id", o.DecisionID), slog.String("path", o.Path),
		slog.String("revision", o.Revision), slog.String("err", err.Error()))
}

// Finish ends the decision: it closes its span, logs it and records its
// audit event. Call it once per outcome, after the adapter has set what
// only it knows (the HTTP status, the peer).
func (p *Pipeline) Finish(ctx context.Context, o *Outcome) {
	if o.Took == 0 && !o.start.IsZero() {
		o.Took = p.now().Sub(o.start)
	}
	if o.span != nil {
		o.TraceID, o.SpanID = tracing.End(o.span, o.DecisionID, o.Path, o.Verdict.String(), o.Cached)
		o.span = nil
	}
	p.log(ctx, o)
	p.Record(o)
}

// Record hands o's audit event to the recorder (a no-op when auditing is
// off). Finish calls it; an adapter calls it directly only for an outcome
// whose span and log are its parent's.
func (p *Pipeline) Record(o *Outcome) {
	if !p.opts.Audit.Enabled() {
		return
	}
	p.opts.Audit.Record(AuditEntry(o, p.now()))
}

// AuditEntry is the audit event of o: the one place events are built.
func AuditEntry(o *Outcome, now time.Time) *audit.Entry {
	e := &audit.Entry{
		DecisionID:     o.DecisionID,
		Time:           now,
		Kind:           o.Kind,
		Path:           o.Path,
		Bundles:        o.Bundles,
		Input:          o.Input,
		Result:         o.Result,
		Decision:       o.Verdict.String(),
		Obligations:    o.Obligations,
		Classification: o.Classification,
		RetentionDays:  o.RetentionDays,
		Redact:         o.Redact,
		Findings:       o.Findings,
		Subject:        o.Subject.ID,
		Request:        o.Request,
		HTTPStatus:     o.HTTPStatus,
		Cached:         o.Cached,
		DryRun:         o.DryRun,
		RequestedBy:    o.RequestedBy,
		TraceID:        o.TraceID,
		SpanID:         o.SpanID,
		EvalTook:       o.EvalTook,
		Took:           o.Took,
	}
	if o.Verdict == 0 {
		e.Decision = audit.Deny
	}
	for _, r := range o.Reasons {
		e.Reasons = append(e.Reasons, audit.Reason{Code: r.Code, Message: r.Message})
	}
	if c := o.Challenge; c != nil {
		e.Reasons = append(e.Reasons, audit.Reason{Code: c.Code(), Message: c.Header})
	}
	if a := o.Approval; a != nil {
		e.Approval = &audit.ApprovalRef{ID: a.ID, Status: a.Status}
	}
	if f := o.Failure; f != nil {
		e.Err = &audit.ErrorInfo{Code: f.Code, Message: f.Message}
		e.Obligations = nil
	}
	return e
}

func (p *Pipeline) log(ctx context.Context, o *Outcome) {
	lg := p.opts.Logger
	if o.Failure == nil && !lg.Enabled(ctx, slog.LevelDebug) {
		return // the common case pays nothing for logging
	}
	attrs := []slog.Attr{
		slog.String("decision_id", o.DecisionID),
		slog.String("path", o.Path),
		slog.String("revision", o.Revision),
		slog.String("decision", o.Verdict.String()),
		slog.Duration("took", o.Took),
	}
	if o.DryRun {
		attrs = append(attrs, slog.Bool("dry_run", true))
	}
	if r := o.Request; r != nil {
		// Never the request path: its segments can carry tokens.
		for _, kv := range [...][2]string{{"method", r.Method}, {"server", r.Server}} {
			if kv[1] != "" {
				attrs = append(attrs, slog.String(kv[0], kv[1]))
			}
		}
	}
	switch f := o.Failure; {
	case f == nil:
		lg.LogAttrs(ctx, slog.LevelDebug, "decision", attrs...)
	case f.Request:
		// A request's own error detail can quote its path or body (tokens
		// in query strings): log only the caller-safe reason.
		attrs = append(attrs, slog.String("code", f.Code), slog.String("reason", f.Message))
		if f.WireCode != 0 {
			attrs = append(attrs, slog.Int("wire_code", f.WireCode))
		}
		lg.LogAttrs(ctx, slog.LevelInfo, "request refused before evaluation", attrs...)
	default:
		// Engine and decision errors quote policy locations, which
		// operators need.
		attrs = append(attrs, slog.String("code", f.Code))
		if o.Err != nil {
			attrs = append(attrs, slog.String("err", o.Err.Error()))
		}
		lg.LogAttrs(ctx, slog.LevelWarn, "decision without policy answer", attrs...)
	}
}

// FinishParts ends a decision made of parts (the messages of a JSON-RPC
// batch, each with its own decision id): it closes parent's span and logs
// and records each part under it. parent itself gets no event.
func (p *Pipeline) FinishParts(ctx context.Context, parent *Outcome, parts []Outcome) {
	if parent.Took == 0 && !parent.start.IsZero() {
		parent.Took = p.now().Sub(parent.start)
	}
	if parent.span != nil {
		v := Allow
		for i := range parts {
			v = max(v, parts[i].Verdict)
		}
		parent.TraceID, parent.SpanID = tracing.End(parent.span, parent.DecisionID, parent.Path, v.String(), parent.Cached)
		parent.span = nil
	}
	for i := range parts {
		o := &parts[i]
		o.TraceID, o.SpanID = parent.TraceID, parent.SpanID
		if o.Took == 0 && !o.start.IsZero() {
			o.Took = p.now().Sub(o.start)
		}
		p.log(ctx, o)
		p.Record(o)
	}
}
