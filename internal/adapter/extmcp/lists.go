package extmcp

import (
	"context"
	"maps"
	"reflect"
	"slices"
	"strings"

	"github.com/verdictpdp/verdict/internal/audit"
	"github.com/verdictpdp/verdict/internal/identity"
	"github.com/verdictpdp/verdict/internal/mcp"
	"github.com/verdictpdp/verdict/internal/pipeline"
	agw "github.com/verdictpdp/verdict/proto/agentgateway/dev/ext_mcp"
)

// checkList filters a list result (tools/list, prompts/list,
// resources/list, resources/templates/list) for the subject of the request
// it answers: the one CheckRequest remembered, else the claims in
// metadata_context.jwt, else nobody (and the policy denies).
func (s *Server) checkList(ctx context.Context, resp *agw.McpResponse) *agw.McpResponseResult {
	method, names := resp.GetMethod(), resp.GetServiceNames()
	summary := mcp.Request{Method: method, Server: names[0]}
	result, r := s.parseObject("mcp_response", resp.GetMcpResponse(), s.opts.MaxResponseBytes)
	if r != nil {
		return s.refuseResponse(ctx, summary, r)
	}
	g, r := s.readMetadata(resp.GetMetadataContext())
	if r != nil {
		return s.refuseResponse(ctx, summary, r)
	}
	var base mcp.Request
	if pr, _ := s.request(g.decisionID, method); pr != nil {
		base = pr.req
	} else {
		base = mcp.Request{Subject: s.subject(ctx, requestHeaders{}, g), Context: g.context}
		if p := identity.PeerFromContext(ctx); p.Verified {
			base.Peer = p.Input()
		}
	}
	base.Method, base.Params = method, nil
	if len(names) == 1 {
		base.Server = names[0]
		o, listing := s.decider.Filter(ctx, audit.KindMCP, &base, method, result)
		s.decider.Finish(ctx, &o)
		switch {
		case o.Verdict != mcp.Allow:
			return responseError(&o, codeOf(&o))
		case len(listing.Removed) == 0:
			return passResponse()
		default:
			return mutatedResponse(listing.Result)
		}
	}
	return s.checkMuxedList(ctx, &base, method, names, result)
}

// checkMuxedList filters the merged list result of several MCP servers.
// agentgateway names each entry after its server when it multiplexes:
// "<server>_<name>" for tools and prompts, "<server>+<uri>" for resources
// and resource templates. Each server's entries are decided with their own
// names, in one decision per server; an entry that names no server of
// service_names cannot be decided and is removed.
func (s *Server) checkMuxedList(ctx context.Context, base *mcp.Request, method string, names []string, result map[string]any) *agw.McpResponseResult {
	member, key, _ := mcp.ListMember(method)
	raw, present := result[member]
	if !present || raw == nil {
		return passResponse()
	}
	items, ok := raw.([]any)
	if !ok {
		return s.refuseResponse(ctx, mcp.Request{Method: method, Server: names[0]}, invalid("mcp_response.%s must be an array, not %s", member, mcp.TypeName(raw)))
	}
	sep := "_"
	if key != "name" {
		sep = "+"
	}
	type group struct {
		entries []any
		index   map[uintptr]int // entry (by identity) → position in items
	}
	groups := map[string]*group{}
	for i, it := range items {
		entry, _ := it.(map[string]any)
		muxed, _ := entry[key].(string)
		server, name, found := strings.Cut(muxed, sep)
		if !found || name == "" || groups[server] == nil && !slices.Contains(names, server) {
			continue // removed: no server of service_names serves it
		}
		gr := groups[server]
		if gr == nil {
			gr = &group{index: map[uintptr]int{}}
			groups[server] = gr
		}
		own := maps.Clone(entry)
		own[key] = name
		gr.entries = append(gr.entries, own)
		gr.index[reflect.ValueOf(own).Pointer()] = i
	}
	keep := make([]bool, len(items))
	var denied *pipeline.Outcome
	decidedAllow := false
	for _, server := range names {
		gr := groups[server]
		if gr == nil {
			continue
		}
		r := *base
		r.Server = server
		o, listing := s.decider.Filter(ctx, audit.KindMCP, &r, method, map[string]any{member: gr.entries})
		s.decider.Finish(ctx, &o)
		if o.Verdict != mcp.Allow {
			if denied == nil {
				denied = &o
			}
			continue
		}
		decidedAllow = true
		kept, _ := listing.Result[member].([]any)
		for _, e := range kept {
			if m, ok := e.(map[string]any); ok {
				if i, ok := gr.index[reflect.ValueOf(m).Pointer()]; ok {
					keep[i] = true
				}
			}
		}
	}
	if denied != nil && !decidedAllow {
		return responseError(denied, codeOf(denied))
	}
	if len(groups) == 0 && len(items) > 0 {
		// No entry names a server of service_names: nothing was decided,
		// yet every entry is removed. Say so in the audit log.
		r := *base
		r.Method, r.Server = method, names[0]
		o := s.decider.Start(audit.KindMCP, &r, "")
		s.decider.Reject(&o, &mcp.RequestError{JSONRPCCode: mcp.CodeInvalidParams,
			Reason: "no entry of the list names a server of service_names: every entry was removed"})
		s.decider.Finish(ctx, &o)
	}
	out := make([]any, 0, len(items))
	for i, it := range items {
		if keep[i] {
			out = append(out, it)
		}
	}
	if len(out) == len(items) {
		return passResponse()
	}
	filtered := maps.Clone(result)
	filtered[member] = out
	return mutatedResponse(filtered)
}
