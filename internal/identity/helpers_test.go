package identity

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

const (
	testIssuer    = "https://idp.example"
	testAudience  = "https://pdp.example"
	testAudience2 = "verdict"
)

// testBase is the fixed "now" of most tests.
var testBase = time.Unix(1_800_000_000, 0)

// signingKey is a generated private key with the kid and alg tests sign
// with.
type signingKey struct {
	kid  string
	alg  jwa.SignatureAlgorithm
	priv crypto.Signer
}

// publicJWK returns the key's public JWK with its kid and, when jwkAlg is
// not empty, an "alg" member.
func (k signingKey) publicJWK(tb testing.TB, jwkAlg string) jwk.Key {
	tb.Helper()
	key, err := jwk.PublicKeyOf(k.priv)
	if err != nil {
		tb.Fatal(err)
	}
	if err := key.Set(jwk.KeyIDKey, k.kid); err != nil {
		tb.Fatal(err)
	}
	if jwkAlg != "" {
		if err := key.Set(jwk.AlgorithmKey, jwkAlg); err != nil {
			tb.Fatal(err)
		}
	}
	return key
}

// withKid returns a copy of k under another kid.
func (k signingKey) withKid(kid string) signingKey { k.kid = kid; return k }

// withAlg returns a copy of k signing with another algorithm.
func (k signingKey) withAlg(alg jwa.SignatureAlgorithm) signingKey { k.alg = alg; return k }

// testKeys are generated once per test binary: RSA generation is slow.
type testKeySet struct {
	rsa, rsa2, rsa3, ec, ed signingKey
}

var (
	keysOnce  sync.Once
	keysValue testKeySet
)

func keys(tb testing.TB) testKeySet {
	tb.Helper()
	keysOnce.Do(func() {
		rsaKey := func() *rsa.PrivateKey {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			return k
		}
		ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		_, edKey, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			panic(err)
		}
		keysValue = testKeySet{
			rsa:  signingKey{kid: "rsa-1", alg: jwa.RS256(), priv: rsaKey()},
			rsa2: signingKey{kid: "rsa-2", alg: jwa.RS256(), priv: rsaKey()},
			rsa3: signingKey{kid: "rsa-3", alg: jwa.RS256(), priv: rsaKey()},
			ec:   signingKey{kid: "ec-1", alg: jwa.ES256(), priv: ecKey},
			ed:   signingKey{kid: "ed-1", alg: jwa.EdDSA(), priv: edKey},
		}
	})
	return keysValue
}

// jwksJSON renders keys as a JWKS document.
func jwksJSON(tb testing.TB, keys ...jwk.Key) []byte {
	tb.Helper()
	set := jwk.NewSet()
	for _, k := range keys {
		if err := set.AddKey(k); err != nil {
			tb.Fatal(err)
		}
	}
	raw, err := json.Marshal(set)
	if err != nil {
		tb.Fatal(err)
	}
	return raw
}

// writeFile writes data to path atomically, with the given modification
// time so that stamp checks see a change.
func writeFile(tb testing.TB, path string, data []byte, mtime time.Time) {
	tb.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.Chtimes(tmp, mtime, mtime); err != nil {
		tb.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		tb.Fatal(err)
	}
}

// claims is a JWT payload.
type claims map[string]any

// remove marks a claim to delete in with.
var remove = new(struct{})

// with returns a copy of c with the given name/value pairs set (or removed
// when the value is remove).
func (c claims) with(kv ...any) claims {
	out := maps.Clone(c)
	for i := 0; i+1 < len(kv); i += 2 {
		name := kv[i].(string)
		if kv[i+1] == remove {
			delete(out, name)
			continue
		}
		out[name] = kv[i+1]
	}
	return out
}

// validClaims are the claims of a token valid at now.
func validClaims(now time.Time) claims {
	return claims{
		"iss": testIssuer,
		"aud": testAudience,
		"sub": "alice",
		"iat": now.Unix(),
		"exp": now.Add(time.Hour).Unix(),
	}
}

