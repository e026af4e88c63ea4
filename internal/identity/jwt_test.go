package identity

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
)

// standardJWKS holds rsa-1 (no alg), ec-1 (alg ES256), ed-1 (no alg) and
// rsa-ps: rsa-1's key material declared for PS256 only.
func standardJWKS(t testing.TB) []byte {
	t.Helper()
	k := keys(t)
	return jwksJSON(t,
		k.rsa.publicJWK(t, ""),
		k.ec.publicJWK(t, "ES256"),
		k.ed.publicJWK(t, ""),
		k.rsa.withKid("rsa-ps").publicJWK(t, "PS256"),
	)
}

// tamper replaces the payload of a signed token, keeping its signature.
func tamper(t *testing.T, token string, payload claims) string {
	t.Helper()
	parts := strings.Split(token, ".")
	raw, err := json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	parts[1] = base64.RawURLEncoding.EncodeToString(raw)
	return strings.Join(parts, ".")
}

// flipTrailingBits rewrites the last character of the signature segment
// so that it decodes to the same bytes with non-zero padding bits.
func flipTrailingBits(t *testing.T, token string) string {
	t.Helper()
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.LastIndexByte(token, '.')
	sig := token[i+1:]
	if len(sig)%4 == 0 {
		t.Fatal("signature has no unused bits")
	}
	last := strings.IndexByte(alphabet, sig[len(sig)-1])
	return token[:len(token)-1] + string(alphabet[last|1])
}

