package mcpnative_test

import (
	"context"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/verdictpdp/verdict/internal/engine"
)

// TestGrantsDecline: a request carrying just-in-time grants (input.grants)
// is handed back to Rego, whatever the grants hold, while the same request
// without them is decided natively and alike. The Rego answer with a grant
// differs (the destructive call needs no approval), so deciding natively
// would be wrong.
func TestGrantsDecline(t *testing.T) {
	snap, ev := activate(t, libraryBundle(t), exampleData(t))
	if ev.Kind != engine.EvaluatorNative {
		t.Fatalf("example catalog runs in %s: %s", ev.Kind, ev.Reason)
	}
	nat := snap.Native(ep)
	if nat == nil {
		t.Fatal("no native evaluator")
	}
	deleteCall := func() map[string]any {
		in := exampleCall(1)
		in["subject"].(map[string]any)["roles"] = []any{"crm_admin"}
		in["tool"] = map[string]any{"name": "delete_contact", "arguments": map[string]any{"tenant": "acme", "id": "42"}}
		return in
	}
	rego := func(in map[string]any) map[string]any {
		t.Helper()
		v, err := ast.InterfaceToValue(in)
		if err != nil {
			t.Fatal(err)
		}
		res, err := snap.Eval(context.Background(), ep, v)
		if err != nil {
			t.Fatal(err)
		}
		return res.Value.(map[string]any)
	}

	for name, in := range map[string]map[string]any{"search": exampleCall(1), "delete": deleteCall()} {
		decided, err := differ(snap, in)
		if err != nil {
			t.Fatalf("%s without grants: %v", name, err)
		}
		if !decided {
			t.Fatalf("%s without grants: the native evaluator declined", name)
		}
	}
	if d := rego(deleteCall()); d["require_approval"] != true {
		t.Fatalf("delete without a grant: %s, want require_approval", js(d))
	}

	grant := map[string]any{"id": "grt_1", "tools": []any{"crm/delete_*"}, "expires_at": "2026-11-23T11:00:00Z", "conditions": []any{}}
	for name, grants := range map[string]any{
		"matching grant": []any{grant},
		"other tool":     []any{map[string]any{"id": "grt_2", "tools": []any{"github/*"}}},
		"empty list":     []any{},
		"null":           nil,
	} {
		for _, mk := range []func() map[string]any{func() map[string]any { return exampleCall(1) }, deleteCall} {
			in := mk()
			in["grants"] = grants
			if got, ok := nat.Eval(context.Background(), goInput(in)); ok {
				t.Errorf("%s: the native evaluator decided %s; want it to decline", name, js(got))
			}
		}
	}

	in := deleteCall()
	in["grants"] = []any{grant}
	if d := rego(in); d["allow"] != true || d["require_approval"] != false {
		t.Fatalf("delete with a grant: %s, want allowed without approval", js(d))
	}
}
