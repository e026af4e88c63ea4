package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
	"sigs.k8s.io/yaml"

	"github.com/verdictpdp/verdict/internal/config"
	extmcp "github.com/verdictpdp/verdict/proto/agentgateway/dev/ext_mcp"
	mcpv1 "github.com/verdictpdp/verdict/proto/verdict/mcp/v1"
)

// TestAdaptersAgreeWithNativeAPI holds every adapter that describes MCP
// calls to the native API's answers. Each Check case of the MCP corpus
// (testdata/mcp/*.yaml) is asked through agentgateway's ExtMcp, ToolHive's
// httpv1, AuthZEN (its MCP mapping) and pdp gateway's enforcer on a real pdp, and the same call,
// as that adapter can describe it (ToolHive carries no context, ExtMcp no
// time), through verdict.mcp.v1.MCPPolicy/Check: allowed by the adapter if
// and only if the native API allows it. Rate limits are off so that asking
// twice cannot change an answer; each adapter's own tests cover them.
func TestAdaptersAgreeWithNativeAPI(t *testing.T) {
	t.Parallel()
	cases := corpusChecks(t)
	for _, mode := range mcpModes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			cfg := config.Default()
			cfg.Bundles = []config.Bundle{{Name: "data", Source: "../../bundles/mcp-example"}}
			off := false
			cfg.RateLimit.Enabled = &off
			p := startPDP(t, mode.apply(cfg))
			conn := p.dial(t)
			native := mcpv1.NewMCPPolicyClient(conn)
			agw := extmcp.NewExtMcpClient(conn)
			counts := map[string]int{}
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					for _, a := range adapterAsks {
						twin, ok := a.describe(c.check)
						if !ok {
							continue
						}
						ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
						want := nativeAllows(ctx, t, native, twin)
						got := a.ask(ctx, t, p, agw, twin)
						cancel()
						if got != want {
							js, _ := json.Marshal(twin)
							t.Errorf("%s allowed=%v, the native API allowed=%v for %s", a.name, got, want, js)
						}
						counts[a.name]++
					}
				})
			}
			for _, a := range adapterAsks {
				if counts[a.name] < 10 {
					t.Errorf("%s was held to only %d corpus cases", a.name, counts[a.name])
				}
			}
		})
	}
}

type corpusCheck struct {
	name  string
	check map[string]any
}

// corpusChecks are the corpus's Check cases that ask about one call made
// for a gateway-asserted subject on the example catalog: not the refusals
// of malformed requests (want_code), not bearer tokens (only the native
// API takes one).
func corpusChecks(t *testing.T) []corpusCheck {
	t.Helper()
	files, err := filepath.Glob("../../testdata/mcp/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus files: %v", err)
	}
	var out []corpusCheck
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var cf mcpCorpusFile
		if err := yaml.UnmarshalStrict(raw, &cf); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if cf.Bundle != "" && cf.Bundle != "bundles/mcp-example" {
			continue
		}
		for _, c := range cf.Cases {
			if c.Check == nil || c.WantCode != "" || c.Check["bearerToken"] != nil {
				continue
			}
			if _, ok := c.Check["subject"].(map[string]any); !ok {
				continue
			}
			out = append(out, corpusCheck{name: strings.TrimSuffix(filepath.Base(f), ".yaml") + "/" + c.Name, check: c.Check})
		}
	}
	if len(out) < 20 {
		t.Fatalf("only %d corpus Check cases", len(out))
	}
	return out
}

// nativeAllows asks the native API.
func nativeAllows(ctx context.Context, t *testing.T, native mcpv1.MCPPolicyClient, check map[string]any) bool {
	t.Helper()
	js, err := json.Marshal(check)
	if err != nil {
		t.Fatal(err)
	}
	var req mcpv1.CheckRequest
	if err := protojson.Unmarshal(js, &req); err != nil {
		t.Fatalf("corpus case is not a CheckRequest: %v", err)
	}
	resp, err := native.Check(ctx, &req)
	if err != nil {
		t.Fatalf("native Check: %v", err)
	}
	return resp.GetDecision() == mcpv1.Decision_DECISION_ALLOW
}