func TestVerify(t *testing.T) {
	t.Parallel()
	k := keys(t)
	env := newFileEnv(t, standardJWKS(t), nil)
	now := testBase
	base := validClaims(now)
	rsaPub := k.rsa.priv.Public()
	der, err := x509.MarshalPKIXPublicKey(rsaPub)
	if err != nil {
		t.Fatal(err)
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	pkcs1PEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(rsaPub.(*rsa.PublicKey))})
	noneHeader := map[string]any{"alg": "none", "typ": "JWT"}
	valid := sign(t, k.rsa, base)

	tests := []struct {
		name  string
		token string
		code  string // "" when the token is valid
		check func(t *testing.T, r Result)
	}{
		{
			name: "RS256 valid with scope, roles and groups",
			token: sign(t, k.rsa, base.with(
				"scope", "read write read", "roles", []any{"admin", "dev", 7}, "groups", "g1 g2",
				"tenant", "acme", "clearance", "secret", "nested", map[string]any{"b": 1, "a": []any{true, nil}},
				"big", json.Number("12345678901234567890"),
			)),
			check: func(t *testing.T, r Result) {
				t.Helper()
				want := Result{
					Authenticated: true, Subject: "alice",
					Scopes: []string{"read", "write"}, Roles: []string{"admin", "dev"}, Groups: []string{"g1", "g2"},
					Tenant: "acme", Clearance: "secret", ExpiresAt: now.Add(time.Hour),
				}
				got := r
				got.Claims, got.ClaimsJSON = nil, nil
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("result (-want +got):\n%s", diff)
				}
				if r.Claims["exp"] != json.Number(fmt.Sprint(now.Add(time.Hour).Unix())) {
					t.Errorf("exp claim = %#v, want NumericDate seconds as json.Number", r.Claims["exp"])
				}
				if r.Claims["big"] != json.Number("12345678901234567890") {
					t.Errorf("big claim = %#v, want the exact number", r.Claims["big"])
				}
				wantJSON := fmt.Sprintf(`{"aud":%q,"big":12345678901234567890,"clearance":"secret","exp":%d,"groups":"g1 g2","iat":%d,"iss":%q,"nested":{"a":[true,null],"b":1},"roles":["admin","dev",7],"scope":"read write read","sub":"alice","tenant":"acme"}`,
					testAudience, now.Add(time.Hour).Unix(), now.Unix(), testIssuer)
				if string(r.ClaimsJSON) != wantJSON {
					t.Errorf("ClaimsJSON =\n%s\nwant\n%s", r.ClaimsJSON, wantJSON)
				}
			},
		},
		{
			name:  "ES256 valid with scp list",
			token: sign(t, k.ec, base.with("scp", []any{"a", "b"}, "sub", "svc")),
			check: func(t *testing.T, r Result) {
				t.Helper()
				if r.Subject != "svc" || !slices.Equal(r.Scopes, []string{"a", "b"}) {
					t.Errorf("subject %q scopes %q", r.Subject, r.Scopes)
				}
			},
		},
		{
			name:  "EdDSA valid with scope and scp strings merged",
			token: sign(t, k.ed, base.with("scope", "a", "scp", "b a", "roles", "r1 r2")),
			check: func(t *testing.T, r Result) {
				t.Helper()
				if !slices.Equal(r.Scopes, []string{"a", "b"}) || !slices.Equal(r.Roles, []string{"r1", "r2"}) {
					t.Errorf("scopes %q roles %q", r.Scopes, r.Roles)
				}
			},
		},
		{name: "PS256 with a JWK declaring PS256", token: sign(t, k.rsa.withKid("rsa-ps").withAlg(jwa.PS256()), base)},
		{name: "expired", token: sign(t, k.rsa, base.with("exp", now.Add(-time.Minute).Unix())), code: CodeTokenExpired},
		{name: "expired within leeway", token: sign(t, k.rsa, base.with("exp", now.Add(-10*time.Second).Unix()))},
		{name: "not yet valid", token: sign(t, k.rsa, base.with("nbf", now.Add(2*time.Minute).Unix())), code: CodeTokenNotYetValid},
		{name: "nbf within leeway", token: sign(t, k.rsa, base.with("nbf", now.Add(10*time.Second).Unix()))},
		{name: "issued in the future", token: sign(t, k.rsa, base.with("iat", now.Add(2*time.Minute).Unix())), code: CodeTokenIssuedInFuture},
		{name: "exp missing", token: sign(t, k.rsa, base.with("exp", remove)), code: CodeTokenMalformed,
			check: func(t *testing.T, r Result) {
				t.Helper()
				if r.Err.Message != "exp is required" {
					t.Errorf("message %q", r.Err.Message)
				}
			}},
		{name: "exp not a number", token: sign(t, k.rsa, base.with("exp", "tomorrow")), code: CodeTokenMalformed},
		{name: "wrong issuer", token: sign(t, k.rsa, base.with("iss", "https://evil.example")), code: CodeIssuerMismatch},
		{name: "issuer missing", token: sign(t, k.rsa, base.with("iss", remove)), code: CodeIssuerMismatch},
		{name: "wrong audience", token: sign(t, k.rsa, base.with("aud", "https://other.example")), code: CodeAudienceMismatch},
		{name: "audience missing", token: sign(t, k.rsa, base.with("aud", remove)), code: CodeAudienceMismatch},
		{name: "audience list containing ours", token: sign(t, k.rsa, base.with("aud", []any{"https://other.example", testAudience2}))},
		{name: "no sub", token: sign(t, k.rsa, base.with("sub", remove)), code: CodeSubjectMissing},
		{name: "empty sub", token: sign(t, k.rsa, base.with("sub", "")), code: CodeSubjectMissing},
		{name: "alg none", token: handToken(t, noneHeader, base, nil), code: CodeAlgorithmNotAllowed},
		{name: "alg none with kid", token: handToken(t, map[string]any{"alg": "none", "kid": "rsa-1"}, base, nil), code: CodeAlgorithmNotAllowed},
		{name: "alg NONE", token: handToken(t, map[string]any{"alg": "NONE"}, base, nil), code: CodeAlgorithmNotAllowed},
		{name: "alg missing", token: handToken(t, map[string]any{"kid": "rsa-1"}, base, nil), code: CodeAlgorithmNotAllowed},
		{name: "alg unknown", token: handToken(t, map[string]any{"alg": "XS999", "kid": "rsa-1"}, base, func([]byte) []byte { return []byte("sig") }), code: CodeAlgorithmNotAllowed},
		{name: "HS256 keyed with the RSA public key PEM", token: handToken(t, map[string]any{"alg": "HS256", "kid": "rsa-1", "typ": "JWT"}, base, hmacSHA256(pemBytes)), code: CodeAlgorithmNotAllowed},
		{name: "HS256 keyed with the RSA public key PKCS#1 PEM", token: handToken(t, map[string]any{"alg": "HS256", "kid": "rsa-1"}, base, hmacSHA256(pkcs1PEM)), code: CodeAlgorithmNotAllowed},
		{name: "HS256 keyed with the RSA public key DER", token: handToken(t, map[string]any{"alg": "HS256", "kid": "rsa-1"}, base, hmacSHA256(der)), code: CodeAlgorithmNotAllowed},
		{name: "ES256 header naming an RSA kid", token: sign(t, k.ec.withKid("rsa-1"), base), code: CodeAlgorithmNotAllowed},
		{name: "RS256 against a JWK declaring PS256", token: sign(t, k.rsa.withKid("rsa-ps"), base), code: CodeAlgorithmNotAllowed},
		{name: "tampered payload", token: tamper(t, valid, base.with("sub", "mallory")), code: CodeInvalidSignature},
		{name: "different key, same kid", token: sign(t, k.rsa2.withKid("rsa-1"), base), code: CodeInvalidSignature},
		{name: "no kid, known key", token: sign(t, k.rsa.withKid(""), base)},
		{name: "no kid, unknown key", token: sign(t, k.rsa2.withKid(""), base), code: CodeInvalidSignature},
		{name: "unknown kid", token: sign(t, k.rsa2, base), code: CodeUnknownKey},
		{name: "crit header", token: sign(t, k.rsa, base, "crit", []string{"exp"}, "exp", 1), code: CodeTokenMalformed},
		{name: "signature with non-canonical trailing bits", token: flipTrailingBits(t, valid), code: CodeTokenMalformed},
		{name: "padded segment", token: valid + "=", code: CodeTokenMalformed},
		{name: "payload not JSON", token: sign(t, k.rsa, "not an object"), code: CodeTokenMalformed},
		{name: "payload a JSON array", token: sign(t, k.rsa, []any{1, 2}), code: CodeTokenMalformed},
		{name: "empty", token: "", code: CodeTokenMissing},
		{name: "oversized", token: valid + strings.Repeat("A", 8192), code: CodeTokenTooLarge},
		{name: "garbage", token: "garbage", code: CodeTokenMalformed},
		{name: "two segments", token: "eyJhbGciOiJSUzI1NiJ9.e30", code: CodeTokenMalformed},
		{name: "four segments", token: valid + ".AAAA", code: CodeTokenMalformed},
		{name: "dots only", token: "..", code: CodeTokenMalformed},
		{name: "empty payload", token: "eyJhbGciOiJSUzI1NiJ9..c2ln", code: CodeTokenMalformed},
		{name: "header not JSON", token: "bm90IGpzb24.e30.c2ln", code: CodeTokenMalformed},
		{name: "standard base64 alphabet", token: strings.ReplaceAll(strings.ReplaceAll(valid, "-", "+"), "_", "/") + "+/", code: CodeTokenMalformed},
		{name: "spaces", token: "a b.c d.e f", code: CodeTokenMalformed},
		{name: "bearer prefix left in", token: "Bearer " + valid, code: CodeTokenMalformed},
		{name: "JSON serialization", token: `{"payload":"e30","signatures":[{"protected":"eyJhbGciOiJSUzI1NiJ9","signature":"c2ln"}]}`, code: CodeTokenMalformed},
		{name: "binary", token: "\x00\xff\xfe.\x01.\x02", code: CodeTokenMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := env.v.Verify(context.Background(), tc.token)
			checkResult(t, r, tc.token, tc.code)
			if tc.check != nil {
				tc.check(t, r)
			}
		})
	}
	t.Cleanup(func() { assertNoTokenLeak(t, "logs", env.logs.String(), valid) })
}

