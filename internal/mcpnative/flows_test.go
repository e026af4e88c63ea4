package mcpnative_test

import (
	"context"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/verdictpdp/verdict/internal/engine"
)

// TestFlows: flow rules are decided natively and alike, a toxic flow
// included; rules of a shape only Rego reads exactly send the sessions
// that may meet them to Rego.
func TestFlows(t *testing.T) {
	snap, ev := activate(t, libraryBundle(t), exampleData(t))
	if ev.Kind != engine.EvaluatorNative {
		t.Fatalf("example catalog runs in %s: %s", ev.Kind, ev.Reason)
	}
	nat := snap.Native(ep)
	createIssue := func(session map[string]any) map[string]any {
		in := exampleCall(1)
		s := in["subject"].(map[string]any)
		s["groups"], s["scopes"] = []any{"engineering"}, []any{"github:write"}
		in["server"] = map[string]any{"name": "github"}
		in["tool"] = map[string]any{"name": "create_issue", "arguments": map[string]any{"repo": "acme/app", "title": "hello"}}
		in["session"] = session
		return in
	}
	fresh := createIssue(map[string]any{"id": "s2", "calls": 3, "tools": map[string]any{"github/list_issues": 3}})
	decided, err := differ(snap, fresh)
	if err != nil || !decided {
		t.Fatalf("fresh session: decided %v, %v", decided, err)
	}
	got, _ := nat.Eval(context.Background(), goInput(fresh))
	if got.(map[string]any)["allow"] != true {
		t.Fatalf("fresh session: %s, want allow", js(got))
	}

	// A session that read internal data meets no rule's "after": still
	// native, and alike.
	internal := createIssue(map[string]any{"id": "s3", "calls": 1, "classification": "internal", "classification_source": "files/read_file",
		"tools": map[string]any{"files/read_file": 1}})
	if decided, err := differ(snap, internal); err != nil || !decided {
		t.Fatalf("session that read internal data: decided %v, %v", decided, err)
	}

	tainted := createIssue(map[string]any{"id": "s1", "calls": 1, "classification": "confidential", "classification_source": "crm/get_contact",
		"categories": map[string]any{"personal_data": "crm/get_contact"}})
	if decided, err := differ(snap, tainted); err != nil || !decided {
		t.Fatalf("tainted session: decided %v, %v", decided, err)
	}
	got, _ = nat.Eval(context.Background(), goInput(tainted))
	d := got.(map[string]any)
	reasons, _ := d["reasons"].([]any)
	if d["allow"] != false || len(reasons) != 1 || reasons[0].(map[string]any)["code"] != "flow.toxic" {
		t.Fatalf("tainted session: %s, want a flow.toxic deny", js(d))
	}

	// Flow rules of a shape only Rego reads exactly: a session that may
	// meet one is Rego's, one that cannot is still native.
	raw := exampleData(t)
	raw["mcp"].(map[string]any)["flows"] = map[string]any{"odd": map[string]any{"after": map[string]any{"categories": []any{"personal_data"}}, "to": map[string]any{"open_world": true}}}
	snap, ev = activate(t, libraryBundle(t), raw)
	if ev.Kind != engine.EvaluatorNative {
		t.Fatalf("odd flows: the catalog runs in %s: %s", ev.Kind, ev.Reason)
	}
	if _, ok := snap.Native(ep).Eval(context.Background(), goInput(tainted)); ok {
		t.Fatal("odd flows: the native evaluator decided a session that may meet a rule")
	}
	v, err := ast.InterfaceToValue(tainted)
	if err != nil {
		t.Fatal(err)
	}
	res, err := snap.Eval(context.Background(), ep, v)
	if err != nil {
		t.Fatal(err)
	}
	if res.Value.(map[string]any)["allow"] != false {
		t.Fatalf("odd flows in Rego: %s, want a deny", js(res.Value))
	}
	if decided, err := differ(snap, fresh); err != nil || !decided {
		t.Fatalf("odd flows, fresh session: decided %v, %v", decided, err)
	}
}

// TestFlowsGenerated compares native and Rego decisions on generated
// catalogs with flow rules and generated requests whose sessions read
// things, and checks that flow rules did stop some of them natively.
func TestFlowsGenerated(t *testing.T) {
	lib := libraryBundle(t)
	flowsHit := 0
	for seed := range uint64(12) {
		g := newGen(100 + seed)
		cat := g.catalog(20)
		cat["mcp"].(map[string]any)["flows"] = []any{
			map[string]any{"id": "egress", "after": map[string]any{"classification": "confidential", "categories": []any{"personal_data", "phi"}}, "to": map[string]any{"open_world": true}},
			map[string]any{"id": "listed", "after": map[string]any{"findings": []any{"secret"}, "classification": "internal"}, "to": map[string]any{"tools": []any{"*/*"}}, "effect": "require_approval"},
			map[string]any{"after": map[string]any{"categories": []any{"phi"}}, "to": map[string]any{"tools": []any{"crm/*"}}},
			map[string]any{"id": "answers", "after": map[string]any{"categories": []any{"personal_data"}}, "to": map[string]any{"responses": true}, "effect": "deny"},
		}
		data := jsonData(t, cat)
		snap, ev := activate(t, lib, data)
		if ev.Kind != engine.EvaluatorNative {
			t.Logf("seed %d runs in Rego: %s", seed, ev.Reason)
			continue
		}
		for i := range 300 {
			in := g.request()
			decided, err := differ(snap, in)
			if err != nil {
				t.Fatalf("seed %d request %d %s\n%v", seed, i, short(in), err)
			}
			if !decided {
				continue
			}
			got, _ := snap.Native(ep).Eval(context.Background(), goInput(in))
			for _, r := range got.(map[string]any)["reasons"].([]any) {
				if code := r.(map[string]any)["code"].(string); code == "flow.toxic" || code == "flow.approval" {
					flowsHit++
				}
			}
		}
	}
	if flowsHit < 10 {
		t.Fatalf("flow rules stopped %d generated requests natively: the test proves little", flowsHit)
	}
	t.Logf("flow rules stopped %d generated requests, native and Rego alike", flowsHit)
}
