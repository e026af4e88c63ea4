package mcpgen

import (
	"fmt"
	"math"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // OPA embeds the zone database too: both read the same zones
	"unicode/utf8"

	"github.com/verdictpdp/verdict/internal/mcp"
)

// The decision the policy library (policies/verdict/mcp) gives a tools/call
// request, computed from the catalog in Go, so that a generated request
// knows what it must get. The tests hold it to the library itself.
// It covers what Catalog writes: the access rules with every condition
// operator, tenants, clearances, the JSON Schema keywords Catalog uses,
// GDPR and HIPAA; it panics on a catalog using anything else.

// model is a catalog read for deciding.
type model struct {
	servers       map[string]*serverModel
	serverNames   []string
	rules         []*ruleModel
	byTool        map[string][]int // "server/tool": the rules whose tool globs match it
	defaultClass  string
	requireSchema bool
	allowUnauth   bool
	gdprPurposes  []any
	gdprRegions   []any
	hipaaPurposes []any
	trainedRoles  []any
	tenant        string // the organisation's: the first tenant of the catalog
}

type serverModel struct {
	name      string
	tenants   []any
	tenanted  bool
	tools     map[string]*toolModel
	toolNames []string
}

type toolModel struct {
	server, name string
	entry        map[string]any
	schema       map[string]any // nil without one
	level        int
	personal     bool
	phi          bool
	destructive  bool
	tenantArg    string
}

func (t *toolModel) key() string { return t.server + "/" + t.name }

type ruleModel struct {
	data                          map[string]any
	id                            string
	who                           map[string][]any // roles, groups, scopes, subjects: present ones only
	tools                         []string
	conds                         []map[string]any
	hours                         map[string]any
	cidrs, regions, purposes      []any
	hasCIDRs, hasRegions, hasPurp bool
	allowDestructive              bool
}

var levels = map[string]int{"public": 0, "internal": 1, "confidential": 2, "restricted": 3}

var levelNames = []string{"public", "internal", "confidential", "restricted"}

func newModel(catalog map[string]any) *model {
	root := catalog
	if m, ok := catalog["mcp"].(map[string]any); ok {
		root = m
	}
	settings, _ := root["settings"].(map[string]any)
	get := func(obj map[string]any, k string, def any) any {
		if v, ok := obj[k]; ok {
			return v
		}
		return def
	}
	gdpr, _ := get(settings, "gdpr", map[string]any{}).(map[string]any)
	hipaa, _ := get(settings, "hipaa", map[string]any{}).(map[string]any)
	m := &model{
		servers:       map[string]*serverModel{},
		byTool:        map[string][]int{},
		defaultClass:  fmt.Sprint(get(settings, "default_classification", "restricted")),
		requireSchema: get(settings, "require_input_schema", true) == true,
		allowUnauth:   get(settings, "allow_unauthenticated", false) == true,
		gdprPurposes:  list(get(gdpr, "purposes", texts("contract", "legal_obligation", "legitimate_interest", "consent", "support"))),
		gdprRegions:   list(get(gdpr, "allowed_regions", texts("eu"))),
		hipaaPurposes: list(get(hipaa, "purposes", texts("treatment", "payment", "operations"))),
		trainedRoles:  list(get(hipaa, "trained_roles", texts("hipaa_trained"))),
	}
	if _, ok := settings["open_methods"]; ok {
		panic("mcpgen: settings.open_methods is not supported")
	}
	servers, _ := root["servers"].(map[string]any)
	for _, name := range sortedKeys(servers) {
		sd, _ := servers[name].(map[string]any)
		s := &serverModel{name: name, tools: map[string]*toolModel{}}
		if ts, ok := sd["tenants"]; ok {
			s.tenanted, s.tenants = true, list(ts)
			if m.tenant == "" && len(s.tenants) > 0 {
				m.tenant, _ = s.tenants[0].(string)
			}
		}
		tools, _ := sd["tools"].(map[string]any)
		for _, tn := range sortedKeys(tools) {
			td, _ := tools[tn].(map[string]any)
			s.tools[tn] = m.tool(name, tn, td)
			s.toolNames = append(s.toolNames, tn)
		}
		m.servers[name] = s
		m.serverNames = append(m.serverNames, name)
	}
	if m.tenant == "" {
		m.tenant = tenants[0]
	}
	for i, r := range list(root["rules"]) {
		rd, _ := r.(map[string]any)
		rm := newRule(rd)
		m.rules = append(m.rules, rm)
		for _, sn := range m.serverNames {
			for _, tn := range m.servers[sn].toolNames {
				key := sn + "/" + tn
				for _, p := range rm.tools {
					if globMatch(p, key) {
						m.byTool[key] = append(m.byTool[key], i)
						break
					}
				}
			}
		}
	}
	return m
}