type adapterAsk struct {
	name string
	// describe returns the call as the adapter can carry it (the native
	// twin), false when the adapter cannot ask about it at all.
	describe func(check map[string]any) (map[string]any, bool)
	ask      func(ctx context.Context, t *testing.T, p *pdp, agw extmcp.ExtMcpClient, check map[string]any) bool
}

var adapterAsks = []adapterAsk{
	{name: "agentgateway ExtMcp", describe: extMcpTwin, ask: askExtMcp},
	{name: "ToolHive httpv1", describe: toolHiveTwin, ask: askToolHive},
	{name: "AuthZEN", describe: authZENTwin, ask: askAuthZEN},
	{name: "pdp gateway", describe: gatewayTwin, ask: askGateway},
}

func member(m map[string]any, k string) map[string]any {
	v, _ := m[k].(map[string]any)
	return v
}

func str(m map[string]any, k string) string {
	v, _ := m[k].(string)
	return v
}

// subjectOnly keeps the subject members every adapter carries.
func subjectOnly(s map[string]any) map[string]any {
	out := map[string]any{}
	for _, k := range []string{"id", "roles", "groups", "scopes", "tenant", "clearance"} {
		if v, ok := s[k]; ok {
			out[k] = v
		}
	}
	return out
}

// extMcpTwin: ExtMcp carries the method, the params, the server and what
// the operator's metadata map gives (jwt claims, purpose, region,
// source_ip); no time, session or protocol version.
func extMcpTwin(check map[string]any) (map[string]any, bool) {
	twin := map[string]any{
		"subject": subjectOnly(member(check, "subject")), "server": check["server"],
		"method": check["method"], "params": check["params"],
	}
	if c := member(check, "context"); c != nil {
		ctx := map[string]any{}
		for _, k := range []string{"purpose", "region", "sourceIp"} {
			if v, ok := c[k]; ok {
				ctx[k] = v
			}
		}
		twin["context"] = ctx
	}
	return twin, true
}

func askExtMcp(ctx context.Context, t *testing.T, _ *pdp, agw extmcp.ExtMcpClient, check map[string]any) bool {
	t.Helper()
	s := member(check, "subject")
	claims := map[string]any{"sub": s["id"]}
	for k, v := range map[string]string{"roles": "roles", "groups": "groups", "tenant": "tenant", "clearance": "clearance", "scopes": "scope"} {
		if x, ok := s[k]; ok {
			claims[v] = x
		}
	}
	md := map[string]any{"jwt": claims}
	c := member(check, "context")
	for k, v := range map[string]string{"purpose": "purpose", "region": "region", "sourceIp": "source_ip"} {
		if x, ok := c[k]; ok {
			md[v] = x
		}
	}
	mdpb, err := structpb.NewStruct(md)
	if err != nil {
		t.Fatal(err)
	}
	params, err := json.Marshal(orEmpty(member(check, "params")))
	if err != nil {
		t.Fatal(err)
	}
	res, err := agw.CheckRequest(ctx, &extmcp.McpRequest{
		ServiceNames: []string{str(check, "server")}, Method: str(check, "method"),
		MetadataContext: mdpb, McpRequest: params,
	})
	if err != nil {
		t.Fatalf("ExtMcp CheckRequest: %v", err)
	}
	// INVALID is agentgateway's form of the native API's refusal of a
	// malformed request: a deny.
	return res.GetPass() != nil
}

// toolHiveTwin: ToolHive asks about tools/call, prompts/get and
// resources/read with the principal's claims (mpe mapping) and the
// arguments; it carries no context.
func toolHiveTwin(check map[string]any) (map[string]any, bool) {
	switch str(check, "method") {
	case "tools/call", "prompts/get", "resources/read":
	default:
		return nil, false
	}
	if str(member(check, "params"), "name") == "" && str(member(check, "params"), "uri") == "" {
		return nil, false
	}
	return map[string]any{
		"subject": subjectOnly(member(check, "subject")), "server": check["server"],
		"method": check["method"], "params": check["params"],
	}, true
}

