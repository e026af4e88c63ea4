package mcpnative_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

// exampleCall is a tools/call the example catalog allows, searching for
// something else each time (i).
func exampleCall(i int) map[string]any {
	return map[string]any{
		"kind": "mcp", "method": "tools/call", "protocol_version": "2025-11-25",
		"subject": map[string]any{"id": "alice", "roles": []any{"sales"}, "groups": []any{}, "scopes": []any{},
			"tenant": "acme", "clearance": "confidential", "authenticated": true, "claims": map[string]any{}},
		"server":  map[string]any{"name": "crm"},
		"context": map[string]any{"time": "2026-11-23T10:00:00Z", "purpose": "support", "region": "eu"},
		"tool":    map[string]any{"name": "search_contacts", "arguments": map[string]any{"tenant": "acme", "query": "smith-" + strconv.Itoa(i)}},
	}
}

// BenchmarkLibrary decides one tools/call of the example catalog with the
// library: natively, and by evaluating its Rego (the input already built
// as a Rego value), in one run. No cache: every call is a miss.
func BenchmarkLibrary(b *testing.B) {
	lib := libraryBundle(b)
	raw := exampleDataB(b)
	snap, ev := activate(b, lib, raw)
	if ev.Kind != "native" {
		b.Fatalf("example catalog runs in %s: %s", ev.Kind, ev.Reason)
	}
	ctx := context.Background()
	const pool = 1024
	ins := make([]map[string]any, pool)
	for i := range ins {
		ins[i] = exampleCall(i)
	}
	b.Run("evaluator=native", func(b *testing.B) {
		nat := snap.Native(ep)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i++
			v, ok := nat.Eval(ctx, goInput(ins[i%pool]))
			if !ok || v.(map[string]any)["allow"] != true {
				b.Fatalf("not allowed: %v %v", v, ok)
			}
		}
	})
	b.Run("evaluator=rego", func(b *testing.B) {
		vals := make([]ast.Value, pool)
		for i := range vals {
			vals[i], _ = ast.InterfaceToValue(ins[i])
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i++
			res, err := snap.Eval(ctx, ep, vals[i%pool])
			if err != nil || res.Value.(map[string]any)["allow"] != true {
				b.Fatalf("not allowed: %v %v", res.Value, err)
			}
		}
	})
}
