package app_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/verdictpdp/verdict/internal/config"
	mcpv1 "github.com/verdictpdp/verdict/proto/verdict/mcp/v1"
)

// exampleCatalogTools are the tool names of a server in bundles/mcp-example.
func exampleCatalogTools(t *testing.T, server string) []string {
	t.Helper()
	raw, err := os.ReadFile("../../bundles/mcp-example/data.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		MCP struct {
			Servers map[string]struct {
				Tools map[string]any `json:"tools"`
			} `json:"servers"`
		} `json:"mcp"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	var names []string
	for n := range d.MCP.Servers[server].Tools {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) < 3 {
		t.Fatalf("server %s has %d tools", server, len(names))
	}
	return names
}

func authzenPost(t *testing.T, p *pdp, path string, body any) (int, map[string]any) {
	t.Helper()
	js, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	status, _, out := postJSON(t, "http://"+p.httpAddr+path, js, nil)
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("%s answered %d with %s", path, status, out)
	}
	return status, m
}

// TestAuthZENMCPVisibility: an AuthZEN evaluation with a list action asks
// whether the subject sees the entry, and gets FilterTools' answer; a
// resource search of MCP tools returns exactly the tools an evaluation
// with the same action allows, from the catalog.
func TestAuthZENMCPVisibility(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	cfg.Bundles = []config.Bundle{{Name: "data", Source: "../../bundles/mcp-example"}}
	off := false
	cfg.RateLimit.Enabled = &off
	p := startPDP(t, cfg)
	native := mcpv1.NewMCPPolicyClient(p.dial(t))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	subjects := []map[string]any{
		{"id": "alice", "roles": []any{"sales"}, "tenant": "acme", "clearance": "confidential"},
		{"id": "eve", "groups": []any{"engineering"}, "scopes": []any{"github:write"}, "tenant": "acme", "clearance": "internal"},
		{"id": "nobody"},
	}
	seen, hidden := 0, 0
	for _, server := range []string{"crm", "github"} {
		tools := exampleCatalogTools(t, server)
		for _, s := range subjects {
			props := map[string]any{}
			for k, v := range s {
				if k != "id" {
					props[k] = v
				}
			}
			pbSub := &mcpv1.Subject{Id: s["id"].(string), Tenant: str(s, "tenant"), Clearance: str(s, "clearance")}
			pbSub.Roles, pbSub.Groups, pbSub.Scopes = asStrings(s["roles"]), asStrings(s["groups"]), asStrings(s["scopes"])
			items := make([]any, len(tools))
			for i, n := range tools {
				items[i] = map[string]any{"name": n}
			}
			result, err := structpb.NewStruct(map[string]any{"tools": items})
			if err != nil {
				t.Fatal(err)
			}
			fr, err := native.FilterTools(ctx, &mcpv1.FilterToolsRequest{Request: &mcpv1.CheckRequest{Subject: pbSub, Server: server, Method: "tools/list"}, Result: result})
			if err != nil {
				t.Fatal(err)
			}
			var visible []string
			for _, v := range fr.GetResult().GetFields()["tools"].GetListValue().GetValues() {
				visible = append(visible, v.GetStructValue().GetFields()["name"].GetStringValue())
			}

			var allowed []string
			for _, n := range tools {
				status, d := authzenPost(t, p, "/access/v1/evaluation", map[string]any{
					"subject":  map[string]any{"type": "user", "id": s["id"], "properties": props},
					"action":   map[string]any{"name": "tools/list"},
					"resource": map[string]any{"type": "mcp_tool", "id": n, "properties": map[string]any{"server": server}},
				})
				if status != http.StatusOK {
					t.Fatalf("evaluation answered %d: %v", status, d)
				}
				if d["decision"] == true {
					allowed = append(allowed, n)
					seen++
				} else {
					hidden++
					if c, _ := d["context"].(map[string]any); c["decision_id"] == nil || c["reasons"] == nil {
						t.Errorf("a hidden tool's answer names no decision and reasons: %v", d)
					}
				}
			}
			if !slices.Equal(allowed, visible) {
				t.Errorf("%s on %s: AuthZEN sees %v, FilterTools keeps %v", s["id"], server, allowed, visible)
			}

			status, res := authzenPost(t, p, "/access/v1/search/resource", map[string]any{
				"subject":  map[string]any{"type": "user", "id": s["id"], "properties": props},
				"action":   map[string]any{"name": "tools/list"},
				"resource": map[string]any{"type": "mcp_tool", "properties": map[string]any{"server": server}},
			})
			if status != http.StatusOK {
				t.Fatalf("search answered %d: %v", status, res)
			}
			var found []string
			for _, r := range res["results"].([]any) {
				found = append(found, r.(map[string]any)["id"].(string))
			}
			if !slices.Equal(found, allowed) {
				t.Errorf("%s on %s: search found %v, evaluations allow %v", s["id"], server, found, allowed)
			}
		}
	}
	if seen == 0 || hidden == 0 {
		t.Fatalf("the cases must both show and hide tools: %d shown, %d hidden", seen, hidden)
	}
}

func asStrings(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, e := range l {
		out = append(out, e.(string))
	}
	return out
}

// TestAuthZENMCPRefusals: a request about an MCP resource that does not
// describe an MCP call is a 400 with a reason; with authzen.mcp off it is
// decided at the AuthZEN entrypoint like any other.
func TestAuthZENMCPRefusals(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	cfg.Bundles = []config.Bundle{{Name: "data", Source: "../../bundles/mcp-example"}}
	p := startPDP(t, cfg)
	call := func(action, typ string, props, ctx map[string]any) map[string]any {
		body := map[string]any{
			"subject":  map[string]any{"type": "user", "id": "alice", "properties": map[string]any{"roles": []any{"sales"}, "tenant": "acme", "clearance": "confidential"}},
			"action":   map[string]any{"name": action},
			"resource": map[string]any{"type": typ, "id": "search_contacts", "properties": props},
		}
		if ctx != nil {
			body["context"] = ctx
		}
		return body
	}
	crm := map[string]any{"server": "crm"}
	for _, tc := range []struct {
		name   string
		body   map[string]any
		status int
		code   string
	}{
		{"action of another feature", call("prompts/get", "mcp_tool", crm, nil), 400, "invalid_request"},
		{"not an MCP method", call("read", "mcp_tool", crm, nil), 400, "invalid_request"},
		{"no server", call("tools/call", "mcp_tool", nil, nil), 400, "invalid_request"},
		{"server not a name", call("tools/call", "mcp_tool", map[string]any{"server": "a\nb"}, nil), 400, "invalid_request"},
		{"arguments not an object", call("tools/call", "mcp_tool", crm, map[string]any{"arguments": []any{1}}), 400, "invalid_request"},
		{"time not RFC 3339", call("tools/call", "mcp_tool", crm, map[string]any{"time": "yesterday"}), 400, "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			status, out := authzenPost(t, p, "/access/v1/evaluation", tc.body)
			if status != tc.status || out["code"] != tc.code || out["error"] == "" {
				t.Fatalf("answered %d %v, want %d %s with a reason", status, out, tc.status, tc.code)
			}
		})
	}

	// The same call is allowed as MCP, and undefined (false) at the
	// AuthZEN entrypoint when the mapping is off.
	args := map[string]any{"arguments": map[string]any{"tenant": "acme", "query": "smith"}, "time": "2026-11-18T10:00:00Z", "purpose": "support", "region": "eu", "source_ip": "10.1.2.3"}
	if status, out := authzenPost(t, p, "/access/v1/evaluation", call("tools/call", "mcp_tool", crm, args)); status != 200 || out["decision"] != true {
		t.Fatalf("the MCP call: %d %v, want allowed", status, out)
	}
	off := false
	cfg.AuthZEN.MCP = &off
	q := startPDP(t, cfg)
	// No policy defines authzen/decision here: the AuthZEN entrypoint's
	// answer is 500 no_policy, the MCP policy's was an allow.
	if status, out := authzenPost(t, q, "/access/v1/evaluation", call("tools/call", "mcp_tool", crm, args)); status != 500 || out["code"] != "no_policy" {
		t.Fatalf("with authzen.mcp off: %d %v, want the AuthZEN entrypoint's answer (500 no_policy)", status, out)
	}
}

// TestAuthZENMCPBoundsLikeTheNativeAPI: an AuthZEN request about an MCP
// call is held to the native API's nesting limit (mcp.max_depth), on the
// arguments and on the subject's properties.
func TestAuthZENMCPBoundsLikeTheNativeAPI(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	cfg.Bundles = []config.Bundle{{Name: "data", Source: "../../bundles/mcp-example"}}
	cfg.MCP.MaxDepth = 8
	p := startPDP(t, cfg)
	var deep any = "x"
	for range 20 {
		deep = map[string]any{"k": deep}
	}
	args := map[string]any{"repo": "acme/app", "filter": deep}
	params, err := structpb.NewStruct(map[string]any{"name": "list_issues", "arguments": args})
	if err != nil {
		t.Fatal(err)
	}
	_, nerr := mcpv1.NewMCPPolicyClient(p.dial(t)).Check(context.Background(), &mcpv1.CheckRequest{
		Subject: &mcpv1.Subject{Id: "eve", Groups: []string{"engineering"}, Scopes: []string{"github:write"}, Tenant: "acme", Clearance: "internal"},
		Server:  "github", Method: "tools/call", Params: params,
	})
	if nerr == nil {
		t.Fatal("the native API took arguments nested past mcp.max_depth")
	}
	props := map[string]any{"groups": []any{"engineering"}, "scopes": []any{"github:write"}, "tenant": "acme", "clearance": "internal"}
	tool := map[string]any{"type": "mcp_tool", "id": "list_issues", "properties": map[string]any{"server": "github"}}
	for name, body := range map[string]map[string]any{
		"arguments": {"subject": map[string]any{"type": "user", "id": "eve", "properties": props}, "action": map[string]any{"name": "tools/call"},
			"resource": tool, "context": map[string]any{"arguments": args}},
		"subject properties": {"subject": map[string]any{"type": "user", "id": "eve", "properties": map[string]any{"groups": []any{"engineering"}, "x": deep}},
			"action": map[string]any{"name": "tools/call"}, "resource": tool, "context": map[string]any{"arguments": map[string]any{"repo": "acme/app"}}},
	} {
		status, out := authzenPost(t, p, "/access/v1/evaluation", body)
		if status != http.StatusBadRequest || out["code"] != "too_deep" {
			t.Errorf("%s nested past mcp.max_depth: %d %v, want 400 too_deep", name, status, out)
		}
	}
}

// TestAuthZENStalledBody: a client that sends headers and stalls its body
// is answered and let go, not held for good.
func TestAuthZENStalledBody(t *testing.T) {
	t.Parallel()
	p := startPDP(t, config.Default())
	var d net.Dialer
	c, err := d.DialContext(context.Background(), "tcp", p.httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	if _, err := fmt.Fprint(c, "POST /access/v1/evaluation HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"); err != nil {
		t.Fatal(err)
	}
	if err := c.SetReadDeadline(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("a stalled body still held the connection after 20s: %v", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("a stalled body was answered %d, want 400", resp.StatusCode)
	}
}

// TestAuthZENMCPAuditMasksArguments: a restricted tool's arguments never
// reach the audit log in clear through AuthZEN: not from the evaluation
// (an MCP decision, masked like the native API's), not from a search of
// MCP tools, not from a request refused before it became MCP input.
func TestAuthZENMCPAuditMasksArguments(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	cfg.Bundles = []config.Bundle{{Name: "data", Source: "../../bundles/mcp-example"}}
	cfg.Audit.File.Path = filepath.Join(t.TempDir(), "audit.jsonl")
	p := startPDP(t, cfg)
	sub := map[string]any{"type": "user", "id": "dr-who", "properties": map[string]any{"roles": []any{"clinician", "hipaa_trained"}, "clearance": "restricted"}}
	args := map[string]any{"patient_id": "P987654"}
	tool := map[string]any{"type": "mcp_tool", "id": "get_patient_record", "properties": map[string]any{"server": "ehr"}}
	call := map[string]any{"name": "tools/call"}
	for _, req := range []struct {
		path   string
		body   map[string]any
		status int
	}{
		{"/access/v1/evaluation", map[string]any{"subject": sub, "action": call, "resource": tool,
			"context": map[string]any{"arguments": args, "purpose": "treatment", "region": "eu"}}, 200},
		{"/access/v1/search/resource", map[string]any{"subject": sub, "action": call,
			"resource": map[string]any{"type": "mcp_tool", "properties": map[string]any{"server": "ehr"}},
			"context":  map[string]any{"arguments": args, "purpose": "treatment", "region": "eu"}}, 200},
		{"/access/v1/evaluation", map[string]any{"subject": sub, "action": call, "resource": tool,
			"context": map[string]any{"arguments": args, "time": "yesterday"}}, 400},
	} {
		if status, out := authzenPost(t, p, req.path, req.body); status != req.status {
			t.Fatalf("%s: %d %v", req.path, status, out)
		}
	}
	p.stop()
	events := readLog(t, cfg.Audit.File.Path)
	if len(events) < 3 {
		t.Fatalf("%d audit events, want at least 3", len(events))
	}
	for _, e := range events {
		if raw, _ := json.Marshal(e); strings.Contains(string(raw), "P987654") {
			t.Errorf("a restricted argument in clear: decision %v path %v", e["decision"], e["path"])
		}
	}
}
