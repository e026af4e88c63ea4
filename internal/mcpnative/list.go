package mcpnative

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
)

// listKinds maps input.list.kind to the member naming an entry and the
// kind of rule patterns that grant it.
var listKinds = map[string]struct {
	key       string
	kind      int
	qualified bool
}{
	"tools":              {"name", kindTool, true},
	"prompts":            {"name", kindPrompt, true},
	"resources":          {"uri", kindResource, false},
	"resource_templates": {"uriTemplate", kindResource, false},
}

// decideList is the decision for a list result (lists.rego).
func (cat *catalog) decideList(r *request) (any, bool) {
	switch r.method {
	case "tools/call", "prompts/get", "resources/read":
		return nil, false // a call and a list at once: not something adapters build
	}
	if r.hasTool || r.hasPrompt || r.hasURI {
		return nil, false
	}
	srv := cat.servers[r.server]
	var deny reasonSet
	if !r.authenticated && !cat.allowUnauthenticated {
		deny.add("subject.unauthenticated", "the caller is not authenticated")
	}
	if srv != nil && srv.hasTenants && !slices.Contains(srv.tenants, r.tenant) {
		deny.add("tenant.mismatch", fmt.Sprintf("server %s serves other tenants", r.server))
	}
	permitted := slices.Contains(cat.openMethods, r.method) || r.response
	allow := len(deny) == 0 && permitted
	var reasons []any
	switch {
	case len(deny) > 0:
		reasons = deny.value()
	case !permitted:
		reasons = reasonSet{{"method.unsupported", fmt.Sprintf("method %s is not allowed", r.method)}}.value()
	default:
		reasons = []any{}
	}
	visible, hidden, ok := cat.filter(r, srv)
	if !ok {
		return nil, false
	}
	return map[string]any{
		"allow":            allow,
		"require_approval": false,
		"reasons":          reasons,
		"obligations":      map[string]any{},
		"visible":          visible,
		"hidden":           hidden,
	}, true
}

// filter computes visible and hidden for the list's items.
func (cat *catalog) filter(r *request, srv *server) ([]any, map[string]any, bool) {
	kv, ok := r.list["kind"]
	if !ok {
		return nil, nil, false
	}
	kindName, ok := kv.(string)
	if !ok {
		return nil, nil, false
	}
	var items []any
	if iv, has := r.list["items"]; has && iv != nil {
		if items, ok = iv.([]any); !ok {
			return nil, nil, false
		}
	}
	visible := []any{}
	hidden := map[string]any{}
	lk, known := listKinds[kindName]
	if !known {
		return visible, hidden, true // list_key is undefined for every item
	}
	// input.list.findings: the poisoning scanner's findings per entry, or
	// (absent or false) none, and then the fallback pattern.
	var findings map[string]any
	fv, hasFindings := r.list["findings"]
	if hasFindings && fv == false {
		hasFindings = false
	}
	if hasFindings {
		if findings, ok = fv.(map[string]any); !ok {
			return nil, nil, false // a shape the adapters do not build
		}
	}
	seen := make(map[string]bool, len(items))
	var names []string
	for _, it := range items {
		m, ok := it.(map[string]any)
		if !ok {
			continue
		}
		nv, has := m[lk.key]
		if !has {
			continue
		}
		name, ok := nv.(string)
		if !ok || seen[name] {
			return nil, nil, false // a non-string or repeated name: leave it to Rego
		}
		seen[name] = true
		var suspicious []string
		if hasFindings {
			if suspicious, ok = cat.poisoningRules(findings, name); !ok {
				return nil, nil, false
			}
			if len(suspicious) > 0 {
				// poisoning_exempt(name, rule): the catalog entry's cleared rules.
				e, ok := listEntry(srv, kindName, name)
				if !ok {
					return nil, nil, false
				}
				if e != nil && len(e.poisoningExempt) > 0 {
					suspicious = slices.DeleteFunc(suspicious, func(rule string) bool { return slices.Contains(e.poisoningExempt, rule) })
				}
			}
		} else if cat.suspicious(m) {
			suspicious = []string{"poisoning_pattern"}
		}
		why, hide, ok := cat.hideReason(r, srv, lk.kind, lk.qualified, kindName, m, name, suspicious)
		if !ok {
			return nil, nil, false
		}
		if hide {
			hidden[name] = map[string]any{"code": why.code, "message": why.message}
			continue
		}
		names = append(names, name)
	}
	slices.Sort(names)
	for _, n := range names {
		visible = append(visible, n)
	}
	return visible, hidden, true
}

