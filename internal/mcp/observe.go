package mcp

import (
	"context"

	"github.com/verdictpdp/verdict/internal/pipeline"
)

// Stage is the point of an MCP exchange an observation comes from.
type Stage int

// Stages.
const (
	// StageCall is a decided request (tools/call, resources/read, …)
	// after the stateful checks.
	StageCall Stage = iota + 1
	// StageResult is a checked result (CheckResult).
	StageResult
	// StageList is a filtered list result (FilterTools and friends).
	StageList
)

// Observation is what one final MCP decision tells the runtime state: the
// session flow record and the containment signals. It carries no argument
// values, only names and counts.
type Observation struct {
	Stage Stage
	// Tenant, Subject and Session name whose state it is: the session is
	// the MCP session id, empty when the request had none.
	Tenant, Subject, Session string
	Method, Server           string
	// Target is the tool or prompt name or the resource URI.
	Target  string
	Verdict pipeline.Verdict
	// Failed is set when the policy's answer was not used (an error).
	Failed bool
	// Approval is set when the decision asked for a human approval (the
	// policy deems the call destructive), whether one was used or not.
	Approval bool
	// Classification and Categories are what the decision says the
	// target's data is (its obligations).
	Classification string
	Categories     []string
	// Findings counts the data-loss detectors' matches in a result.
	Findings map[string]int
	// Poisoned counts the list entries hidden because their definitions
	// look poisoned.
	Poisoned int
	// NoApproval is set when the question was not a call a person could
	// approve, or its asker is not proven (a ToolHive list-entry question,
	// AuthZEN without a verified PEP): containment does not count it.
	NoApproval bool
}

// Observer learns from final MCP decisions. Observe runs on the request
// path: it must be fast and must not block.
type Observer interface {
	Observe(ctx context.Context, ob *Observation)
}

// SessionState offers the state of a caller's session to policy.
type SessionState interface {
	// SessionInput returns input.session's state members for the session,
	// or nil when nothing is recorded. The map is the caller's to keep.
	SessionInput(tenant, subject, session string) map[string]any
}

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
	ob := Observation{Stage: stage, Verdict: o.Verdict, Failed: o.Err != nil, Findings: findings, Poisoned: poisoned, NoApproval: o.NoApproval}
	ob.Tenant, ob.Subject, ob.Session = who(in)
	var args any
	ob.Server, ob.Method, ob.Target, args = target(in)
	_ = args
	if o.Approval != nil || DecisionOf(o).RequireApproval {
		ob.Approval = true
	}
	ob.Classification = o.Classification
	ob.Categories = DecisionOf(o).Obligations.DataCategories
	d.observer.Observe(ctx, &ob)
}
