package app_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/verdictpdp/verdict/internal/bundle/bundletest"
	"github.com/verdictpdp/verdict/internal/config"
	mcpv1 "github.com/verdictpdp/verdict/proto/verdict/mcp/v1"
)

const (
	testIssuer           = "https://idp.example.com"
	testAudience         = "https://mcp.example.com/mcp"
	testResourceMetadata = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
)

// identityPolicy echoes what the service verified: the subject's id and the
// reason it is unauthenticated, as headers of the answer. /admin needs the
// admin scope (step-up); /limited allows two requests a minute per subject.
const identityPolicy = `package envoy.authz

needs_admin if startswith(input.normalized_path, "/admin")

limited if startswith(input.normalized_path, "/limited")

default allowed := false

allowed if {
	input.subject.authenticated
	not needs_admin
}

allowed if {
	input.subject.authenticated
	"admin" in input.subject.scopes
}

headers := {
	"x-subject": object.get(input.subject, "id", ""),
	"x-auth-error": object.get(input.subject, ["error", "code"], ""),
	"x-email": object.get(input, ["verified_claims", "email"], ""),
}

extra["required_scopes"] := ["admin"] if needs_admin

extra["rate_limit"] := {"key": input.subject.id, "limit": 2, "period_seconds": 60} if limited

allow := object.union({"allowed": allowed, "headers": headers}, extra)
`

// mcpIdentityPolicy allows authenticated subjects, asks for crm:export to
// call export_contacts, and limits each subject to three calls of a tool a
// minute.
const mcpIdentityPolicy = `package verdict.mcp

default allow := false

allow if {
	input.subject.authenticated
	not needs_scope
}

needs_scope if {
	input.tool.name == "export_contacts"
	not "crm:export" in input.subject.scopes
}

reasons := [] if allow

reasons := [{"code": "subject.unauthenticated", "message": object.get(input.subject, ["error", "message"], "no subject")}] if not input.subject.authenticated

reasons := [{"code": "scope.insufficient", "message": "export_contacts needs crm:export"}] if {
	input.subject.authenticated
	needs_scope
}

decision := {
	"allow": allow,
	"reasons": reasons,
	"required_scopes": ["crm:export"],
	"obligations": {
		"labels": {"subject": input.subject.id, "source": object.get(input.subject, "source", "")},
		"rate_limit": {"key": concat(":", [input.subject.id, input.tool.name]), "limit": 3, "period_seconds": 60},
	},
} if input.tool.name

decision := {"allow": allow, "reasons": reasons} if not input.tool.name
`

// tokenKeys are the identity provider's signing keys, generated per run.
type tokenKeys struct {
	k1, k2 *rsa.PrivateKey
}

func newTokenKeys(t *testing.T) tokenKeys {
	t.Helper()
	var k tokenKeys
	for _, p := range []**rsa.PrivateKey{&k.k1, &k.k2} {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		*p = key
	}
	return k
}

