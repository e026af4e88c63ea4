package mcpnative

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/verdictpdp/verdict/internal/engine"
)

// request is what the library reads of the input, checked to be of the
// shape the adapters build (see mcp.Request.Input).
type request struct {
	ctx         context.Context
	method      string
	list        map[string]any
	isList      bool
	response    bool // input.response == true
	result      bool // input.result is truthy
	findings    map[string]any
	fromHeaders bool

	hasSubject    bool
	authenticated bool
	id            string
	hasID         bool
	who           [3][]any // roles, groups, scopes
	hasWho        [3]bool
	tenant        string
	clearance     string
	clearanceLvl  int

	server    string
	toolName  string
	hasTool   bool
	args      map[string]any
	prompt    string
	hasPrompt bool
	uri       string
	hasURI    bool

	time      string
	hasTime   bool
	sourceIP  any
	hasSource bool
	purpose   string
	region    string
}

// Eval implements engine.NativeEvaluator.
func (cat *catalog) Eval(ctx context.Context, in engine.Input) (any, bool) {
	gv, ok := in.(engine.GoValuer)
	if !ok {
		return nil, false
	}
	return cat.decide(ctx, gv.GoValue())
}

// decide returns data.verdict.mcp.decision for in, or false when in is not
// of a shape it decides.
func (cat *catalog) decide(ctx context.Context, in map[string]any) (any, bool) {
	var r request
	if !r.read(ctx, in) {
		return nil, false
	}
	if r.isList {
		return cat.decideList(&r)
	}
	return cat.decideCall(&r)
}

func truthy(m map[string]any, key string) bool {
	v, ok := m[key]
	return ok && v != false
}

func (r *request) read(ctx context.Context, in map[string]any) bool {
	r.ctx = ctx
	var ok bool
	if r.method, ok = in["method"].(string); !ok {
		return false
	}
	if lv, has := in["list"]; has && lv != false {
		if r.list, ok = lv.(map[string]any); !ok {
			return false
		}
		r.isList = true
	}
	r.response = in["response"] == true
	r.result = truthy(in, "result")
	if fv, has := in["findings"]; has {
		if r.findings, ok = fv.(map[string]any); !ok {
			return false
		}
	}
	r.fromHeaders = truthy(in, "from_headers")

	r.clearance, r.clearanceLvl = "public", 0
	if sv, has := in["subject"]; has {
		s, ok := sv.(map[string]any)
		if !ok {
			return false
		}
		r.hasSubject = true
		r.authenticated = truthy(s, "authenticated")
		if iv, has := s["id"]; has {
			if r.id, ok = iv.(string); !ok {
				return false
			}
			r.hasID = true
		}
		for i, f := range whoFields[:3] {
			wv, has := s[f]
			if !has {
				continue
			}
			if r.who[i], ok = wv.([]any); !ok {
				return false
			}
			r.hasWho[i] = true
		}
		if tv, has := s["tenant"]; has {
			if r.tenant, ok = tv.(string); !ok {
				return false
			}
		}
		if cv, has := s["clearance"]; has {
			if c, isStr := cv.(string); isStr {
				if l, known := levels[c]; known {
					r.clearance, r.clearanceLvl = c, l
				}
			} else {
				return false
			}
		}
	}
	srv, ok := in["server"].(map[string]any)
	if !ok {
		return false
	}
	if r.server, ok = srv["name"].(string); !ok {
		return false
	}
	r.args = emptyArgs
	if tv, has := in["tool"]; has {
		t, ok := tv.(map[string]any)
		if !ok {
			return false
		}
		if r.toolName, ok = t["name"].(string); !ok {
			return false
		}
		r.hasTool = true
		if av, has := t["arguments"]; has {
			if r.args, ok = av.(map[string]any); !ok {
				return false
			}
		}
	}
	if pv, has := in["prompt"]; has {
		p, ok := pv.(map[string]any)
		if !ok {
			return false
		}
		if r.prompt, ok = p["name"].(string); !ok {
			return false
		}
		r.hasPrompt = true
	}
	if rv, has := in["resource"]; has {
		rs, ok := rv.(map[string]any)
		if !ok {
			return false
		}
		if r.uri, ok = rs["uri"].(string); !ok {
			return false
		}
		r.hasURI = true
	}
	switch r.method {
	case "tools/call":
		if !r.hasTool {
			return false
		}
	case "prompts/get":
		if !r.hasPrompt {
			return false
		}
	case "resources/read":
		if !r.hasURI {
			return false
		}
	}
	if cv, has := in["context"]; has {
		c, ok := cv.(map[string]any)
		if !ok {
			return false
		}
		if tv, has := c["time"]; has {
			if r.time, ok = tv.(string); !ok {
				return false
			}
			r.hasTime = true
		}
		r.sourceIP, r.hasSource = c["source_ip"]
		if pv, has := c["purpose"]; has {
			if r.purpose, ok = pv.(string); !ok {
				return false
			}
		}
		if rv, has := c["region"]; has {
			if r.region, ok = rv.(string); !ok {
				return false
			}
		}
	}
	return true
}

