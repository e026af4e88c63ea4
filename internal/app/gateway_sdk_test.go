package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/verdictpdp/verdict/internal/app"
	mcpv1 "github.com/verdictpdp/verdict/proto/verdict/mcp/v1"
)

// crmContact is what the example CRM server returns for a search.
type crmContact struct {
	Name  string `json:"name"`
	Email string `json:"email"`
	Phone string `json:"phone"`
}

// crmServer is an official Go SDK server with the example catalog's crm
// tools, plus one the catalog does not know. It counts what ran.
type crmServer struct {
	server  *mcp.Server
	mu      sync.Mutex
	ran     map[string]int
	headers []http.Header
}

func newCRMServer() *crmServer {
	s := &crmServer{server: mcp.NewServer(&mcp.Implementation{Name: "crm", Version: "1.0.0"}, nil), ran: map[string]int{}}
	type searchArgs struct {
		Tenant string `json:"tenant"`
		Query  string `json:"query"`
		Limit  int    `json:"limit,omitempty"`
	}
	type searchOut struct {
		Contacts []crmContact `json:"contacts"`
	}
	mcp.AddTool(s.server, &mcp.Tool{Name: "search_contacts", Description: "Search contacts"},
		func(_ context.Context, _ *mcp.CallToolRequest, in searchArgs) (*mcp.CallToolResult, searchOut, error) {
			s.count("search_contacts")
			return nil, searchOut{Contacts: []crmContact{{Name: "Ada " + in.Query, Email: "ada@example.com", Phone: "+49 30 1234567"}}}, nil
		})
	type idArgs struct {
		Tenant string `json:"tenant"`
		ID     string `json:"id"`
	}
	mcp.AddTool(s.server, &mcp.Tool{Name: "delete_contact", Description: "Delete a contact"},
		func(_ context.Context, _ *mcp.CallToolRequest, in idArgs) (*mcp.CallToolResult, any, error) {
			s.count("delete_contact")
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "deleted " + in.ID}}}, nil, nil
		})
	mcp.AddTool(s.server, &mcp.Tool{Name: "debug_dump", Description: "Not in the catalog"},
		func(_ context.Context, _ *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
			s.count("debug_dump")
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "everything"}}}, nil, nil
		})
	return s
}

func (s *crmServer) count(tool string) {
	s.mu.Lock()
	s.ran[tool]++
	s.mu.Unlock()
}

func (s *crmServer) runs(tool string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ran[tool]
}

// handler serves the server over Streamable HTTP, recording the headers
// of every request it receives.
func (s *crmServer) handler(stateless bool) http.Handler {
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s.server }, &mcp.StreamableHTTPOptions{Stateless: stateless})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.headers = append(s.headers, r.Header.Clone())
		s.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

