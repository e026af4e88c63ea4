package mcpnative_test

import (
	"context"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/verdictpdp/verdict/internal/engine"
)

// TestFlowsDecline: with flow rules in the catalog, a request whose
// session read what a rule's "after" names is handed back to Rego (which denies it as a
// toxic flow), while the same request from a session that read nothing
// is decided natively and alike.
func TestFlowsDecline(t *testing.T) {
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
	if _, ok := nat.Eval(context.Background(), goInput(tainted)); ok {
		t.Fatal("the native evaluator decided a session that read personal data; flow rules are Rego's")
	}
	v, err := ast.InterfaceToValue(tainted)
	if err != nil {
		t.Fatal(err)
	}
	res, err := snap.Eval(context.Background(), ep, v)
	if err != nil {
		t.Fatal(err)
	}
	d := res.Value.(map[string]any)
	reasons, _ := d["reasons"].([]any)
	if d["allow"] != false || len(reasons) != 1 || reasons[0].(map[string]any)["code"] != "flow.toxic" {
		t.Fatalf("tainted session in Rego: %s, want a flow.toxic deny", js(d))
	}
}
