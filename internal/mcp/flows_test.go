package mcp_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/verdictpdp/verdict/internal/mcp"
)

func TestCheckFlows(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, flows, want string // want: "" valid, else a substring of the error
	}{
		{"absent", `null`, ""},
		{"empty", `[]`, ""},
		{"the example's", `[{"id": "x", "description": "d", "after": {"classification": "restricted", "categories": ["personal_data", "phi"]}, "to": {"open_world": true}, "effect": "deny"}]`, ""},
		{"every member", `[{"id": "x", "after": {"findings": ["secret"]}, "to": {"tools": ["mail/*", "web/{get,post}"], "responses": true}, "effect": "require_approval"}]`, ""},
		{"not a list", `{"x": {}}`, "must be a list of rules, not an object"},
		{"typo in effect", `[{"id": "x", "after": {"categories": ["phi"]}, "to": {"open_world": true}, "effect": "block"}]`, "flows[0]: effect: block is not deny or require_approval"},
		{"misspelt key", `[{"id": "x", "after": {"categories": ["phi"]}, "to": {"open-world": true}}]`, `to: unknown member "open-world"`},
		{"unknown rule member", `[{"id": "x", "after": {"categories": ["phi"]}, "to": {"open_world": true}, "when": {}}]`, `unknown member "when"`},
		{"no id", `[{"after": {"categories": ["phi"]}, "to": {"open_world": true}}]`, "id: a non-empty string is required"},
		{"id twice", `[{"id": "x", "after": {"categories": ["phi"]}, "to": {"open_world": true}}, {"id": "x", "after": {"categories": ["phi"]}, "to": {"open_world": true}}]`, `flows[1]: id "x" is used twice`},
		{"empty after", `[{"id": "x", "after": {}, "to": {"open_world": true}}]`, "after: an object"},
		{"unknown class", `[{"id": "x", "after": {"classification": "secret"}, "to": {"open_world": true}}]`, "after.classification: secret is not one of"},
		{"categories not strings", `[{"id": "x", "after": {"categories": "phi"}, "to": {"open_world": true}}]`, "after.categories: must be a list of strings"},
		{"no to", `[{"id": "x", "after": {"categories": ["phi"]}}]`, "to: an object"},
		{"open_world not a boolean", `[{"id": "x", "after": {"categories": ["phi"]}, "to": {"open_world": "yes"}}]`, "to.open_world: must be true or false"},
		{"bad glob", `[{"id": "x", "after": {"categories": ["phi"]}, "to": {"tools": ["web/[a"]}}]`, `to.tools: pattern "web/[a" does not compile`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var v any
			if err := json.Unmarshal([]byte(tc.flows), &v); err != nil {
				t.Fatal(err)
			}
			err := mcp.CheckFlows(v)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("want valid, got %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, mcp.ErrInvalidFlows)):
				t.Fatalf("got %v, want an ErrInvalidFlows containing %q", err, tc.want)
			}
		})
	}
}

// FuzzCheckFlows: whatever data.mcp.flows holds, checking it never panics,
// and what it accepts has the shapes the library reads (every rule an
// object with an id, an after and a to).
func FuzzCheckFlows(f *testing.F) {
	for _, s := range []string{
		`[{"id": "x", "after": {"classification": "restricted", "categories": ["phi"]}, "to": {"open_world": true}, "effect": "deny"}]`,
		`[{"id": "x", "after": {"findings": ["secret"]}, "to": {"tools": ["mail/*"], "responses": true}, "effect": "require_approval"}]`,
		`{"a": 1}`, `[1]`, `[{"id": "x", "after": {}, "to": {}}]`, `[{"id": "x", "after": {"categories": ["a"]}, "to": {"tools": ["[a"]}}]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var v any
		if json.Unmarshal(raw, &v) != nil {
			return
		}
		if mcp.CheckFlows(v) != nil || v == nil {
			return
		}
		for _, r := range v.([]any) {
			m := r.(map[string]any)
			if _, ok := m["after"].(map[string]any); !ok {
				t.Fatalf("accepted a rule without an after object: %s", raw)
			}
			if _, ok := m["to"].(map[string]any); !ok {
				t.Fatalf("accepted a rule without a to object: %s", raw)
			}
			if id, _ := m["id"].(string); id == "" {
				t.Fatalf("accepted a rule without an id: %s", raw)
			}
		}
	})
}
