package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/verdictpdp/verdict/internal/mcp"
	mcpv1 "github.com/verdictpdp/verdict/proto/verdict/mcp/v1"
)

// verdict is a decision as the load loops observe it.
type verdict uint8

const (
	verdictUnknown verdict = iota
	verdictAllow
	verdictDeny
	verdictApproval
)

func (v verdict) String() string {
	switch v {
	case verdictAllow:
		return "allow"
	case verdictDeny:
		return "deny"
	case verdictApproval:
		return "require_approval"
	default:
		return "unknown"
	}
}

// arena holds many pre-marshaled messages in one pointer-free buffer, so a
// large corpus costs the client's garbage collector nothing to scan.
type arena struct {
	data []byte
	ends []int
}

func (a *arena) add(b []byte) {
	a.data = append(a.data, b...)
	a.ends = append(a.ends, len(a.data))
}

func (a *arena) len() int { return len(a.ends) }

func (a *arena) at(i int) []byte {
	start := 0
	if i > 0 {
		start = a.ends[i-1]
	}
	return a.data[start:a.ends[i]]
}

// corpus is a request mix, marshaled before the clock starts, with the
// decision each request must get.
type corpus struct {
	reqs arena
	want []verdict
	// cases is the number of distinct decision cases; request i is case
	// i % cases.
	cases int
}

// benchTime is the fixed clock of the MCP mix (a Tuesday, 11:30 in Berlin),
// so that pdp and opa evaluate time-dependent rules on identical input.
var benchTime = time.Date(2026, time.March, 10, 10, 30, 0, 0, time.UTC)

// --- ext_authz --------------------------------------------------------------

// extAuthzCase is one (role, method, path) combination of the RBAC mix.
type extAuthzCase struct {
	roles, method, path string
	allow               bool
}

// extAuthzCases is the RBAC mix: 16 allowed, 4 denied.
var extAuthzCases = []extAuthzCase{
	{"reader", "GET", "/api/v1/items?limit=20", true},
	{"reader", "GET", "/api/v1/items/8812", true},
	{"reader", "GET", "/api/v2/items", true},
	{"reader,support", "GET", "/api/v1/tickets/311", true},
	{"writer", "POST", "/api/v1/items", true},
	{"writer", "PUT", "/api/v1/items/8812", true},
	{"writer", "GET", "/api/v2/items/77?fields=name,price", true},
	{"support", "GET", "/api/v1/tickets?status=open", true},
	{"support", "POST", "/api/v1/tickets", true},
	{"billing", "GET", "/billing/invoices?month=2026-03", true},
	{"billing", "GET", "/billing/invoices/INV-2026-0042", true},
	{"admin", "GET", "/admin/users/42/sessions", true},
	{"admin", "DELETE", "/api/v1/items/8812", true},
	{"auditor", "GET", "/audit/events?since=2026-03-01", true},
	{"reader,billing", "GET", "/billing/invoices", true},
	{"admin", "POST", "/admin/feature-flags", true},
	{"reader", "DELETE", "/api/v1/items/8812", false},
	{"billing", "GET", "/admin/users", false},
	{"support", "POST", "/billing/invoices", false},
	{"guest", "GET", "/api/v1/items", false},
}

// rbacData is data.rbac for testdata/bench/rbac.rego.
func rbacData() map[string]any {
	perm := func(method, path string) map[string]any { return map[string]any{"method": method, "path": path} }
	return map[string]any{"permissions": map[string]any{
		"reader": []any{perm("GET", "/api/*/items"), perm("GET", "/api/*/items/*")},
		"writer": []any{
			perm("GET", "/api/*/items"), perm("GET", "/api/*/items/*"),
			perm("POST", "/api/*/items"), perm("PUT", "/api/*/items/*"),
		},
		"support": []any{perm("GET", "/api/*/tickets"), perm("GET", "/api/*/tickets/*"), perm("POST", "/api/*/tickets")},
		"billing": []any{perm("GET", "/billing/invoices"), perm("GET", "/billing/invoices/*")},
		"admin": []any{
			perm("GET", "/admin/**"), perm("POST", "/admin/**"), perm("DELETE", "/admin/**"),
			perm("DELETE", "/api/*/items/*"),
		},
		"auditor": []any{perm("GET", "/audit/events")},
	}}
}

