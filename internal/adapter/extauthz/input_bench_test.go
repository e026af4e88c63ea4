package extauthz_test

import (
	"strconv"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/verdictpdp/verdict/internal/adapter/extauthz"
)

// BenchmarkBuildInput compares the two ways to the policy input value: the
// protojson round trip (BuildInput, then ast.InterfaceToValue) and BuildValue,
// by number of request headers.
func BenchmarkBuildInput(b *testing.B) {
	for _, extra := range []int{0, 20, 80} {
		req := benchRequest(extra)
		opts := extauthz.InputOptions{}
		b.Run("headers="+strconv.Itoa(len(req.GetAttributes().GetRequest().GetHttp().GetHeaders())), func(b *testing.B) {
			b.Run("protojson", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					input, err := extauthz.BuildInput(req, opts)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := ast.InterfaceToValue(input); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("lean", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := extauthz.BuildValue(req, opts); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
