package extauthz

import (
	"os"
	"strconv"
	"testing"
)

// BenchmarkEnvoyKey measures the fast cache key alone (what a cache hit
// costs before the lookup), on the benchmark RBAC policy, by number of
// request headers: the request checks and the UTF-8 check walk them all.
func BenchmarkEnvoyKey(b *testing.B) {
	src, err := os.ReadFile("../../../testdata/bench/rbac.rego")
	if err != nil {
		b.Fatal(err)
	}
	p := analyzeKeyPolicy(b, string(src))
	for _, n := range []int{0, 20, 80} {
		b.Run("headers="+strconv.Itoa(n), func(b *testing.B) {
			r := baseKeyRequest()
			h := r.GetAttributes().GetRequest().GetHttp()
			for i := range n {
				h.Headers["x-extra-"+strconv.Itoa(i)] = "value-" + strconv.Itoa(i)
			}
			buf := make([]byte, 0, 512)
			var in envoyInput
			b.ReportAllocs()
			for b.Loop() {
				in = envoyInput{req: r}
				var ok bool
				if buf, ok = in.AppendKey(buf[:0], p); !ok {
					b.Fatal("no fast key")
				}
			}
		})
	}
}