func (m *model) tool(server, name string, entry map[string]any) *toolModel {
	t := &toolModel{server: server, name: name, entry: entry}
	t.schema, _ = entry["input_schema"].(map[string]any)
	t.level = m.levelOf(entry)
	cats := list(entry["data_categories"])
	t.phi = contains(cats, "phi")
	t.personal = t.phi || contains(cats, "personal_data")
	ann, _ := entry["annotations"].(map[string]any)
	ro, ok := ann["readOnlyHint"]
	if !ok {
		ro = false
	}
	d, ok := ann["destructiveHint"]
	if !ok {
		d = true
	}
	t.destructive = ro == false && d != false
	t.tenantArg, _ = entry["tenant_argument"].(string)
	for k := range entry {
		switch k {
		case "classification", "owner", "data_categories", "annotations", "input_schema", "tenant_argument", "purposes",
			"retention_days", "retention_class", "redact", "block_on", "rate_limit", "pin_sha256", "description", "title":
		default:
			panic("mcpgen: tool member " + k + " is not supported")
		}
	}
	return t
}

// levelOf is the library's level_of: unknown classes are restricted.
func (m *model) levelOf(entry map[string]any) int {
	c, ok := entry["classification"]
	if !ok {
		c = m.defaultClass
	}
	if s, ok := c.(string); ok {
		if l, ok := levels[s]; ok {
			return l
		}
	}
	return levels["restricted"]
}

func newRule(d map[string]any) *ruleModel {
	r := &ruleModel{data: d, who: map[string][]any{}}
	r.id, _ = d["id"].(string)
	if r.id == "" {
		r.id = "unnamed"
	}
	for _, f := range []string{"roles", "groups", "scopes", "subjects"} {
		if v, ok := d[f]; ok && v != false && v != nil {
			r.who[f] = list(v)
		}
	}
	for _, p := range list(d["tools"]) {
		r.tools = append(r.tools, p.(string))
	}
	when, _ := d["when"].(map[string]any)
	for _, c := range list(when["arguments"]) {
		r.conds = append(r.conds, c.(map[string]any))
	}
	r.hours, _ = when["hours"].(map[string]any)
	r.cidrs, r.hasCIDRs = listOK(when, "source_cidrs")
	r.regions, r.hasRegions = listOK(when, "regions")
	r.purposes, r.hasPurp = listOK(when, "purposes")
	r.allowDestructive = d["allow_destructive"] == true
	return r
}

func listOK(obj map[string]any, k string) ([]any, bool) {
	v, ok := obj[k]
	if !ok || v == nil {
		return nil, false
	}
	return list(v), true
}

// --- deciding -----------------------------------------------------------------

// decision is what the library decides for a request.
type decision struct {
	verdict mcp.Verdict
	codes   []string // sorted, one per reason (access.condition may repeat)
}

// candidates are the rules that name the subject and the tool.
func (m *model) candidates(r *Request) []*ruleModel {
	var out []*ruleModel
	for _, i := range m.byTool[r.Server+"/"+r.Tool] {
		if m.rules[i].appliesTo(&r.Subject) {
			out = append(out, m.rules[i])
		}
	}
	return out
}