// checkResult asserts the outcome of a Verify call.
func checkResult(t *testing.T, r Result, token, code string) {
	t.Helper()
	if code == "" {
		if !r.Authenticated || r.Err != nil {
			t.Fatalf("want authenticated, got %+v", r.Err)
		}
		return
	}
	if r.Authenticated {
		t.Fatalf("want refusal %s, got authenticated", code)
	}
	if r.Err == nil {
		t.Fatalf("want refusal %s, got no error", code)
	}
	if r.Err.Code != code {
		t.Fatalf("code = %s (%s), want %s", r.Err.Code, r.Err.Message, code)
	}
	if r.Err.Message == "" {
		t.Error("empty message")
	}
	assertNoTokenLeak(t, "message", r.Err.Message, token)
	if r.Subject != "" || r.Claims != nil {
		t.Error("a refused result carries identity")
	}
}

func TestVerifyAlgorithmAllowList(t *testing.T) {
	t.Parallel()
	k := keys(t)
	env := newFileEnv(t, standardJWKS(t), func(c *Config) { c.Algorithms = []string{"ES256"} })
	base := validClaims(testBase)
	checkResult(t, env.v.Verify(context.Background(), sign(t, k.rsa, base)), "", CodeAlgorithmNotAllowed)
	checkResult(t, env.v.Verify(context.Background(), sign(t, k.ec, base)), "", "")
}

