package mcpnative

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/gobwas/glob"
)

// flowAfter is what one flow rule needs a session to have read before it
// can stop a call (the library's flow_reads). When some rule has a shape
// flowRules does not read exactly, the evaluator decides no flow rule: it
// proves from these that none can apply, or hands the request to Rego.
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

// flowRule is one rule of data.mcp.flows as the library reads it.
type flowRule struct {
	id        string
	effect    string // "deny", "require_approval", or anything else (no effect)
	after     flowAfter
	openWorld bool
	responses bool
	tools     []*glob.Pattern
}

// flowRules reads data.mcp.flows for deciding them natively; false when
// some rule has a shape only Rego reads exactly (then a session that may
// meet a rule is Rego's).
func flowRules(v any) ([]flowRule, bool) {
	var rules []any
	switch fv := v.(type) {
	case nil:
		return nil, true
	case []any:
		rules = fv
	default:
		return nil, false
	}
	afters := flowAfters(v)
	out := make([]flowRule, 0, len(rules))
	for i, r := range rules {
		rm, ok := r.(map[string]any)
		if !ok {
			return nil, false
		}
		if _, ok := rm["after"].(map[string]any); !ok {
			return nil, false
		}
		fr := flowRule{id: "unnamed", effect: "deny", after: afters[i]}
		if fr.after.unknown {
			return nil, false
		}
		if iv, has := rm["id"]; has {
			if fr.id, ok = iv.(string); !ok {
				return nil, false
			}
		}
		if ev, has := rm["effect"]; has {
			if fr.effect, ok = ev.(string); !ok {
				return nil, false
			}
		}
		to, ok := rm["to"].(map[string]any)
		if !ok {
			if _, has := rm["to"]; has {
				return nil, false
			}
			to = map[string]any{}
		}
		fr.openWorld = to["open_world"] == true
		fr.responses = to["responses"] == true
		pats, ok := to["tools"].([]any)
		if !ok && to["tools"] != nil {
			return nil, false
		}
		for _, p := range pats {
			ps, ok := p.(string)
			if !ok {
				return nil, false
			}
			g, err := glob.Compile(ps, '/')
			if err != nil {
				return nil, false
			}
			fr.tools = append(fr.tools, g)
		}
		out = append(out, fr)
	}
	return out, true
}

// sessionReads is what input.session says was read, as flow rules read
// it.
type sessionReads struct {
	level      int // -1: none
	class      string
	source     string
	categories map[string]any
	findings   map[string]any
}

// readSession reads input.session; false when it has a shape the
// library's flow rules would read differently from what this code does.
func readSession(sv any) (sessionReads, bool) {
	sr := sessionReads{level: -1}
	s, ok := sv.(map[string]any)
	if !ok {
		return sr, sv == nil
	}
	if cv, has := s["classification"]; has {
		c, ok := cv.(string)
		if !ok {
			return sr, false
		}
		if l, known := levels[c]; known {
			sr.level, sr.class = l, c
			if sr.source, ok = s["classification_source"].(string); !ok {
				return sr, false
			}
		}
	}
	if cv, has := s["categories"]; has {
		if sr.categories, ok = cv.(map[string]any); !ok {
			return sr, false
		}
	}
	if fv, has := s["findings"]; has {
		if sr.findings, ok = fv.(map[string]any); !ok {
			return sr, false
		}
	}
	return sr, true
}

// flows returns the flow rules' messages for a tools/call: those of deny
// rules and those of approval rules (the library's flow_message). false
// when the session has a shape to leave to Rego.
func (cat *catalog) flowMessages(r *request, t target, tool *entry) (deny, approve []string, ok bool) {
	toolCall := r.method == "tools/call" && r.hasTool
	if len(cat.flowRules) == 0 || r.result || (!toolCall && !r.response) {
		return nil, nil, true
	}
	sr, ok := readSession(r.session)
	if !ok {
		return nil, nil, false
	}
	if sr.level < 0 && len(sr.categories) == 0 && len(sr.findings) == 0 {
		return nil, nil, true
	}
	qualified := r.server + "/" + r.toolName
	egress := qualified + " is an egress tool"
	if !toolCall {
		egress = "a response to server " + r.server + " is egress"
	}
	targetLevel := 0
	if t.entry != nil {
		targetLevel = t.entry.flowLevel
	}
	for _, fr := range cat.flowRules {
		if fr.effect != "deny" && fr.effect != "require_approval" {
			continue
		}
		sink := fr.responses && r.response
		if toolCall {
			sink = sink || (fr.openWorld && tool != nil && tool.openWorld)
			for _, g := range fr.tools {
				sink = sink || g.Match(qualified)
			}
		}
		if !sink {
			continue
		}
		var reads []string
		if fr.after.level >= 0 && sr.level >= fr.after.level && sr.level > targetLevel {
			reads = append(reads, fmt.Sprintf("%s data from %s", sr.class, sr.source))
		}
		for _, c := range fr.after.categories {
			src, read := sr.categories[c]
			if !read {
				continue
			}
			s, isStr := src.(string)
			if !isStr {
				return nil, nil, false
			}
			if t.entry != nil && slices.Contains(t.entry.categories, c) {
				continue
			}
			reads = append(reads, fmt.Sprintf("%s data from %s", c, s))
		}
		for _, d := range fr.after.findings {
			n, has := sr.findings[d]
			if !has {
				continue
			}
			if !isNumber(n) {
				return nil, nil, false
			}
			if !nonPositive(n) {
				reads = append(reads, d+" in a result")
			}
		}
		if len(reads) == 0 {
			continue
		}
		slices.Sort(reads)
		reads = slices.Compact(reads)
		msg := fmt.Sprintf("%s and this session read %s earlier (flow rule %s)", egress, strings.Join(reads, "; "), fr.id)
		if fr.effect == "deny" {
			deny = append(deny, msg)
		} else {
			approve = append(approve, msg)
		}
	}
	return deny, approve, true
}

func isNumber(n any) bool {
	switch n.(type) {
	case int, int64, float64, json.Number:
		return true
	}
	return false
}