func (r *ruleModel) appliesTo(s *Subject) bool {
	have := map[string][]string{"roles": s.Roles, "groups": s.Groups, "scopes": s.Scopes, "subjects": {s.ID}}
	for f, want := range r.who {
		ok := false
		for _, w := range want {
			if ws, isStr := w.(string); isStr && slices.Contains(have[f], ws) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// failures returns one key per condition of r that does not hold.
func (r *ruleModel) failures(req *Request) []string {
	var out []string
	for _, c := range r.conds {
		if !argumentHolds(req.Arguments, c) {
			out = append(out, fmt.Sprintf("%s %v %v %s", c["path"], c["op"], c["value"], jsonText(c["value"])))
		}
	}
	if r.hours != nil && !withinHours(r.hours, req.Context.Time) {
		out = append(out, "hours")
	}
	if r.hasCIDRs && !sourceIn(r.cidrs, req.Context.SourceIP) {
		out = append(out, "cidrs")
	}
	if r.hasRegions && !contains(r.regions, req.Context.Region) {
		out = append(out, "regions")
	}
	if r.hasPurp && !contains(r.purposes, req.Context.Purpose) {
		out = append(out, "purposes")
	}
	return uniqueSorted(out)
}

func (m *model) decide(r *Request) decision {
	var deny []string
	if r.Subject.ID == "" && !m.allowUnauth {
		deny = append(deny, "subject.unauthenticated")
	}
	s := m.servers[r.Server]
	if s == nil {
		return decision{mcp.Deny, sorted(append(deny, "server.unknown"))}
	}
	if s.tenanted && !contains(s.tenants, r.Subject.Tenant) {
		deny = append(deny, "tenant.mismatch")
	}
	t := s.tools[r.Tool]
	if t == nil {
		return decision{mcp.Deny, sorted(append(deny, "tool.unknown"))}
	}
	clearance, ok := levels[r.Subject.Clearance]
	if !ok {
		clearance = 0
	}
	if t.level > clearance {
		deny = append(deny, "tool.clearance")
	}
	if t.tenantArg != "" {
		if v, ok := lookup(r.Arguments, strings.Split(t.tenantArg, ".")); !ok || !jsonEqual(v, r.Subject.Tenant) {
			deny = append(deny, "tenant.argument")
		}
	}
	switch {
	case t.schema == nil && m.requireSchema:
		deny = append(deny, "tool.schema_missing")
	case t.schema != nil && !valid(r.Arguments, t.schema):
		deny = append(deny, "arguments.invalid")
	}
	cands := m.candidates(r)
	granted, exempt := false, false
	var failed []string
	for _, c := range cands {
		f := c.failures(r)
		if len(f) == 0 {
			granted = true
			exempt = exempt || c.allowDestructive
			continue
		}
		for _, msg := range f {
			failed = append(failed, c.id+"\x00"+msg)
		}
	}
	if !granted {
		for range uniqueSorted(failed) {
			deny = append(deny, "access.condition")
		}
	}
	if t.phi {
		if !slices.ContainsFunc(r.Subject.Roles, func(role string) bool { return contains(m.trainedRoles, role) }) {
			deny = append(deny, "hipaa.training")
		}
		if !contains(m.purposesOf(t, m.hipaaPurposes), r.Context.Purpose) {
			deny = append(deny, "hipaa.purpose")
		}
	}
	if t.personal {
		if !contains(m.purposesOf(t, m.gdprPurposes), r.Context.Purpose) {
			deny = append(deny, "gdpr.purpose")
		}
		if !contains(m.gdprRegions, r.Context.Region) {
			deny = append(deny, "gdpr.region")
		}
	}
	switch {
	case len(deny) > 0:
		return decision{mcp.Deny, sorted(deny)}
	case !granted:
		return decision{mcp.Deny, []string{"access.no_rule"}}
	case t.destructive && !exempt:
		return decision{mcp.RequireApproval, []string{"approval.required"}}
	}
	return decision{mcp.Allow, nil}
}

// purposesOf is the library's allowed_purposes: the entry's own, else the
// regime's.
func (m *model) purposesOf(t *toolModel, regime []any) []any {
	if p, ok := t.entry["purposes"]; ok {
		return list(p)
	}
	return regime
}

// --- argument conditions --------------------------------------------------------

func argumentHolds(args map[string]any, c map[string]any) bool {
	p, _ := c["path"].(string)
	v, ok := lookup(args, strings.Split(p, "."))
	if !ok {
		return c["optional"] == true
	}
	op, _ := c["op"].(string)
	return compare(op, v, c["value"])
}

func lookup(obj map[string]any, path []string) (any, bool) {
	var cur any = obj
	for _, k := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[k]; !ok {
			return nil, false
		}
	}
	return cur, true
}

func compare(op string, v, want any) bool {
	switch op {
	case "eq":
		return jsonEqual(v, want)
	case "ne":
		return !jsonEqual(v, want)
	case "lt", "lte", "gt", "gte":
		a, ok1 := number(v)
		b, ok2 := number(want)
		if !ok1 || !ok2 {
			if ok1 && !ok2 {
				panic(fmt.Sprintf("mcpgen: %s against %v is not supported", op, want))
			}
			return false
		}
		switch op {
		case "lt":
			return a < b
		case "lte":
			return a <= b
		case "gt":
			return a > b
		default:
			return a >= b
		}
	case "in":
		return contains(list(want), v)
	case "not_in":
		return !contains(list(want), v)
	case "prefix":
		s, ok := v.(string)
		w, ok2 := want.(string)
		return ok && ok2 && strings.HasPrefix(s, w)
	case "matches":
		s, ok := v.(string)
		w, ok2 := want.(string)
		if !ok || !ok2 {
			return false
		}
		re, err := compileRegexp(w)
		return err == nil && re.MatchString(s)
	case "max_length":
		s, ok := v.(string)
		n, ok2 := number(want)
		return ok && ok2 && float64(utf8.RuneCountInString(s)) <= n
	case "max_items":
		a, ok := v.([]any)
		n, ok2 := number(want)
		return ok && ok2 && float64(len(a)) <= n
	case "path_under":
		s, ok := v.(string)
		w, ok2 := want.(string)
		if !ok || !ok2 || strings.Contains(s, `\`) || strings.Contains(s, "\x00") {
			return false
		}
		segs := strings.Split(s, "/")
		if slices.Contains(segs, ".") || slices.Contains(segs, "..") {
			return false
		}
		return strings.HasPrefix(s, strings.TrimSuffix(w, "/")+"/")
	}
	return false // the library has no such operator: the condition fails
}

var regexps sync.Map // string -> *regexp.Regexp

func compileRegexp(s string) (*regexp.Regexp, error) {
	if re, ok := regexps.Load(s); ok {
		return re.(*regexp.Regexp), nil
	}
	re, err := regexp.Compile(s)
	if err != nil {
		return nil, err
	}
	regexps.Store(s, re)
	return re, nil
}

// --- context conditions --------------------------------------------------------

func withinHours(h map[string]any, at time.Time) bool {
	tz, _ := h["timezone"].(string)
	if _, ok := h["timezone"]; !ok {
		tz = "UTC"
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return false
	}
	local := at.In(loc)
	minutes := local.Hour()*60 + local.Minute()
	start, ok1 := hhmm(h["start"])
	end, ok2 := hhmm(h["end"])
	if !ok1 || !ok2 || minutes < start || minutes >= end {
		return false
	}
	days, ok := h["days"]
	if !ok {
		return true
	}
	today := strings.ToLower(local.Weekday().String()[:3])
	for _, d := range list(days) {
		if s, ok := d.(string); ok && len(s) >= 3 && strings.ToLower(s[:3]) == today {
			return true
		}
	}
	return false
}

func hhmm(v any) (int, bool) {
	s, _ := v.(string)
	h, m, ok := strings.Cut(s, ":")
	if !ok {
		return 0, false
	}
	hi, err1 := strconv.Atoi(h)
	mi, err2 := strconv.Atoi(m)
	return hi*60 + mi, err1 == nil && err2 == nil
}

func sourceIn(cidrs []any, ip string) bool {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	for _, c := range cidrs {
		s, _ := c.(string)
		if p, err := netip.ParsePrefix(s); err == nil && p.Contains(addr) {
			return true
		}
	}
	return false
}

// --- JSON Schema, the keywords Catalog writes ------------------------------------

var dateTimeLayout = time.RFC3339

func valid(v any, schema map[string]any) bool {
	for k := range schema {
		switch k {
		case "type", "properties", "required", "additionalProperties", "minLength", "maxLength", "pattern",
			"minimum", "maximum", "enum", "format", "items", "minItems", "maxItems", "description", "title":
		default:
			panic("mcpgen: JSON Schema keyword " + k + " is not supported")
		}
	}
	if e, ok := schema["enum"]; ok && !contains(list(e), v) {
		return false
	}
	if t, ok := schema["type"].(string); ok && !hasType(v, t) {
		return false
	}
	switch x := v.(type) {
	case map[string]any:
		props, _ := schema["properties"].(map[string]any)
		for _, r := range list(schema["required"]) {
			if _, ok := x[r.(string)]; !ok {
				return false
			}
		}
		for k, e := range x {
			ps, ok := props[k].(map[string]any)
			if !ok {
				if schema["additionalProperties"] == false {
					return false
				}
				continue
			}
			if !valid(e, ps) {
				return false
			}
		}
	case []any:
		if n, ok := number(schema["minItems"]); ok && float64(len(x)) < n {
			return false
		}
		if n, ok := number(schema["maxItems"]); ok && float64(len(x)) > n {
			return false
		}
		if items, ok := schema["items"].(map[string]any); ok {
			for _, e := range x {
				if !valid(e, items) {
					return false
				}
			}
		}
	case string:
		n := float64(utf8.RuneCountInString(x))
		if m, ok := number(schema["minLength"]); ok && n < m {
			return false
		}
		if m, ok := number(schema["maxLength"]); ok && n > m {
			return false
		}
		if p, ok := schema["pattern"].(string); ok {
			re, err := compileRegexp(p)
			if err != nil || !re.MatchString(x) {
				return false
			}
		}
		if f, ok := schema["format"].(string); ok {
			if f != "date-time" {
				panic("mcpgen: format " + f + " is not supported")
			}
			if _, err := time.Parse(dateTimeLayout, x); err != nil {
				return false
			}
		}
	default:
		if f, ok := number(v); ok {
			if m, ok := number(schema["minimum"]); ok && f < m {
				return false
			}
			if m, ok := number(schema["maximum"]); ok && f > m {
				return false
			}
		}
	}
	return true
}

func hasType(v any, t string) bool {
	switch t {
	case "object":
		_, ok := v.(map[string]any)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	case "string":
		_, ok := v.(string)
		return ok
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "number":
		_, ok := number(v)
		return ok
	case "integer":
		f, ok := number(v)
		return ok && f == math.Trunc(f)
	case "null":
		return v == nil
	}
	panic("mcpgen: JSON Schema type " + t + " is not supported")
}

// --- JSON values -----------------------------------------------------------------

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case float64:
		return x, true
	case interface{ Float64() (float64, error) }: // json.Number
		f, err := x.Float64()
		return f, err == nil
	}
	return 0, false
}

// jsonEqual is Rego's equality of JSON values: numbers by value.
func jsonEqual(a, b any) bool {
	if x, ok := number(a); ok {
		y, ok := number(b)
		return ok && x == y
	}
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			if w, ok := y[k]; !ok || !jsonEqual(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !jsonEqual(x[i], y[i]) {
				return false
			}
		}
		return true
	}
	return a == b
}

func contains(l []any, v any) bool {
	return slices.ContainsFunc(l, func(e any) bool { return jsonEqual(e, v) })
}

// list returns v as a list: an array as is, an object's values (what Rego's
// "in" looks at), nothing for anything else.
func list(v any) []any {
	switch x := v.(type) {
	case []any:
		return x
	case []string:
		return texts(x...)
	case map[string]any:
		out := make([]any, 0, len(x))
		for _, k := range sortedKeys(x) {
			out = append(out, x[k])
		}
		return out
	}
	return nil
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func sorted(ss []string) []string {
	slices.Sort(ss)
	return ss
}

func uniqueSorted(ss []string) []string {
	slices.Sort(ss)
	return slices.Compact(ss)
}

func jsonText(v any) string {
	if s, ok := v.(string); ok {
		return strconv.Quote(s)
	}
	return fmt.Sprint(v)
}

// globMatch is glob.match(pattern, ["/"], s) for patterns of literals, "*"
// (not crossing "/") and "**".
func globMatch(pattern, s string) bool {
	if strings.ContainsAny(pattern, "?[]{}\\") {
		panic("mcpgen: glob " + pattern + " is not supported")
	}
	re, err := compileRegexp(globRegexp(pattern))
	if err != nil {
		panic(err)
	}
	return re.MatchString(s)
}

func globRegexp(pattern string) string {
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(pattern); i++ {
		switch {
		case strings.HasPrefix(pattern[i:], "**"):
			b.WriteString(".*")
			i++
		case pattern[i] == '*':
			b.WriteString("[^/]*")
		default:
			b.WriteString(regexp.QuoteMeta(pattern[i : i+1]))
		}
	}
	b.WriteString("$")
	return b.String()
}