func TestVerifyRotatedFileWithoutRestart(t *testing.T) {
	t.Parallel()
	k := keys(t)
	env := newFileEnv(t, jwksJSON(t, k.rsa.publicJWK(t, "")), nil)
	rotated := sign(t, k.rsa2, validClaims(testBase))

	// The file still has the same stamp as far as the once-a-second check is
	// concerned (the clock is frozen): only the unknown kid can pick it up.
	writeFile(t, env.path, jwksJSON(t, k.rsa.publicJWK(t, ""), k.rsa2.publicJWK(t, "")), testBase)
	r := env.v.Verify(context.Background(), rotated)
	checkResult(t, r, rotated, "")
	r = env.v.Verify(context.Background(), rotated)
	checkResult(t, r, rotated, "")
	if s := env.v.Stats(); s.RefreshesOK != 2 || s.RefreshesFailed != 0 || s.KeysLoaded != 2 {
		t.Errorf("stats after rotation = %+v, want exactly one refresh and 2 keys", s)
	}
}

func TestVerifyUnknownKidFloodRefreshesOncePerInterval(t *testing.T) {
	t.Parallel()
	k := keys(t)
	env := newFileEnv(t, jwksJSON(t, k.rsa.publicJWK(t, "")), nil)
	base := validClaims(testBase)
	flood := func(n int, prefix string) {
		var wg sync.WaitGroup
		for i := range n {
			token := sign(t, k.rsa2.withKid(fmt.Sprintf("%s-%d", prefix, i)), base)
			wg.Go(func() {
				if r := env.v.Verify(context.Background(), token); r.Err == nil || r.Err.Code != CodeUnknownKey {
					t.Errorf("bogus kid: %+v", r.Err)
				}
			})
		}
		wg.Wait()
	}
	flood(40, "bogus")
	if got := env.v.Stats().RefreshesOK; got != 2 {
		t.Fatalf("refreshes after a flood = %d, want 2 (start + one)", got)
	}
	env.clock.Advance(5 * time.Second)
	flood(10, "later")
	if got := env.v.Stats().RefreshesOK; got != 2 {
		t.Fatalf("refreshes within MinRefreshInterval = %d, want 2", got)
	}
	env.clock.Advance(5 * time.Second)
	flood(10, "after")
	if got := env.v.Stats().RefreshesOK; got != 3 {
		t.Fatalf("refreshes after MinRefreshInterval = %d, want 3", got)
	}
	if got := env.v.Stats().Refused[CodeUnknownKey]; got != 60 {
		t.Errorf("unknown_key refusals = %d, want 60", got)
	}
}

func TestVerifyFileChangePicksUpKeysAndDropsCache(t *testing.T) {
	t.Parallel()
	k := keys(t)
	env := newFileEnv(t, jwksJSON(t, k.rsa.publicJWK(t, "")), nil)
	token := sign(t, k.rsa, validClaims(testBase))
	checkResult(t, env.v.Verify(context.Background(), token), token, "")
	checkResult(t, env.v.Verify(context.Background(), token), token, "")
	if got := env.v.Stats().CacheHits; got != 1 {
		t.Fatalf("cache hits = %d, want 1", got)
	}

	writeFile(t, env.path, jwksJSON(t, k.rsa.publicJWK(t, ""), k.ec.publicJWK(t, "")), testBase)
	env.clock.Advance(2 * time.Second) // past the once-a-second stamp check
	checkResult(t, env.v.Verify(context.Background(), token), token, "")
	s := env.v.Stats()
	if s.CacheHits != 1 || s.RefreshesOK != 2 || s.KeysLoaded != 2 {
		t.Errorf("after a file change: %+v; want the cache dropped and one reload", s)
	}
	if !s.LastRefresh.Equal(testBase.Add(2 * time.Second)) {
		t.Errorf("LastRefresh = %v", s.LastRefresh)
	}

	// A broken rewrite keeps the last good keys.
	writeFile(t, env.path, []byte("{not json"), testBase.Add(time.Minute))
	env.clock.Advance(2 * time.Second)
	checkResult(t, env.v.Verify(context.Background(), sign(t, k.ec, validClaims(testBase))), "", "")
	if s := env.v.Stats(); s.RefreshesFailed != 1 || s.KeysLoaded != 2 {
		t.Errorf("after a broken file: %+v", s)
	}
	if !strings.Contains(env.logs.String(), "JWKS refresh failed") {
		t.Errorf("refresh failure not logged:\n%s", env.logs)
	}
}

func TestVerifyCacheRechecksExpiry(t *testing.T) {
	t.Parallel()
	k := keys(t)
	env := newFileEnv(t, standardJWKS(t), nil)
	token := sign(t, k.ec, validClaims(testBase).with("exp", testBase.Add(time.Minute).Unix()))
	for range 3 {
		checkResult(t, env.v.Verify(context.Background(), token), token, "")
	}
	if got := env.v.Stats().CacheHits; got != 2 {
		t.Fatalf("cache hits = %d, want 2", got)
	}
	env.clock.Advance(time.Minute + 29*time.Second) // within leeway
	checkResult(t, env.v.Verify(context.Background(), token), token, "")
	env.clock.Advance(time.Second) // exp + leeway reached
	checkResult(t, env.v.Verify(context.Background(), token), token, CodeTokenExpired)
	checkResult(t, env.v.Verify(context.Background(), token), token, CodeTokenExpired)
	if got := env.v.Stats().CacheHits; got != 3 {
		t.Errorf("cache hits = %d, want 3", got)
	}
}

