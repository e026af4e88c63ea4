package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/verdictpdp/verdict/internal/config"
	mcpv1 "github.com/verdictpdp/verdict/proto/verdict/mcp/v1"
)

// sdkSubject is the identity the test gateway vouches for, both as the
// payload Envoy's jwt_authn filter would have verified and as the native
// API's subject.
var sdkSubject = map[string]any{"sub": "alice", "roles": []any{"sales"}, "tenant": "acme", "clearance": "confidential"}

// decisionPair is what the two APIs answered for one tools/call.
type decisionPair struct {
	tool, envoy, native string
}

// sdkGateway stands in for Envoy in front of an MCP server: for every POST
// it sends an ext_authz CheckRequest built from the real HTTP request (as
// Envoy's ext_authz filter with with_request_body does) and enforces the
// answer. For tools/call it also asks the native API with the same
// request, so the test can compare both answers.
type sdkGateway struct {
	t        *testing.T
	next     http.Handler
	envoy    authv3.AuthorizationClient
	native   mcpv1.MCPPolicyClient
	mu       sync.Mutex
	pairs    []decisionPair
	versions map[string]bool
	// headerCalls counts tools/calls that carried 2026 Mcp-Method headers.
	headerCalls int
}

func (g *sdkGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		g.next.ServeHTTP(w, r) // Envoy's route would not call ext_authz here
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	headers := map[string]string{}
	for k, vs := range r.Header {
		headers[strings.ToLower(k)] = strings.Join(vs, ",")
	}
	g.mu.Lock()
	g.versions[headers["mcp-protocol-version"]] = true
	g.mu.Unlock()
	ctx := r.Context()
	resp, err := askEnvoy(r, g.envoy, body, headers, sdkSubject)
	if err != nil {
		g.t.Errorf("ext_authz Check: %v", err)
		http.Error(w, "authorization failed", http.StatusForbidden)
		return
	}

	var msg struct {
		Method string         `json:"method"`
		Params map[string]any `json:"params"`
	}
	if json.Unmarshal(body, &msg) == nil && msg.Method == "tools/call" {
		params, err := structpb.NewStruct(msg.Params)
		if err != nil {
			g.t.Error(err)
			return
		}
		claims, _ := structpb.NewStruct(sdkSubject)
		nat, err := g.native.Check(ctx, &mcpv1.CheckRequest{
			Subject:         &mcpv1.Subject{Id: "alice", Roles: []string{"sales"}, Tenant: "acme", Clearance: "confidential", Claims: claims},
			Server:          "crm",
			Method:          msg.Method,
			Params:          params,
			ProtocolVersion: headers["mcp-protocol-version"],
			Context:         &mcpv1.RequestContext{Purpose: "support", Region: "eu"},
		})
		if err != nil {
			g.t.Errorf("native Check: %v", err)
		}
		name, _ := msg.Params["name"].(string)
		g.mu.Lock()
		if headers["mcp-method"] == "tools/call" && headers["mcp-name"] == name {
			g.headerCalls++
		}
		g.pairs = append(g.pairs, decisionPair{
			tool:   name,
			envoy:  resp.GetDynamicMetadata().GetFields()["mcp_decision"].GetStringValue(),
			native: strings.ToLower(strings.TrimPrefix(nat.GetDecision().String(), "DECISION_")),
		})
		g.mu.Unlock()
	}

	if writeDenied(w, resp) {
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	g.next.ServeHTTP(w, r)
}

// TestMCPSDKEndToEnd drives the official Go MCP SDK client against an SDK
// server behind a gateway that asks the pdp over ext_authz, and checks that
// the native API gives the same decision for every tool call. A stateful
// SDK server speaks 2025-11-25 (sessions, no Mcp-Method headers); a
// stateless one speaks 2026-07-28 with Mcp-Method and Mcp-Name headers,
// which the pdp checks against the body.
func TestMCPSDKEndToEnd(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		stateless bool
		version   string
	}{
		{name: "2025-11-25 stateful", stateless: false, version: "2025-11-25"},
		{name: "2026-07-28 stateless", stateless: true, version: "2026-07-28"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			runSDKEndToEnd(t, tc.stateless, tc.version)
		})
	}
}

