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
