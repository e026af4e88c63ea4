package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/verdictpdp/verdict/internal/bundle/bundletest"
	"github.com/verdictpdp/verdict/internal/config"
	mcpv1 "github.com/verdictpdp/verdict/proto/verdict/mcp/v1"
)

// routePolicies: the route's ext_authz policy closes /admin and says it
// decided; the MCP policy allows everything. An answer shows who gave it.
var routePolicies = map[string]string{
	"envoy.rego": `package envoy.authz

default allow := {"allowed": false, "http_status": 403, "headers": {"x-decided-by": "ext_authz"}, "body": "route policy: /admin is closed"}

allow := {"allowed": true, "headers": {"x-decided-by": "ext_authz"}} if not startswith(input.normalized_path, "/admin")
`,
	"mcp.rego": `package verdict.mcp

decision := {"allow": true, "reasons": [], "obligations": {}}
`,
}

type routeTarget struct {
	name       string
	host, path string
	extension  string // mcp_server context extension
	marked     bool
}

type mcpHeaders struct {
	version, method, name string
	extra                 map[string]string
}

type rpcBody struct {
	name     string
	body     string
	rpc      bool // valid JSON-RPC 2.0
	batch    bool
	method   string // of a single message
	toolName string
}

var (
	routeTargets = []routeTarget{
		{name: "admin", host: "api.example.com", path: "/admin/users/42/disable"},
		{name: "admin on the MCP host", host: "mcp.example.com", path: "/admin/users/42/disable"},
		{name: "MCP path on another host", host: "api.example.com", path: "/admin/mcp"},
		{name: "open route", host: "api.example.com", path: "/api/orders"},
		{name: "marked by extension", host: "api.example.com", path: "/admin/mcp", extension: "crm", marked: true},
		{name: "marked by configuration", host: "mcp.example.com", path: "/admin/mcp", marked: true},
	}
	// POST in both cases gets every combination; other methods are
	// routed on the method alone and get a sample of headers and bodies.
	routePosts    = []string{"POST", "post"}
	routeOthers   = []string{"GET", "DELETE", "PUT"}
	routeVersions = []string{"", "2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28"}
	routeCTypes   = []string{"", "application/json", "text/plain"}
	routeBodies   = []rpcBody{
		{name: "none"},
		{name: "ping", body: `{"jsonrpc":"2.0","id":1,"method":"ping"}`, rpc: true, method: "ping"},
		{name: "tools/call", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_contact","arguments":{"id":"42"}}}`, rpc: true, method: "tools/call", toolName: "delete_contact"},
		{name: "escaped jsonrpc key", body: `{"json\u0072pc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_contact"}}`, rpc: true, method: "tools/call", toolName: "delete_contact"},
		{name: "every key escaped", body: `{"\u006a\u0073\u006f\u006e\u0072\u0070\u0063":"2.0","\u0069d":1,"\u006dethod":"tools/\u0063all","params":{"\u006eame":"delete_contact"}}`, rpc: true, method: "tools/call", toolName: "delete_contact"},
		{name: "leading whitespace", body: " \r\n\t{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}", rpc: true, method: "ping"},
		{name: "batch", body: `[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"delete_contact"}}]`, rpc: true, batch: true},
		{name: "batch with an escaped key", body: `[{"json\u0072pc":"2.0","id":2,"method":"tools/call","params":{"name":"delete_contact"}}]`, rpc: true, batch: true},
		{name: "notification", body: `{"jsonrpc":"2.0","method":"notifications/initialized"}`, rpc: true, method: "notifications/initialized"},
		{name: "invalid JSON", body: `{"jsonrpc":"2.0","id":1,"method":`},
		{name: "JSON, not JSON-RPC", body: `{"method":"ping","id":1}`},
		{name: "JSON-RPC 1.0", body: `{"jsonrpc":"1.0","id":1,"method":"ping"}`},
		{name: "empty batch", body: `[]`},
		{name: "string", body: `"jsonrpc"`},
		{name: "form", body: `jsonrpc=2.0&method=ping`},
	}
)

func routeHeaderSets() []mcpHeaders {
	var out []mcpHeaders
	for _, v := range routeVersions {
		out = append(out,
			mcpHeaders{version: v},
			mcpHeaders{version: v, method: "ping"},
			mcpHeaders{version: v, method: "tools/call", name: "delete_contact"},
		)
	}
	return append(out,
		mcpHeaders{version: "2025-11-25", method: "tools/call", name: "search"},
		mcpHeaders{version: "2026-07-28", method: "tools/call", name: "search"},
		mcpHeaders{version: "2026-07-28", method: "tools/call"},
		mcpHeaders{version: "2026-07-28", name: "delete_contact"},
		mcpHeaders{version: "2026-07-28", method: "tools/call", name: "=?base64?ZGVsZXRlX2NvbnRhY3Q=?=",
			extra: map[string]string{"mcp-session-id": "s1", "mcp-param-id": "42"}},
	)
}

// mcpAllows is what an MCP route must do with a POST, given an MCP policy
// that allows everything: allow an MCP message whose headers agree with
// its body, refuse anything else.
func mcpAllows(h mcpHeaders, b rpcBody) bool {
	name := h.name
	if strings.HasPrefix(name, "=?base64?") {
		name = "delete_contact" // the only encoded name in routeHeaderSets
	}
	if b.body == "" {
		return h.version >= "2026-07-28" && h.method != "" && (h.method != "tools/call" || name != "")
	}
	switch {
	case !b.rpc:
		return false
	case b.batch:
		return h.method == "" && name == ""
	case h.method != "" && h.method != b.method:
		return false
	case name != "" && (b.method != "tools/call" || name != b.toolName):
		return false
	case b.method == "tools/call" && name == "" && h.method != "" && h.version >= "2026-07-28":
		return false
	}
	return true
}

func routeRequest(tg routeTarget, method string, h mcpHeaders, b rpcBody, ctype string) *authv3.CheckRequest {
	hdr := map[string]string{":authority": tg.host, ":method": method, ":path": tg.path}
	for k, v := range map[string]string{"mcp-protocol-version": h.version, "mcp-method": h.method, "mcp-name": h.name, "content-type": ctype} {
		if v != "" {
			hdr[k] = v
		}
	}
	for k, v := range h.extra {
		hdr[k] = v
	}
	req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: method, Host: tg.host, Path: tg.path, Headers: hdr, Body: b.body, Protocol: "HTTP/1.1",
		}},
	}}
	if tg.extension != "" {
		req.Attributes.ContextExtensions = map[string]string{"mcp_server": tg.extension}
	}
	return req
}