// writeJWKS writes the public keys as a JWKS file, atomically.
func writeJWKS(t *testing.T, path string, keys map[string]*rsa.PrivateKey) {
	t.Helper()
	set := jwk.NewSet()
	for kid, priv := range keys {
		pub, err := jwk.PublicKeyOf(priv.Public())
		if err != nil {
			t.Fatal(err)
		}
		_ = pub.Set(jwk.KeyIDKey, kid)
		_ = pub.Set(jwk.AlgorithmKey, jwa.RS256())
		if err := set.AddKey(pub); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// claimsAt are the claims of a token valid at now for subject sub.
func claimsAt(now time.Time, sub string, extra ...any) map[string]any {
	c := map[string]any{
		"iss": testIssuer, "aud": testAudience, "sub": sub,
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		"email": sub + "@example.com", "scope": "tools:read",
	}
	for i := 0; i+1 < len(extra); i += 2 {
		c[extra[i].(string)] = extra[i+1]
	}
	return c
}

func signRS256(t *testing.T, kid string, priv *rsa.PrivateKey, claims map[string]any) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	hdr := jws.NewHeaders()
	_ = hdr.Set(jws.KeyIDKey, kid)
	_ = hdr.Set(jws.TypeKey, "JWT")
	tok, err := jws.Sign(payload, jws.WithKey(jwa.RS256(), priv, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatal(err)
	}
	return string(tok)
}

// hs256WithPublicKey is the algorithm-confusion attack: an HMAC token whose
// secret is the RSA public key a careless verifier would use as one.
func hs256WithPublicKey(t *testing.T, kid string, priv *rsa.PrivateKey, claims map[string]any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	secret := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	payload, _ := json.Marshal(claims)
	hdr := jws.NewHeaders()
	_ = hdr.Set(jws.KeyIDKey, kid)
	tok, err := jws.Sign(payload, jws.WithKey(jwa.HS256(), secret, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatal(err)
	}
	return string(tok)
}

func algNone(claims map[string]any) string {
	enc := base64.RawURLEncoding
	payload, _ := json.Marshal(claims)
	return enc.EncodeToString([]byte(`{"alg":"none","typ":"JWT","kid":"k1"}`)) + "." + enc.EncodeToString(payload) + "."
}

// tampered swaps the payload of a validly signed token.
func tampered(token string, claims map[string]any) string {
	parts := strings.Split(token, ".")
	payload, _ := json.Marshal(claims)
	parts[1] = base64.RawURLEncoding.EncodeToString(payload)
	return strings.Join(parts, ".")
}

// startIdentityPDP serves the identity policies with bearer tokens verified
// against the JWKS file at jwksPath.
func startIdentityPDP(t *testing.T, jwksPath string) *pdp {
	t.Helper()
	dir := bundletest.WriteDir(t, t.TempDir(), bundletest.Spec{
		Revision: "identity-1",
		Modules:  map[string]string{"envoy.rego": identityPolicy, "mcp.rego": mcpIdentityPolicy},
	})
	cfg := config.Default()
	cfg.Bundles = []config.Bundle{{Name: "identity", Source: dir}}
	lib := false
	cfg.Library = &lib
	cfg.Identity.JWT = config.JWT{
		JWKS: jwksPath, Issuer: testIssuer, Audiences: []string{testAudience},
		MinRefreshInterval: config.Duration(50 * time.Millisecond),
	}
	cfg.Identity.ResourceMetadata = testResourceMetadata
	return startPDP(t, cfg)
}

func envoyRequest(path, authorization string) *authv3.CheckRequest {
	h := map[string]string{":path": path, ":method": "GET"}
	if authorization != "" {
		h["authorization"] = authorization
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: path, Host: "mcp.example.com", Headers: h},
	}}}
}

// answer is what Envoy does with a CheckResponse, flattened for tables.
type answer struct {
	allowed bool
	status  int
	headers map[string]string
}

