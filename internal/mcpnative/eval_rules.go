package mcpnative

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Deciding with rules: finding a request's candidate rules and the
// conditions of each that fail (access.rego).

// ruleState is what a decision learnt about one candidate rule.
type ruleState struct {
	rule     *rule
	failures []string // access.condition messages
}

// candidates returns the rules that apply to the subject and the target,
// each with the messages of its conditions that fail.
func (cat *catalog) candidates(r *request, t target) ([]ruleState, bool) {
	name := t.name
	if t.kindIx != kindResource {
		name = r.server + "/" + t.name
	}
	var out []ruleState
	for _, id := range cat.ruleCandidates(r, t.kindIx, name) {
		rl := cat.rules[id]
		if !rl.matchesSubject(r) || !rl.matchesTarget(t.kindIx, name) {
			continue
		}
		st := ruleState{rule: rl}
		for _, c := range rl.conds {
			holds, ok := c.holds(r.args)
			if !ok {
				return nil, false
			}
			if !holds {
				st.failures = append(st.failures, c.msg)
			}
		}
		fails, ok := rl.contextFailures(r)
		if !ok {
			return nil, false
		}
		st.failures = append(st.failures, fails...)
		out = append(out, st)
	}
	return out, true
}

// ruleCandidates returns the rules that may apply to the subject and have a
// pattern of kind that may match name: the shorter of the two indexes'
// answers (the caller checks both in full).
func (cat *catalog) ruleCandidates(r *request, kind int, name string) []int32 {
	if !r.hasID || !r.hasWho[0] || !r.hasWho[1] || !r.hasWho[2] {
		return nil // no rule applies (see matchesSubject)
	}
	byTarget := cat.index[kind].candidates(make([]int32, 0, 16), name)
	if len(byTarget) <= 4 {
		return byTarget
	}
	bySubject := cat.bySubj.candidates(make([]int32, 0, 16), r)
	if len(bySubject) < len(byTarget) {
		return bySubject
	}
	return byTarget
}

func (rl *rule) matchesTarget(kind int, name string) bool {
	for _, g := range rl.patterns[kind] {
		if g.Match(name) {
			return true
		}
	}
	return false
}

// matchesSubject is rule_subject: every who-list the rule has shares an
// entry with the subject's.
func (rl *rule) matchesSubject(r *request) bool {
	if !r.hasID || !r.hasWho[0] || !r.hasWho[1] || !r.hasWho[2] {
		return false // an undefined operand makes rule_subject undefined
	}
	for i := range 3 {
		if w := rl.who[i]; w.present && !anyIn(r.who[i], w.values) {
			return false
		}
	}
	if w := rl.who[3]; w.present && !slices.Contains(w.values, r.id) {
		return false
	}
	return true
}

// anyIn reports whether some string of want is in have.
func anyIn(have []any, want []string) bool {
	for _, h := range have {
		if s, ok := h.(string); ok && slices.Contains(want, s) {
			return true
		}
	}
	return false
}

// contextFailures returns the messages of the rule's context conditions
// that do not hold.
func (rl *rule) contextFailures(r *request) ([]string, bool) {
	var out []string
	if rl.hours != nil {
		within, ok := rl.hours.within(r)
		if !ok {
			return nil, false
		}
		if !within {
			out = append(out, rl.hours.msg)
		}
	}
	if rl.hasCIDRs {
		in := false
		if r.hasSource {
			ip, err := ast.InterfaceToValue(r.sourceIP)
			if err != nil {
				return nil, false
			}
			for _, c := range rl.cidrs {
				v, err := call(r.ctx, builtinCIDR, nil, nil, c, ast.NewTerm(ip))
				if err == nil && v == ast.Boolean(true) {
					in = true
					break
				}
			}
		}
		if !in {
			out = append(out, rl.cidrMsg)
		}
	}
	if rl.hasRegions && !slices.Contains(rl.regions, r.region) {
		out = append(out, rl.regionsMsg)
	}
	if rl.hasPurposes && !slices.Contains(rl.purposes, r.purpose) {
		out = append(out, rl.purposesMsg)
	}
	return out, true
}