// comparable returns resp without its decision id, wherever it is quoted.
func comparable(resp *authv3.CheckResponse) *authv3.CheckResponse {
	c := proto.CloneOf(resp)
	id := c.GetDynamicMetadata().GetFields()["decision_id"].GetStringValue()
	delete(c.GetDynamicMetadata().GetFields(), "decision_id")
	if d := c.GetDeniedResponse(); d != nil && id != "" {
		d.Body = strings.ReplaceAll(d.Body, id, "DECISION_ID")
	}
	return c
}

func decidedBy(resp *authv3.CheckResponse) string {
	hs := resp.GetOkResponse().GetHeaders()
	if d := resp.GetDeniedResponse(); d != nil {
		hs = d.GetHeaders()
	}
	for _, h := range hs {
		if h.GetHeader().GetKey() == "x-decided-by" {
			return h.GetHeader().GetValue()
		}
	}
	return ""
}

// TestNoRequestContentLeavesTheRoutePolicy sends every combination of
// Mcp-* headers (all protocol versions), JSON-RPC bodies (plain, escaped
// keys, batches, invalid), content types and methods, on routes nobody
// marked as MCP and on marked ones, to a real pdp over gRPC:
//   - unmarked: the answer is the route's ext_authz policy's, exactly as
//     with MCP over Envoy off (denied on /admin);
//   - marked, POST: the MCP policy's allow for an MCP message whose
//     headers agree with its body, else a 400 refusal; never the ext_authz
//     policy;
//   - marked, other methods: the ext_authz policy's answer.
func TestNoRequestContentLeavesTheRoutePolicy(t *testing.T) {
	t.Parallel()
	dir := bundletest.WriteDir(t, t.TempDir(), bundletest.Spec{Revision: "routes", Modules: routePolicies})
	newCfg := func(overEnvoy bool) config.Config {
		cfg := config.Default()
		cfg.Bundles = []config.Bundle{{Name: "routes", Source: dir}}
		lib := false
		cfg.Library = &lib
		cfg.MCP.OverEnvoy = &overEnvoy
		cfg.MCP.Routes = []config.MCPRoute{{Host: "mcp.example.com", PathPrefix: "/admin/mcp", Server: "crm"}}
		return cfg
	}
	on := authv3.NewAuthorizationClient(startPDP(t, newCfg(true)).dial(t))
	off := authv3.NewAuthorizationClient(startPDP(t, newCfg(false)).dial(t))

	type job struct {
		tg     routeTarget
		method string
		h      mcpHeaders
		b      rpcBody
		ctype  string
	}
	jobs := make(chan job)
	var failures atomic.Int32
	var mcpAllowed, mcpRefused, extAuthz atomic.Int32
	fail := func(j job, format string, args ...any) {
		if failures.Add(1) <= 20 {
			t.Errorf("%s %s %s (%s) headers %+v body %q content-type %q: %s", j.method, j.tg.host, j.tg.path, j.tg.name, j.h, j.b.name, j.ctype, fmt.Sprintf(format, args...))
		}
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for j := range jobs {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				req := routeRequest(j.tg, j.method, j.h, j.b, j.ctype)
				post := strings.EqualFold(j.method, "POST")
				got, err := on.Check(ctx, req)
				var want *authv3.CheckResponse
				if err == nil && (!j.tg.marked || !post) {
					want, err = off.Check(ctx, req)
				}
				cancel()
				if err != nil {
					fail(j, "Check failed: %v", err)
					continue
				}
				allowed := got.GetStatus().GetCode() == int32(code.Code_OK)
				mcpDecision := got.GetDynamicMetadata().GetFields()["mcp_decision"].GetStringValue()
				switch {
				case !j.tg.marked || !post:
					extAuthz.Add(1)
					if d := cmp.Diff(comparable(want), comparable(got), protocmp.Transform()); d != "" {
						fail(j, "answer differs from the ext_authz policy's (-ext_authz +got):\n%s", d)
					}
					if mcpDecision != "" || strings.HasPrefix(j.tg.path, "/admin") && allowed {
						fail(j, "not the ext_authz policy's answer: %v", got)
					}
				case mcpAllows(j.h, j.b):
					mcpAllowed.Add(1)
					// One message's answer names its decision; a batch's
					// does not.
					if !allowed || decidedBy(got) != "" || !j.b.batch && mcpDecision != "allow" {
						fail(j, "want the MCP policy's allow, got %v", got)
					}
				default:
					mcpRefused.Add(1)
					if allowed || got.GetDeniedResponse().GetStatus().GetCode() != 400 || decidedBy(got) != "" {
						fail(j, "want a 400 refusal, got %v", got)
					}
				}
			}
		})
	}
	headerSets := routeHeaderSets()
	for _, tg := range routeTargets {
		for _, m := range routePosts {
			for _, h := range headerSets {
				for _, b := range routeBodies {
					for _, ct := range routeCTypes {
						jobs <- job{tg, m, h, b, ct}
					}
				}
			}
		}
		for _, m := range routeOthers {
			for _, h := range headerSets {
				if h.method != "ping" {
					continue
				}
				for _, b := range routeBodies[:4] {
					jobs <- job{tg, m, h, b, "application/json"}
				}
			}
		}
	}
	close(jobs)
	wg.Wait()
	if n := failures.Load(); n > 0 {
		t.Fatalf("%d requests answered wrongly", n)
	}
	// Each kind of answer happened: the matrix exercises all three.
	if mcpAllowed.Load() == 0 || mcpRefused.Load() == 0 || extAuthz.Load() == 0 {
		t.Fatalf("MCP allowed %d, MCP refused %d, ext_authz %d: a kind of answer never happened", mcpAllowed.Load(), mcpRefused.Load(), extAuthz.Load())
	}
	t.Logf("MCP allowed %d, MCP refused %d, ext_authz %d", mcpAllowed.Load(), mcpRefused.Load(), extAuthz.Load())
}

