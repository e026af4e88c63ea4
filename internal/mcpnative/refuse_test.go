package mcpnative_test

import (
	"context"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	opabundle "github.com/open-policy-agent/opa/v1/bundle"

	"github.com/verdictpdp/verdict"
	"github.com/verdictpdp/verdict/internal/engine"
)

// TestRefusals: policies and data the native evaluator cannot promise to
// decide as the library does keep the entrypoint in Rego, with the reason
// in the status, and decisions still come (from Rego).
func TestRefusals(t *testing.T) {
	rule := func(r map[string]any) map[string]any {
		return map[string]any{"mcp": map[string]any{"servers": map[string]any{}, "rules": []any{r}}}
	}
	tool := func(e map[string]any) map[string]any {
		return map[string]any{"mcp": map[string]any{"servers": map[string]any{"crm": map[string]any{"tools": map[string]any{"t": e}}}}}
	}
	cases := []struct {
		name    string
		data    map[string]any
		modules map[string]string // added to a bundle of their own
		want    string
	}{
		{name: "unknown operator", data: rule(map[string]any{"tools": []any{"crm/*"}, "when": map[string]any{"arguments": []any{map[string]any{"path": "a", "op": "approx", "value": 1}}}}), want: "not an operator"},
		{name: "bad glob", data: rule(map[string]any{"tools": []any{"crm/[a"}}), want: "does not compile"},
		{name: "bad regular expression", data: rule(map[string]any{"tools": []any{"crm/*"}, "when": map[string]any{"arguments": []any{map[string]any{"path": "a", "op": "matches", "value": "("}}}}), want: "not a regular expression"},
		{name: "condition without value", data: rule(map[string]any{"tools": []any{"crm/*"}, "when": map[string]any{"arguments": []any{map[string]any{"path": "a", "op": "eq"}}}}), want: "value is missing"},
		{name: "numeric operator on a string", data: rule(map[string]any{"tools": []any{"crm/*"}, "when": map[string]any{"arguments": []any{map[string]any{"path": "a", "op": "lt", "value": "10"}}}}), want: "needs a number"},
		{name: "roles not a list", data: rule(map[string]any{"roles": "admin", "tools": []any{"crm/*"}}), want: "roles"},
		{name: "bad schema", data: tool(map[string]any{"input_schema": map[string]any{"type": 12}}), want: "does not compile"},
		{name: "remote schema reference", data: tool(map[string]any{"input_schema": map[string]any{"$ref": "http://example.com/s.json"}}), want: "$ref"},
		{name: "remote schema id", data: tool(map[string]any{"input_schema": map[string]any{"$id": "http://example.com/s.json", "type": "object"}}), want: "$id"},
		{name: "null schema", data: tool(map[string]any{"input_schema": nil}), want: "input_schema"},
		{name: "classification not a string", data: tool(map[string]any{"classification": 3}), want: "classification"},
		{name: "hours without end", data: rule(map[string]any{"tools": []any{"crm/*"}, "when": map[string]any{"hours": map[string]any{"start": "08:00"}}}), want: "start and end"},
		{name: "duplicate resource prefix", data: map[string]any{"mcp": map[string]any{"servers": map[string]any{"crm": map[string]any{"resources": []any{
			map[string]any{"uri_prefix": "a://"}, map[string]any{"uri_prefix": "a://", "classification": "public"}}}}}}, want: "listed twice"},
		{name: "rules not a list", data: map[string]any{"mcp": map[string]any{"rules": map[string]any{}}}, want: "rules"},
		{name: "a rule added to the library", data: rule(map[string]any{"tools": []any{"crm/*"}}),
			modules: map[string]string{"extra.rego": "package verdict.mcp\n\ndeny contains reason(\"custom\", \"no\") if input.method == \"ping\"\n"}, want: "changes the MCP library"},
		{name: "a rule written from another package", data: rule(map[string]any{"tools": []any{"crm/*"}}),
			modules: map[string]string{"extra.rego": "package verdict\n\nmcp.deny contains {\"code\": \"x\", \"message\": \"y\"} if input.method == \"ping\"\n"}, want: "changes the MCP library"},
		{name: "rules computed in data.mcp", data: map[string]any{},
			modules: map[string]string{"extra.rego": "package mcp\n\nrules := [r | some r in input.rules]\n"}, want: "data.mcp"},
	}
	lib := libraryBundle(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			eng, err := engine.New(engine.Deps{Entrypoints: []string{ep}, Natives: map[string]engine.Native{ep: newCompiler()}})
			if err != nil {
				t.Fatal(err)
			}
			bundles := map[string]*opabundle.Bundle{verdict.MCPBundle: lib}
			if tc.data != nil {
				roots := []string{"mcp"}
				bundles["catalog"] = &opabundle.Bundle{Data: jsonData(t, tc.data), Manifest: opabundle.Manifest{Revision: "c", Roots: &roots}}
			}
			if tc.modules != nil {
				// A user bundle carrying the library and more, claiming all
				// of data.
				user := &opabundle.Bundle{Data: jsonData(t, tc.data), Modules: append([]opabundle.ModuleFile(nil), lib.Modules...)}
				user.Manifest.Revision = "user"
				user.Manifest.Init()
				for name, src := range tc.modules {
					m, err := ast.ParseModuleWithOpts(name, src, ast.ParserOptions{RegoVersion: ast.RegoV1})
					if err != nil {
						t.Fatal(err)
					}
					user.Modules = append(user.Modules, opabundle.ModuleFile{URL: name, Path: name, Raw: []byte(src), Parsed: m})
				}
				bundles = map[string]*opabundle.Bundle{"user": user}
			}
			snap, err := eng.Activate(context.Background(), bundles)
			if err != nil {
				t.Fatal(err)
			}
			ev := snap.Evaluators()[ep]
			if ev.Kind != engine.EvaluatorRego || !strings.Contains(ev.Reason, tc.want) {
				t.Fatalf("evaluator %s, reason %q; want rego because of %q", ev.Kind, ev.Reason, tc.want)
			}
			if snap.Native(ep) != nil {
				t.Fatal("a refused entrypoint has a native evaluator")
			}
		})
	}
}

// TestSwitchedOff: DisableNative keeps the library in Rego and says so.
func TestSwitchedOff(t *testing.T) {
	eng, err := engine.New(engine.Deps{Entrypoints: []string{ep}, Natives: map[string]engine.Native{ep: newCompiler()}, DisableNative: true})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := eng.Activate(context.Background(), map[string]*opabundle.Bundle{verdict.MCPBundle: libraryBundle(t)})
	if err != nil {
		t.Fatal(err)
	}
	if ev := snap.Evaluators()[ep]; ev.Kind != engine.EvaluatorRego || !strings.Contains(ev.Reason, "switched off") {
		t.Fatalf("evaluator %+v", ev)
	}
}