var userAgents = []string{
	"Mozilla/5.0 (X11; Linux x86_64; rv:139.0) Gecko/20100101 Firefox/139.0",
	"okhttp/4.12.0",
	"python-requests/2.32.3",
	"Go-http-client/2.0",
}

// requestIDs generates x-request-id and traceparent values: random-looking,
// reproducible, unique within a run.
type requestIDs struct{ rng *rand.Rand }

func newRequestIDs(seed uint64) *requestIDs {
	return &requestIDs{rng: rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))} //nolint:gosec // identifiers for a benchmark, not secrets
}

func (g *requestIDs) uuid() string {
	hi, lo := g.rng.Uint64(), g.rng.Uint64()
	return fmt.Sprintf("%08x-%04x-4%03x-%04x-%012x", hi>>32, (hi>>16)&0xffff, hi&0xfff, 0x8000|(lo>>48)&0x3fff, lo&0xffffffffffff)
}

func (g *requestIDs) traceparent() string {
	return fmt.Sprintf("00-%016x%016x-%016x-01", g.rng.Uint64(), g.rng.Uint64(), g.rng.Uint64())
}

// envoyCheckRequest builds request seq of case c the way Envoy's ext_authz
// filter sends it: peer socket addresses, the request time, the HTTP
// attributes and the headers, pseudo-headers included.
func envoyCheckRequest(c extAuthzCase, seq int, ids *requestIDs) *authv3.CheckRequest {
	clientIP := fmt.Sprintf("10.%d.%d.%d", 16+seq%64, (seq/64)%256, 1+seq%250)
	headers := map[string]string{
		":authority":                     "api.example.com",
		":method":                        c.method,
		":path":                          c.path,
		":scheme":                        "https",
		"user-agent":                     userAgents[seq%len(userAgents)],
		"accept":                         "application/json",
		"accept-encoding":                "gzip, deflate, br",
		"x-forwarded-for":                clientIP,
		"x-forwarded-proto":              "https",
		"x-request-id":                   ids.uuid(),
		"traceparent":                    ids.traceparent(),
		"x-envoy-expected-rq-timeout-ms": "15000",
		"x-roles":                        c.roles,
	}
	var size int64
	if c.method == "POST" || c.method == "PUT" {
		size = 184
		headers["content-type"] = "application/json"
		headers["content-length"] = strconv.FormatInt(size, 10)
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: socketAddress("10.244.1.17", uint32(32768+seq%28000))},
		Destination: &authv3.AttributeContext_Peer{
			Address: socketAddress("10.244.0.5", 8443),
		},
		Request: &authv3.AttributeContext_Request{
			Time: timestamppb.New(benchTime.Add(time.Duration(seq) * time.Millisecond)),
			Http: &authv3.AttributeContext_HttpRequest{
				Id:       strconv.Itoa(1_000_000_007 + seq),
				Method:   c.method,
				Headers:  headers,
				Path:     c.path,
				Host:     "api.example.com",
				Scheme:   "https",
				Protocol: "HTTP/1.1",
				Size:     size,
			},
		},
	}}
}

