package mcpnative_test

import (
	"math"
	"testing"
)

// TestDifferentialEdgeValues: argument values at the edges of what the Go
// input can hold decide alike. (NaN and infinities are refused before any
// decision: mcp.CheckValueDepth; OPA's comparisons panic on them.)
func TestDifferentialEdgeValues(t *testing.T) {
	snap, _ := activate(t, libraryBundle(t), exampleData(t))
	for _, v := range []any{1e300, math.Copysign(0, -1), 5e-324, float64(1 << 62), "\xff\xfe", "a\u0000b", map[string]any{"verdict": "missing argument"}} {
		in := exampleCall(1)
		in["tool"].(map[string]any)["arguments"].(map[string]any)["query"] = v
		in["tool"].(map[string]any)["arguments"].(map[string]any)["limit"] = v
		decided, err := differ(snap, in)
		if err != nil {
			t.Errorf("%#v: %v", v, err)
		}
		t.Logf("%#v: native decided %v", v, decided)
	}
}
