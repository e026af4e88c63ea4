package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"google.golang.org/protobuf/types/known/structpb"
)

// envoyGateway stands in for Envoy's ext_authz filter in front of an MCP
// server: every POST is asked of the pdp with the caller's jwt_authn
// payload, and a denied answer is sent back as the pdp wrote it.
type envoyGateway struct {
	t       *testing.T
	next    http.Handler
	envoy   authv3.AuthorizationClient
	payload map[string]any
	// token, when set, is sent as the caller's bearer token (the pdp
	// verifies it when identity.jwt is configured).
	token string
}

func (g *envoyGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		g.next.ServeHTTP(w, r)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "unreadable body", http.StatusBadRequest)
		return
	}
	headers := map[string]string{}
	for k, vs := range r.Header {
		headers[strings.ToLower(k)] = strings.Join(vs, ",")
	}
	if g.token != "" {
		headers["authorization"] = "Bearer " + g.token
	}
	resp, err := askEnvoy(r, g.envoy, body, headers, g.payload)
	if err != nil {
		g.t.Errorf("ext_authz Check: %v", err)
		http.Error(w, "authorization failed", http.StatusForbidden)
		return
	}
	if writeDenied(w, resp) {
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	g.next.ServeHTTP(w, r)
}

// askEnvoy sends the ext_authz CheckRequest Envoy's filter would build for
// r (with_request_body), on the crm MCP route, with the caller's jwt_authn
// payload.
func askEnvoy(r *http.Request, envoy authv3.AuthorizationClient, body []byte, headers map[string]string, payload map[string]any) (*authv3.CheckResponse, error) {
	pl, err := structpb.NewStruct(payload)
	if err != nil {
		return nil, err
	}
	return envoy.Check(r.Context(), &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		ContextExtensions: map[string]string{"mcp_server": "crm", "mcp_region": "eu", "mcp_purpose": "support"},
		MetadataContext: &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
			"envoy.filters.http.jwt_authn": {Fields: map[string]*structpb.Value{"payload": structpb.NewStructValue(pl)}},
		}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: r.Method, Path: r.URL.RequestURI(), Host: r.Host, Headers: headers, Body: string(body),
		}},
	}})
}

// writeDenied sends a denied answer as Envoy does, and reports whether it
// was one.
func writeDenied(w http.ResponseWriter, resp *authv3.CheckResponse) bool {
	denied := resp.GetDeniedResponse()
	if denied == nil {
		return false
	}
	for _, h := range denied.GetHeaders() {
		w.Header().Set(h.GetHeader().GetKey(), h.GetHeader().GetValue())
	}
	w.WriteHeader(int(denied.GetStatus().GetCode()))
	_, _ = io.WriteString(w, denied.GetBody())
	return true
}

// TestMCPSDKSeesApprovalElicitation: the official Go MCP SDK client calls a
// destructive tool through MCP over Envoy and gets MCP's URL-mode
// elicitation error (-32042) naming the approval page; once a person
// approves there, the same call reaches the server, once.
func TestMCPSDKSeesApprovalElicitation(t *testing.T) {
	env := newApprovalsEnv(t)
	p := startPDP(t, env.cfg)
	conn := p.dial(t)

	server := mcp.NewServer(&mcp.Implementation{Name: "crm", Version: "1.0.0"}, nil)
	type deleteArgs struct {
		Tenant string `json:"tenant"`
		ID     string `json:"id"`
	}
	var ran atomic.Int32
	mcp.AddTool(server, &mcp.Tool{Name: "delete_contact", Description: "Delete a contact"},
		func(_ context.Context, _ *mcp.CallToolRequest, in deleteArgs) (*mcp.CallToolResult, any, error) {
			ran.Add(1)
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "deleted " + in.ID}}}, nil, nil
		})
	gw := &envoyGateway{
		t:       t,
		next:    mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil),
		envoy:   authv3.NewAuthorizationClient(conn),
		payload: map[string]any{"sub": "carl", "roles": []any{"crm_admin"}, "tenant": "acme", "clearance": "confidential"},
		token:   env.token(t, "carl", "roles", []string{"crm_admin"}, "tenant", "acme", "clearance", "confidential"),
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

	call := &mcp.CallToolParams{Name: "delete_contact", Arguments: map[string]any{"tenant": "acme", "id": "42"}}
	_, err = session.CallTool(ctx, call)
	var rpcErr *jsonrpc.Error
	if !errors.As(err, &rpcErr) {
		t.Fatalf("destructive call: %v, want a JSON-RPC error", err)
	}
	if rpcErr.Code != mcp.CodeURLElicitationRequired {
		t.Fatalf("error code %d (%s), want %d URLElicitationRequired", rpcErr.Code, rpcErr.Message, mcp.CodeURLElicitationRequired)
	}
	var data struct {
		Elicitations []mcp.ElicitParams `json:"elicitations"`
	}
	if err := json.Unmarshal(rpcErr.Data, &data); err != nil || len(data.Elicitations) != 1 {
		t.Fatalf("error data %s: want one elicitation (%v)", rpcErr.Data, err)
	}
	el := data.Elicitations[0]
	prefix := "http://" + p.httpAddr + "/approvals/"
	if el.Mode != "url" || !strings.HasPrefix(el.URL, prefix) || el.ElicitationID != strings.TrimPrefix(el.URL, prefix) {
		t.Fatalf("elicitation = %+v, want URL mode with the approval page", el)
	}

	dana := env.token(t, "dana", "roles", []string{"crm_lead"})
	if st, out := adminCall(t, p, "POST", "/v1/approvals/"+el.ElicitationID+"/approve", dana, nil); st != 200 {
		t.Fatalf("approve: %d %v", st, out)
	}
	res, err := session.CallTool(ctx, call)
	if err != nil {
		t.Fatalf("approved call: %v", err)
	}
	if tc, ok := res.Content[0].(*mcp.TextContent); !ok || tc.Text != "deleted 42" {
		t.Fatalf("approved call result = %+v", res.Content)
	}
	if _, err := session.CallTool(ctx, call); !errors.As(err, &rpcErr) || rpcErr.Code != mcp.CodeURLElicitationRequired {
		t.Fatalf("the same call again: %v, want a new approval", err)
	}
	if n := ran.Load(); n != 1 {
		t.Errorf("the tool ran %d times, want once", n)
	}
}
