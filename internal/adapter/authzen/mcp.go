package authzen

import (
	"context"
	"maps"
	"net/http"
	"time"

	"github.com/verdictpdp/verdict/internal/audit"
	"github.com/verdictpdp/verdict/internal/guard"
	"github.com/verdictpdp/verdict/internal/mcp"
	"github.com/verdictpdp/verdict/internal/pipeline"
)

// Resource types of an AuthZEN request that describes an MCP call. With
// Options.MCP set, such a request is decided as the equivalent native MCP
// request by the MCP policy, not at the AuthZEN entrypoint: the same call
// gets the same answer whichever gateway asks.
const (
	TypeMCPTool     = "mcp_tool"
	TypeMCPPrompt   = "mcp_prompt"
	TypeMCPResource = "mcp_resource"
)

// mcpFeature is what one MCP resource type allows as actions: the call,
// and the list whose visibility rules say whether the caller sees the
// entry (the "may this subject use this tool at all" question).
type mcpFeature struct {
	call, list string
	// catalog is the member of a catalog server listing the entries (empty:
	// the entries are URI prefixes, not enumerable).
	catalog string
}

var mcpFeatures = map[string]mcpFeature{
	TypeMCPTool:     {call: mcp.MethodToolsCall, list: mcp.MethodToolsList, catalog: "tools"},
	TypeMCPPrompt:   {call: mcp.MethodPromptsGet, list: mcp.MethodPromptsList, catalog: "prompts"},
	TypeMCPResource: {call: mcp.MethodResourcesRead, list: mcp.MethodResourcesList},
}

// isMCP reports whether in's resource describes an MCP call this server
// decides as MCP.
func (s *Server) isMCP(in map[string]any) bool {
	if s.opts.MCP == nil {
		return false
	}
	res, _ := in[memberResource].(map[string]any)
	t, _ := res["type"].(string)
	_, ok := mcpFeatures[t]
	return ok
}

// mcpCall maps a checked evaluation request onto the native MCP request:
//
//	subject.id, subject.properties     → subject (roles, groups, scopes, tenant, clearance; all of them as claims)
//	action.name                         → the method: tools/call, prompts/get, resources/read, or tools/list,
//	                                      prompts/list, resources/list for the entry's visibility
//	resource.id                         → the tool or prompt name, or the resource URI
//	resource.properties.server          → the server (required)
//	context.arguments                   → the tool's or prompt's arguments (default {})
//	context.session_id, protocol_version, purpose, region, source_ip, time (RFC 3339) → the same members
//
// list is the list method when the action asks for visibility.
func mcpCall(in map[string]any, maxDepth int) (r mcp.Request, list string, e *requestError) {
	res, _ := in[memberResource].(map[string]any)
	typ, _ := res["type"].(string)
	f := mcpFeatures[typ]
	id, _ := res["id"].(string)
	act, _ := in[memberAction].(map[string]any)
	method, _ := act["name"].(string)
	if method != f.call && method != f.list {
		return r, "", invalid("action.name must be %s or %s for a resource of type %s", f.call, f.list, typ)
	}
	props, _ := res["properties"].(map[string]any)
	server, _ := props["server"].(string)
	if err := mcp.ValidName("resource.properties.server", server); err != nil {
		return r, "", invalid("an MCP resource names its server: %v", err)
	}
	r.Server, r.Method = server, method
	sub, _ := in[memberSubject].(map[string]any)
	claims := map[string]any{}
	if p, ok := sub["properties"].(map[string]any); ok {
		for k, v := range p {
			claims[k] = v
		}
	}
	if err := mcp.CheckValueDepth(claims, maxDepth); err != nil {
		return r, "", &requestError{Status: http.StatusBadRequest, Code: guard.CodeTooDeep, Message: "subject.properties: " + err.Error()}
	}
	claims["sub"], _ = sub["id"].(string)
	if sc, ok := claims["scopes"]; ok {
		// AuthZEN properties name them scopes; token claims scope.
		claims["scope"] = sc
	}
	// The PEP asserts the subject, as a gateway does on the native API.
	r.Subject, _ = mcp.SubjectFromClaims(claims, mcp.SourceGateway)

	c, _ := in[memberContext].(map[string]any)
	args := map[string]any{}
	if a, ok := c["arguments"]; ok {
		if args, ok = a.(map[string]any); !ok {
			return r, "", invalid("context.arguments must be an object")
		}
		// The arguments sit one level below params, which the native API
		// bounds at maxDepth.
		if err := mcp.CheckValueDepth(args, maxDepth-1); err != nil {
			return r, "", &requestError{Status: http.StatusBadRequest, Code: guard.CodeTooDeep, Message: "context.arguments: " + err.Error()}
		}
	}
	r.SessionID, _ = c["session_id"].(string)
	r.ProtocolVersion, _ = c["protocol_version"].(string)
	r.Context.Purpose, _ = c["purpose"].(string)
	r.Context.Region, _ = c["region"].(string)
	r.Context.SourceIP, _ = c["source_ip"].(string)
	if t, ok := c["time"].(string); ok {
		parsed, err := time.Parse(time.RFC3339, t)
		if err != nil {
			return r, "", invalid("context.time must be an RFC 3339 time")
		}
		r.Context.Time = parsed
	}
	switch {
	case method == f.list:
		r.Params = map[string]any{}
		return r, method, nil
	case typ == TypeMCPResource:
		r.Params = map[string]any{"uri": id}
	default:
		r.Params = map[string]any{"name": id, "arguments": args}
	}
	return r, "", nil
}

