package mcp

import (
	"context"

	"github.com/verdictpdp/verdict/internal/pipeline"
)

// The observation types live in the pipeline, which carries the
// service's observer to every decider; these names are the MCP side's.
type (
	Stage        = pipeline.Stage
	Observation  = pipeline.Observation
	Observer     = pipeline.Observer
	SessionState = pipeline.SessionState
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

// addSession merges the session's recorded state into input.session.
func (d *Decider) addSession(in map[string]any) {
	if d.sessions == nil {
		return
	}
	tenant, subject, session := who(in)
	if subject == "" {
		return // an anonymous caller has no session state to read
	}
	st := d.sessions.SessionInput(tenant, subject, session)
	if st == nil {
		return
	}
	if session != "" {
		st["id"] = session
	}
	in["session"] = st
}

// observe tells the observer about a final outcome.
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
	d.observer.Observe(ctx, &ob)
}
