package mcpnative

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/gobwas/glob"
	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/verdictpdp/verdict/internal/mcp"
)

// The compiled form of data.mcp.rules: who a rule is for, its target
// patterns and its conditions, each checked for the shapes the library
// reads as this package does.

type who struct {
	present bool
	values  []string
}

type rule struct {
	id               string
	who              [4]who // roles, groups, scopes, subjects
	patterns         [numKinds][]*glob.Pattern
	patternsRaw      [numKinds][]string
	allowDestructive bool
	conds            []*cond
	hours            *hours
	cidrs            []*ast.Term
	hasCIDRs         bool
	cidrMsg          string
	regions          []string
	hasRegions       bool
	regionsMsg       string
	purposes         []string
	hasPurposes      bool
	purposesMsg      string
}

var whoFields = [4]string{"roles", "groups", "scopes", "subjects"}

// cond is one argument condition of a rule.
type cond struct {
	path     []string
	op       string
	want     ast.Value
	wantStr  string
	re       *regexp.Regexp
	optional bool
	msg      string // the rule's access.condition message when it fails
}

type hours struct {
	start, end ast.Value // hhmm of start and end; nil when undefined
	tz         *ast.Term
	days       map[string]bool
	hasDays    bool
	msg        string
}

func (cc *compiler) rule(v any) (*rule, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("is %s, not an object", mcp.TypeName(v))
	}
	r := &rule{id: "unnamed"}
	if iv, ok := m["id"]; ok {
		s, ok := iv.(string)
		if !ok {
			return nil, fmt.Errorf("id is %s, not a string", mcp.TypeName(iv))
		}
		r.id = s
	}
	for i, f := range whoFields {
		fv, ok := m[f]
		if !ok || fv == false {
			continue
		}
		list, err := stringList(fv)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		r.who[i] = who{present: true, values: list}
	}
	for k := range numKinds {
		pats, err := stringsOr(m, kindNames[k], nil)
		if err != nil {
			return nil, err
		}
		for _, p := range pats {
			g, err := glob.Compile(p, '/')
			if err != nil {
				return nil, fmt.Errorf("%s: pattern %q does not compile: %w", kindNames[k], p, err)
			}
			r.patterns[k] = append(r.patterns[k], g)
			r.patternsRaw[k] = append(r.patternsRaw[k], p)
		}
	}
	if ad, ok := m["allow_destructive"]; ok {
		if _, ok := ad.(bool); !ok {
			return nil, fmt.Errorf("allow_destructive is %s, not a boolean", mcp.TypeName(ad))
		}
		r.allowDestructive = ad == true
	}
	when, err := objectOr(m, "when")
	if err != nil {
		return nil, err
	}
	if err := cc.when(r, when); err != nil {
		return nil, fmt.Errorf("when: %w", err)
	}
	return r, nil
}

func (cc *compiler) when(r *rule, when map[string]any) error {
	if av, ok := when["arguments"]; ok {
		arr, ok := av.([]any)
		if !ok {
			return fmt.Errorf("arguments is %s, not an array", mcp.TypeName(av))
		}
		for i, cv := range arr {
			c, err := cc.cond(r, cv)
			if err != nil {
				return fmt.Errorf("arguments[%d]: %w", i, err)
			}
			r.conds = append(r.conds, c)
		}
	}
	if hv, ok := when["hours"]; ok {
		h, err := cc.hours(r, hv)
		if err != nil {
			return fmt.Errorf("hours: %w", err)
		}
		r.hours = h
	}
	if cv, ok := when["source_cidrs"]; ok {
		list, err := stringList(cv)
		if err != nil {
			return fmt.Errorf("source_cidrs: %w", err)
		}
		for _, c := range list {
			r.cidrs = append(r.cidrs, ast.StringTerm(c))
		}
		r.hasCIDRs, r.cidrMsg = true, "rule "+r.id+": allowed only from the configured source networks"
	}
	var err error
	if r.regions, r.hasRegions, r.regionsMsg, err = contextList(r, when, "regions", "allowed only in regions %v"); err != nil {
		return err
	}
	if r.purposes, r.hasPurposes, r.purposesMsg, err = contextList(r, when, "purposes", "allowed only for purposes %v"); err != nil {
		return err
	}
	return nil
}

