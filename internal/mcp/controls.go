package mcp

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/verdictpdp/verdict/internal/audit"
	"github.com/verdictpdp/verdict/internal/control"
	"github.com/verdictpdp/verdict/internal/enforce"
	"github.com/verdictpdp/verdict/internal/pipeline"
)

// Reason codes the runtime controls give a decision.
const (
	ReasonQuarantined  = control.CodeQuarantined
	ReasonApprovalUsed = "approval.used"
	// ReasonApprovalUnbindable: the arguments have no exact digest (an
	// integer beyond 2^53): no approval can be bound to them.
	ReasonApprovalUnbindable = "approval.unbindable"
)

// grantsFor returns input.grants for the caller of in, or nil; an error
// when the controls' view is stale (the call is refused: stateDown).
func (d *Decider) grantsFor(in map[string]any) ([]any, error) {
	if d.controls == nil {
		return nil, nil
	}
	s, _ := in["subject"].(map[string]any)
	id, _ := s["id"].(string)
	var groups []string
	if gs, ok := s["groups"].([]any); ok {
		for _, g := range gs {
			if str, ok := g.(string); ok {
				groups = append(groups, str)
			}
		}
	}
	return d.controls.GrantsFor(id, groups)
}

// target returns the server, method and target (tool or prompt name,
// resource URI) of a decided input, and the call's arguments.
func target(in map[string]any) (server, method, name string, args any) {
	method, _ = in["method"].(string)
	if s, ok := in["server"].(map[string]any); ok {
		server, _ = s["name"].(string)
	}
	for _, member := range [...]string{"tool", "prompt"} {
		if m, ok := in[member].(map[string]any); ok {
			name, _ = m["name"].(string)
			return server, method, name, m["arguments"]
		}
	}
	if r, ok := in["resource"].(map[string]any); ok {
		name, _ = r["uri"].(string)
	}
	return server, method, name, nil
}

// quarantine denies o when its caller, server or tool is quarantined, and
// reports whether it did.
func (d *Decider) quarantine(o *pipeline.Outcome) bool {
	if !d.controls.Quarantining() {
		return false
	}
	// The outcome's request summary already names the server and tool.
	var server, tool string
	if r := o.Request; r != nil {
		server = r.Server
		if r.Method == MethodToolsCall {
			tool = r.Tool
		}
	}
	q, err := d.controls.Quarantined(o.Subject.ID, server, tool, sessionOf(o))
	if err != nil {
		stateDown(o)
		return true
	}
	if q == nil {
		return false
	}
	o.Verdict = pipeline.Deny
	o.Reasons = []pipeline.Reason{{Code: ReasonQuarantined, Message: quarantineMessage(q)}}
	o.Approval = nil
	return true
}

// stateDown denies o because the runtime controls cannot be read: a
// quarantine or a revocation made on another replica may not be seen yet.
func stateDown(o *pipeline.Outcome) {
	o.Verdict = pipeline.Deny
	o.Reasons = []pipeline.Reason{{Code: enforce.ReasonStateDown, Message: "the runtime controls cannot be read right now"}}
	o.Approval = nil
}

// sessionOf returns the MCP session id of a decided outcome's input.
func sessionOf(o *pipeline.Outcome) string {
	in, _ := o.Input.(map[string]any)
	_, _, session := who(in)
	return session
}

func quarantineMessage(q *control.Quarantine) string {
	switch q.Kind {
	case control.QuarantineSession:
		return "the caller's session is quarantined"
	case control.QuarantineServer:
		return "server " + q.Server + " is quarantined"
	case control.QuarantineTool:
		return "tool " + q.Server + "/" + q.Tool + " is quarantined"
	default:
		return "the caller is quarantined"
	}
}

