package mcpnative

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

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
	session   any // input.session, read by flow rules
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
	if len(cat.flows) > 0 && mayFlow(cat.flows, in) {
		return nil, false // a flow rule may apply: Rego decides
	}
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
	// Just-in-time grants (input.grants) are decided in Rego only: the
	// library reads them, this evaluator does not.
	if _, has := in["grants"]; has {
		return false
	}
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
	r.session = in["session"]

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

	flowDeny, flowApprove, ok := cat.flowMessages(r, t, tool)
	if !ok {
		return nil, false
	}
	for _, m := range flowDeny {
		deny.add("flow.toxic", m)
	}

	permitted := slices.Contains(cat.openMethods, r.method) || r.response || granted
	destructiveApproval := !r.result && r.method == "tools/call" && tool != nil && tool.destructive && !exempt
	needsApproval := destructiveApproval || len(flowApprove) > 0
	requireApproval := len(deny) == 0 && permitted && needsApproval
	allow := len(deny) == 0 && !requireApproval && permitted

	var reasons []any
	switch {
	case len(deny) > 0:
		reasons = deny.value()
	case requireApproval:
		var ar reasonSet
		if destructiveApproval {
			ar.add("approval.required", fmt.Sprintf("%s is destructive: a human must approve the call", t.name))
		}
		for _, m := range flowApprove {
			ar.add("flow.approval", m)
		}
		reasons = ar.value()
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
	if r.tenant != "" {
		rl["key"] = r.tenant + "/" + rl["key"].(string)
	}
	ob["rate_limit"] = rl
	return ob
}
