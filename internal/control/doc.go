// Package control owns the runtime controls that bind to one exact call
// and change while the policy does not: human approvals, just-in-time
// grants and quarantines (the kill switch).
//
// The request path reads them from go-memdb without locks: Quarantined on
// every MCP decision, GrantsFor to give policy input.grants, and Gate for a
// decision that asks for approval. Approvers change them through the
// methods that take an [Approver]; each change is first written to the
// [Store] (an embedded database on disk, or memory), then made visible, so
// a restart loses nothing that was approved, granted or quarantined, and a
// store that cannot write fails closed.
//
// The package decides nothing itself: who may approve, grant or quarantine
// is asked of an [Authorizer] (a policy entrypoint). It must not import the
// decision pipeline or any adapter.
package control