// inputEcho denies every MCP request with the input (without input.envoy)
// as the first reason's message, and what input.envoy says as the second.
var inputEcho = map[string]string{
	"mcp.rego": `package verdict.mcp

decision := {"allow": false, "reasons": [
	{"code": "a.input", "message": json.marshal(object.remove(input, {"envoy"}))},
	{"code": "b.envoy", "message": sprintf("%v %v", [object.get(input, ["envoy", "attributes", "request", "http", "method"], "none"), object.get(input, ["envoy", "parsed_path"], "none")])},
]}
`,
}

// TestMCPInputIsTheSameOverEnvoy sends one MCP call through the native API
// and through ext_authz on a marked route: the MCP entrypoint gets the same
// input from both (only who vouched for the subject differs), with
// opa-envoy-plugin's input under input.envoy from Envoy only.
func TestMCPInputIsTheSameOverEnvoy(t *testing.T) {
	t.Parallel()
	dir := bundletest.WriteDir(t, t.TempDir(), bundletest.Spec{Revision: "echo", Modules: inputEcho})
	cfg := config.Default()
	cfg.Bundles = []config.Bundle{{Name: "echo", Source: dir}}
	lib := false
	cfg.Library = &lib
	conn := startPDP(t, cfg).dial(t)
	ctx := context.Background()
	when := time.Date(2026, 11, 18, 10, 0, 0, 0, time.UTC)

	params, err := structpb.NewStruct(map[string]any{"name": "search_contacts", "arguments": map[string]any{"tenant": "acme", "limit": 10}})
	if err != nil {
		t.Fatal(err)
	}
	native, err := mcpv1.NewMCPPolicyClient(conn).Check(ctx, &mcpv1.CheckRequest{
		Subject: &mcpv1.Subject{Id: "alice", Roles: []string{"sales"}, Tenant: "acme", Clearance: "confidential"},
		Server:  "crm", Method: "tools/call", Params: params, SessionId: "s-1", ProtocolVersion: "2025-11-25",
		Context: &mcpv1.RequestContext{Time: timestamppb.New(when), SourceIp: "10.1.2.3", Purpose: "support", Region: "eu"},
	})
	if err != nil {
		t.Fatal(err)
	}
	payload, err := structpb.NewStruct(map[string]any{"sub": "alice", "roles": []any{"sales"}, "tenant": "acme", "clearance": "confidential"})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := authv3.NewAuthorizationClient(conn).Check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: "10.1.2.3", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 50000},
		}}}},
		ContextExtensions: map[string]string{"mcp_server": "crm", "mcp_region": "eu", "mcp_purpose": "support"},
		MetadataContext: &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
			"envoy.filters.http.jwt_authn": {Fields: map[string]*structpb.Value{"payload": structpb.NewStructValue(payload)}},
		}},
		Request: &authv3.AttributeContext_Request{Time: timestamppb.New(when), Http: &authv3.AttributeContext_HttpRequest{
			Method: "POST", Path: "/mcp", Host: "crm.internal",
			Headers: map[string]string{"content-type": "application/json", "mcp-session-id": "s-1", "mcp-protocol-version": "2025-11-25"},
			Body:    `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"search_contacts","arguments":{"tenant":"acme","limit":10}}}`,
		}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	var rpc struct {
		Error struct {
			Data struct {
				Reasons []struct{ Code, Message string } `json:"reasons"`
			} `json:"data"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(resp.GetDeniedResponse().GetBody()), &rpc); err != nil || len(rpc.Error.Data.Reasons) != 2 {
		t.Fatalf("ext_authz answer %v: want the echo policy's two reasons", resp)
	}
	if len(native.GetReasons()) != 2 {
		t.Fatalf("native answer %v: want the echo policy's two reasons", native)
	}
	decode := func(s string) map[string]any {
		t.Helper()
		var m map[string]any
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			t.Fatalf("input %q: %v", s, err)
		}
		// Who vouched for the subject is the transport's: the gateway's word
		// on the native API, the jwt_authn payload (all of it) behind Envoy.
		sub := m["subject"].(map[string]any)
		delete(sub, "source")
		delete(sub, "claims")
		return m
	}
	fromNative, fromEnvoy := decode(native.GetReasons()[0].GetMessage()), decode(rpc.Error.Data.Reasons[0].Message)
	if d := cmp.Diff(fromNative, fromEnvoy); d != "" {
		t.Errorf("MCP input over Envoy differs from the native API's (-native +envoy):\n%s", d)
	}
	if fromNative["tool"] == nil || fromNative["mcp"] != nil {
		t.Errorf("input is not the MCP document: %v", fromNative)
	}
	if got := native.GetReasons()[1].GetMessage(); got != "none none" {
		t.Errorf("native input.envoy: %q, want none", got)
	}
	if got := rpc.Error.Data.Reasons[1].Message; got != `POST ["mcp"]` {
		t.Errorf("input.envoy over Envoy: %q, want the request's opa-envoy-plugin input", got)
	}
}