var emptyArgs = map[string]any{}

// target is the catalog entry a call is about.
type target struct {
	kind   string // "tool", "resource", "prompt"; "" for other methods
	name   string
	entry  *entry // nil when not in the catalog
	kindIx int
}

func (cat *catalog) target(r *request, srv *server) target {
	var t target
	switch r.method {
	case "tools/call":
		t = target{kind: "tool", name: r.toolName, kindIx: kindTool}
		if srv != nil {
			t.entry = srv.tools[r.toolName]
		}
	case "prompts/get":
		t = target{kind: "prompt", name: r.prompt, kindIx: kindPrompt}
		if srv != nil {
			t.entry = srv.prompts[r.prompt]
		}
	case "resources/read":
		t = target{kind: "resource", name: r.uri, kindIx: kindResource}
		if srv != nil {
			longest := -1
			for _, e := range srv.resources {
				if strings.HasPrefix(r.uri, e.uriPrefix) && len(e.uriPrefix) > longest {
					t.entry, longest = e, len(e.uriPrefix)
				}
			}
		}
	}
	return t
}

// reasonSet collects deny reasons (a set: duplicates collapse).
type reasonSet []reason

type reason struct{ code, message string }

func (s *reasonSet) add(code, message string) {
	for _, x := range *s {
		if x.code == code && x.message == message {
			return
		}
	}
	*s = append(*s, reason{code, message})
}

// value returns the reasons as the library's array: a set's order (by code,
// then message).
func (s reasonSet) value() []any {
	slices.SortFunc(s, func(a, b reason) int {
		return cmp.Or(strings.Compare(a.code, b.code), strings.Compare(a.message, b.message))
	})
	out := make([]any, len(s))
	for i, x := range s {
		out[i] = map[string]any{"code": x.code, "message": x.message}
	}
	return out
}

// ruleState is what a decision learnt about one candidate rule.
type ruleState struct {
	rule     *rule
	failures []string // access.condition messages
}