// bearer adds a token to every request of an MCP client.
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// gatewayProc is `pdp gateway` running in this test process through the
// command line, as a user starts it.
type gatewayProc struct {
	url, adminAddr, grpcAddr string
	stderr                   *lockedBuffer
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startGateway runs `pdp gateway` with args (plus free listen, gRPC and
// admin addresses) until the test ends, and waits until it serves.
func startGateway(t testing.TB, args ...string) *gatewayProc {
	t.Helper()
	g := &gatewayProc{adminAddr: freeAddr(t), grpcAddr: freeAddr(t), stderr: &lockedBuffer{}}
	listen := freeAddr(t)
	g.url = "http://" + listen + "/mcp"
	ctx, cancel := context.WithCancel(context.Background())
	exited := make(chan struct{})
	var code int
	full := append([]string{"gateway", "--listen", listen, "--grpc-addr", g.grpcAddr, "--http-addr", g.adminAddr, "--log-level", "warn"}, args...)
	go func() {
		defer close(exited)
		code = app.Main(ctx, full, io.Discard, g.stderr)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-exited:
			if code != 0 {
				t.Errorf("pdp gateway exited %d:\n%s", code, g.stderr)
			}
		case <-time.After(20 * time.Second):
			t.Error("pdp gateway did not stop within 20s")
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			t.Fatalf("pdp gateway exited %d:\n%s", code, g.stderr)
		default:
		}
		resp, err := http.Get(g.url)
		if err == nil {
			_ = resp.Body.Close()
			return g
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("pdp gateway did not serve within 20s:\n%s", g.stderr)
	return nil
}

// TestGatewaySDK drives the official Go MCP SDK client through `pdp
// gateway` (the example catalog, verified tokens) to an SDK server: the
// tool list is filtered, a denied call gets the policy's own error and
// never reaches the server, a result is redacted, a destructive call
// returns the approval elicitation and runs once after a person approves;
// the server never sees the client's token, but the gateway's own
// credentials. It runs with the decision core in process and with a
// remote Verdict, against a stateful server (2025-11-25 sessions and SSE)
// and a stateless one (2026-07-28, Mcp-* headers).
func TestGatewaySDK(t *testing.T) {
	for _, tc := range []struct {
		name      string
		stateless bool
		remote    bool
	}{
		{name: "in process, 2025-11-25 sessions"},
		{name: "in process, 2026-07-28 stateless", stateless: true},
		{name: "remote pdp, 2025-11-25 sessions", remote: true},
	} {
		t.Run(tc.name, func(t *testing.T) { runGatewaySDK(t, tc.stateless, tc.remote) })
	}
}

func runGatewaySDK(t *testing.T, stateless, remote bool) {
	t.Helper()
	env := newApprovalsEnv(t)
	crm := newCRMServer()
	upstream := httptest.NewServer(crm.handler(stateless))
	t.Cleanup(upstream.Close)

	dir := t.TempDir()
	secret := filepath.Join(dir, "upstream-token")
	if err := os.WriteFile(secret, []byte("gateway-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "gateway.yaml")
	yaml := fmt.Sprintf("gateway:\n  upstream_headers:\n    - name: X-Upstream-Key\n      value_file: %s\n  authorization_servers: [%q]\n", secret, testIssuer)
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	auditLog := filepath.Join(dir, "audit.jsonl")
	args := []string{"--config", cfgFile,
		"--jwks", env.cfg.Identity.JWT.JWKS, "--jwt-issuer", testIssuer, "--jwt-audience", testAudience,
		"--server", "crm", "--upstream", upstream.URL, "--resource", testAudience, "--purpose", "support", "--region", "eu"}
	var decisionCore *pdp
	if remote {
		decisionCore = startPDP(t, env.cfg)
		args = append(args, "--pdp", decisionCore.grpcAddr)
	} else {
		args = append(args, "--bundle", "data="+env.cfg.Bundles[0].Source, "--approvals-dir", env.cfg.Approvals.Dir, "--audit-file", auditLog)
	}
	if !remote {
		// Runs once the gateway stopped and flushed its audit log.
		t.Cleanup(func() { checkGatewayAudit(t, auditLog) })
	}
	gw := startGateway(t, args...)
	coreGRPC, coreAdmin := gw.grpcAddr, gw.adminAddr
	if remote {
		coreGRPC, coreAdmin = decisionCore.grpcAddr, decisionCore.httpAddr
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	connect := func(token string) *mcp.ClientSession {
		t.Helper()
		client := mcp.NewClient(&mcp.Implementation{Name: "verdict-test", Version: "1.0.0"}, nil)
		session, err := client.Connect(ctx, &mcp.StreamableClientTransport{
			Endpoint: gw.url, HTTPClient: &http.Client{Transport: bearer{token: token, next: http.DefaultTransport}},
		}, nil)
		if err != nil {
			t.Fatalf("connect through the gateway: %v", err)
		}
		t.Cleanup(func() { _ = session.Close() })
		return session
	}

	aliceToken := env.token(t, "alice", "roles", []string{"sales"}, "clearance", "confidential")
	alice := connect(aliceToken)

	// The list: the catalog's tools alice may use, nothing else.
	tools, err := alice.ListTools(ctx, nil)
	if err != nil {
		t.Fatalf("tools/list: %v", err)
	}
	var names []string
	for _, tool := range tools.Tools {
		names = append(names, tool.Name)
	}
	if strings.Join(names, ",") != "search_contacts" {
		t.Errorf("tools/list through the gateway = %v, want [search_contacts] (delete_contact is not alice's, debug_dump is not in the catalog)", names)
	}

	// A denied call: the policy's error, as the native API gives it.
	over := &mcp.CallToolParams{Name: "search_contacts", Arguments: map[string]any{"tenant": "acme", "query": "smith", "limit": 500}}
	_, err = alice.CallTool(ctx, over)
	var rpcErr *jsonrpc.Error
	if !errors.As(err, &rpcErr) {
		t.Fatalf("call over the limit: %v, want a JSON-RPC error", err)
	}
	want := nativeError(t, coreGRPC, "alice", []string{"sales"}, over)
	if int32(rpcErr.Code) != want.GetCode() || rpcErr.Message != want.GetMessage() {
		t.Errorf("denied call: error %d %q, want the native API's %d %q", rpcErr.Code, rpcErr.Message, want.GetCode(), want.GetMessage())
	}
	if _, err := alice.CallTool(ctx, &mcp.CallToolParams{Name: "debug_dump", Arguments: map[string]any{}}); err == nil {
		t.Error("a tool outside the catalog ran")
	}

	// An allowed call: the result comes back with the phone redacted.
	res, err := alice.CallTool(ctx, &mcp.CallToolParams{Name: "search_contacts", Arguments: map[string]any{"tenant": "acme", "query": "smith", "limit": 10}})
	if err != nil {
		t.Fatalf("allowed call: %v", err)
	}
	raw, _ := json.Marshal(res.StructuredContent)
	var got struct {
		Contacts []crmContact `json:"contacts"`
	}
	if err := json.Unmarshal(raw, &got); err != nil || len(got.Contacts) != 1 {
		t.Fatalf("allowed call result %s: want one contact (%v)", raw, err)
	}
	if c := got.Contacts[0]; c.Phone != "[REDACTED]" || c.Name != "Ada smith" {
		t.Errorf("contact = %+v, want the phone redacted and the rest intact", c)
	}
	// The SDK repeats structured output as JSON text: redacted there too.
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok && (strings.Contains(tc.Text, "1234567") || !strings.Contains(tc.Text, "Ada smith")) {
			t.Errorf("text content %q: want the same redaction as the structured content", tc.Text)
		}
	}
	if n := crm.runs("search_contacts"); n != 1 {
		t.Errorf("search_contacts ran %d times, want once (the denied call never reached the server)", n)
	}
	if n := crm.runs("debug_dump"); n != 0 {
		t.Errorf("debug_dump ran %d times", n)
	}

	// A destructive call: the approval elicitation, then success once.
	carl := connect(env.token(t, "carl", "roles", []string{"crm_admin"}, "clearance", "confidential"))
	del := &mcp.CallToolParams{Name: "delete_contact", Arguments: map[string]any{"tenant": "acme", "id": "42"}}
	_, err = carl.CallTool(ctx, del)
	if !errors.As(err, &rpcErr) || rpcErr.Code != mcp.CodeURLElicitationRequired {
		t.Fatalf("destructive call: %v, want URLElicitationRequired", err)
	}
	var data struct {
		Elicitations []mcp.ElicitParams `json:"elicitations"`
	}
	if err := json.Unmarshal(rpcErr.Data, &data); err != nil || len(data.Elicitations) != 1 || data.Elicitations[0].Mode != "url" {
		t.Fatalf("elicitation data %s: want one URL-mode elicitation (%v)", rpcErr.Data, err)
	}
	el := data.Elicitations[0]
	if !strings.HasPrefix(el.URL, "http://"+coreAdmin+"/approvals/") {
		t.Fatalf("elicitation URL %q, want the gateway's approval page", el.URL)
	}
	if n := crm.runs("delete_contact"); n != 0 {
		t.Fatalf("delete_contact ran %d times before approval", n)
	}
	approve(t, coreAdmin, el.ElicitationID, env.token(t, "dana", "roles", []string{"crm_lead"}))
	res, err = carl.CallTool(ctx, del)
	if err != nil {
		t.Fatalf("approved call: %v", err)
	}
	if tc, ok := res.Content[0].(*mcp.TextContent); !ok || tc.Text != "deleted 42" {
		t.Fatalf("approved call result = %+v", res.Content)
	}
	if n := crm.runs("delete_contact"); n != 1 {
		t.Errorf("delete_contact ran %d times, want once", n)
	}

	// The server saw the gateway's credentials, never a client's token.
	crm.mu.Lock()
	defer crm.mu.Unlock()
	headerCalls := 0
	for _, h := range crm.headers {
		if h.Get("Mcp-Method") == "tools/call" && h.Get("Mcp-Name") != "" && h.Get("Mcp-Protocol-Version") == "2026-07-28" {
			headerCalls++
		}
		if h.Get("Authorization") != "" {
			t.Error("the upstream received an Authorization header: the client's token was passed through")
		}
		if h.Get("X-Upstream-Key") != "gateway-secret" {
			t.Errorf("the upstream received X-Upstream-Key %q, want the configured credential", h.Get("X-Upstream-Key"))
		}
	}
	if stateless && headerCalls == 0 {
		t.Error("no tools/call reached the stateless server with 2026-07-28 Mcp-Method and Mcp-Name headers")
	}
}

// checkGatewayAudit reads a gateway's audit log: every tools/call message
// it forwarded or refused has a record linked to the decision that let it
// pass or refused it, and no record holds a call's arguments or result.
func checkGatewayAudit(t *testing.T, path string) {
	t.Helper()
	segments, err := filepath.Glob(strings.TrimSuffix(path, ".jsonl") + "-*.jsonl")
	if err != nil || len(segments) == 0 {
		t.Fatalf("audit log: no segments of %s (%v)", path, err)
	}
	var raw []byte
	for _, seg := range segments {
		b, err := os.ReadFile(seg)
		if err != nil {
			t.Fatal(err)
		}
		raw = append(raw, b...)
	}
	decisions := map[string]bool{}
	var events []map[string]any
	for _, line := range bytes.Split(raw, []byte("\n")) {
		var ev map[string]any
		if json.Unmarshal(line, &ev) != nil {
			continue
		}
		if _, ok := ev["gateway"]; ok {
			events = append(events, ev)
		} else if id, _ := ev["decision_id"].(string); id != "" {
			decisions[id] = true
		}
	}
	actions := map[string]int{}
	for _, ev := range events {
		g, _ := ev["gateway"].(map[string]any)
		req, _ := ev["request"].(map[string]any)
		if req["method"] != "tools/call" {
			continue
		}
		actions[fmt.Sprint(g["direction"], "/", g["action"])]++
		id, _ := g["decision_id"].(string)
		if id == "" || !decisions[id] {
			t.Errorf("gateway record %v names decision %q, which is not in the log", g, id)
		}
	}
	for _, want := range []string{"client/forwarded", "client/denied", "server/redacted", "server/forwarded"} {
		if actions[want] == 0 {
			t.Errorf("no tools/call gateway record %s in the audit log (have %v)", want, actions)
		}
	}
	if bytes.Contains(raw, []byte("+49 30 1234567")) {
		for _, line := range bytes.Split(raw, []byte("\n")) {
			if bytes.Contains(line, []byte("+49 30 1234567")) {
				t.Errorf("the audit log holds a redacted phone number: %s", line)
			}
		}
	}
}

// TestGatewayChallenges: without a token, or with one for another
// resource, the gateway answers 401 pointing at its RFC 9728 metadata,
// which names the gateway as the resource; a session belongs to whoever
// started it.
func TestGatewayChallenges(t *testing.T) {
	env := newApprovalsEnv(t)
	crm := newCRMServer()
	upstream := httptest.NewServer(crm.handler(false))
	t.Cleanup(upstream.Close)
	gw := startGateway(t, "--bundle", "data="+env.cfg.Bundles[0].Source,
		"--jwks", env.cfg.Identity.JWT.JWKS, "--jwt-issuer", testIssuer,
		"--server", "crm", "--upstream", upstream.URL, "--resource", testAudience)

	initialize := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`
	post := func(token, sid, body string) (int, http.Header) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, gw.url, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if sid != "" {
			req.Header.Set("Mcp-Session-Id", sid)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return resp.StatusCode, resp.Header
	}
	metadata := `resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp"`
	for _, tc := range []struct {
		name, token, wantErr string
	}{
		{"no token", "", ""},
		{"token for another resource", signRS256(t, "k1", env.keys.k1, claimsAt(time.Now(), "alice", "aud", "https://other.example.com/mcp")), `error="invalid_token"`},
		{"garbage", "not-a-jwt", `error="invalid_token"`},
	} {
		status, header := post(tc.token, "", initialize)
		h := header.Get("WWW-Authenticate")
		if status != http.StatusUnauthorized || !strings.Contains(h, metadata) || !strings.Contains(h, tc.wantErr) {
			t.Errorf("%s: %d %q, want 401 with %s %s", tc.name, status, h, tc.wantErr, metadata)
		}
	}
	resp, err := http.Get(strings.Replace(gw.url, "/mcp", "/.well-known/oauth-protected-resource/mcp", 1))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&doc)
	_ = resp.Body.Close()
	if doc["resource"] != testAudience {
		t.Errorf("metadata = %v, want resource %s", doc, testAudience)
	}

	alice := env.token(t, "alice", "roles", []string{"sales"})
	status, header := post(alice, "", initialize)
	sid := header.Get("Mcp-Session-Id")
	if status != http.StatusOK || sid == "" {
		t.Fatalf("initialize: %d, session %q", status, sid)
	}
	list := `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`
	if status, _ := post(env.token(t, "mallory", "roles", []string{"sales"}), sid, list); status != http.StatusNotFound {
		t.Errorf("another subject on alice's session: %d, want 404", status)
	}
	if status, _ := post(alice, "forged-session", list); status != http.StatusNotFound {
		t.Errorf("a session the gateway never saw: %d, want 404", status)
	}
	if status, _ := post(alice, sid, list); status != http.StatusOK {
		t.Errorf("alice on her session: %d, want 200", status)
	}
}

// nativeError asks the gateway's decision core (over its gRPC listener)
// about a call and returns the JSON-RPC error it carries.
func nativeError(t *testing.T, grpcAddr, sub string, roles []string, call *mcp.CallToolParams) *mcpv1.JsonRpcError {
	t.Helper()
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	params, err := structpb.NewStruct(map[string]any{"name": call.Name, "arguments": call.Arguments})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := mcpv1.NewMCPPolicyClient(conn).Check(context.Background(), &mcpv1.CheckRequest{
		Subject: &mcpv1.Subject{Id: sub, Roles: roles, Tenant: "acme", Clearance: "confidential"},
		Server:  "crm", Method: "tools/call", Params: params,
		Context: &mcpv1.RequestContext{Purpose: "support", Region: "eu"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetJsonrpcError() == nil {
		t.Fatalf("native API allowed %s: want a deny", call.Name)
	}
	return resp.GetJsonrpcError()
}

// approve approves an approval through the admin API as approver.
func approve(t *testing.T, adminAddr, id, approver string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+adminAddr+"/v1/approvals/"+id+"/approve", nil)
	req.Header.Set("Authorization", "Bearer "+approver)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("approve %s: %d %s", id, resp.StatusCode, body)
	}
}

// TestGatewayStdioSDK: the official Go SDK client launches `pdp gateway
// --stdio -- SERVER` as an IDE would, and the wrapped server is enforced as
// over HTTP: the list is filtered, a denied call gets the policy's error, a
// result is redacted, and a destructive call asks for approval and runs
// once approved.
func TestGatewayStdioSDK(t *testing.T) {
	env := newApprovalsEnv(t)
	cmd := exec.Command(os.Args[0], "gateway", "--stdio", "--log-level", "warn",
		"--bundle", "data="+env.cfg.Bundles[0].Source, "--approvals-dir", env.cfg.Approvals.Dir,
		"--jwks", env.cfg.Identity.JWT.JWKS, "--jwt-issuer", testIssuer, "--jwt-audience", testAudience,
		"--server", "crm", "--subject", "carl", "--subject-roles", "sales,crm_admin", "--subject-tenant", "acme",
		"--subject-clearance", "confidential", "--purpose", "support", "--region", "eu",
		"--", "env", "-u", childEnv, serverEnv+"=crm", os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"=1")
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := mcp.NewClient(&mcp.Implementation{Name: "verdict-test", Version: "1.0.0"}, nil)
	session, err := client.Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatalf("launch pdp gateway --stdio: %v\n%s", err, stderr)
	}
	defer func() { _ = session.Close() }()

	tools, err := session.ListTools(ctx, nil)
	if err != nil {
		t.Fatalf("tools/list: %v\n%s", err, stderr)
	}
	var names []string
	for _, tool := range tools.Tools {
		names = append(names, tool.Name)
	}
	if strings.Join(names, ",") != "delete_contact,search_contacts" && strings.Join(names, ",") != "search_contacts,delete_contact" {
		t.Errorf("tools/list = %v, want search_contacts and delete_contact (debug_dump is not in the catalog)", names)
	}
	var rpcErr *jsonrpc.Error
	if _, err := session.CallTool(ctx, &mcp.CallToolParams{Name: "search_contacts", Arguments: map[string]any{"tenant": "globex", "query": "x"}}); !errors.As(err, &rpcErr) || rpcErr.Code != -32001 {
		t.Errorf("call for another tenant: %v, want the policy's -32001", err)
	}
	res, err := session.CallTool(ctx, &mcp.CallToolParams{Name: "search_contacts", Arguments: map[string]any{"tenant": "acme", "query": "smith"}})
	if err != nil {
		t.Fatalf("allowed call: %v", err)
	}
	raw, _ := json.Marshal(res)
	if bytes.Contains(raw, []byte("1234567")) || !bytes.Contains(raw, []byte("[REDACTED]")) {
		t.Errorf("result %s: want the phone redacted", raw)
	}

	del := &mcp.CallToolParams{Name: "delete_contact", Arguments: map[string]any{"tenant": "acme", "id": "7"}}
	_, err = session.CallTool(ctx, del)
	if !errors.As(err, &rpcErr) || rpcErr.Code != mcp.CodeURLElicitationRequired {
		t.Fatalf("destructive call: %v, want URLElicitationRequired", err)
	}
	var data struct {
		Elicitations []mcp.ElicitParams `json:"elicitations"`
	}
	if err := json.Unmarshal(rpcErr.Data, &data); err != nil || len(data.Elicitations) != 1 {
		t.Fatalf("elicitation data %s (%v)", rpcErr.Data, err)
	}
	u, err := url.Parse(data.Elicitations[0].URL)
	if err != nil {
		t.Fatal(err)
	}
	approve(t, u.Host, data.Elicitations[0].ElicitationID, env.token(t, "dana", "roles", []string{"crm_lead"}))
	res, err = session.CallTool(ctx, del)
	if err != nil {
		t.Fatalf("approved call: %v", err)
	}
	if tc, ok := res.Content[0].(*mcp.TextContent); !ok || tc.Text != "deleted 7" {
		t.Errorf("approved call result = %+v", res.Content)
	}
	if err := session.Close(); err != nil {
		t.Errorf("close: %v\n%s", err, stderr)
	}
}