func contextList(r *rule, when map[string]any, key, format string) ([]string, bool, string, error) {
	v, ok := when[key]
	if !ok {
		return nil, false, "", nil
	}
	list, err := stringList(v)
	if err != nil {
		return nil, false, "", fmt.Errorf("%s: %w", key, err)
	}
	av, err := ast.InterfaceToValue(v)
	if err != nil {
		return nil, false, "", err
	}
	msg, err := sprintf(format, av)
	if err != nil {
		return nil, false, "", err
	}
	return list, true, "rule " + r.id + ": " + msg, nil
}

// ops are the argument operators of access.rego's compare.
var ops = map[string]bool{
	"eq": true, "ne": true, "lt": true, "lte": true, "gt": true, "gte": true, "in": true, "not_in": true,
	"prefix": true, "matches": true, "max_length": true, "max_items": true, "path_under": true,
}

func (cc *compiler) cond(r *rule, v any) (*cond, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("is %s, not an object", mcp.TypeName(v))
	}
	path, ok := m["path"].(string)
	if !ok {
		return nil, fmt.Errorf("path is %s, not a string", mcp.TypeName(m["path"]))
	}
	op, ok := m["op"].(string)
	if !ok || !ops[op] {
		return nil, fmt.Errorf("op %v is not an operator of the library", m["op"])
	}
	want, ok := m["value"]
	if !ok {
		return nil, errors.New("value is missing")
	}
	wv, err := ast.InterfaceToValue(want)
	if err != nil {
		return nil, err
	}
	c := &cond{path: strings.Split(path, "."), op: op, want: wv, optional: m["optional"] == true}
	switch op {
	case "lt", "lte", "gt", "gte", "max_length", "max_items":
		if _, ok := wv.(ast.Number); !ok {
			return nil, fmt.Errorf("op %s needs a number, not %s", op, mcp.TypeName(want))
		}
	case "in", "not_in":
		if _, ok := wv.(*ast.Array); !ok {
			return nil, fmt.Errorf("op %s needs an array, not %s", op, mcp.TypeName(want))
		}
	case "prefix", "path_under", "matches":
		s, ok := want.(string)
		if !ok {
			return nil, fmt.Errorf("op %s needs a string, not %s", op, mcp.TypeName(want))
		}
		c.wantStr = s
		if op == "matches" {
			if c.re, err = regexp.Compile(s); err != nil {
				return nil, fmt.Errorf("op matches: %q is not a regular expression: %w", s, err)
			}
		}
	}
	msg, err := sprintf("argument %s must satisfy %s %v", ast.String(path), ast.String(op), wv)
	if err != nil {
		return nil, err
	}
	c.msg = "rule " + r.id + ": " + msg
	return c, nil
}

func (cc *compiler) hours(r *rule, v any) (*hours, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("is %s, not an object", mcp.TypeName(v))
	}
	start, ok1 := m["start"].(string)
	end, ok2 := m["end"].(string)
	if !ok1 || !ok2 {
		return nil, errors.New("needs strings start and end")
	}
	tz := "UTC"
	if tv, ok := m["timezone"]; ok {
		s, ok := tv.(string)
		if !ok {
			return nil, fmt.Errorf("timezone is %s, not a string", mcp.TypeName(tv))
		}
		tz = s
	}
	h := &hours{tz: ast.StringTerm(tz)}
	var err error
	if h.start, err = cc.eval(`data.verdict.mcp.hhmm(input)`, ast.String(start)); err != nil {
		return nil, err
	}
	if h.end, err = cc.eval(`data.verdict.mcp.hhmm(input)`, ast.String(end)); err != nil {
		return nil, err
	}
	if dv, ok := m["days"]; ok && dv != false {
		days, err := stringList(dv)
		if err != nil {
			return nil, fmt.Errorf("days: %w", err)
		}
		h.hasDays, h.days = true, map[string]bool{}
		for _, d := range days {
			k, err := cc.eval(`lower(substring(input, 0, 3))`, ast.String(d))
			if err != nil {
				return nil, err
			}
			if s, ok := k.(ast.String); ok {
				h.days[string(s)] = true
			}
		}
	}
	msg, err := sprintf("allowed only %v-%v %v", ast.String(start), ast.String(end), ast.String(tz))
	if err != nil {
		return nil, err
	}
	h.msg = "rule " + r.id + ": " + msg
	return h, nil
}