// gate turns a decision asking for approval into the approval's answer: a
// pending approval, one use of an approved one (after the rate limit
// allows the call), or a deny with the reason the approval cannot be used.
func (d *Decider) gate(ctx context.Context, o *pipeline.Outcome, dec *Decision, c pipeline.Checks) {
	in, ok := o.Input.(map[string]any)
	if !ok {
		return // nothing to bind to: it stays a request for approval
	}
	server, method, name, args := target(in)
	// Only a call whose whole request the binding covers can be approved:
	// another method's params, or a tool call decided from its Mcp-*
	// headers without its body, would let one approval serve many calls.
	switch fromHeaders, _ := in["from_headers"].(bool); {
	case method != MethodToolsCall && method != MethodPromptsGet && method != MethodResourcesRead:
		o.Verdict = pipeline.Deny
		o.Reasons = []pipeline.Reason{{Code: ReasonApprovalUnbindable, Message: "a " + method + " request cannot be bound to an approval"}}
		return
	case fromHeaders:
		o.Verdict = pipeline.Deny
		o.Reasons = []pipeline.Reason{{Code: ReasonApprovalUnbindable, Message: "the call was decided from MCP headers without its body: its arguments cannot be bound to an approval"}}
		return
	}
	digest, err := control.ArgumentsDigest(args)
	if err != nil {
		o.Verdict = pipeline.Deny
		o.Reasons = []pipeline.Reason{{Code: ReasonApprovalUnbindable, Message: "the call's arguments cannot be bound to an approval: " + strings.TrimPrefix(err.Error(), "arguments: ")}}
		return
	}
	call := control.Call{
		Binding:     control.Binding{Subject: o.Subject.ID, Server: server, Method: method, Target: name, ArgumentsSHA256: digest},
		Revision:    o.Revision,
		DecisionID:  o.DecisionID,
		PresentedID: o.PresentedApproval,
		Arguments:   maskedArguments(args, dec),
		TTL:         time.Duration(dec.Obligations.ApprovalTTLSeconds) * time.Second,
	}
	if len(o.Reasons) > 0 {
		call.Reason = o.Reasons[0].Message
	}
	if s, ok := in["subject"].(map[string]any); ok {
		call.SubjectRoles, call.SubjectGroups = stringValues(s["roles"]), stringValues(s["groups"])
		call.SubjectTenant, _ = s["tenant"].(string)
	}
	g := d.controls.Gate(ctx, call)
	switch g.Outcome {
	case control.GatePending:
		o.Approval = approvalOf(g.Approval)
	case control.GateApproved:
		o.Verdict = pipeline.Allow
		o.Reasons = []pipeline.Reason{{Code: ReasonApprovalUsed, Message: "approved by " + g.Approval.ResolvedBy}}
		d.p.Enforce(ctx, o, c)
		if o.Verdict != pipeline.Allow {
			return // the rate limit refused it: the approval stays unused
		}
		used, e := d.controls.Consume(ctx, g.Approval.ID, o.DecisionID)
		if e != nil {
			o.Verdict = pipeline.Deny
			o.Reasons = []pipeline.Reason{{Code: e.Code, Message: e.Message}}
			return
		}
		o.Approval = &pipeline.Approval{ID: used.ID, Status: string(used.Status), ExpiresAt: used.ExpiresAt}
	case control.GateRefused:
		o.Verdict = pipeline.Deny
		o.Reasons = []pipeline.Reason{{Code: g.Reason.Code, Message: g.Reason.Message}}
		if g.Approval != nil {
			o.Approval = approvalOf(g.Approval)
		}
		// A deny like any other: an unauthenticated caller is asked to
		// sign in (an approval needs a subject).
		d.p.Enforce(ctx, o, c)
	}
}

func approvalOf(v *control.View) *pipeline.Approval {
	return &pipeline.Approval{ID: v.ID, Status: string(v.Status), URL: v.URL, ExpiresAt: v.ExpiresAt}
}

func stringValues(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, x := range list {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// maskedArguments are the arguments an approver reads: masked as the
// audit log masks the call.
func maskedArguments(args any, dec *Decision) json.RawMessage {
	if args == nil {
		return nil
	}
	raw, err := json.Marshal(audit.MaskArguments(args, dec.Obligations.Redact, dec.Obligations.Classification))
	if err != nil {
		return nil
	}
	return raw
}

// addApproval puts the approval into a JSON-RPC error: a call waiting for
// approval becomes MCP's URL-mode elicitation (-32042), so MCP clients
// show the approval page; the approval is named in data either way.
func addApproval(e *ErrorObject, v pipeline.Verdict, a *pipeline.Approval) {
	ref := map[string]any{"id": a.ID, "status": a.Status}
	if a.URL != "" {
		ref["url"] = a.URL
	}
	if !a.ExpiresAt.IsZero() {
		ref["expires_at"] = a.ExpiresAt.UTC().Format(time.RFC3339)
	}
	e.Data["approval"] = ref
	if v != pipeline.RequireApproval || a.URL == "" {
		return
	}
	e.Code = CodeURLElicitationRequired
	msg := "A person must approve this call: open the link, then retry the same call"
	e.Data["elicitations"] = []any{map[string]any{
		"mode": "url", "elicitationId": a.ID, "url": a.URL, "message": msg,
	}}
}