func runSDKEndToEnd(t *testing.T, stateless bool, version string) {
	t.Helper()
	cfg := config.Default()
	cfg.Bundles = []config.Bundle{{Name: "data", Source: filepath.Join("../..", "bundles/mcp-example")}}
	p := startPDP(t, cfg)
	conn := p.dial(t)

	server := mcp.NewServer(&mcp.Implementation{Name: "crm", Version: "1.0.0"}, nil)
	type searchArgs struct {
		Tenant string `json:"tenant"`
		Query  string `json:"query"`
		Limit  int    `json:"limit,omitempty"`
	}
	var calls int
	var callsMu sync.Mutex
	mcp.AddTool(server, &mcp.Tool{Name: "search_contacts", Description: "Search contacts"},
		func(_ context.Context, _ *mcp.CallToolRequest, in searchArgs) (*mcp.CallToolResult, any, error) {
			callsMu.Lock()
			calls++
			callsMu.Unlock()
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "found 2 contacts for " + in.Query}}}, nil, nil
		})
	gw := &sdkGateway{
		t:        t,
		next:     mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, &mcp.StreamableHTTPOptions{Stateless: stateless}),
		envoy:    authv3.NewAuthorizationClient(conn),
		native:   mcpv1.NewMCPPolicyClient(conn),
		versions: map[string]bool{},
	}
	hs := httptest.NewServer(gw)
	t.Cleanup(hs.Close)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	client := mcp.NewClient(&mcp.Implementation{Name: "verdict-test", Version: "1.0.0"}, nil)
	session, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: hs.URL}, nil)
	if err != nil {
		t.Fatalf("connect through the gateway: %v", err)
	}
	defer func() { _ = session.Close() }()

	res, err := session.CallTool(ctx, &mcp.CallToolParams{Name: "search_contacts", Arguments: map[string]any{"tenant": "acme", "query": "smith", "limit": 10}})
	if err != nil {
		t.Fatalf("allowed call failed: %v", err)
	}
	if tc, ok := res.Content[0].(*mcp.TextContent); !ok || tc.Text != "found 2 contacts for smith" {
		t.Fatalf("allowed call result = %+v", res.Content)
	}
	_, err = session.CallTool(ctx, &mcp.CallToolParams{Name: "search_contacts", Arguments: map[string]any{"tenant": "acme", "query": "smith", "limit": 500}})
	if err == nil {
		t.Fatal("call over the limit reached the server: want it denied")
	}
	_, err = session.CallTool(ctx, &mcp.CallToolParams{Name: "search_contacts", Arguments: map[string]any{"tenant": "globex", "query": "smith"}})
	if err == nil {
		t.Fatal("call for another tenant reached the server: want it denied")
	}

	callsMu.Lock()
	defer callsMu.Unlock()
	if calls != 1 {
		t.Errorf("the MCP server ran the tool %d times, want 1 (denied calls must not reach it)", calls)
	}
	gw.mu.Lock()
	defer gw.mu.Unlock()
	want := []decisionPair{
		{tool: "search_contacts", envoy: "allow", native: "allow"},
		{tool: "search_contacts", envoy: "deny", native: "deny"},
		{tool: "search_contacts", envoy: "deny", native: "deny"},
	}
	if len(gw.pairs) != len(want) {
		t.Fatalf("decisions = %+v, want %+v", gw.pairs, want)
	}
	for i := range want {
		if gw.pairs[i] != want[i] {
			t.Errorf("tools/call %d: got %+v, want %+v", i, gw.pairs[i], want[i])
		}
	}
	if !gw.versions[version] {
		t.Errorf("protocol versions seen %v, want %s", gw.versions, version)
	}
	wantHeaderCalls := 0
	if version >= "2026-07-28" {
		wantHeaderCalls = len(want) // the pdp compared Mcp-Method/Mcp-Name with each body
	}
	if gw.headerCalls != wantHeaderCalls {
		t.Errorf("%d tools/call carried Mcp-Method and Mcp-Name headers, want %d", gw.headerCalls, wantHeaderCalls)
	}
}