func flatten(resp *authv3.CheckResponse) answer {
	a := answer{allowed: resp.GetStatus().GetCode() == int32(code.Code_OK), headers: map[string]string{}}
	if d := resp.GetDeniedResponse(); d != nil {
		a.status = int(d.GetStatus().GetCode())
		for _, h := range d.GetHeaders() {
			a.headers[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
		}
	}
	if ok := resp.GetOkResponse(); ok != nil {
		a.status = 200
		for _, h := range ok.GetHeaders() {
			a.headers[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
		}
		for _, h := range ok.GetResponseHeadersToAdd() {
			a.headers["response:"+h.GetHeader().GetKey()] = h.GetHeader().GetValue()
		}
	}
	return a
}

// TestVerifiedIdentityOverExtAuthz sends real signed tokens through a real
// ext_authz client: each gets the expected subject, or an unauthenticated
// subject with the reason, and a 401 challenge naming the metadata.
//
//nolint:tparallel // the subtests run in order: rotation follows the unknown kid, limits count up
func TestVerifiedIdentityOverExtAuthz(t *testing.T) {
	t.Parallel()
	keys := newTokenKeys(t)
	jwksPath := filepath.Join(t.TempDir(), "jwks.json")
	writeJWKS(t, jwksPath, map[string]*rsa.PrivateKey{"k1": keys.k1})
	p := startIdentityPDP(t, jwksPath)
	client := authv3.NewAuthorizationClient(p.dial(t))
	check := func(t *testing.T, path, authorization string) answer {
		t.Helper()
		resp, err := client.Check(context.Background(), envoyRequest(path, authorization))
		if err != nil {
			t.Fatal(err)
		}
		return flatten(resp)
	}

	now := time.Now()
	valid := signRS256(t, "k1", keys.k1, claimsAt(now, "alice"))
	invalidToken := `Bearer error="invalid_token", resource_metadata="` + testResourceMetadata + `"`
	for _, tc := range []struct {
		name, token, wantSubject, wantError string
	}{
		{"valid", valid, "alice", ""},
		{"expired", signRS256(t, "k1", keys.k1, claimsAt(now.Add(-2*time.Hour), "alice")), "", "token_expired"},
		{"not yet valid", signRS256(t, "k1", keys.k1, claimsAt(now.Add(time.Hour), "alice", "iat", now.Unix())), "", "token_not_yet_valid"},
		{"wrong issuer", signRS256(t, "k1", keys.k1, claimsAt(now, "alice", "iss", "https://evil.example.com")), "", "issuer_mismatch"},
		{"wrong audience", signRS256(t, "k1", keys.k1, claimsAt(now, "alice", "aud", "https://other-api.example.com")), "", "audience_mismatch"},
		{"alg none", algNone(claimsAt(now, "alice")), "", "algorithm_not_allowed"},
		{"HS256 signed with the RSA public key", hs256WithPublicKey(t, "k1", keys.k1, claimsAt(now, "alice")), "", "algorithm_not_allowed"},
		{"tampered payload", tampered(valid, claimsAt(now, "mallory")), "", "invalid_signature"},
		{"unknown kid", signRS256(t, "k2", keys.k2, claimsAt(now, "bob")), "", "unknown_key"},
		{"garbage", "not.a.jwt", "", "token_malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := check(t, "/docs", "Bearer "+tc.token)
			if a.headers["x-subject"] != tc.wantSubject || a.headers["x-auth-error"] != tc.wantError {
				t.Fatalf("subject %q, error %q; want %q, %q", a.headers["x-subject"], a.headers["x-auth-error"], tc.wantSubject, tc.wantError)
			}
			if tc.wantError == "" {
				if !a.allowed || a.headers["x-email"] != "alice@example.com" {
					t.Fatalf("valid token: %+v", a)
				}
				return
			}
			if a.allowed || a.status != 401 || !strings.HasPrefix(a.headers["www-authenticate"], invalidToken) {
				t.Fatalf("invalid token answered %+v, want 401 with %s", a, invalidToken)
			}
			if strings.Contains(a.headers["www-authenticate"], tc.token) {
				t.Fatal("the challenge quotes the token")
			}
		})
	}

	t.Run("missing token", func(t *testing.T) {
		a := check(t, "/docs", "")
		if a.allowed || a.status != 401 || a.headers["www-authenticate"] != `Bearer resource_metadata="`+testResourceMetadata+`"` || a.headers["x-auth-error"] != "token_missing" {
			t.Fatalf("no token: %+v", a)
		}
	})
	t.Run("step-up", func(t *testing.T) {
		a := check(t, "/public/../admin/users", "Bearer "+valid)
		want := `Bearer error="insufficient_scope", scope="admin", resource_metadata="` + testResourceMetadata + `"`
		if a.allowed || a.status != 403 || a.headers["www-authenticate"] != want {
			t.Fatalf("admin without scope: %+v, want 403 %s", a, want)
		}
		admin := signRS256(t, "k1", keys.k1, claimsAt(now, "alice", "scope", "tools:read admin"))
		if a := check(t, "/admin/users", "Bearer "+admin); !a.allowed {
			t.Fatalf("admin scope: %+v", a)
		}
	})
	t.Run("rotated JWKS without restart", func(t *testing.T) {
		rotated := signRS256(t, "k2", keys.k2, claimsAt(now, "bob"))
		writeJWKS(t, jwksPath, map[string]*rsa.PrivateKey{"k1": keys.k1, "k2": keys.k2})
		deadline := time.Now().Add(10 * time.Second)
		for {
			a := check(t, "/docs", "Bearer "+rotated)
			if a.allowed && a.headers["x-subject"] == "bob" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("rotated key never accepted: %+v", a)
			}
			time.Sleep(60 * time.Millisecond)
		}
	})
	t.Run("rate limit", func(t *testing.T) {
		carol := "Bearer " + signRS256(t, "k1", keys.k1, claimsAt(now, "carol"))
		dave := "Bearer " + signRS256(t, "k1", keys.k1, claimsAt(now, "dave"))
		for i := range 2 {
			a := check(t, "/limited", carol)
			if !a.allowed || a.headers["response:x-ratelimit-limit"] != "2" || a.headers["response:x-ratelimit-remaining"] != strconv.Itoa(1-i) {
				t.Fatalf("call %d: %+v", i+1, a)
			}
		}
		a := check(t, "/limited", carol)
		if a.allowed || a.status != 429 || a.headers["retry-after"] != "30" || a.headers["x-ratelimit-remaining"] != "0" {
			t.Fatalf("third call: %+v, want 429 with retry-after 30", a)
		}
		if a := check(t, "/limited", dave); !a.allowed {
			t.Fatalf("another subject was limited: %+v", a)
		}
	})
	st := getStatus(t, p)
	if st.Identity == nil || st.Identity.Verified == 0 || st.Identity.Refused["token_expired"] == 0 || st.Identity.KeysLoaded != 2 {
		t.Errorf("identity status: %+v", st.Identity)
	}
}