func socketAddress(ip string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

// buildExtAuthzCorpus marshals n CheckRequests cycling through the cases,
// each with its own x-request-id, traceparent, stream id and time.
func buildExtAuthzCorpus(n int) (*corpus, error) {
	c := &corpus{want: make([]verdict, 0, n), cases: len(extAuthzCases)}
	ids := newRequestIDs(1)
	opts := proto.MarshalOptions{Deterministic: true}
	var buf []byte
	for i := range n {
		ec := extAuthzCases[i%len(extAuthzCases)]
		var err error
		if buf, err = opts.MarshalAppend(buf[:0], envoyCheckRequest(ec, i, ids)); err != nil {
			return nil, fmt.Errorf("marshal ext_authz request %d: %w", i, err)
		}
		c.reqs.add(buf)
		c.want = append(c.want, verdictOf(ec.allow))
	}
	return c, nil
}

func verdictOf(allow bool) verdict {
	if allow {
		return verdictAllow
	}
	return verdictDeny
}

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

// --- bundles ----------------------------------------------------------------

// writeBundle writes a bundle directory: .manifest, the Rego modules and
// data.json.
func writeBundle(dir, revision string, roots []string, modules map[string][]byte, data any) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("bundle dir: %w", err)
	}
	manifest, err := json.Marshal(map[string]any{"revision": revision, "roots": roots})
	if err != nil {
		return fmt.Errorf("bundle manifest: %w", err)
	}
	files := map[string][]byte{".manifest": manifest}
	for name, src := range modules {
		files[name] = src
	}
	if data != nil {
		if files["data.json"], err = json.Marshal(data); err != nil {
			return fmt.Errorf("bundle data: %w", err)
		}
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return fmt.Errorf("bundle file: %w", err)
		}
	}
	return nil
}

// catalogRego reads the bulk data of the memory bundle, so that it is data
// a policy uses rather than dead weight.
const catalogRego = `package catalog

# The number of entries of the bulk catalog in data.catalog.entries.
entry_count := count(data.catalog.entries)
`

// writeMemoryBundle writes the RBAC policy with a data.json of about
// targetBytes: the RBAC table plus a product catalog under its own root.
// It returns the size of data.json.
func writeMemoryBundle(dir string, rbacPolicy []byte, targetBytes int) (int64, error) {
	if err := writeBundle(dir, "bench-mem-1", []string{"envoy", "rbac", "catalog"},
		map[string][]byte{"rbac.rego": rbacPolicy, "catalog.rego": []byte(catalogRego)}, nil); err != nil {
		return 0, err
	}
	rbac, err := json.Marshal(rbacData())
	if err != nil {
		return 0, fmt.Errorf("memory bundle data: %w", err)
	}
	var w bytes.Buffer
	w.Grow(targetBytes + 4096)
	fmt.Fprintf(&w, `{"rbac":%s,"catalog":{"entries":{`, rbac)
	for i := 0; w.Len() < targetBytes; i++ {
		entry, err := json.Marshal(map[string]any{
			"name":        fmt.Sprintf("Product %06d", i),
			"description": fmt.Sprintf("Stock item %06d of the benchmark catalog: a description long enough to look like one, with a little detail.", i),
			"price_cents": 100 + i%9900,
			"tags":        []string{"bench", "tier-" + strconv.Itoa(i%5), "warehouse-" + strconv.Itoa(i%17)},
			"owner":       "team-" + strconv.Itoa(i%40),
		})
		if err != nil {
			return 0, fmt.Errorf("memory bundle data: %w", err)
		}
		if i > 0 {
			w.WriteByte(',')
		}
		fmt.Fprintf(&w, `"sku-%07d":%s`, i, entry)
	}
	w.WriteString("}}}")
	if err := os.WriteFile(filepath.Join(dir, "data.json"), w.Bytes(), 0o600); err != nil {
		return 0, fmt.Errorf("memory bundle data: %w", err)
	}
	return int64(w.Len()), nil
}

// memoryCheckRequest is the i-th distinct request of the memory run: a
// reader listing items of API version i, so each has its own path.
func memoryCheckRequest(i int, ids *requestIDs) *authv3.CheckRequest {
	c := extAuthzCase{roles: "reader", method: "GET", path: "/api/v" + strconv.Itoa(i) + "/items", allow: true}
	return envoyCheckRequest(c, i, ids)
}
