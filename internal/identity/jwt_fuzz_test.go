package identity

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
)

// FuzzVerify feeds arbitrary strings to a Verifier over a fixed file JWKS
// and a frozen clock. Verify must not panic (its recover would count it),
// must answer with a known code, must not echo the token, and must never
// authenticate a token other than the valid seeds: mutations cannot be
// signed.
func FuzzVerify(f *testing.F) {
	k := keys(f)
	env := newFileEnv(f, standardJWKS(f), func(c *Config) { c.CacheSize = 128 })
	base := validClaims(testBase)
	validSeeds := map[string]bool{
		sign(f, k.rsa, base.with("scope", "a b", "roles", []any{"r"})): true,
		sign(f, k.ec, base.with("scp", []any{"x"})):                    true,
		sign(f, k.ed, base): true,
		sign(f, k.rsa.withKid("rsa-ps").withAlg(jwa.PS256()), base): true,
		sign(f, k.rsa.withKid(""), base):                            true,
	}
	valid := sign(f, k.rsa, base)
	validSeeds[valid] = true
	seeds := []string{
		sign(f, k.rsa, base.with("exp", testBase.Add(-time.Hour).Unix())),
		sign(f, k.ec, base.with("aud", "other")),
		sign(f, k.rsa2, base),
		handToken(f, map[string]any{"alg": "none", "typ": "JWT"}, base, nil),
		handToken(f, map[string]any{"alg": "HS256", "kid": "rsa-1"}, base, hmacSHA256([]byte("secret"))),
		tamperSeed(f, valid),
		"", "a", "a.b", "a.b.c", "..", "eyJhbGciOiJSUzI1NiJ9.e30.", "Bearer " + valid, strings.Repeat("A", 9000),
	}
	for token := range validSeeds {
		f.Add(token)
	}
	for _, token := range seeds {
		f.Add(token)
	}
	codes := map[string]bool{}
	for _, c := range Codes() {
		codes[c] = true
	}
	f.Fuzz(func(t *testing.T, token string) {
		r := env.v.Verify(context.Background(), token)
		if n := env.v.stats.panics.Load(); n != 0 {
			t.Fatalf("Verify recovered from %d panics", n)
		}
		if r.Authenticated {
			if !validSeeds[token] {
				t.Fatalf("authenticated a token that is not a valid seed: %q", token)
			}
			return
		}
		if r.Err == nil || !codes[r.Err.Code] {
			t.Fatalf("refusal without a known code: %+v", r.Err)
		}
		if len(token) >= 16 && strings.Contains(r.Err.Message, token) {
			t.Fatalf("message echoes the token: %q", r.Err.Message)
		}
	})
}

// tamperSeed swaps the subject of a signed token, keeping the signature.
func tamperSeed(tb testing.TB, token string) string {
	tb.Helper()
	parts := strings.Split(token, ".")
	forged := handToken(tb, map[string]any{}, validClaims(testBase).with("sub", "mallory"), nil)
	parts[1] = strings.Split(forged, ".")[1]
	return strings.Join(parts, ".")
}

// FuzzBearerToken checks that BearerToken never panics, that refusals
// carry no token, and that an accepted token is a b64token found in the
// header that parses back to itself.
func FuzzBearerToken(f *testing.F) {
	for _, seed := range []string{
		"", " ", "Bearer abc", "bearer a.b.c", "Bearer  x==", "Basic dXNlcg==", "Bearer", "Bearer a b", "Bearer\t", "\x00",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, header string) {
		token, err := BearerToken(header)
		switch {
		case err != nil:
			if token != "" || err.Code != CodeTokenMalformed || err.Message == "" {
				t.Fatalf("refusal %+v with token %q", err, token)
			}
		case token == "":
			if strings.Trim(header, " \t") != "" {
				t.Fatalf("no credentials reported for %q", header)
			}
		default:
			if !isB64Token(token) || !strings.Contains(header, token) {
				t.Fatalf("token %q from %q", token, header)
			}
			if again, err := BearerToken("Bearer " + token); err != nil || again != token {
				t.Fatalf("token %q does not round-trip: %q %v", token, again, err)
			}
		}
	})
}