// sign signs payload with jwx as a compact JWS whose protected header holds
// alg, typ JWT, the key's kid (unless empty) and extra.
func sign(tb testing.TB, k signingKey, payload any, extra ...any) string {
	tb.Helper()
	raw, err := json.Marshal(payload)
	if err != nil {
		tb.Fatal(err)
	}
	hdr := jws.NewHeaders()
	set := func(name string, value any) {
		if err := hdr.Set(name, value); err != nil {
			tb.Fatal(err)
		}
	}
	set(jws.TypeKey, "JWT")
	if k.kid != "" {
		set(jws.KeyIDKey, k.kid)
	}
	for i := 0; i+1 < len(extra); i += 2 {
		set(extra[i].(string), extra[i+1])
	}
	out, err := jws.Sign(raw, jws.WithKey(k.alg, k.priv, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		tb.Fatal(err)
	}
	return string(out)
}

// handToken assembles a compact JWS from JSON header and payload and a
// signing function over the signing input (nil: empty signature).
func handToken(tb testing.TB, header, payload any, signFn func([]byte) []byte) string {
	tb.Helper()
	enc := base64.RawURLEncoding
	h, err := json.Marshal(header)
	if err != nil {
		tb.Fatal(err)
	}
	p, err := json.Marshal(payload)
	if err != nil {
		tb.Fatal(err)
	}
	input := enc.EncodeToString(h) + "." + enc.EncodeToString(p)
	var sig []byte
	if signFn != nil {
		sig = signFn([]byte(input))
	}
	return input + "." + enc.EncodeToString(sig)
}

func hmacSHA256(secret []byte) func([]byte) []byte {
	return func(input []byte) []byte {
		m := hmac.New(sha256.New, secret)
		m.Write(input)
		return m.Sum(nil)
	}
}

// fakeClock is a settable clock.
type fakeClock struct{ ns atomic.Int64 }

func newClock(t time.Time) *fakeClock {
	c := &fakeClock{}
	c.ns.Store(t.UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// logBuffer collects log output safely across goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newTestLogger() (*slog.Logger, *logBuffer) {
	buf := &logBuffer{}
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// fileEnv is a Verifier over a JWKS file.
type fileEnv struct {
	v     *Verifier
	path  string
	clock *fakeClock
	logs  *logBuffer
}

// newFileEnv writes jwks to a file and builds a Verifier on it; mutate
// adjusts the config.
func newFileEnv(t testing.TB, jwks []byte, mutate func(*Config)) *fileEnv {
	t.Helper()
	path := filepath.Join(t.TempDir(), "jwks.json")
	writeFile(t, path, jwks, testBase.Add(-time.Hour))
	clock := newClock(testBase)
	logger, logs := newTestLogger()
	cfg := Config{
		JWKS:      path,
		Issuer:    testIssuer,
		Audiences: []string{testAudience, testAudience2},
		Now:       clock.Now,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	v, err := New(context.Background(), cfg, logger)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(v.Close)
	return &fileEnv{v: v, path: path, clock: clock, logs: logs}
}

// jwksServer serves a JWKS over a real loopback HTTP server and counts
// requests.
type jwksServer struct {
	*httptest.Server
	body   atomic.Pointer[[]byte]
	status atomic.Int32
	hits   atomic.Int32
}

func newJWKSServer(t *testing.T, body []byte) *jwksServer {
	t.Helper()
	s := &jwksServer{}
	s.set(body)
	s.status.Store(http.StatusOK)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.hits.Add(1)
		if code := int(s.status.Load()); code != http.StatusOK {
			http.Error(w, "unavailable", code)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write(*s.body.Load())
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(body []byte) { s.body.Store(&body) }

// assertSafeMessage fails when a refusal message or the logs reveal any
// part of the token.
func assertNoTokenLeak(t *testing.T, where, text, token string) {
	t.Helper()
	if token == "" {
		return
	}
	if strings.Contains(text, token) {
		t.Errorf("%s contains the token", where)
		return
	}
	for _, segment := range strings.Split(token, ".") {
		if len(segment) >= 16 && strings.Contains(text, segment) {
			t.Errorf("%s contains a token segment", where)
		}
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
