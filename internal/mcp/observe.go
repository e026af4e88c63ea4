package mcp

import (
	"context"

	"github.com/verdictpdp/verdict/internal/enforce"
	"github.com/verdictpdp/verdict/internal/pipeline"
)

// The observation types live in the pipeline, which carries the
// service's observer to every decider; these names are the MCP side's.
type (
	Stage           = pipeline.Stage
	Observation     = pipeline.Observation
	Observer        = pipeline.Observer
	SessionState    = pipeline.SessionState
	SessionRecorder = pipeline.SessionRecorder
)

// Stages.
const (
	StageCall   = pipeline.StageCall
	StageResult = pipeline.StageResult
	StageList   = pipeline.StageList
)

// WithObserver returns a decider that tells obs about every final MCP
// decision, and offers obs's session state to policy when it has one.
func (d *Decider) WithObserver(obs Observer) *Decider {
	c := *d
	c.observer = obs
	c.sessions, _ = obs.(SessionState)
	c.recorder = recorder(obs)
	return &c
}

// who returns the tenant, subject and session of a decided input.
func who(in map[string]any) (tenant, subject, session string) {
	if s, ok := in["subject"].(map[string]any); ok {
		tenant, _ = s["tenant"].(string)
		subject, _ = s["id"].(string)
	}
	if s, ok := in["session"].(map[string]any); ok {
		session, _ = s["id"].(string)
	}
	return tenant, subject, session
}

// stateUnavailable makes o a deny for a call whose session state cannot
// be read or recorded: the caller sees the code and a short message, the
// log the error.
func stateUnavailable(o *pipeline.Outcome, err error) {
	f := pipeline.Failure{Code: enforce.ReasonStateDown, Message: "session state is unavailable right now"}
	o.Err, o.Failure = err, &f
	o.Verdict = pipeline.Deny
	o.Reasons = []Reason{{Code: f.Code, Message: f.Message}}
}

// addSession merges the session's recorded state into input.session. It
// fails when the state cannot be read and the service does not fail open
// for sessions; failing open, the call is decided without the state.
func (d *Decider) addSession(ctx context.Context, in map[string]any) error {
	if d.sessions == nil {
		return nil
	}
	tenant, subject, session := who(in)
	if subject == "" {
		return nil // an anonymous caller has no session state to read
	}
	st, err := d.sessions.SessionInput(ctx, tenant, subject, session)
	if err != nil {
		if d.p.SessionsFailOpen() {
			return nil
		}
		return err
	}
	if st == nil {
		return nil
	}
	if session != "" {
		st["id"] = session
	}
	in["session"] = st
	return nil
}

// observe tells the observer about a final outcome. A session state that
// records through Record (shared state) records first: when it fails, an
// allowed outcome becomes a deny (state.unavailable) unless the service
// fails open for sessions, and the other observers see the deny.
func (d *Decider) observe(ctx context.Context, o *pipeline.Outcome, stage Stage, findings map[string]int, poisoned int) {
	if d.observer == nil {
		return
	}
	in, ok := o.Input.(map[string]any)
	if !ok {
		return // never became input: nothing to attribute
	}
	ob := Observation{Stage: stage, Verdict: o.Verdict, Failed: o.Err != nil, Question: o.NoApproval, Unverified: o.Subject.Claimed, Findings: findings, Poisoned: poisoned}
	ob.Tenant, ob.Subject, ob.Session = who(in)
	ob.Server, ob.Method, ob.Target, _ = target(in)
	if o.Approval != nil || DecisionOf(o).RequireApproval {
		ob.Approval = true
	}
	ob.Classification = o.Classification
	ob.Categories = DecisionOf(o).Obligations.DataCategories
	if d.recorder != nil {
		if err := d.recorder.Record(ctx, &ob); err != nil && !d.p.SessionsFailOpen() && o.Verdict == pipeline.Allow {
			stateUnavailable(o, err)
			ob.Verdict, ob.Failed = pipeline.Deny, true
		}
	}
	d.observer.Observe(ctx, &ob)
}
