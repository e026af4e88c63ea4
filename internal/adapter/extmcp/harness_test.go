package extmcp_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/verdictpdp/verdict/internal/adapter/extmcp"
	"github.com/verdictpdp/verdict/internal/adapter/mcpapi"
	"github.com/verdictpdp/verdict/internal/cache"
	"github.com/verdictpdp/verdict/internal/enforce"
	"github.com/verdictpdp/verdict/internal/engine"
	"github.com/verdictpdp/verdict/internal/engine/enginetest"
	"github.com/verdictpdp/verdict/internal/grpcserver"
	"github.com/verdictpdp/verdict/internal/identity"
	"github.com/verdictpdp/verdict/internal/mcp"
	"github.com/verdictpdp/verdict/internal/pipeline"
	"github.com/verdictpdp/verdict/internal/ratelimit"
	agw "github.com/verdictpdp/verdict/proto/agentgateway/dev/ext_mcp"
	mcpv1 "github.com/verdictpdp/verdict/proto/verdict/mcp/v1"
)

const (
	testIssuer   = "https://idp.example.com"
	testAudience = "https://mcp.example.com/mcp"
	// rateLimited is a tool of the test catalog limited to rateLimit calls a
	// minute per subject.
	rateLimited = "get_contact"
	rateLimit   = 3
)

// exampleData is bundles/mcp-example's data, with crm/get_contact limited
// to rateLimit calls a minute.
func exampleData(tb testing.TB) map[string]any {
	tb.Helper()
	raw, err := os.ReadFile("../../../bundles/mcp-example/data.json")
	if err != nil {
		tb.Fatal(err)
	}
	var data map[string]any
	if err := json.Unmarshal(raw, &data); err != nil {
		tb.Fatal(err)
	}
	tools := data["mcp"].(map[string]any)["servers"].(map[string]any)["crm"].(map[string]any)["tools"].(map[string]any)
	tools[rateLimited].(map[string]any)["rate_limit"] = map[string]any{"limit": rateLimit, "period_seconds": 60}
	return data
}

// newEngine serves the MCP library with the test catalog, deciding natively
// unless rego.
func newEngine(tb testing.TB, c *cache.Cache, rego bool) *engine.Engine {
	tb.Helper()
	return enginetest.MCPLibrary(tb, exampleData(tb), c, rego)
}

// env is a gRPC server on loopback serving ExtMcp and the native MCP API on
// one pipeline (rate limits on), with clients of both.
type env struct {
	ext    agw.ExtMcpClient
	native mcpv1.MCPPolicyClient
	keys   *rsa.PrivateKey
	addr   string
}

type envOptions struct {
	cache *cache.Cache
	rego  bool
	ext   extmcp.Options
	// noVerifier runs both APIs without identity.jwt.
	noVerifier bool
}

func startEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	jwksPath := filepath.Join(t.TempDir(), "jwks.json")
	writeJWKS(t, jwksPath, key)
	verifier, err := identity.New(ctx, identity.Config{JWKS: jwksPath, Issuer: testIssuer, Audiences: []string{testAudience}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(verifier.Close)

	limiter := enforce.NewLimiter(ratelimit.NewMemory(ratelimit.MemoryOptions{}), nil)
	pipe := pipeline.New(newEngine(t, o.cache, o.rego), pipeline.Options{Limiter: limiter})
	decider := mcp.NewDecider(pipe, mcp.DefaultPath, false)
	if o.noVerifier {
		verifier = nil
	}
	o.ext.Verifier = verifier
	gs := grpcserver.New(grpcserver.Options{Reflection: true})
	agw.RegisterExtMcpServer(gs.Server, extmcp.NewServer(decider, o.ext))
	mcpv1.RegisterMCPPolicyServer(gs.Server, mcpapi.NewServer(decider, mcpapi.Options{Verifier: verifier}))
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gs.Serve(l) }()
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &env{ext: agw.NewExtMcpClient(conn), native: mcpv1.NewMCPPolicyClient(conn), keys: key, addr: l.Addr().String()}
}