// within is within_hours, with OPA's time built-ins.
func (h *hours) within(r *request) (bool, bool) {
	if !r.hasTime || h.start == nil || h.end == nil {
		return false, true
	}
	ns, err := call(r.ctx, builtinParseNs, nil, nil, ast.StringTerm(r.time))
	if err != nil {
		return false, true
	}
	at := ast.ArrayTerm(ast.NewTerm(ns), h.tz)
	clock, err := call(r.ctx, builtinClock, nil, nil, at)
	if err != nil {
		return false, true
	}
	arr, ok := clock.(*ast.Array)
	if !ok || arr.Len() < 2 {
		return false, false
	}
	hh, ok1 := arr.Elem(0).Value.(ast.Number).Int()
	mm, ok2 := arr.Elem(1).Value.(ast.Number).Int()
	if !ok1 || !ok2 {
		return false, false
	}
	minutes := ast.Number(fmt.Sprint(hh*60 + mm))
	if minutes.Compare(h.start) < 0 || minutes.Compare(h.end) >= 0 {
		return false, true
	}
	if !h.hasDays {
		return true, true
	}
	wd, err := call(r.ctx, builtinWeekday, nil, nil, at)
	if err != nil {
		return false, true
	}
	s, ok := wd.(ast.String)
	if !ok {
		return false, false
	}
	day := string(s)
	if utf8.RuneCountInString(day) > 3 {
		day = string([]rune(day)[:3])
	}
	return h.days[strings.ToLower(day)], true
}

// argument is object.get(arguments, path, missing): nil when missing.
func argument(args map[string]any, path []string) any {
	var cur any = args
	for _, seg := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		if cur, ok = m[seg]; !ok {
			return nil
		}
	}
	if isMissingMarker(cur) {
		return nil
	}
	return present{cur}
}

// present wraps an argument's value, which may itself be null.
type present struct{ v any }

func isMissingMarker(v any) bool {
	m, ok := v.(map[string]any)
	return ok && len(m) == 1 && m["verdict"] == "missing argument"
}

// isString reports whether the argument a is the string s; a missing
// argument never is.
func isString(a any, s string) bool {
	p, ok := a.(present)
	if !ok {
		return false
	}
	v, ok := p.v.(string)
	return ok && v == s
}

// toValue converts an input value as the engine converts the input.
func toValue(v any) (ast.Value, bool) {
	av, err := ast.InterfaceToValue(v)
	return av, err == nil
}

// holds is argument_holds.
func (c *cond) holds(args map[string]any) (bool, bool) {
	a := argument(args, c.path)
	p, isPresent := a.(present)
	if !isPresent {
		return c.optional, true
	}
	v := p.v
	switch c.op {
	case "prefix":
		s, ok := v.(string)
		return ok && strings.HasPrefix(s, c.wantStr), true
	case "matches":
		s, ok := v.(string)
		return ok && c.re.MatchString(s), true
	case "path_under":
		s, ok := v.(string)
		return ok && pathUnder(s, c.wantStr), true
	case "max_length":
		s, ok := v.(string)
		if !ok {
			return false, true
		}
		return ast.Number(fmt.Sprint(utf8.RuneCountInString(s))).Compare(c.want) <= 0, true
	case "eq", "ne":
		eq, ok := equal(v, c.want)
		return eq == (c.op == "eq"), ok
	}
	av, ok := toValue(v)
	if !ok {
		return false, false
	}
	switch c.op {
	case "lt", "lte", "gt", "gte":
		if _, isNum := av.(ast.Number); !isNum {
			return false, true
		}
		d := av.Compare(c.want)
		switch c.op {
		case "lt":
			return d < 0, true
		case "lte":
			return d <= 0, true
		case "gt":
			return d > 0, true
		default:
			return d >= 0, true
		}
	case "in", "not_in":
		arr := c.want.(*ast.Array)
		found := false
		t := ast.NewTerm(av)
		arr.Until(func(x *ast.Term) bool {
			found = t.Equal(x)
			return found
		})
		return found == (c.op == "in"), true
	case "max_items":
		a, isArr := av.(*ast.Array)
		if !isArr {
			return false, true
		}
		return ast.Number(fmt.Sprint(a.Len())).Compare(c.want) <= 0, true
	}
	return false, false
}

// equal is Rego's == between an input value and a data value.
func equal(v any, want ast.Value) (bool, bool) {
	if s, ok := v.(string); ok {
		w, isStr := want.(ast.String)
		return isStr && string(w) == s, true
	}
	av, ok := toValue(v)
	if !ok {
		return false, false
	}
	return ast.NewTerm(av).Equal(ast.NewTerm(want)), true
}

// pathUnder is compare("path_under", v, want).
func pathUnder(v, want string) bool {
	if strings.Contains(v, `\`) || strings.Contains(v, "\x00") {
		return false
	}
	for seg := range strings.SplitSeq(v, "/") {
		if seg == "." || seg == ".." {
			return false
		}
	}
	return strings.HasPrefix(v, strings.TrimSuffix(want, "/")+"/")
}
