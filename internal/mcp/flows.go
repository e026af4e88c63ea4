package mcp

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/gobwas/glob"
)

// ComponentFlows is the engine component that checks data.mcp.flows at
// every activation.
const ComponentFlows = "flows"

// ErrInvalidFlows is wrapped when data.mcp.flows is not a list of flow
// rules the library reads as written: a typo ("effect": "block", a
// misspelt key) would otherwise turn a rule off without a word.
var ErrInvalidFlows = errors.New("invalid data.mcp.flows")

var (
	flowKeys   = []string{"id", "description", "after", "to", "effect"}
	afterKeys  = []string{"classification", "categories", "findings"}
	toKeys     = []string{"open_world", "tools", "responses"}
	flowLevels = []string{"public", "internal", "confidential", "restricted"}
)

// CheckFlows reports why v (data.mcp.flows; nil when absent) is not a
// list of flow rules as docs/policies.md describes them.
func CheckFlows(v any) error {
	if v == nil {
		return nil
	}
	rules, ok := v.([]any)
	if !ok {
		return fmt.Errorf("%w: must be a list of rules, not %s", ErrInvalidFlows, TypeName(v))
	}
	ids := map[string]bool{}
	for i, r := range rules {
		if err := checkFlow(r, ids); err != nil {
			return fmt.Errorf("%w: flows[%d]: %w", ErrInvalidFlows, i, err)
		}
	}
	return nil
}

func checkFlow(r any, ids map[string]bool) error {
	m, ok := r.(map[string]any)
	if !ok {
		return fmt.Errorf("a rule is an object, not %s", TypeName(r))
	}
	if err := onlyKeys(m, flowKeys); err != nil {
		return err
	}
	id, ok := m["id"].(string)
	if !ok || id == "" {
		return errors.New("id: a non-empty string is required")
	}
	if ids[id] {
		return fmt.Errorf("id %q is used twice", id)
	}
	ids[id] = true
	if d, has := m["description"]; has {
		if _, ok := d.(string); !ok {
			return errors.New("description: must be a string")
		}
	}
	if e, has := m["effect"]; has && e != "deny" && e != "require_approval" {
		return fmt.Errorf("effect: %v is not deny or require_approval", e)
	}
	after, ok := m["after"].(map[string]any)
	if !ok || len(after) == 0 {
		return errors.New("after: an object with classification, categories or findings is required")
	}
	if err := onlyKeys(after, afterKeys); err != nil {
		return fmt.Errorf("after: %w", err)
	}
	if c, has := after["classification"]; has {
		if s, ok := c.(string); !ok || !slices.Contains(flowLevels, s) {
			return fmt.Errorf("after.classification: %v is not one of %s", c, strings.Join(flowLevels, ", "))
		}
	}
	for _, k := range []string{"categories", "findings"} {
		if err := flowStrings(after[k], "after."+k); err != nil {
			return err
		}
	}
	to, ok := m["to"].(map[string]any)
	if !ok || len(to) == 0 {
		return errors.New("to: an object with open_world, tools or responses is required")
	}
	if err := onlyKeys(to, toKeys); err != nil {
		return fmt.Errorf("to: %w", err)
	}
	for _, k := range []string{"open_world", "responses"} {
		if b, has := to[k]; has {
			if _, ok := b.(bool); !ok {
				return fmt.Errorf("to.%s: must be true or false", k)
			}
		}
	}
	if err := flowStrings(to["tools"], "to.tools"); err != nil {
		return err
	}
	tools, _ := to["tools"].([]any)
	for _, p := range tools {
		if _, err := glob.Compile(p.(string), '/'); err != nil {
			return fmt.Errorf("to.tools: pattern %q does not compile: %w", p, err)
		}
	}
	return nil
}

func onlyKeys(m map[string]any, allowed []string) error {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if !slices.Contains(allowed, k) {
			return fmt.Errorf("unknown member %q (one of %s)", k, strings.Join(allowed, ", "))
		}
	}
	return nil
}

func flowStrings(v any, what string) error {
	if v == nil {
		return nil
	}
	l, ok := v.([]any)
	if !ok {
		return fmt.Errorf("%s: must be a list of strings", what)
	}
	for _, e := range l {
		if _, ok := e.(string); !ok {
			return fmt.Errorf("%s: must be a list of strings", what)
		}
	}
	return nil
}