func writeJWKS(t *testing.T, path string, priv *rsa.PrivateKey) {
	t.Helper()
	pub, err := jwk.PublicKeyOf(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	_ = pub.Set(jwk.KeyIDKey, "k1")
	_ = pub.Set(jwk.AlgorithmKey, jwa.RS256())
	set := jwk.NewSet()
	if err := set.AddKey(pub); err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
}

// token signs a token for the subject and claims of s, valid for an hour
// from now (expired when ttl is negative).
func (e *env) token(t *testing.T, s subject, ttl time.Duration) string {
	t.Helper()
	now := time.Now()
	claims := map[string]any{"iss": testIssuer, "aud": testAudience, "iat": now.Add(-2 * time.Hour).Unix(), "exp": now.Add(ttl).Unix()}
	for k, v := range s.claims() {
		claims[k] = v
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	hdr := jws.NewHeaders()
	_ = hdr.Set(jws.KeyIDKey, "k1")
	tok, err := jws.Sign(payload, jws.WithKey(jwa.RS256(), e.keys, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatal(err)
	}
	return string(tok)
}

// subject is who a call is made for.
type subject struct {
	id, tenant, clearance string
	roles, groups, scopes []string
}

var (
	alice  = subject{id: "alice", tenant: "acme", clearance: "confidential", roles: []string{"sales"}}
	admin  = subject{id: "carol", tenant: "acme", clearance: "confidential", roles: []string{"crm_admin"}}
	nobody = subject{}
)

func (s subject) claims() map[string]any {
	if s.id == "" {
		return nil
	}
	list := func(ss []string) []any {
		out := make([]any, len(ss))
		for i, s := range ss {
			out[i] = s
		}
		return out
	}
	c := map[string]any{"sub": s.id, "tenant": s.tenant, "clearance": s.clearance, "roles": list(s.roles), "groups": list(s.groups)}
	if len(s.scopes) > 0 {
		c["scope"] = strings.Join(s.scopes, " ")
	}
	return c
}

// call is one MCP request, as each API carries it.
type call struct {
	server, method string
	params         map[string]any // nil: no params
	who            subject
	// token sends the subject as a bearer token (the native API's
	// bearer_token, the Authorization header over ExtMcp) instead of as the
	// gateway's assertion (the native subject, metadata_context.jwt).
	token           string
	purpose, region string
	session         string
}

func (c call) extRequest(t testing.TB) *agw.McpRequest {
	t.Helper()
	req := &agw.McpRequest{ServiceNames: []string{c.server}, Method: c.method}
	if c.params != nil {
		raw, err := json.Marshal(c.params)
		if err != nil {
			t.Fatal(err)
		}
		req.McpRequest = raw
	}
	md := map[string]any{}
	if cl := c.who.claims(); cl != nil && c.token == "" {
		md["jwt"] = cl
	}
	if c.purpose != "" {
		md["purpose"] = c.purpose
	}
	if c.region != "" {
		md["region"] = c.region
	}
	req.MetadataContext = mustStruct(t, md)
	if c.token != "" {
		req.Headers = append(req.Headers, &agw.McpHeader{Key: "authorization", Value: []byte("Bearer " + c.token)})
	}
	if c.session != "" {
		req.Headers = append(req.Headers, &agw.McpHeader{Key: "mcp-session-id", Value: []byte(c.session)})
	}
	return req
}

func (c call) nativeRequest(t testing.TB) *mcpv1.CheckRequest {
	t.Helper()
	req := &mcpv1.CheckRequest{Server: c.server, Method: c.method, SessionId: c.session,
		Context: &mcpv1.RequestContext{Purpose: c.purpose, Region: c.region}}
	if c.params != nil {
		req.Params = mustStruct(t, c.params)
	}
	switch {
	case c.token != "":
		req.BearerToken = c.token
	case c.who.id != "":
		req.Subject = &mcpv1.Subject{Id: c.who.id, Roles: c.who.roles, Groups: c.who.groups, Scopes: c.who.scopes, Tenant: c.who.tenant, Clearance: c.who.clearance,
			Claims: mustStruct(t, c.who.claims())}
	}
	return req
}

func mustStruct(t testing.TB, m map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rpcError decodes an AuthorizationError's mcp_error.
func rpcError(t testing.TB, e *agw.AuthorizationError) mcp.ErrorObject {
	t.Helper()
	var obj mcp.ErrorObject
	if err := json.Unmarshal(e.GetMcpError(), &obj); err != nil {
		t.Fatalf("mcp_error is not a JSON-RPC error object: %v (%q)", err, e.GetMcpError())
	}
	return obj
}

func timeout(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}
