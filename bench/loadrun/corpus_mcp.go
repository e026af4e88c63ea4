package main

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/verdictpdp/verdict/internal/mcp"
	mcpv1 "github.com/verdictpdp/verdict/proto/verdict/mcp/v1"
)

// --- MCP --------------------------------------------------------------------

// mcpSubject is a caller of the MCP mix and the circumstances it calls in.
type mcpSubject struct {
	subject   *mcpv1.Subject
	sessionID string
	sourceIP  string
}

var mcpSubjects = map[string]mcpSubject{
	"alice": {&mcpv1.Subject{Id: "alice", Roles: []string{"sales"}, Tenant: "acme", Clearance: "confidential"}, "sess-alice-7f3a", "10.20.1.15"},
	"mia":   {&mcpv1.Subject{Id: "mia", Roles: []string{"sales_manager"}, Tenant: "acme", Clearance: "confidential"}, "sess-mia-19c2", "10.20.4.2"},
	"bob": {&mcpv1.Subject{
		Id: "bob", Roles: []string{"developer"}, Groups: []string{"engineering"}, Scopes: []string{"github:read", "github:write"},
		Tenant: "acme", Clearance: "internal",
	}, "sess-bob-44d0", "10.30.7.9"},
	"carol": {&mcpv1.Subject{Id: "carol", Roles: []string{"analyst"}, Tenant: "acme", Clearance: "internal"}, "sess-carol-a51e", "10.20.2.31"},
	"eve":   {&mcpv1.Subject{Id: "eve", Tenant: "globex", Clearance: "public"}, "sess-eve-0b77", "192.0.2.44"},
}

// mcpCase is one distinct MCP request of the mix.
type mcpCase struct {
	subject, server, method string
	params                  map[string]any
	want                    verdict
}

// mcpCases is the MCP mix: 12 allowed, 7 denied, 1 needing approval.
var mcpCases = []mcpCase{
	{"alice", "crm", mcp.MethodToolsCall, toolCall("search_contacts", map[string]any{"tenant": "acme", "query": "smith", "limit": 50}), verdictAllow},
	{"alice", "crm", mcp.MethodToolsCall, toolCall("search_contacts", map[string]any{"tenant": "acme", "query": "smith", "limit": 500}), verdictDeny},
	{"alice", "crm", mcp.MethodToolsCall, toolCall("get_contact", map[string]any{"tenant": "acme", "id": "1042"}), verdictAllow},
	{"alice", "crm", mcp.MethodToolsCall, toolCall("get_contact", map[string]any{"tenant": "globex", "id": "1042"}), verdictDeny},
	{"alice", "crm", mcp.MethodResourcesRead, map[string]any{"uri": "crm://contacts/1042"}, verdictAllow},
	{"alice", "crm", mcp.MethodToolsList, map[string]any{}, verdictAllow},
	{"mia", "crm", mcp.MethodToolsCall, toolCall("export_contacts", map[string]any{"tenant": "acme", "format": "csv", "limit": 800}), verdictAllow},
	{"alice", "crm", mcp.MethodToolsCall, toolCall("delete_contact", map[string]any{"tenant": "acme", "id": "1042"}), verdictDeny},
	{"bob", "github", mcp.MethodToolsCall, toolCall("list_issues", map[string]any{"repo": "acme/api", "state": "open"}), verdictAllow},
	{"bob", "github", mcp.MethodToolsCall, toolCall("create_issue", map[string]any{"repo": "acme/api", "title": "Flaky test in CI", "body": "TestCheck fails one run in fifty."}), verdictAllow},
	{"bob", "github", mcp.MethodToolsCall, toolCall("merge_pull_request", map[string]any{"repo": "acme/api", "number": 7}), verdictApproval},
	{"bob", "github", mcp.MethodToolsList, map[string]any{"cursor": "page-2"}, verdictAllow},
	{"carol", "files", mcp.MethodToolsCall, toolCall("read_file", map[string]any{"path": "/srv/data/q3/revenue.csv"}), verdictAllow},
	{"carol", "files", mcp.MethodToolsCall, toolCall("read_file", map[string]any{"path": "/srv/data/../../etc/passwd"}), verdictDeny},
	{"carol", "crm", mcp.MethodResourcesRead, map[string]any{"uri": "crm://reports/2026-q1"}, verdictAllow},
	{"carol", "crm", mcp.MethodToolsCall, toolCall("search_contacts", map[string]any{"tenant": "acme", "query": "jones"}), verdictDeny},
	{"eve", "docs", mcp.MethodToolsCall, toolCall("search_docs", map[string]any{"query": "vacation policy"}), verdictAllow},
	{"eve", "docs", mcp.MethodResourcesRead, map[string]any{"uri": "docs://handbook/holidays"}, verdictAllow},
	{"eve", "crm", mcp.MethodToolsCall, toolCall("search_contacts", map[string]any{"tenant": "globex", "query": "smith"}), verdictDeny},
	{"bob", "github", mcp.MethodToolsCall, toolCall("list_issues", map[string]any{"repo": "not a repository"}), verdictDeny},
}