func mcpCall(tool, token string, subject *mcpv1.Subject) *mcpv1.CheckRequest {
	params, _ := structpb.NewStruct(map[string]any{"name": tool, "arguments": map[string]any{}})
	return &mcpv1.CheckRequest{Server: "crm", Method: "tools/call", Params: params, BearerToken: token, Subject: subject}
}

// TestVerifiedIdentityNativeMCP verifies bearer tokens sent to the native
// API and returns the challenge and rate limit status a gateway needs.
func TestVerifiedIdentityNativeMCP(t *testing.T) {
	t.Parallel()
	keys := newTokenKeys(t)
	jwksPath := filepath.Join(t.TempDir(), "jwks.json")
	writeJWKS(t, jwksPath, map[string]*rsa.PrivateKey{"k1": keys.k1})
	p := startIdentityPDP(t, jwksPath)
	client := mcpv1.NewMCPPolicyClient(p.dial(t))
	ctx := context.Background()
	now := time.Now()
	alice := signRS256(t, "k1", keys.k1, claimsAt(now, "alice"))

	resp, err := client.Check(ctx, mcpCall("search", alice, nil))
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetDecision() != mcpv1.Decision_DECISION_ALLOW || resp.GetObligations().GetLabels()["subject"] != "alice" ||
		resp.GetObligations().GetLabels()["source"] != "token" || resp.GetRateLimitStatus().GetRemaining() != 2 {
		t.Fatalf("valid token: %v", resp)
	}

	expired := signRS256(t, "k1", keys.k1, claimsAt(now.Add(-2*time.Hour), "alice"))
	resp, err = client.Check(ctx, mcpCall("search", expired, nil))
	if err != nil {
		t.Fatal(err)
	}
	ch := resp.GetChallenge()
	if resp.GetDecision() != mcpv1.Decision_DECISION_DENY || ch.GetHttpStatus() != 401 || ch.GetError() != "invalid_token" ||
		!strings.Contains(ch.GetWwwAuthenticate(), `resource_metadata="`+testResourceMetadata+`"`) {
		t.Fatalf("expired token: %v", resp)
	}

	resp, err = client.Check(ctx, mcpCall("export_contacts", alice, nil))
	if err != nil {
		t.Fatal(err)
	}
	ch = resp.GetChallenge()
	if resp.GetDecision() != mcpv1.Decision_DECISION_DENY || ch.GetHttpStatus() != 403 || ch.GetError() != "insufficient_scope" ||
		len(ch.GetScopes()) != 1 || ch.GetScopes()[0] != "crm:export" {
		t.Fatalf("step-up: %v", resp)
	}

	if _, err := client.Check(ctx, mcpCall("search", alice, &mcpv1.Subject{Id: "admin"})); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("subject and token together: %v, want InvalidArgument", err)
	}

	// A gateway-asserted subject is still accepted, marked as such.
	resp, err = client.Check(ctx, mcpCall("lookup", "", &mcpv1.Subject{Id: "svc"}))
	if err != nil || resp.GetObligations().GetLabels()["source"] != "gateway" {
		t.Fatalf("gateway subject: %v %v", resp, err)
	}
}

