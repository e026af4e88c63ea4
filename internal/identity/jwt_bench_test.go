package identity

import (
	"context"
	"testing"
)

// BenchmarkVerify measures Verify of one valid token, answered from the
// verified-token cache or verified in full every time.
func BenchmarkVerify(b *testing.B) {
	k := keys(b)
	algs := []struct {
		name string
		key  signingKey
	}{{"RS256", k.rsa}, {"ES256", k.ec}}
	caches := []struct {
		name string
		size int
	}{{"cache", 0}, {"nocache", -1}}
	for _, alg := range algs {
		for _, cache := range caches {
			b.Run(alg.name+"/"+cache.name, func(b *testing.B) {
				env := newFileEnv(b, standardJWKS(b), func(c *Config) { c.CacheSize = cache.size })
				token := sign(b, alg.key, validClaims(testBase).with("scope", "read write", "roles", []any{"admin"}))
				ctx := context.Background()
				b.ReportAllocs()
				for b.Loop() {
					if !env.v.Verify(ctx, token).Authenticated {
						b.Fatal("token refused")
					}
				}
			})
		}
	}
}