func toolCall(name string, args map[string]any) map[string]any {
	return map[string]any{"name": name, "arguments": args}
}

// nativeMCPRequest builds request seq of case c for the native API. The
// request carries a unique params._meta.progressToken: the native
// CheckRequest has no JSON-RPC id field, and the MCP input deliberately
// leaves _meta out, so the policy input of every request of a case is the
// same.
func nativeMCPRequest(c mcpCase, seq int) (*mcpv1.CheckRequest, error) {
	s, ok := mcpSubjects[c.subject]
	if !ok {
		return nil, fmt.Errorf("mcp case: unknown subject %q", c.subject)
	}
	params := make(map[string]any, len(c.params)+1)
	for k, v := range c.params {
		params[k] = v
	}
	params["_meta"] = map[string]any{"progressToken": "lr-" + strconv.Itoa(seq)}
	pb, err := structpb.NewStruct(params)
	if err != nil {
		return nil, fmt.Errorf("mcp case params: %w", err)
	}
	return &mcpv1.CheckRequest{
		Subject:         s.subject,
		Server:          c.server,
		Method:          c.method,
		Params:          pb,
		SessionId:       s.sessionID,
		ProtocolVersion: "2025-06-18",
		Context: &mcpv1.RequestContext{
			SourceIp: s.sourceIP,
			Purpose:  "support",
			Region:   "eu",
			Time:     timestamppb.New(benchTime),
		},
	}, nil
}

// mcpCorpus is the MCP mix for both servers: request i is native.reqs.at(i)
// for pdp and opaBodies.at(i) for opa, with the same policy input.
type mcpCorpus struct {
	native    *corpus
	opaBodies arena
}

// mcpInput is the policy input pdp's native API builds for req: the
// mapping of mcpapi.Server.request (subject, authenticated when it has an
// id, params and claims as maps, the context with its time) followed by
// mcp.Request.Input, with now standing in for the server's clock.
// Verification asks both servers for every case before anything is timed,
// so a drift between this mapping and mcpapi's shows up as a disagreement.
func mcpInput(req *mcpv1.CheckRequest, now time.Time) (map[string]any, error) {
	sub := req.GetSubject()
	claims := map[string]any{}
	if c := sub.GetClaims(); c != nil {
		claims = c.AsMap()
	}
	params := map[string]any{}
	if p := req.GetParams(); p != nil {
		params = p.AsMap()
	}
	r := mcp.Request{
		Subject: mcp.Subject{
			ID: sub.GetId(), Roles: sub.GetRoles(), Groups: sub.GetGroups(), Scopes: sub.GetScopes(),
			Tenant: sub.GetTenant(), Clearance: sub.GetClearance(), Claims: claims,
			Authenticated: sub.GetId() != "",
		},
		Server:          req.GetServer(),
		Method:          req.GetMethod(),
		Params:          params,
		SessionID:       req.GetSessionId(),
		ProtocolVersion: req.GetProtocolVersion(),
		Context: mcp.Context{
			SourceIP: req.GetContext().GetSourceIp(),
			Purpose:  req.GetContext().GetPurpose(),
			Region:   req.GetContext().GetRegion(),
		},
	}
	if t := req.GetContext().GetTime(); t != nil {
		r.Context.Time = t.AsTime()
	}
	in, err := r.Input(now)
	if err != nil {
		return nil, fmt.Errorf("policy input: %w", err)
	}
	return in, nil
}

