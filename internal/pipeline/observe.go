package pipeline

import "context"

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
	Verdict Verdict
	// Failed is set when the policy's answer was not used (an error).
	Failed bool
	// Question marks a decision about a call that may never be made (a
	// list entry ToolHive asks about, decided as the call): session state
	// records it (failing closed), containment does not count it (it is
	// not the caller's doing).
	Question bool
	// Unverified marks a subject only claimed by an asker that did not
	// prove it may speak for it (AuthZEN without require_token, or with a
	// token of another subject and no required scope): neither session
	// state nor containment counts it, so nobody can taint or quarantine
	// another caller by asking about them.
	Unverified bool
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
}

// Observer learns from final MCP decisions. Observe runs on the request
// path: it must be fast and must not block.
type Observer interface {
	Observe(ctx context.Context, ob *Observation)
}

// SessionState offers the state of a caller's session to policy.
type SessionState interface {
	// SessionInput returns input.session's state members for the session,
	// or nil when nothing is recorded. The map is the caller's to keep. An
	// error means the state cannot be read (shared state unreachable or
	// corrupt): the decider then refuses the call (fail closed).
	SessionInput(ctx context.Context, tenant, subject, session string) (map[string]any, error)
}

// SessionRecorder is a session state whose recording can fail (state
// shared between replicas). A decider records an observation through
// Record before it answers, so that an allowed read that could not be
// recorded is refused instead of letting a later egress through on
// another replica. A SessionRecorder's Observe must not record again.
type SessionRecorder interface {
	Record(ctx context.Context, ob *Observation) error
}