// decideMCP decides in as the native MCP request it describes, into o (an
// AuthZEN outcome that becomes an MCP decision). A call is the native
// Check, stateful checks included; a visibility question is FilterTools
// on a one-entry list. Anything but an allow is decision false, with the
// decision id and the reasons in the context.
func (s *Server) decideMCP(ctx context.Context, o *pipeline.Outcome, in map[string]any, checks bool) (Decision, *failure) {
	// The outcome becomes an MCP decision: its input is the MCP input once
	// built, and none when the request is refused (as on the native API),
	// never the AuthZEN body, which the MCP masking does not know.
	o.Input = nil
	r, list, rerr := mcpCall(in, s.opts.MCPMaxDepth)
	if rerr != nil {
		s.p.Refuse(o, rerr, pipeline.Failure{Code: rerr.Code, Message: rerr.Message, WireCode: rerr.Status})
		return Decision{}, &failure{status: rerr.Status, code: rerr.Code, message: rerr.Message}
	}
	// The asker speaks for the subject only when it proved who it is
	// (require_token) and either is the subject or carries the PEP scope
	// (required_scope). Otherwise the subject is only claimed: no approval
	// is recorded or used (an asker could page approvers for made-up
	// subjects, or use up approvals people gave others), and the decision
	// records nothing in the subject's session state or containment
	// signals (it could taint or quarantine another caller).
	verified := s.opts.RequireToken && (s.opts.RequiredScope != "" || o.RequestedBy == r.Subject.ID)
	r.NoApproval = !verified
	r.Subject.Claimed = !verified
	allowed := false
	switch {
	case list == "" && checks:
		s.opts.MCP.CheckAs(ctx, o, &r)
		allowed = o.Verdict == pipeline.Allow
	case list == "":
		s.opts.MCP.EvaluateAs(ctx, o, &r)
		allowed = o.Verdict == pipeline.Allow
	default:
		res, _ := in[memberResource].(map[string]any)
		id, _ := res["id"].(string)
		member, key, _ := mcp.ListMember(list)
		listing := s.opts.MCP.FilterAs(ctx, o, &r, list, map[string]any{member: []any{map[string]any{key: id}}})
		kept, _ := listing.Result[member].([]any)
		allowed = o.Verdict == pipeline.Allow && len(kept) == 1
		if o.Verdict == pipeline.Allow && !allowed {
			o.Verdict = pipeline.Deny
			o.Reasons = []pipeline.Reason{{Code: "list.hidden", Message: "the entry is not visible to the subject"}}
			for _, rm := range listing.Removed {
				o.Reasons = []pipeline.Reason{rm.Reason}
			}
		}
	}
	if f := o.Failure; f != nil && !f.Request && o.Verdict != pipeline.Allow {
		return Decision{}, &failure{status: http.StatusInternalServerError, code: f.Code, message: f.Message}
	}
	if f := o.Failure; f != nil && f.Request {
		return Decision{}, &failure{status: http.StatusBadRequest, code: f.Code, message: f.Message}
	}
	if allowed {
		return Decision{Decision: true}, nil
	}
	reasons := make([]any, len(o.Reasons))
	for i, rs := range o.Reasons {
		reasons[i] = map[string]any{"code": rs.Code, "message": rs.Message}
	}
	answer := map[string]any{"decision_id": o.DecisionID, "decision": o.Verdict.String(), "reasons": reasons}
	if a := o.Approval; a != nil {
		ref := map[string]any{"id": a.ID, "status": a.Status}
		if a.URL != "" {
			ref["url"] = a.URL
		}
		if !a.ExpiresAt.IsZero() {
			ref["expires_at"] = a.ExpiresAt.UTC().Format(time.RFC3339)
		}
		answer["approval"] = ref
	}
	return Decision{Context: answer}, nil
}

// catalogCandidates proposes, for a resource search of MCP tools or
// prompts, every entry of the server's catalog (resource.properties.server):
// each is then evaluated like any candidate, so a search returns exactly
// the entries an evaluation would allow. ok is false when the search is
// not one the catalog answers.
func (s *Server) catalogCandidates(ctx context.Context, q *search) (candidates, bool, *requestError) {
	if q.kind != SearchResource || s.opts.Catalog == nil || !s.isMCP(q.query) {
		return nil, false, nil
	}
	f := mcpFeatures[q.typ]
	if f.catalog == "" {
		return nil, false, nil
	}
	res, _ := q.query[memberResource].(map[string]any)
	props, _ := res["properties"].(map[string]any)
	server, _ := props["server"].(string)
	if err := mcp.ValidName("resource.properties.server", server); err != nil {
		return nil, false, invalid("an MCP resource search names its server: %v", err)
	}
	names, _ := s.opts.Catalog(ctx, server, f.catalog)
	out := make(candidates, len(names))
	for i, n := range names {
		out[i] = map[string]any{"type": q.typ, "id": n, "properties": map[string]any{"server": server}}
	}
	return out, true, nil
}

// withoutArguments is an MCP search's input for the audit log: the call's
// arguments left out, since the event is not an MCP decision whose masking
// (redactions, restricted classification) would hide them.
func withoutArguments(in map[string]any) map[string]any {
	c, ok := in[memberContext].(map[string]any)
	if !ok {
		return in
	}
	if _, ok := c["arguments"]; !ok {
		return in
	}
	out := maps.Clone(in)
	cc := maps.Clone(c)
	cc["arguments"] = audit.Mask
	out[memberContext] = cc
	return out
}