// buildMCPCorpus marshals n native CheckRequests cycling through the cases
// and, for each, the opa request body {"input": ...} holding the input pdp
// builds from it.
func buildMCPCorpus(n int) (*mcpCorpus, error) {
	mc := &mcpCorpus{native: &corpus{want: make([]verdict, 0, n), cases: len(mcpCases)}}
	first := make([]string, len(mcpCases))
	marshal := proto.MarshalOptions{Deterministic: true}
	var buf []byte
	for i := range n {
		ci := i % len(mcpCases)
		c := mcpCases[ci]
		req, err := nativeMCPRequest(c, i)
		if err != nil {
			return nil, err
		}
		in, err := mcpInput(req, benchTime)
		if err != nil {
			return nil, fmt.Errorf("mcp case %d: %w", ci, err)
		}
		body, err := json.Marshal(map[string]any{"input": in})
		if err != nil {
			return nil, fmt.Errorf("mcp case %d: encode opa input: %w", ci, err)
		}
		// The unique token must not reach the input, or the servers would
		// decide a different mix than intended.
		if i < len(mcpCases) {
			first[ci] = string(body)
		} else if string(body) != first[ci] {
			return nil, fmt.Errorf("mcp case %d: request %d has a different policy input than request %d", ci, i, ci)
		}
		if buf, err = marshal.MarshalAppend(buf[:0], req); err != nil {
			return nil, fmt.Errorf("marshal mcp request %d: %w", i, err)
		}
		mc.native.reqs.add(buf)
		mc.native.want = append(mc.native.want, c.want)
		mc.opaBodies.add(body)
	}
	return mc, nil
}