// hideReason is hide_reason(item, name): the first reason to hide an entry.
func (cat *catalog) hideReason(r *request, srv *server, kind int, qualified bool, kindName string, item map[string]any, name string, suspicious []string) (reason, bool, bool) {
	if len(suspicious) > 0 {
		return reason{"list.suspicious", fmt.Sprintf("%s looks poisoned: %s", name, strings.Join(suspicious, ", "))}, true, true
	}
	e, ok := listEntry(srv, kindName, name)
	if !ok {
		return reason{}, false, false
	}
	if e == nil {
		return reason{"list.unknown", fmt.Sprintf("%s is not in the catalog of server %s", name, r.server)}, true, true
	}
	if e.hasPin {
		sum, ok := pinOf(item)
		if !ok {
			return reason{}, false, false
		}
		if sum != e.pin {
			return reason{"list.definition_changed", fmt.Sprintf("%s differs from the definition pinned in the catalog", name)}, true, true
		}
	}
	if e.level > r.clearanceLvl {
		return reason{"list.clearance", fmt.Sprintf("%s is %s; the subject is cleared for %s", name, e.classification, r.clearance)}, true, true
	}
	key := name
	if qualified {
		key = r.server + "/" + name
	}
	if !cat.granted(r, kind, key) {
		return reason{"access.no_rule", fmt.Sprintf("no rule grants %s", name)}, true, true
	}
	return reason{}, false, true
}

// listEntry is list_entry(name): the catalog entry of a list entry, nil
// when there is none, and false when Rego would find two (a conflict).
func listEntry(srv *server, kindName, name string) (*entry, bool) {
	if srv == nil {
		return nil, true
	}
	switch kindName {
	case "tools":
		return srv.tools[name], true
	case "prompts":
		return srv.prompts[name], true
	}
	var e *entry
	for _, x := range srv.resources {
		if len(name) >= len(x.uriPrefix) && name[:len(x.uriPrefix)] == x.uriPrefix {
			if e != nil {
				return nil, false // list_entry has two values: a conflict in Rego
			}
			e = x
		}
	}
	return e, true
}

// granted is list_granted: some rule applies to the subject and has a
// pattern of kind matching key.
func (cat *catalog) granted(r *request, kind int, key string) bool {
	for _, id := range cat.ruleCandidates(r, kind, key) {
		rl := cat.rules[id]
		if rl.matchesSubject(r) && rl.matchesTarget(kind, key) {
			return true
		}
	}
	return false
}

// poisoningRules is poisoning_rules(name): the sorted, distinct rules of
// the entry's findings at least as severe as hide_level. It returns false
// for a shape the adapters do not build (left to Rego).
func (cat *catalog) poisoningRules(findings map[string]any, name string) ([]string, bool) {
	fv, has := findings[name]
	if !has {
		return nil, true
	}
	fs, ok := fv.([]any)
	if !ok {
		return nil, false
	}
	var rules []string
	for _, x := range fs {
		f, ok := x.(map[string]any)
		if !ok {
			continue // f.rule is undefined
		}
		rv, hasRule := f["rule"]
		sv, hasSev := f["severity"]
		if !hasRule || !hasSev {
			continue
		}
		rule, ok := rv.(string)
		if !ok {
			return nil, false // concat fails in Rego
		}
		sev := 4 // an unknown severity counts as critical
		if s, ok := sv.(string); ok {
			if l, known := poisoningSeverities[s]; known {
				sev = l
			}
		}
		if sev >= cat.hideLevel {
			rules = append(rules, rule)
		}
	}
	slices.Sort(rules)
	return slices.Compact(rules), true
}

// suspicious reports whether a string anywhere in v matches the library's
// poisoning pattern.
func (cat *catalog) suspicious(v any) bool {
	switch v := v.(type) {
	case string:
		return cat.poisoning.MatchString(v)
	case map[string]any:
		for _, x := range v {
			if cat.suspicious(x) {
				return true
			}
		}
	case []any:
		for _, x := range v {
			if cat.suspicious(x) {
				return true
			}
		}
	}
	return false
}

// pinOf is crypto.sha256(json.marshal(item)) as OPA computes it.
func pinOf(item map[string]any) (string, bool) {
	av, err := ast.InterfaceToValue(item)
	if err != nil {
		return "", false
	}
	j, err := ast.JSON(av)
	if err != nil {
		return "", false
	}
	raw, err := json.Marshal(j)
	if err != nil {
		return "", false
	}
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:]), true
}