func askToolHive(ctx context.Context, t *testing.T, p *pdp, _ extmcp.ExtMcpClient, check map[string]any) bool {
	t.Helper()
	s := member(check, "subject")
	principal := map[string]any{"sub": s["id"], "mannotations": map[string]any{}}
	for k, v := range map[string]string{"roles": "mroles", "groups": "mgroups", "scopes": "scopes", "clearance": "mclearance", "tenant": "tenant"} {
		if x, ok := s[k]; ok {
			principal[v] = x
		}
	}
	params := member(check, "params")
	feature, op, id := "tool", "call", str(params, "name")
	switch str(check, "method") {
	case "prompts/get":
		feature, op = "prompt", "get"
	case "resources/read":
		feature, op, id = "resource", "read", str(params, "uri")
	}
	mcpCtx := map[string]any{"feature": feature, "operation": op, "resource_id": id}
	if args := member(params, "arguments"); len(args) > 0 {
		mcpCtx["args"] = args
	}
	body, err := json.Marshal(map[string]any{
		"principal": principal, "operation": "mcp:" + feature + ":" + op,
		"resource": "mrn:mcp:" + str(check, "server") + ":" + feature + ":" + id,
		"context":  map[string]any{"mcp": mcpCtx},
	})
	if err != nil {
		t.Fatal(err)
	}
	status, out := postToolHive(t, p, "/decision", "application/json", body)
	if status == http.StatusBadRequest {
		return false // a malformed question: ToolHive denies on any status but 200
	}
	if status != http.StatusOK {
		t.Fatalf("ToolHive answered %d: %s", status, out)
	}
	var a toolHiveAnswer
	if err := json.Unmarshal(out, &a); err != nil || a.Allow == nil {
		t.Fatalf("ToolHive answer %s: %v", out, err)
	}
	return *a.Allow
}

var authZENTypes = map[string]string{"tools/call": "mcp_tool", "prompts/get": "mcp_prompt", "resources/read": "mcp_resource"}

// authZENTwin: the AuthZEN MCP mapping carries everything a Check does.
func authZENTwin(check map[string]any) (map[string]any, bool) {
	if _, ok := authZENTypes[str(check, "method")]; !ok {
		return nil, false
	}
	twin := maps.Clone(check)
	twin["subject"] = subjectOnly(member(check, "subject"))
	return twin, true
}

func askAuthZEN(ctx context.Context, t *testing.T, p *pdp, _ extmcp.ExtMcpClient, check map[string]any) bool {
	t.Helper()
	s := member(check, "subject")
	props := maps.Clone(s)
	delete(props, "id")
	params := member(check, "params")
	method := str(check, "method")
	id := str(params, "name")
	if method == "resources/read" {
		id = str(params, "uri")
	}
	actx := map[string]any{}
	if args, ok := params["arguments"]; ok {
		actx["arguments"] = args
	}
	c := member(check, "context")
	for k, v := range map[string]string{"time": "time", "purpose": "purpose", "region": "region", "sourceIp": "source_ip"} {
		if x, ok := c[k]; ok {
			actx[v] = x
		}
	}
	for k, v := range map[string]string{"sessionId": "session_id", "protocolVersion": "protocol_version"} {
		if x, ok := check[k]; ok {
			actx[v] = x
		}
	}
	body, err := json.Marshal(map[string]any{
		"subject":  map[string]any{"type": "user", "id": s["id"], "properties": props},
		"action":   map[string]any{"name": method},
		"resource": map[string]any{"type": authZENTypes[method], "id": id, "properties": map[string]any{"server": check["server"]}},
		"context":  actx,
	})
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+p.httpAddr+"/access/v1/evaluation", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	status, _, out := doHTTP(t, req)
	if status == http.StatusBadRequest {
		return false // a malformed request: no decision, the PEP denies
	}
	if status != http.StatusOK {
		t.Fatalf("AuthZEN answered %d: %s", status, out)
	}
	var d struct {
		Decision *bool `json:"decision"`
	}
	if err := json.Unmarshal(out, &d); err != nil || d.Decision == nil {
		t.Fatalf("AuthZEN answer %s: %v", out, err)
	}
	return *d.Decision
}

func orEmpty(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}