// mcpCatalog is data.mcp for the policy library: four servers, twelve
// tools, resources and seven rules.
func mcpCatalog() map[string]any {
	obj := func(props map[string]any, required ...string) map[string]any {
		s := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
		if len(required) > 0 {
			req := make([]any, len(required))
			for i, r := range required {
				req[i] = r
			}
			s["required"] = req
		}
		return s
	}
	str := map[string]any{"type": "string"}
	readOnly := map[string]any{"readOnlyHint": true, "openWorldHint": false}
	personal := []any{"personal_data"}
	tool := func(class string, ann map[string]any, schema map[string]any) map[string]any {
		return map[string]any{"classification": class, "annotations": ann, "input_schema": schema}
	}
	withTenant := func(t map[string]any) map[string]any {
		t["tenant_argument"] = "tenant"
		t["data_categories"] = personal
		return t
	}
	return map[string]any{
		"settings": map[string]any{
			"default_classification": "restricted",
			"require_input_schema":   true,
			"gdpr":                   map[string]any{"allowed_regions": []any{"eu"}, "purposes": []any{"contract", "support"}},
		},
		"servers": map[string]any{
			"crm": map[string]any{
				"owner":   "sales-platform",
				"tenants": []any{"acme", "globex"},
				"tools": map[string]any{
					"search_contacts": withTenant(tool("confidential", readOnly, obj(map[string]any{
						"tenant": str, "query": map[string]any{"type": "string", "maxLength": 200},
						"limit": map[string]any{"type": "integer", "minimum": 1, "maximum": 1000},
					}, "tenant", "query"))),
					"get_contact": withTenant(tool("confidential", readOnly, obj(map[string]any{
						"tenant": str, "id": map[string]any{"type": "string", "pattern": "^[0-9]+$"},
					}, "tenant", "id"))),
					"export_contacts": withTenant(tool("confidential", map[string]any{"readOnlyHint": true, "openWorldHint": true}, obj(map[string]any{
						"tenant": str, "format": map[string]any{"enum": []any{"csv", "json"}},
						"limit": map[string]any{"type": "integer", "minimum": 1},
					}, "tenant", "limit"))),
					"delete_contact": withTenant(tool("confidential", map[string]any{"destructiveHint": true}, obj(map[string]any{
						"tenant": str, "id": str,
					}, "tenant", "id"))),
				},
				"resources": []any{
					map[string]any{"uri_prefix": "crm://contacts/", "classification": "confidential", "data_categories": personal},
					map[string]any{"uri_prefix": "crm://reports/", "classification": "internal"},
				},
			},
			"github": map[string]any{
				"owner": "developer-platform",
				"tools": map[string]any{
					"list_issues": tool("internal", map[string]any{"readOnlyHint": true}, obj(map[string]any{
						"repo":  map[string]any{"type": "string", "pattern": "^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$"},
						"state": map[string]any{"enum": []any{"open", "closed", "all"}},
					}, "repo")),
					"create_issue": tool("internal", map[string]any{"readOnlyHint": false, "destructiveHint": false}, obj(map[string]any{
						"repo": str, "title": map[string]any{"type": "string", "minLength": 1, "maxLength": 256}, "body": str,
					}, "repo", "title")),
					"merge_pull_request": tool("internal", map[string]any{"readOnlyHint": false, "destructiveHint": true}, obj(map[string]any{
						"repo": str, "number": map[string]any{"type": "integer", "minimum": 1},
					}, "repo", "number")),
					"delete_repository": tool("internal", map[string]any{"destructiveHint": true}, obj(map[string]any{"repo": str}, "repo")),
				},
			},
			"files": map[string]any{
				"owner": "data-platform",
				"tools": map[string]any{
					"read_file": tool("internal", map[string]any{"readOnlyHint": true}, obj(map[string]any{
						"path": map[string]any{"type": "string", "maxLength": 4096},
					}, "path")),
					"write_file": tool("internal", map[string]any{"readOnlyHint": false, "destructiveHint": true}, obj(map[string]any{
						"path": str, "content": str,
					}, "path", "content")),
				},
			},
			"docs": map[string]any{
				"owner": "people-team",
				"tools": map[string]any{
					"search_docs": tool("public", map[string]any{"readOnlyHint": true}, obj(map[string]any{
						"query": map[string]any{"type": "string", "maxLength": 500},
					}, "query")),
				},
				"resources": []any{map[string]any{"uri_prefix": "docs://handbook/", "classification": "public"}},
			},
		},
		"rules": []any{
			map[string]any{
				"id": "sales-read-crm", "roles": []any{"sales", "analyst"},
				"tools": []any{"crm/search_contacts", "crm/get_contact"}, "resources": []any{"crm://contacts/*", "crm://reports/*"},
				"when": map[string]any{"arguments": []any{map[string]any{"path": "limit", "op": "lte", "value": 100, "optional": true}}},
			},
			map[string]any{
				"id": "sales-managers-export", "roles": []any{"sales_manager"}, "tools": []any{"crm/export_contacts"},
				"when": map[string]any{
					"arguments":    []any{map[string]any{"path": "limit", "op": "lte", "value": 1000}},
					"hours":        map[string]any{"start": "08:00", "end": "18:00", "days": []any{"Mon", "Tue", "Wed", "Thu", "Fri"}, "timezone": "Europe/Berlin"},
					"source_cidrs": []any{"10.0.0.0/8"},
				},
			},
			map[string]any{"id": "crm-admins-delete", "roles": []any{"crm_admin"}, "tools": []any{"crm/delete_contact"}},
			map[string]any{
				"id": "engineers-github", "groups": []any{"engineering"}, "scopes": []any{"github:write"},
				"tools": []any{"github/list_*", "github/create_*", "github/merge_pull_request"},
			},
			map[string]any{"id": "release-managers-merge", "roles": []any{"release_manager"}, "tools": []any{"github/merge_pull_request"}, "allow_destructive": true},
			map[string]any{
				"id": "analysts-files", "roles": []any{"analyst"}, "tools": []any{"files/read_file"},
				"when": map[string]any{"arguments": []any{map[string]any{"path": "path", "op": "path_under", "value": "/srv/data"}}},
			},
			map[string]any{"id": "everyone-docs", "tools": []any{"docs/*"}, "resources": []any{"docs://**"}},
		},
	}
}