func TestVerifyCacheDisabledAndBounded(t *testing.T) {
	t.Parallel()
	k := keys(t)
	off := newFileEnv(t, standardJWKS(t), func(c *Config) { c.CacheSize = -1 })
	token := sign(t, k.ec, validClaims(testBase))
	for range 3 {
		checkResult(t, off.v.Verify(context.Background(), token), token, "")
	}
	if s := off.v.Stats(); s.CacheHits != 0 || s.Verified != 3 {
		t.Errorf("disabled cache: %+v", s)
	}

	small := newFileEnv(t, standardJWKS(t), func(c *Config) { c.CacheSize = 3 })
	for i := range 10 {
		token := sign(t, k.ec, validClaims(testBase).with("sub", fmt.Sprint("user-", i)))
		checkResult(t, small.v.Verify(context.Background(), token), token, "")
		if n := small.v.cache.len(); n > 3 {
			t.Fatalf("cache holds %d entries, max 3", n)
		}
	}
}

func TestVerifyURLJWKS(t *testing.T) {
	t.Parallel()
	k := keys(t)
	srv := newJWKSServer(t, jwksJSON(t, k.rsa.publicJWK(t, "")))
	u, err := url.Parse(srv.URL + "/jwks?api_key=querysecret")
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword("svc", "hunter2")
	clock := newClock(testBase)
	logger, logs := newTestLogger()
	v, err := New(context.Background(), Config{
		JWKS: u.String(), Issuer: testIssuer, Audiences: []string{testAudience}, Now: clock.Now,
	}, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	if got := srv.hits.Load(); got != 1 {
		t.Fatalf("hits after New = %d, want 1", got)
	}
	base := validClaims(testBase)
	old := sign(t, k.rsa, base)
	checkResult(t, v.Verify(context.Background(), old), old, "")

	// Rotation: the new kid triggers exactly one re-fetch.
	srv.set(jwksJSON(t, k.rsa.publicJWK(t, ""), k.rsa2.publicJWK(t, "")))
	rotated := sign(t, k.rsa2, base)
	checkResult(t, v.Verify(context.Background(), rotated), rotated, "")
	checkResult(t, v.Verify(context.Background(), sign(t, k.rsa2, base.with("sub", "bob"))), "", "")
	if got := srv.hits.Load(); got != 2 {
		t.Fatalf("hits after rotation = %d, want 2", got)
	}

	// A failing server keeps the old keys.
	srv.status.Store(500)
	clock.Advance(time.Minute)
	unknown := sign(t, k.rsa3, base)
	checkResult(t, v.Verify(context.Background(), unknown), unknown, CodeUnknownKey)
	if got := srv.hits.Load(); got != 3 {
		t.Fatalf("hits after the failed refresh = %d, want 3", got)
	}
	checkResult(t, v.Verify(context.Background(), sign(t, k.rsa2, base.with("sub", "carol"))), "", "")
	s := v.Stats()
	if s.RefreshesOK != 2 || s.RefreshesFailed != 1 || s.KeysLoaded != 2 {
		t.Errorf("stats = %+v", s)
	}

	out := logs.String()
	if !strings.Contains(out, "JWKS refresh failed") || !strings.Contains(out, "status 500") {
		t.Errorf("refresh failure not logged:\n%s", out)
	}
	for _, secret := range []string{"hunter2", "svc:", "querysecret"} {
		if strings.Contains(out, secret) {
			t.Errorf("logs reveal %q:\n%s", secret, out)
		}
	}
	if !strings.Contains(out, srv.Listener.Addr().String()+"/jwks") {
		t.Errorf("logs do not name the JWKS source:\n%s", out)
	}
	assertNoTokenLeak(t, "logs", out, rotated)
}

func TestVerifyJWKSUnavailableAtStart(t *testing.T) {
	t.Parallel()
	k := keys(t)
	srv := newJWKSServer(t, jwksJSON(t, k.ec.publicJWK(t, "")))
	srv.status.Store(503)
	logger, logs := newTestLogger()
	v, err := New(context.Background(), Config{
		JWKS: srv.URL, Issuer: testIssuer, Audiences: []string{testAudience},
		MinRefreshInterval: 20 * time.Millisecond, RefreshInterval: time.Hour,
	}, logger)
	if err != nil {
		t.Fatalf("an unreachable URL must not fail New: %v", err)
	}
	t.Cleanup(v.Close)
	token := sign(t, k.ec, validClaims(time.Now()))
	checkResult(t, v.Verify(context.Background(), token), token, CodeJWKSUnavailable)
	if !strings.Contains(logs.String(), "JWKS unavailable at start") {
		t.Errorf("start failure not logged:\n%s", logs)
	}
	waitFor(t, "background retries", func() bool { return srv.hits.Load() >= 3 })

	srv.status.Store(200)
	waitFor(t, "recovery", func() bool { return v.Verify(context.Background(), token).Authenticated })
	if s := v.Stats(); s.RefreshesOK != 1 || s.RefreshesFailed < 3 || s.Refused[CodeJWKSUnavailable] == 0 {
		t.Errorf("stats = %+v", s)
	}
}

func TestVerifyPeriodicRefreshAndClose(t *testing.T) {
	t.Parallel()
	k := keys(t)
	srv := newJWKSServer(t, jwksJSON(t, k.ec.publicJWK(t, "")))
	v, err := New(context.Background(), Config{
		JWKS: srv.URL, Issuer: testIssuer, Audiences: []string{testAudience},
		RefreshInterval: 20 * time.Millisecond, MinRefreshInterval: 10 * time.Millisecond,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv.set(jwksJSON(t, k.ec.publicJWK(t, ""), k.ed.publicJWK(t, "")))
	waitFor(t, "the periodic refresh", func() bool { return v.Stats().KeysLoaded == 2 })
	token := sign(t, k.ed, validClaims(time.Now()))
	checkResult(t, v.Verify(context.Background(), token), token, "")

	v.Close()
	v.Close() // idempotent
	hits := srv.hits.Load()
	time.Sleep(100 * time.Millisecond)
	if got := srv.hits.Load(); got != hits {
		t.Errorf("fetches after Close: %d -> %d", hits, got)
	}
	// After Close the current keys still verify, and nothing refreshes.
	checkResult(t, v.Verify(context.Background(), token), token, "")
	checkResult(t, v.Verify(context.Background(), sign(t, k.rsa, validClaims(time.Now()))), "", CodeUnknownKey)
}

func TestVerifyContextEndsBackgroundWork(t *testing.T) {
	t.Parallel()
	k := keys(t)
	srv := newJWKSServer(t, jwksJSON(t, k.ec.publicJWK(t, "")))
	ctx, cancel := context.WithCancel(context.Background())
	v, err := New(ctx, Config{
		JWKS: srv.URL, Issuer: testIssuer, Audiences: []string{testAudience},
		RefreshInterval: 10 * time.Millisecond, MinRefreshInterval: 10 * time.Millisecond,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a periodic refresh", func() bool { return srv.hits.Load() >= 2 })
	cancel()
	v.Close() // waits for the goroutines that ctx ended
	hits := srv.hits.Load()
	time.Sleep(50 * time.Millisecond)
	if got := srv.hits.Load(); got != hits {
		t.Errorf("fetches after ctx ended: %d -> %d", hits, got)
	}
}

func TestVerifyJWKSFiltering(t *testing.T) {
	t.Parallel()
	k := keys(t)
	private, err := jwk.Import(k.ec.priv)
	if err != nil {
		t.Fatal(err)
	}
	if err := private.Set(jwk.KeyIDKey, "ec-1"); err != nil {
		t.Fatal(err)
	}
	secret, err := jwk.Import([]byte("shared-secret-shared-secret-0123"))
	if err != nil {
		t.Fatal(err)
	}
	if err := secret.Set(jwk.KeyIDKey, "hmac"); err != nil {
		t.Fatal(err)
	}
	enc := k.rsa2.publicJWK(t, "")
	if err := enc.Set(jwk.KeyUsageKey, "enc"); err != nil {
		t.Fatal(err)
	}
	mismatched := k.rsa3.publicJWK(t, "ES256")
	raw := jwksJSON(t, private, secret, enc, mismatched, k.rsa.publicJWK(t, "RS256"))
	env := newFileEnv(t, raw, nil)
	if got := env.v.Stats().KeysLoaded; got != 2 {
		t.Fatalf("keys loaded = %d, want 2 (ec-1 made public, rsa-1)", got)
	}
	base := validClaims(testBase)
	checkResult(t, env.v.Verify(context.Background(), sign(t, k.ec, base)), "", "")
	checkResult(t, env.v.Verify(context.Background(), sign(t, k.rsa, base)), "", "")
	checkResult(t, env.v.Verify(context.Background(), sign(t, k.rsa2, base)), "", CodeUnknownKey)
	checkResult(t, env.v.Verify(context.Background(), sign(t, k.rsa3, base)), "", CodeUnknownKey)
	hmacToken := handToken(t, map[string]any{"alg": "HS256", "kid": "hmac"}, base, hmacSHA256([]byte("shared-secret-shared-secret-0123")))
	checkResult(t, env.v.Verify(context.Background(), hmacToken), hmacToken, CodeAlgorithmNotAllowed)
	logs := env.logs.String()
	for _, want := range []string{"symmetric", `use is \"enc\"`, "ES256"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, "shared-secret") || strings.Contains(logs, "c2hhcmVk") {
		t.Errorf("logs reveal key material:\n%s", logs)
	}
}

func TestNewConfigErrors(t *testing.T) {
	t.Parallel()
	k := keys(t)
	dir := t.TempDir()
	good := dir + "/jwks.json"
	writeFile(t, good, jwksJSON(t, k.ec.publicJWK(t, "")), testBase)
	garbage := dir + "/garbage.json"
	writeFile(t, garbage, []byte("not a jwks"), testBase)
	onlySecret := dir + "/secret.json"
	writeFile(t, onlySecret, []byte(`{"keys":[{"kty":"oct","kid":"s","k":"c2VjcmV0"}]}`), testBase)
	valid := Config{JWKS: good, Issuer: testIssuer, Audiences: []string{testAudience}}

	tests := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"missing JWKS", func(c *Config) { c.JWKS = "" }, "Config.JWKS is required"},
		{"missing issuer", func(c *Config) { c.Issuer = "" }, "Config.Issuer is required"},
		{"missing audiences", func(c *Config) { c.Audiences = nil }, "Config.Audiences"},
		{"empty audience", func(c *Config) { c.Audiences = []string{testAudience, ""} }, "Config.Audiences[1] is empty"},
		{"alg none", func(c *Config) { c.Algorithms = []string{"RS256", "none"} }, `"none" is refused`},
		{"HS256", func(c *Config) { c.Algorithms = []string{"HS256"} }, `"HS256" is refused`},
		{"unknown alg", func(c *Config) { c.Algorithms = []string{"RS1"} }, `unsupported algorithm "RS1"`},
		{"negative leeway", func(c *Config) { c.Leeway = -time.Second }, "Config.Leeway must not be negative"},
		{"negative max token", func(c *Config) { c.MaxTokenBytes = -1 }, "Config.MaxTokenBytes"},
		{"min above refresh", func(c *Config) { c.MinRefreshInterval = time.Hour; c.RefreshInterval = time.Minute }, "Config.MinRefreshInterval"},
		{"plain http", func(c *Config) { c.JWKS = "http://idp.example/jwks" }, "plain http is only allowed for loopback"},
		{"other scheme", func(c *Config) { c.JWKS = "ftp://idp.example/jwks" }, `unsupported URL scheme "ftp"`},
		{"missing file", func(c *Config) { c.JWKS = dir + "/missing.json" }, "load JWKS file"},
		{"garbage file", func(c *Config) { c.JWKS = garbage }, "parse JWKS"},
		{"no usable key", func(c *Config) { c.JWKS = onlySecret }, "no usable signature verification key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := valid
			cfg.Audiences = slices.Clone(valid.Audiences)
			tc.mutate(&cfg)
			v, err := New(context.Background(), cfg, nil)
			if err == nil {
				v.Close()
				t.Fatal("want an error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
	t.Run("defaults", func(t *testing.T) {
		t.Parallel()
		v, err := New(context.Background(), valid, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer v.Close()
		c := v.cfg
		if c.Leeway != 30*time.Second || c.MaxTokenBytes != 8192 || c.RefreshInterval != 15*time.Minute ||
			c.MinRefreshInterval != 10*time.Second || c.CacheSize != 10000 || c.HTTPClient == nil || c.HTTPClient.Timeout != 10*time.Second {
			t.Errorf("defaults not applied: %+v", c)
		}
		if len(v.algs) != len(defaultAlgorithms) {
			t.Errorf("algorithms = %d", len(v.algs))
		}
	})
}

func TestStatsCountEveryCode(t *testing.T) {
	t.Parallel()
	env := newFileEnv(t, standardJWKS(t), nil)
	env.v.Verify(context.Background(), "")
	env.v.Verify(context.Background(), "x")
	s := env.v.Stats()
	if len(s.Refused) != len(Codes()) {
		t.Errorf("refused map has %d codes, want %d", len(s.Refused), len(Codes()))
	}
	if s.Refused[CodeTokenMissing] != 1 || s.Refused[CodeTokenMalformed] != 1 || s.Verified != 0 {
		t.Errorf("stats = %+v", s)
	}
	if s.RefreshesOK != 1 || s.KeysLoaded != 4 || !s.LastRefresh.Equal(testBase) {
		t.Errorf("refresh stats = %+v", s)
	}
}

func TestErrorImplementsError(t *testing.T) {
	t.Parallel()
	var err error = newError(CodeTokenExpired, "token has expired")
	var target *Error
	if !errors.As(err, &target) || target.Code != CodeTokenExpired || err.Error() != "token_expired: token has expired" {
		t.Errorf("Error = %q", err)
	}
}

func TestBearerToken(t *testing.T) {
	t.Parallel()
	tests := []struct {
		header string
		token  string
		code   string
	}{
		{"", "", ""},
		{"   ", "", ""},
		{"Bearer abc.def.ghi", "abc.def.ghi", ""},
		{"bearer abc", "abc", ""},
		{"BEARER abc", "abc", ""},
		{"Bearer   abc", "abc", ""},
		{" Bearer abc ", "abc", ""},
		{"Bearer a-b_c~d+e/f==", "a-b_c~d+e/f==", ""},
		{"Bearer", "", CodeTokenMalformed},
		{"Bearer ", "", CodeTokenMalformed},
		{"Bearer a b", "", CodeTokenMalformed},
		{"Bearer a=b", "", CodeTokenMalformed},
		{"Bearer ===", "", CodeTokenMalformed},
		{"Bearer a,b", "", CodeTokenMalformed},
		{"Bearer ab\x00", "", CodeTokenMalformed},
		{"Bearer\tabc", "", CodeTokenMalformed},
		{"Basic dXNlcjpwYXNz", "", CodeTokenMalformed},
		{"Bearerabc", "", CodeTokenMalformed},
		{"abc.def.ghi", "", CodeTokenMalformed},
	}
	for _, tc := range tests {
		token, err := BearerToken(tc.header)
		if token != tc.token {
			t.Errorf("BearerToken(%q) token = %q, want %q", tc.header, token, tc.token)
		}
		switch {
		case tc.code == "" && err != nil:
			t.Errorf("BearerToken(%q) error %v", tc.header, err)
		case tc.code != "" && (err == nil || err.Code != tc.code):
			t.Errorf("BearerToken(%q) error %v, want %s", tc.header, err, tc.code)
		}
	}
	if _, err := BearerToken("Basic dXNlcjpwYXNz"); err == nil || err.Message != "authorization scheme is not Bearer" {
		t.Errorf("Basic: %v", err)
	}
}

func TestCheckRSA(t *testing.T) {
	t.Parallel()
	k := keys(t)
	good := k.rsa.priv.Public().(*rsa.PublicKey)
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		key  *rsa.PublicKey
		want string
	}{
		{"2048 bits", good, ""},
		{"1024 bits", &weak.PublicKey, "1024 bits is below the minimum"},
		{"exponent 1", &rsa.PublicKey{N: good.N, E: 1}, "exponent 1"},
		{"even exponent", &rsa.PublicKey{N: good.N, E: 65536}, "exponent 65536"},
		{"no modulus", &rsa.PublicKey{E: 65537}, "0 bits"},
	}
	for _, tc := range tests {
		err := checkRSA(tc.key)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}

	// A weak key in a JWKS is skipped (by jwx in this binary, by checkRSA
	// in one that links OPA), not fatal when another key is usable.
	b64 := base64.RawURLEncoding.EncodeToString
	weakJWK := fmt.Sprintf(`{"kty":"RSA","kid":"weak","n":%q,"e":"AQAB"}`, b64(weak.N.Bytes()))
	ecJWK, err := json.Marshal(k.ec.publicJWK(t, ""))
	if err != nil {
		t.Fatal(err)
	}
	env := newFileEnv(t, []byte(`{"keys":[`+weakJWK+`,`+string(ecJWK)+`]}`), nil)
	if got := env.v.Stats().KeysLoaded; got != 1 {
		t.Errorf("keys loaded = %d, want 1", got)
	}
	weakToken := handToken(t, map[string]any{"alg": "RS256", "kid": "weak"}, validClaims(testBase), func(input []byte) []byte {
		sum := sha256.Sum256(input)
		sig, err := rsa.SignPKCS1v15(rand.Reader, weak, crypto.SHA256, sum[:])
		if err != nil {
			t.Fatal(err)
		}
		return sig
	})
	checkResult(t, env.v.Verify(context.Background(), weakToken), weakToken, CodeUnknownKey)
}