func (cat *catalog) decideCall(r *request) (any, bool) {
	srv := cat.servers[r.server]
	t := cat.target(r, srv)
	var tool *entry
	if srv != nil && r.hasTool {
		tool = srv.tools[r.toolName]
	}
	var deny reasonSet

	if !r.authenticated && !cat.allowUnauthenticated {
		deny.add("subject.unauthenticated", "the caller is not authenticated")
	}
	if t.kind != "" && srv == nil {
		deny.add("server.unknown", fmt.Sprintf("server %q is not in the catalog", r.server))
	}
	if srv != nil && srv.hasTenants && !slices.Contains(srv.tenants, r.tenant) {
		deny.add("tenant.mismatch", fmt.Sprintf("server %s serves other tenants", r.server))
	}
	if srv != nil && t.kind != "" && t.entry == nil {
		deny.add(t.kind+".unknown", fmt.Sprintf("%s %q is not in the catalog of server %s", t.kind, t.name, r.server))
	}
	if t.entry != nil && t.entry.level > r.clearanceLvl {
		deny.add(t.kind+".clearance", fmt.Sprintf("%s is %s; the subject is cleared for %s", t.name, t.entry.classification, r.clearance))
	}
	if tool != nil {
		if tool.hasTenantArg && !isString(argument(r.args, tool.tenantArg), r.tenant) {
			deny.add("tenant.argument", fmt.Sprintf("argument %s must be the subject's tenant", tool.tenantArgRaw))
		}
		if r.fromHeaders {
			deny.add("arguments.unavailable", fmt.Sprintf("%s was decided from MCP headers without its body: argument checks need the body (Envoy with_request_body)", r.toolName))
		}
		if !tool.hasSchema && cat.requireInputSchema {
			deny.add("tool.schema_missing", fmt.Sprintf("tool %s has no input_schema in the catalog", r.toolName))
		}
		if tool.hasSchema {
			valid, msgs, ok := matchSchema(r.ctx, tool, r.args, cat.caps)
			if !ok {
				return nil, false
			}
			if !valid {
				slices.Sort(msgs)
				deny.add("arguments.invalid", fmt.Sprintf("arguments do not match the schema of %s: %s", r.toolName, strings.Join(msgs, "; ")))
			}
		}
	}

	// Rules: candidates (subject and target), then their conditions.
	var granted, exempt bool
	var cands []ruleState
	if t.kind != "" {
		var ok bool
		if cands, ok = cat.candidates(r, t); !ok {
			return nil, false
		}
		for _, c := range cands {
			if len(c.failures) == 0 {
				granted = true
				if c.rule.allowDestructive {
					exempt = true
				}
			}
		}
	}
	if t.entry != nil && !granted {
		for _, c := range cands {
			for _, msg := range c.failures {
				deny.add("access.condition", msg)
			}
		}
	}
	if r.result && t.entry != nil {
		for _, d := range t.entry.blockOn {
			if fv, has := r.findings[d]; has {
				n, ok := toValue(fv)
				if !ok {
					return nil, false
				}
				if n.Compare(ast.Number("0")) > 0 {
					deny.add("result.blocked", fmt.Sprintf("the result contains %s data", d))
				}
			}
		}
	}
	if t.entry != nil && t.entry.phi {
		if !anyIn(r.who[0], cat.trainedRoles) {
			deny.add("hipaa.training", fmt.Sprintf("%s touches PHI: the subject needs one of the roles %s", t.name, cat.trainedRolesV))
		}
		if !slices.Contains(t.entry.hipaaPurposes, r.purpose) {
			deny.add("hipaa.purpose", fmt.Sprintf("%s touches PHI: purpose of use must be one of %s", t.name, t.entry.hipaaPurposesV))
		}
	}
	if t.entry != nil && t.entry.personal {
		if !slices.Contains(t.entry.gdprPurposes, r.purpose) {
			deny.add("gdpr.purpose", fmt.Sprintf("%s processes personal data: purpose must be one of %s", t.name, t.entry.gdprPurposesV))
		}
		if !slices.Contains(t.entry.gdprRegions, r.region) {
			deny.add("gdpr.region", fmt.Sprintf("%s processes personal data: region must be one of %s", t.name, t.entry.gdprRegionsV))
		}
	}

	permitted := slices.Contains(cat.openMethods, r.method) || r.response || granted
	needsApproval := !r.result && r.method == "tools/call" && tool != nil && tool.destructive && !exempt
	requireApproval := len(deny) == 0 && permitted && needsApproval
	allow := len(deny) == 0 && !requireApproval && permitted

	var reasons []any
	switch {
	case len(deny) > 0:
		reasons = deny.value()
	case requireApproval:
		reasons = reasonSet{{"approval.required", fmt.Sprintf("%s is destructive: a human must approve the call", t.name)}}.value()
	case !permitted && t.kind != "":
		reasons = reasonSet{{"access.no_rule", fmt.Sprintf("no rule grants %s on %s", t.kind, t.name)}}.value()
	case !permitted:
		reasons = reasonSet{{"method.unsupported", fmt.Sprintf("method %s is not allowed", r.method)}}.value()
	default:
		reasons = []any{}
	}
	return map[string]any{
		"allow":            allow,
		"require_approval": requireApproval,
		"reasons":          reasons,
		"obligations":      cat.obligations(r, t),
	}, true
}

