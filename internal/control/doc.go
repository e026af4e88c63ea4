// Package control owns the runtime controls that bind to one exact call
// and change while the policy does not: human approvals, just-in-time
// grants and quarantines (the kill switch).
//
// The request path reads them from go-memdb without locks: Quarantined on
// every MCP decision, GrantsFor to give policy input.grants, and Gate for a
// decision that asks for approval. Approvers change them through the
// methods that take an [Approver]; each change is first written to the
// [Store] (an embedded database on disk, memory, or Redis shared by
// replicas), then made visible, so a restart loses nothing that was
// approved, granted or quarantined, and a store that cannot write fails
// closed.
//
// Over a store other replicas write (a [Watcher]) every change is
// conditional: it names the stored document it was decided on
// ([Change.Prev]), and one that finds it changed ([ErrConflict]) reloads
// those records and is decided again. The replicas' changes arrive through
// Watch; while it has not been synced for Options.StaleAfter, the request
// path refuses ([ErrStale], [CodeStateDown]) unless Options.FailOpen.
//
// The package decides nothing itself: who may approve, grant or quarantine
// is asked of an [Authorizer] (a policy entrypoint). It must not import the
// decision pipeline or any adapter.
package control