// limitConfig serves the identity policies (a rate limit of 3 a minute
// per subject and tool on MCP calls) with verified tokens.
func limitConfig(t *testing.T) (config.Config, tokenKeys) {
	t.Helper()
	keys := newTokenKeys(t)
	jwksPath := filepath.Join(t.TempDir(), "jwks.json")
	writeJWKS(t, jwksPath, map[string]*rsa.PrivateKey{"k1": keys.k1})
	dir := bundletest.WriteDir(t, t.TempDir(), bundletest.Spec{
		Revision: "identity-1",
		Modules:  map[string]string{"envoy.rego": identityPolicy, "mcp.rego": mcpIdentityPolicy},
	})
	cfg := config.Default()
	cfg.Bundles = []config.Bundle{{Name: "identity", Source: dir}}
	lib := false
	cfg.Library = &lib
	cfg.Identity.JWT = config.JWT{JWKS: jwksPath, Issuer: testIssuer, Audiences: []string{testAudience}}
	return cfg, keys
}

// TestRateLimitNativeMCP drives the limit through a real gRPC server: the
// fourth call in the minute is refused with retry-after, other keys are not
// affected, and the store stays within its bound however many keys come.
func TestRateLimitNativeMCP(t *testing.T) {
	t.Parallel()
	cfg, keys := limitConfig(t)
	cfg.RateLimit.MaxKeys = 512
	p := startPDP(t, cfg)
	client := mcpv1.NewMCPPolicyClient(p.dial(t))
	ctx := context.Background()
	now := time.Now()
	alice := signRS256(t, "k1", keys.k1, claimsAt(now, "alice"))
	bob := signRS256(t, "k1", keys.k1, claimsAt(now, "bob"))

	for i := range 3 {
		resp, err := client.Check(ctx, mcpCall("search", alice, nil))
		if err != nil || resp.GetDecision() != mcpv1.Decision_DECISION_ALLOW || resp.GetRateLimitStatus().GetRemaining() != int64(2-i) {
			t.Fatalf("call %d: %v %v", i+1, resp, err)
		}
	}
	resp, err := client.Check(ctx, mcpCall("search", alice, nil))
	if err != nil {
		t.Fatal(err)
	}
	rl := resp.GetRateLimitStatus()
	if resp.GetDecision() != mcpv1.Decision_DECISION_DENY || len(resp.GetReasons()) != 1 || resp.GetReasons()[0].GetCode() != "rate_limited" ||
		rl.GetRetryAfter().AsDuration() <= 0 || rl.GetRetryAfter().AsDuration() > 20*time.Second || rl.GetRemaining() != 0 {
		t.Fatalf("fourth call: %v", resp)
	}
	if d := resp.GetJsonrpcError().GetData().GetFields()["retry_after_seconds"].GetNumberValue(); d < 1 || d > 20 {
		t.Fatalf("JSON-RPC error without retry_after_seconds: %v", resp.GetJsonrpcError())
	}
	metrics := scrape(t, p)
	if !strings.Contains(metrics, `verdict_rate_limited_total{entrypoint="verdict/mcp/decision"} 1`) {
		t.Error("the refusal is not counted in verdict_rate_limited_total")
	}
	// Other keys: another tool for alice, the same tool for bob.
	for _, c := range []*mcpv1.CheckRequest{mcpCall("lookup", alice, nil), mcpCall("search", bob, nil)} {
		if resp, err := client.Check(ctx, c); err != nil || resp.GetDecision() != mcpv1.Decision_DECISION_ALLOW {
			t.Fatalf("independent key refused: %v %v", resp, err)
		}
	}

	// Thousands of distinct keys (tool names are the caller's to choose):
	// the store keeps at most max_keys.
	n := 3000
	if testing.Short() {
		n = 1000
	}
	for i := range n {
		if _, err := client.Check(ctx, mcpCall("tool-"+strconv.Itoa(i), alice, nil)); err != nil {
			t.Fatal(err)
		}
	}
	st := getStatus(t, p).RateLimit
	if st == nil || st.Keys > 512 || st.Evicted == 0 {
		t.Fatalf("rate limit store after %d keys: %+v, want at most 512 keys", n, st)
	}
}

func scrape(t *testing.T, p *pdp) string {
	t.Helper()
	resp, err := http.Get("http://" + p.httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}