// obligations returns the decision's obligations: the target's, with the
// rate limit's key for this subject.
func (cat *catalog) obligations(r *request, t target) map[string]any {
	switch {
	case t.kind == "":
		return map[string]any{}
	case t.entry == nil:
		return map[string]any{"controls": unknownTargetControls}
	case t.entry.rateLimit == nil, !r.hasID:
		// Without input.subject.id the rate limit's key, and so the
		// obligation, is undefined.
		return t.entry.obligations
	}
	ob := make(map[string]any, len(t.entry.obligations)+1)
	for k, v := range t.entry.obligations {
		ob[k] = v
	}
	rl := make(map[string]any, 4)
	for k, v := range t.entry.rateLimit {
		rl[k] = v
	}
	rl["key"] = r.id + ":" + r.server + "/" + t.name
	ob["rate_limit"] = rl
	return ob
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

// matchSchema is json.match_schema(arguments, tool.input_schema), with
// the tool's schema compiled once. The messages are "field: description".
func matchSchema(ctx context.Context, tool *entry, args map[string]any, caps *ast.Capabilities) (bool, []string, bool) {
	// The document goes in as JSON text, which json.match_schema decodes as
	// it decodes the JSON it writes from a Rego value: the same document,
	// without building the Rego value and marshalling it again.
	bp := textBufs.Get().(*[]byte)
	defer textBufs.Put(bp)
	text, ok := appendJSON((*bp)[:0], args)
	*bp = text
	var doc ast.Value
	if ok {
		doc = ast.String(text)
	} else if doc, ok = toValue(args); !ok {
		return false, nil, false
	}
	v, err := call(ctx, builtinMatchSchema, tool.slot, caps, ast.NewTerm(doc), ast.NewTerm(tool.schema))
	if err != nil {
		return false, nil, false
	}
	arr, ok := v.(*ast.Array)
	if !ok || arr.Len() != 2 {
		return false, nil, false
	}
	valid, ok := arr.Elem(0).Value.(ast.Boolean)
	if !ok {
		return false, nil, false
	}
	if valid {
		return true, nil, true
	}
	errs, ok := arr.Elem(1).Value.(*ast.Array)
	if !ok {
		return false, nil, false
	}
	msgs := make([]string, 0, errs.Len())
	for i := range errs.Len() {
		o, ok := errs.Elem(i).Value.(ast.Object)
		if !ok {
			return false, nil, false
		}
		f, ok1 := o.Get(ast.StringTerm("field")).Value.(ast.String)
		d, ok2 := o.Get(ast.StringTerm("desc")).Value.(ast.String)
		if !ok1 || !ok2 {
			return false, nil, false
		}
		msgs = append(msgs, string(f)+": "+string(d))
	}
	return false, msgs, true
}

var textBufs = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

// appendJSON appends v as JSON text whose decoding (with json.Number) is
// the document OPA decodes from the Rego value of v: numbers are written
// as the text of their Rego number. It returns false for values it does
// not write (other Go types, numbers Rego refuses).
func appendJSON(dst []byte, v any) ([]byte, bool) {
	switch v := v.(type) {
	case nil:
		return append(dst, "null"...), true
	case bool:
		return strconv.AppendBool(dst, v), true
	case string:
		return appendJSONString(dst, v), true
	case json.Number, float64, int, int64:
		av, err := ast.InterfaceToValue(v)
		if err != nil {
			return dst, false
		}
		n, ok := av.(ast.Number)
		if !ok || !json.Valid([]byte(n)) {
			return dst, false
		}
		return append(dst, n...), true
	case []any:
		dst = append(dst, '[')
		for i, x := range v {
			if i > 0 {
				dst = append(dst, ',')
			}
			var ok bool
			if dst, ok = appendJSON(dst, x); !ok {
				return dst, false
			}
		}
		return append(dst, ']'), true
	case map[string]any:
		dst = append(dst, '{')
		first := true
		for k, x := range v {
			if !utf8.ValidString(k) {
				// Two such keys would both be written as U+FFFD and collide
				// in an order of this map's making: OPA's path sorts them.
				return dst, false
			}
			if !first {
				dst = append(dst, ',')
			}
			first = false
			dst = appendJSONString(dst, k)
			dst = append(dst, ':')
			var ok bool
			if dst, ok = appendJSON(dst, x); !ok {
				return dst, false
			}
		}
		return append(dst, '}'), true
	}
	return dst, false
}

// appendJSONString writes s as a JSON string that decodes to what
// encoding/json's encoding of s decodes to (invalid UTF-8 as U+FFFD).
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c < 0x20:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, `\ufffd`...)
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}
