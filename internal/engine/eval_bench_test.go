package engine_test

import (
	"context"
	"os"
	"strconv"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/verdictpdp/verdict/internal/bundle"
	"github.com/verdictpdp/verdict/internal/bundle/bundletest"
	"github.com/verdictpdp/verdict/internal/engine"
)

// BenchmarkEval measures one Engine.Eval (no adapter, no cache): the
// benchmark's RBAC policy with 100 roles in data, a JSON schema from data
// (json.match_schema), a regular expression from data, and a policy that
// reads nothing, which is the evaluation's fixed cost.
func BenchmarkEval(b *testing.B) {
	rbac, err := os.ReadFile("../../testdata/bench/rbac.rego")
	if err != nil {
		b.Fatal(err)
	}
	roles := map[string]any{}
	for i := range 100 {
		roles["role-"+strconv.Itoa(i)] = []any{map[string]any{"method": "GET", "path": "/api/*/items/*"}}
	}
	props := map[string]any{}
	for i := range 20 {
		props["p"+strconv.Itoa(i)] = map[string]any{"type": "string", "maxLength": 64, "pattern": "^[a-z]+$"}
	}
	for _, c := range []struct {
		name, entrypoint, policy string
		data                     map[string]any
		input                    string
	}{
		{"rbac", "envoy/authz/allow", string(rbac), map[string]any{"rbac": map[string]any{"permissions": roles}},
			`{"attributes": {"request": {"http": {"method": "GET", "path": "/api/v1/items/42", "headers": {"x-roles": "role-7"}}}}}`},
		{"schema", "test/decision", "package test\n\ndecision := json.match_schema(input, data.schema)[0]\n",
			map[string]any{"schema": map[string]any{"type": "object", "properties": props}}, `{"p1": "abc", "p2": "def"}`},
		{"regex", "test/decision", "package test\n\ndecision := regex.match(data.pattern, input.path)\n",
			map[string]any{"pattern": `^/api/v[0-9]+/items/[0-9]+$`}, `{"path": "/api/v1/items/42"}`},
		{"constant", "test/decision", "package test\n\ndecision := {\"allowed\": true}\n", nil, `{}`},
	} {
		b.Run(c.name, func(b *testing.B) {
			raw := bundletest.Archive(b, bundletest.Spec{Revision: "bench", Modules: map[string]string{"p.rego": c.policy}, Data: c.data})
			bn, err := bundle.NewReader(bundle.Limits{}, nil).ReadArchive("bench", raw)
			if err != nil {
				b.Fatal(err)
			}
			e, err := engine.New(engine.Deps{Entrypoints: []string{c.entrypoint}})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := e.Activate(context.Background(), map[string]*bundle.Bundle{"bench": bn}); err != nil {
				b.Fatal(err)
			}
			input := ast.MustParseTerm(c.input).Value
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.Eval(ctx, c.entrypoint, input); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
