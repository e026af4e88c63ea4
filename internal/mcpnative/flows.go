package mcpnative

import (
	"encoding/json"
	"math"
)

// flowAfter is what one flow rule needs a session to have read before it
// can stop a call (the library's flow_reads). The native evaluator does
// not decide flow rules: it proves that none can apply, or hands the
// request to Rego.
type flowAfter struct {
	level      int // -1: no classification condition
	categories []string
	findings   []string
	// unknown is set when the rule has a shape this check does not read
	// exactly: every request from a session with state goes to Rego.
	unknown bool
}

// flowAfters reads data.mcp.flows (nil: no rules).
func flowAfters(v any) []flowAfter {
	var rules []any
	switch fv := v.(type) {
	case nil:
		return nil
	case []any:
		rules = fv
	case map[string]any:
		for _, r := range fv {
			rules = append(rules, r)
		}
	default:
		return []flowAfter{{level: -1, unknown: true}}
	}
	out := make([]flowAfter, 0, len(rules))
	for _, r := range rules {
		rm, ok := r.(map[string]any)
		if !ok {
			continue // rule.after is undefined: the rule never applies
		}
		after, ok := rm["after"].(map[string]any)
		if !ok {
			if _, has := rm["after"]; has {
				out = append(out, flowAfter{level: -1, unknown: true})
			}
			continue
		}
		fa := flowAfter{level: -1}
		if c, has := after["classification"]; has {
			if s, ok := c.(string); ok {
				if l, known := levels[s]; known {
					fa.level = l
				}
			}
		}
		fa.categories, ok = anyStrings(after["categories"])
		fa.unknown = fa.unknown || !ok
		fa.findings, ok = anyStrings(after["findings"])
		fa.unknown = fa.unknown || !ok
		out = append(out, fa)
	}
	return out
}

// anyStrings returns the strings of a list (other elements can match
// nothing a session records); false when v is neither absent nor a list.
func anyStrings(v any) ([]string, bool) {
	switch l := v.(type) {
	case nil:
		return nil, true
	case []any:
		var out []string
		for _, e := range l {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out, true
	}
	return nil, false
}

// mayFlow reports whether some flow rule's "after" could hold for the
// request's session: when in doubt, true.
func mayFlow(flows []flowAfter, in map[string]any) bool {
	sv, has := in["session"]
	if !has {
		return false
	}
	s, ok := sv.(map[string]any)
	if !ok {
		return true
	}
	_, hasClass := s["classification"]
	cats, hasCats := s["categories"]
	finds, hasFinds := s["findings"]
	if !hasClass && !hasCats && !hasFinds {
		return false
	}
	catMap, catsOK := cats.(map[string]any)
	findMap, findsOK := finds.(map[string]any)
	if (hasCats && !catsOK) || (hasFinds && !findsOK) {
		return true
	}
	level := -1
	if hasClass {
		c, ok := s["classification"].(string)
		if !ok {
			return true
		}
		if l, known := levels[c]; known {
			level = l
		}
	}
	for _, f := range flows {
		if f.unknown {
			return true
		}
		if f.level >= 0 && level >= f.level {
			return true
		}
		for _, c := range f.categories {
			if _, read := catMap[c]; read {
				return true
			}
		}
		for _, d := range f.findings {
			if n, has := findMap[d]; has && !nonPositive(n) {
				return true
			}
		}
	}
	return false
}

// nonPositive reports whether n is a number no greater than zero (Rego's
// n > 0 is then false); anything else may compare greater.
func nonPositive(n any) bool {
	switch v := n.(type) {
	case int:
		return v <= 0
	case int64:
		return v <= 0
	case float64:
		return v <= 0 && !math.IsNaN(v)
	case json.Number:
		f, err := v.Float64()
		return err == nil && f <= 0
	}
	return false
}
