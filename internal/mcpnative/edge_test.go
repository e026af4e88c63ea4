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

// TestDifferentialOddInputs: inputs the adapters never build but the
// native evaluator accepts decide as the Rego does.
func TestDifferentialOddInputs(t *testing.T) {
	data := jsonData(t, map[string]any{"mcp": map[string]any{
		"settings": map[string]any{"allow_unauthenticated": true, "require_input_schema": false},
		"servers": map[string]any{"crm": map[string]any{"tools": map[string]any{
			"t": map[string]any{"classification": "public", "annotations": map[string]any{"readOnlyHint": true},
				"rate_limit":   map[string]any{"limit": 5, "period_seconds": 60},
				"input_schema": map[string]any{"type": "object", "properties": map[string]any{"\ufffd": map[string]any{"type": "string"}}}},
		}}},
		"rules": []any{map[string]any{"id": "open", "tools": []any{"crm/*"}}},
	}})
	snap, _ := activate(t, libraryBundle(t), data)
	cases := []map[string]any{
		// No subject id: no rate limit key, so no rate_limit obligation.
		{"method": "tools/call", "server": map[string]any{"name": "crm"}, "tool": map[string]any{"name": "t", "arguments": map[string]any{}}, "response": true},
		{"method": "tools/call", "server": map[string]any{"name": "crm"}, "subject": map[string]any{"roles": []any{}},
			"tool": map[string]any{"name": "t", "arguments": map[string]any{}}},
	}
	// Invalid UTF-8 keys that JSON text would write alike (U+FFFD).
	for range 20 {
		cases = append(cases, map[string]any{"method": "tools/call", "server": map[string]any{"name": "crm"},
			"subject": map[string]any{"id": "a", "authenticated": true, "roles": []any{}, "groups": []any{}, "scopes": []any{}},
			"tool":    map[string]any{"name": "t", "arguments": map[string]any{"\xfe": "s", "\xff": 1}}})
	}
	for i, in := range cases {
		if _, err := differ(snap, in); err != nil {
			t.Errorf("case %d %s:\n%v", i, short(in), err)
		}
	}
}
