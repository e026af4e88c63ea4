package mcpnative_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	opabundle "github.com/open-policy-agent/opa/v1/bundle"

	"github.com/verdictpdp/verdict"
	"github.com/verdictpdp/verdict/internal/bundle"
	"github.com/verdictpdp/verdict/internal/engine"
	"github.com/verdictpdp/verdict/internal/mcpnative"
	"github.com/verdictpdp/verdict/internal/projection"
)

const ep = mcpnative.Entrypoint

// libraryBundle is the built-in MCP library bundle.
func libraryBundle(tb testing.TB) *opabundle.Bundle {
	tb.Helper()
	b, err := bundle.NewReader(bundle.Limits{}, nil).ReadFS(verdict.MCPBundle, verdict.DefaultBundles()[verdict.MCPBundle])
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func newCompiler() *mcpnative.Compiler {
	return mcpnative.New(verdict.DefaultBundles()[verdict.MCPBundle], "verdict/mcp")
}

// jsonData round-trips v through JSON, so numbers are json.Number as a
// bundle reader gives them.
func jsonData(tb testing.TB, v any) map[string]any {
	tb.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var out map[string]any
	if err := dec.Decode(&out); err != nil {
		tb.Fatal(err)
	}
	return out
}

// activate returns a snapshot of the library with data (the whole data
// document: {"mcp": ...}) and whether the native compiler accepted it.
func activate(tb testing.TB, lib *opabundle.Bundle, data map[string]any) (*engine.Snapshot, engine.Evaluator) {
	tb.Helper()
	eng, err := engine.New(engine.Deps{
		Entrypoints: []string{ep},
		Natives:     map[string]engine.Native{ep: newCompiler()},
	})
	if err != nil {
		tb.Fatal(err)
	}
	roots := []string{"mcp"}
	cat := &opabundle.Bundle{Data: data, Manifest: opabundle.Manifest{Revision: "catalog", Roots: &roots}}
	snap, err := eng.Activate(context.Background(), map[string]*opabundle.Bundle{verdict.MCPBundle: lib, "catalog": cat})
	if err != nil {
		tb.Fatal(err)
	}
	return snap, snap.Evaluators()[ep]
}

// goInput is an engine.Input in its Go form.
type goInput map[string]any

func (in goInput) AppendKey(dst []byte, _ *projection.Projection) ([]byte, bool) { return dst, false }
func (in goInput) Value() (ast.Value, error)                                     { return ast.InterfaceToValue(map[string]any(in)) }
func (in goInput) Subject() string                                               { return "" }
func (in goInput) GoValue() map[string]any                                       { return in }

// differ evaluates in natively and in Rego on snap. It returns whether the
// native evaluator decided (rather than handing the input back), and an
// error describing any difference.
func differ(snap *engine.Snapshot, in map[string]any) (bool, error) {
	ctx := context.Background()
	av, err := ast.InterfaceToValue(in)
	if err != nil {
		return false, err
	}
	res, regoErr := snap.Eval(ctx, ep, av)
	nat := snap.Native(ep)
	if nat == nil {
		return false, nil
	}
	got, ok := nat.Eval(ctx, goInput(in))
	if !ok {
		return false, nil
	}
	if regoErr != nil {
		return true, fmt.Errorf("native decided %s, Rego failed: %w", js(got), regoErr)
	}
	if !reflect.DeepEqual(got, res.Value) {
		return true, fmt.Errorf("native %s\n      rego %s", js(got), js(res.Value))
	}
	return true, nil
}

func js(v any) string {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%#v", v)
	}
	return string(raw)
}
