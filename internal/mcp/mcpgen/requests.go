package mcpgen

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/verdictpdp/verdict/internal/mcp"
)

// Intent is what the generator aimed a request at.
type Intent string

// The intents and how often the generator aims at each.
const (
	IntentAllow      Intent = "allow"      // a rule grants it
	IntentApproval   Intent = "approval"   // a destructive tool whose granting rules do not waive approval
	IntentNoRule     Intent = "no_rule"    // a tool no rule grants the subject
	IntentCondition  Intent = "condition"  // an argument, hours, network or purpose condition of the rule fails
	IntentSchema     Intent = "schema"     // arguments the tool's input schema refuses
	IntentClearance  Intent = "clearance"  // a tool classified above the subject's clearance
	IntentTenant     Intent = "tenant"     // the tenant argument names another tenant
	IntentCompliance Intent = "compliance" // personal data for a purpose or in a region GDPR does not allow
)

var intents = []struct {
	intent Intent
	weight int // per thousand
}{
	{IntentAllow, 790}, {IntentApproval, 30}, {IntentNoRule, 60}, {IntentCondition, 60},
	{IntentSchema, 25}, {IntentClearance, 15}, {IntentTenant, 10}, {IntentCompliance, 10},
}

// Subject is who a request is made for.
type Subject struct {
	ID        string
	Roles     []string
	Groups    []string
	Scopes    []string
	Tenant    string
	Clearance string
}

// Request is one generated tools/call request and the decision the policy
// library gives it.
type Request struct {
	Subject   Subject
	Server    string
	Tool      string
	Arguments map[string]any
	Context   mcp.Context // time, source address, purpose, region
	SessionID string
	// Intent is what the request was generated as; Want and Reasons are
	// what the library decides, which is the intent's outcome for all but
	// the rare request where the generator found no way to reach it.
	Intent  Intent
	Want    mcp.Verdict
	Reasons []string // reason codes, sorted
}

// MCP returns the request as internal/mcp sees it from the native API.
func (r *Request) MCP() mcp.Request {
	return mcp.Request{
		Subject: mcp.Subject{
			ID: r.Subject.ID, Roles: r.Subject.Roles, Groups: r.Subject.Groups, Scopes: r.Subject.Scopes,
			Tenant: r.Subject.Tenant, Clearance: r.Subject.Clearance, Claims: map[string]any{}, Authenticated: r.Subject.ID != "",
		},
		Server:          r.Server,
		Method:          mcp.MethodToolsCall,
		ProtocolVersion: protocolVersion,
		Params:          map[string]any{"name": r.Tool, "arguments": r.Arguments},
		SessionID:       r.SessionID,
		Context:         r.Context,
	}
}

// protocolVersion is the MCP version the generated requests speak.
const protocolVersion = "2025-11-25"

// Requests returns n tools/call requests against catalog (the bundle data
// Catalog returns): about 79 % allowed, 3 % needing approval and 18 %
// denied (no rule, a failed rule condition, arguments the schema refuses,
// clearance, tenant, GDPR). Every request carries argument values no other
// request of the sequence has.
func Requests(catalog map[string]any, n int, seed uint64) []Request {
	g := NewGenerator(catalog, seed)
	out := make([]Request, n)
	for i := range out {
		out[i] = g.Next()
	}
	return out
}

// Generator produces the sequence of Requests one request at a time, for
// callers that do not know in advance how many they need.
type Generator struct {
	m      *model
	rng    *rand.Rand
	seq    int
	grants []grant // what each rule grants: allow intents
	needs  []grant // destructive tools whose rule does not waive approval
	conds  []int   // rules with conditions
	tools  []*toolModel
	base   time.Time
}

// grant is a tool a rule grants.
type grant struct {
	rule int
	tool *toolModel
}

// NewGenerator returns a generator of requests against catalog.
func NewGenerator(catalog map[string]any, seed uint64) *Generator {
	g := &Generator{
		m:    newModel(catalog),
		rng:  rand.New(rand.NewPCG(seed, 0x72657175657374)), //nolint:gosec // benchmark data, not secrets
		base: time.Date(2026, time.March, 10, 10, 30, 0, 0, time.UTC),
	}
	for _, sn := range g.m.serverNames {
		for _, tn := range g.m.servers[sn].toolNames {
			t := g.m.servers[sn].tools[tn]
			g.tools = append(g.tools, t)
			for _, ri := range g.m.byTool[t.key()] {
				gr := grant{ri, t}
				if t.destructive && !g.m.rules[ri].allowDestructive {
					g.needs = append(g.needs, gr)
				} else {
					g.grants = append(g.grants, gr)
				}
			}
		}
	}
	for i, r := range g.m.rules {
		if len(r.tools) > 0 && (len(r.conds) > 0 || r.hours != nil || r.hasCIDRs || r.hasPurp) {
			g.conds = append(g.conds, i)
		}
	}
	if len(g.grants) == 0 {
		panic("mcpgen: no rule of the catalog grants a tool")
	}
	// Rules come in order of teams: grants by rule, so that every rule is
	// as likely as any other, whatever its number of tools.
	return g
}

// attempts bounds the tries at reaching an intent.
const attempts = 40

// Next returns the next request.
func (g *Generator) Next() Request {
	seq := g.seq
	g.seq++
	intent := g.pickIntent()
	var r Request
	for range attempts {
		r = g.attempt(intent, seq)
		d := g.m.decide(&r)
		r.Want, r.Reasons = d.verdict, d.codes
		if reached(intent, &r) {
			break
		}
	}
	r.Intent = intent
	return r
}

// Decide returns the decision the policy library gives r against the
// generator's catalog: its verdict and sorted reason codes.
func (g *Generator) Decide(r *Request) (mcp.Verdict, []string) {
	d := g.m.decide(r)
	return d.verdict, d.codes
}

func (g *Generator) pickIntent() Intent {
	n := g.rng.IntN(1000)
	for _, it := range intents {
		if n < it.weight {
			return it.intent
		}
		n -= it.weight
	}
	return IntentAllow
}

// reached tells whether r's decision is what intent aimed at.
func reached(intent Intent, r *Request) bool {
	denied := func(code string) bool { return r.Want == mcp.Deny && slices.Contains(r.Reasons, code) }
	switch intent {
	case IntentAllow:
		return r.Want == mcp.Allow
	case IntentApproval:
		return r.Want == mcp.RequireApproval
	case IntentNoRule:
		return r.Want == mcp.Deny && slices.Equal(r.Reasons, []string{"access.no_rule"})
	case IntentCondition:
		return denied("access.condition")
	case IntentSchema:
		return denied("arguments.invalid")
	case IntentClearance:
		return denied("tool.clearance")
	case IntentTenant:
		return denied("tenant.argument")
	case IntentCompliance:
		return denied("gdpr.purpose") || denied("gdpr.region")
	}
	return false
}

func (g *Generator) attempt(intent Intent, seq int) Request {
	switch intent {
	case IntentAllow:
		return g.allowed(seq)
	case IntentApproval:
		if len(g.needs) > 0 {
			return g.granted(g.needs[g.rng.IntN(len(g.needs))], seq)
		}
	case IntentNoRule:
		return g.noRule(seq)
	case IntentCondition:
		return g.condition(seq)
	case IntentSchema:
		r := g.allowed(seq)
		g.breakSchema(&r, seq)
		return r
	case IntentClearance:
		r := g.allowed(seq)
		t := g.toolOf(&r)
		if t.level > 0 {
			r.Subject.Clearance = levelNames[t.level-1]
		}
		return r
	case IntentTenant:
		r := g.allowed(seq)
		t := g.toolOf(&r)
		if t.tenantArg != "" {
			for _, other := range list(g.m.servers[r.Server].tenants) {
				if other != r.Subject.Tenant {
					setPath(r.Arguments, t.tenantArg, other)
					break
				}
			}
		}
		return r
	case IntentCompliance:
		r := g.allowed(seq)
		if g.rng.IntN(2) == 0 {
			r.Context.Purpose = pickString(g.rng, "marketing", "product_analytics", "model_training")
		} else {
			r.Context.Region = pickString(g.rng, "us", "apac", "br")
		}
		return r
	}
	return g.allowed(seq)
}

// allowed is a request a rule grants: a grant picked at random, a member
// of its team, arguments that satisfy the schema and the rule.
func (g *Generator) allowed(seq int) Request {
	return g.granted(g.grants[g.rng.IntN(len(g.grants))], seq)
}

func (g *Generator) toolOf(r *Request) *toolModel { return g.m.servers[r.Server].tools[r.Tool] }

func (g *Generator) granted(gr grant, seq int) Request {
	rule := g.m.rules[gr.rule]
	r := Request{Server: gr.tool.server, Tool: gr.tool.name}
	r.Subject = g.subject(rule, gr.tool)
	r.SessionID = fmt.Sprintf("sess-%s-%04x", r.Subject.ID, g.rng.IntN(1<<16))
	r.Context = g.context(rule, gr.tool, seq)
	r.Arguments = g.arguments(gr.tool, &r.Subject, seq)
	for _, c := range rule.conds {
		g.satisfy(r.Arguments, gr.tool, c, seq)
	}
	return r
}

// subject returns a member of the team a rule names.
func (g *Generator) subject(rule *ruleModel, t *toolModel) Subject {
	var s Subject
	pick := func(f string) string {
		l := rule.who[f]
		if len(l) == 0 {
			return ""
		}
		v, _ := l[g.rng.IntN(len(l))].(string)
		return v
	}
	team := "staff"
	if role := pick("roles"); role != "" {
		s.Roles = append(s.Roles, role)
		team = role
	}
	if group := pick("groups"); group != "" {
		s.Groups = append(s.Groups, group)
		if team == "staff" {
			team = group
		}
	}
	for _, sc := range rule.who["scopes"] {
		if v, ok := sc.(string); ok {
			s.Scopes = append(s.Scopes, v)
		}
	}
	s.ID = fmt.Sprintf("%s.%02d", team, g.rng.IntN(60))
	if id := pick("subjects"); id != "" {
		s.ID = id
	}
	if t.phi && len(g.m.trainedRoles) > 0 {
		if role, ok := g.m.trainedRoles[0].(string); ok {
			s.Roles = append(s.Roles, role)
		}
	}
	s.Tenant = g.m.tenant
	if srv := g.m.servers[t.server]; srv.tenanted && len(srv.tenants) > 1 && g.rng.IntN(10) == 0 {
		s.Tenant, _ = srv.tenants[1+g.rng.IntN(len(srv.tenants)-1)].(string)
	}
	base := []int{1, 1, 1, 1, 2, 2, 2, 2, 3, 3}[g.rng.IntN(10)]
	s.Clearance = levelNames[max(base, t.level)]
	return s
}

var purposesAny = []string{"support", "contract", "operations", "legitimate_interest"}

// context returns the circumstances of a call the rule allows: a purpose,
// region, address and time its conditions and the compliance checks accept.
func (g *Generator) context(rule *ruleModel, t *toolModel, seq int) mcp.Context {
	c := mcp.Context{}
	var purposes []any
	switch {
	case rule.hasPurp:
		purposes = rule.purposes
	case t.personal:
		purposes = g.m.purposesOf(t, g.m.gdprPurposes)
	default:
		purposes = texts(purposesAny...)
	}
	purposes = slices.DeleteFunc(slices.Clone(purposes), func(p any) bool {
		return t.personal && !contains(g.m.purposesOf(t, g.m.gdprPurposes), p) || t.phi && !contains(g.m.purposesOf(t, g.m.hipaaPurposes), p)
	})
	if len(purposes) > 0 {
		c.Purpose, _ = purposes[g.rng.IntN(len(purposes))].(string)
	}
	regions := texts("eu", "eu", "uk", "us")
	switch {
	case rule.hasRegions:
		regions = rule.regions
	case t.personal:
		regions = g.m.gdprRegions
	}
	regions = slices.DeleteFunc(slices.Clone(regions), func(r any) bool { return t.personal && !contains(g.m.gdprRegions, r) })
	if len(regions) > 0 {
		c.Region, _ = regions[g.rng.IntN(len(regions))].(string)
	}
	c.SourceIP = fmt.Sprintf("10.%d.%d.%d", g.rng.IntN(32), g.rng.IntN(256), 1+g.rng.IntN(254))
	if rule.hasCIDRs && len(rule.cidrs) > 0 {
		c.SourceIP = g.addressIn(rule.cidrs[g.rng.IntN(len(rule.cidrs))])
	}
	// A gateway's clock: a few hours of a Tuesday morning in Europe.
	c.Time = g.base.Add(time.Duration(seq%7200)*time.Second + time.Duration(g.rng.IntN(1000))*time.Millisecond)
	if rule.hours != nil {
		c.Time = g.timeWithin(rule.hours, seq)
	}
	return c
}

func (g *Generator) addressIn(cidr any) string {
	s, _ := cidr.(string)
	p, err := netip.ParsePrefix(s)
	if err != nil || !p.Addr().Is4() || p.Bits() > 30 {
		return "192.0.2.1"
	}
	a := p.Masked().Addr()
	for range 1 + g.rng.IntN(1<<(32-p.Bits())-2) {
		a = a.Next()
	}
	return a.String()
}

// timeWithin returns a time inside the window of hours, in the week of the
// generator's base time.
func (g *Generator) timeWithin(h map[string]any, seq int) time.Time {
	tz, _ := h["timezone"].(string)
	loc, err := time.LoadLocation(tz)
	if err != nil {
		loc = time.UTC
	}
	start, _ := hhmm(h["start"])
	end, _ := hhmm(h["end"])
	monday := time.Date(2026, time.March, 9, 0, 0, 0, 0, loc)
	var days []int
	for d := range 7 {
		day := monday.AddDate(0, 0, d)
		probe := time.Date(day.Year(), day.Month(), day.Day(), start/60, start%60, 0, 0, loc)
		if withinHours(h, probe) {
			days = append(days, d)
		}
	}
	if len(days) == 0 || end <= start {
		return g.base
	}
	day := monday.AddDate(0, 0, days[g.rng.IntN(len(days))])
	minute := start + g.rng.IntN(end-start)
	return time.Date(day.Year(), day.Month(), day.Day(), minute/60, minute%60, seq%60, 0, loc).UTC()
}

// outsideHours returns a time outside the window: late in the evening or
// on a weekend.
func (g *Generator) outsideHours(h map[string]any, seq int) time.Time {
	tz, _ := h["timezone"].(string)
	loc, err := time.LoadLocation(tz)
	if err != nil {
		loc = time.UTC
	}
	for _, probe := range []time.Time{
		time.Date(2026, time.March, 10, 23, 15, seq%60, 0, loc),
		time.Date(2026, time.March, 14, 11, 0, seq%60, 0, loc),
		time.Date(2026, time.March, 10, 4, 30, seq%60, 0, loc),
	} {
		if !withinHours(h, probe) {
			return probe.UTC()
		}
	}
	return g.base
}

// noRule returns a request for a tool no rule grants its subject: a team
// member calling another department's tool.
func (g *Generator) noRule(seq int) Request {
	r := g.allowed(seq)
	t := g.tools[g.rng.IntN(len(g.tools))]
	r.Server, r.Tool = t.server, t.name
	if len(g.m.candidates(&r)) > 0 {
		return r // another try picks another tool
	}
	r.Subject.Clearance = levelNames[max(t.level, levels[r.Subject.Clearance])]
	if t.phi && !slices.ContainsFunc(r.Subject.Roles, func(role string) bool { return contains(g.m.trainedRoles, role) }) {
		if role, ok := g.m.trainedRoles[0].(string); ok {
			r.Subject.Roles = append(r.Subject.Roles, role)
		}
	}
	if t.personal {
		ps := g.m.purposesOf(t, g.m.gdprPurposes)
		if t.phi {
			ps = slices.DeleteFunc(slices.Clone(ps), func(p any) bool { return !contains(g.m.purposesOf(t, g.m.hipaaPurposes), p) })
		}
		if len(ps) > 0 {
			r.Context.Purpose, _ = ps[g.rng.IntN(len(ps))].(string)
		}
		if len(g.m.gdprRegions) > 0 {
			r.Context.Region, _ = g.m.gdprRegions[g.rng.IntN(len(g.m.gdprRegions))].(string)
		}
	}
	r.Arguments = g.arguments(t, &r.Subject, seq)
	return r
}

// condition returns a request that a rule names but whose condition fails:
// an argument out of bounds, outside office hours, from home, for another
// purpose.
func (g *Generator) condition(seq int) Request {
	if len(g.conds) == 0 {
		return g.allowed(seq)
	}
	ri := g.conds[g.rng.IntN(len(g.conds))]
	rule := g.m.rules[ri]
	var tools []*toolModel
	for _, t := range g.tools {
		if slices.Contains(g.m.byTool[t.key()], ri) {
			tools = append(tools, t)
		}
	}
	if len(tools) == 0 {
		return g.allowed(seq)
	}
	t := tools[g.rng.IntN(len(tools))]
	r := g.granted(grant{ri, t}, seq)
	var options []func() bool
	for _, c := range rule.conds {
		options = append(options, func() bool { return g.violate(r.Arguments, t, c, seq) })
	}
	if rule.hours != nil {
		options = append(options, func() bool { r.Context.Time = g.outsideHours(rule.hours, seq); return true })
	}
	if rule.hasCIDRs {
		options = append(options, func() bool {
			r.Context.SourceIP = fmt.Sprintf("192.168.%d.%d", g.rng.IntN(256), 2+g.rng.IntN(250))
			return true
		})
	}
	if rule.hasPurp {
		options = append(options, func() bool {
			for _, p := range purposesAny {
				if !contains(rule.purposes, p) {
					r.Context.Purpose = p
					return true
				}
			}
			return false
		})
	}
	for range 4 {
		if options[g.rng.IntN(len(options))]() {
			break
		}
	}
	return r
}

// breakSchema makes the arguments of r ones the tool's schema refuses: a
// member it does not know, a string too long, a value outside an enum, a
// required member spelled otherwise.
func (g *Generator) breakSchema(r *Request, seq int) {
	t := g.toolOf(r)
	props, _ := t.schema["properties"].(map[string]any)
	var options []func()
	if t.schema["additionalProperties"] == false {
		options = append(options, func() {
			r.Arguments[pickString(g.rng, "debug", "include_deleted", "as_user", "raw")] = true
		})
	}
	for _, name := range sortedKeys(props) {
		p, _ := props[name].(map[string]any)
		if n, ok := number(p["maxLength"]); ok && n <= 5000 {
			options = append(options, func() {
				r.Arguments[name] = strings.Repeat("lorem ipsum ", int(n)/12+1) + strconv.Itoa(seq)
			})
		}
		if e, ok := p["enum"]; ok && len(list(e)) > 0 {
			options = append(options, func() { r.Arguments[name] = "other-" + strconv.Itoa(seq%7) })
		}
	}
	for _, req := range list(t.schema["required"]) {
		name, _ := req.(string)
		if v, ok := r.Arguments[name]; ok && name != t.tenantArg {
			// A required member under another spelling: missing, and unknown.
			options = append(options, func() {
				delete(r.Arguments, name)
				r.Arguments[strings.ToUpper(name[:1])+name[1:]] = v
			})
		}
	}
	if len(options) > 0 {
		options[g.rng.IntN(len(options))]()
	}
}

// --- arguments ----------------------------------------------------------------------

// arguments returns the arguments of a call of t: every required member and
// about half of the others, with values that fit the schema and carry seq,
// so that no two requests have the same arguments.
func (g *Generator) arguments(t *toolModel, s *Subject, seq int) map[string]any {
	args, _ := g.value(t, "", t.schema, seq).(map[string]any)
	if args == nil {
		args = map[string]any{}
	}
	if t.tenantArg != "" {
		setPath(args, t.tenantArg, s.Tenant)
	}
	return args
}

var (
	words      = []string{"renewal", "invoice", "churn", "onboarding", "escalation", "pricing", "contract", "migration", "outage", "refund", "upgrade", "audit"}
	surnames   = []string{"smith", "garcia", "müller", "rossi", "dubois", "kowalski", "tanaka", "okafor", "nguyen", "silva", "jensen", "cohen"}
	tables     = []string{"orders", "accounts", "sessions", "invoices", "events", "tickets", "subscriptions", "payments"}
	folders    = []string{"reports", "exports", "drafts", "q1", "q2", "q3", "archive", "shared"}
	extensions = []string{"csv", "pdf", "md", "json", "xlsx", "txt"}
)

func (g *Generator) value(t *toolModel, name string, s map[string]any, seq int) any {
	if e, ok := s["enum"]; ok {
		l := list(e)
		return l[g.rng.IntN(len(l))]
	}
	typ, _ := s["type"].(string)
	switch typ {
	case "object":
		props, _ := s["properties"].(map[string]any)
		required := list(s["required"])
		obj := map[string]any{}
		for _, k := range sortedKeys(props) {
			// Agents page through lists: a cursor is always sent.
			if contains(required, k) || k == "cursor" || g.rng.IntN(2) == 0 {
				ps, _ := props[k].(map[string]any)
				obj[k] = g.value(t, k, ps, seq)
			}
		}
		if len(obj) == 0 && len(props) > 0 {
			k := sortedKeys(props)[g.rng.IntN(len(props))]
			ps, _ := props[k].(map[string]any)
			obj[k] = g.value(t, k, ps, seq)
		}
		return obj
	case "array":
		items, _ := s["items"].(map[string]any)
		n := 1 + g.rng.IntN(3)
		if m, ok := number(s["maxItems"]); ok {
			n = min(n, int(m))
		}
		out := make([]any, n)
		for i := range out {
			out[i] = g.value(t, name, items, seq*4+i)
		}
		return out
	case "boolean":
		return g.rng.IntN(2) == 0
	case "integer", "number":
		return g.integer(name, s, seq)
	}
	return clip(g.text(t, name, s, seq), s)
}

func (g *Generator) integer(name string, s map[string]any, seq int) int {
	lo := 0
	if m, ok := number(s["minimum"]); ok {
		lo = int(m)
	}
	hi := lo + 1000
	if m, ok := number(s["maximum"]); ok {
		hi = int(m)
	}
	v := lo + g.rng.IntN(min(hi-lo, 100)+1)
	switch name {
	case "limit", "page_size":
		v = []int{10, 20, 25, 50, 100}[g.rng.IntN(5)]
	case "amount":
		v = 500 + g.rng.IntN(20000)
	case "number":
		v = 1 + seq%999999
	case "year":
		v = 2025
	case "days", "due_days", "expires_days":
		v = 1 + g.rng.IntN(14)
	case "dose_mg":
		v = []int{5, 10, 50, 100, 250, 500}[g.rng.IntN(6)]
	case "timeout_seconds":
		v = []int{30, 60, 120, 300}[g.rng.IntN(4)]
	}
	return min(max(v, lo), hi)
}

// text returns a string for a member named name: what a person or an
// agent would send, with seq in it.
func (g *Generator) text(t *toolModel, name string, s map[string]any, seq int) string {
	if p, ok := s["pattern"].(string); ok {
		if gen, ok := patterns[p]; ok {
			return gen(seq)
		}
		return name + "-" + strconv.Itoa(seq)
	}
	if s["format"] == "date-time" {
		return g.base.Add(-time.Duration(seq)*time.Minute - time.Duration(g.rng.IntN(60))*time.Second).Format(time.RFC3339)
	}
	word := words[g.rng.IntN(len(words))]
	switch name {
	case "query":
		return fmt.Sprintf("%s %s %d", surnames[g.rng.IntN(len(surnames))], word, seq)
	case "filter":
		return fmt.Sprintf("id > %d and status = '%s'", seq, pickString(g.rng, "open", "active", "paid"))
	case "sql":
		return fmt.Sprintf("select id, status, updated_at from %s where id > %d order by id limit 100", tables[g.rng.IntN(len(tables))], seq)
	case "path":
		return fmt.Sprintf("/srv/shared/%s/%s-%d.%s", folders[g.rng.IntN(len(folders))], word, seq, extensions[g.rng.IntN(len(extensions))])
	case "from", "to":
		if t.name == "move_file" {
			return fmt.Sprintf("/srv/shared/%s/%s-%d-%s.%s", folders[g.rng.IntN(len(folders))], word, seq, name, extensions[g.rng.IntN(len(extensions))])
		}
		if name == "to" {
			return fmt.Sprintf("%s.%d@acme.example", surnames[g.rng.IntN(len(surnames))], seq%1000)
		}
		return "main"
	case "title", "subject", "name", "summary":
		return fmt.Sprintf("%s: %s follow-up #%d", strings.ToUpper(word[:1])+word[1:], surnames[g.rng.IntN(len(surnames))], seq)
	case "body", "content", "note", "comment", "reason", "description":
		return fmt.Sprintf("Customer asked about the %s; see case %d. Next step agreed on the call.", word, seq)
	case "recipient", "requester_email", "recipients", "attendees", "email":
		return fmt.Sprintf("%s.%d@acme.example", surnames[g.rng.IntN(len(surnames))], seq%1000)
	case "cursor":
		return fmt.Sprintf("c_%x", seq*7919+13)
	case "owner", "assignee":
		return fmt.Sprintf("%s.%s", pickString(g.rng, "emea", "na", "apac", "uk"), surnames[g.rng.IntN(len(surnames))])
	case "project":
		return pickString(g.rng, "OPS", "CORE", "BILLING", "WEB")
	case "branch":
		return fmt.Sprintf("feature/%s-%d", word, seq)
	case "space":
		return pickString(g.rng, "handbook", "eng", "support", "sales")
	case "schema":
		return pickString(g.rng, "public", "sales", "finance", "product")
	case "table":
		return "public." + tables[g.rng.IntN(len(tables))]
	case "cron":
		return pickString(g.rng, "0 7 * * 1", "30 6 * * *", "0 9 1 * *")
	case "medication":
		return pickString(g.rng, "amoxicillin", "ibuprofen", "metformin", "atorvastatin")
	case "cycle":
		return pickString(g.rng, "2026-H1", "2025-H2")
	case "macro":
		return pickString(g.rng, "refund-howto", "password-reset", "shipping-delay")
	case "phone":
		return fmt.Sprintf("+49 30 %07d", seq%10000000)
	case "department", "location", "account":
		return pickString(g.rng, "sales", "support", "berlin", "london", "main")
	case "allergies", "labels":
		return pickString(g.rng, "penicillin", "latex", "bug", "customer", "p1")
	}
	return fmt.Sprintf("%s-%d", name, seq)
}

// clip shortens a string to the schema's maxLength, keeping its end (where
// the sequence number is).
func clip(v string, s map[string]any) string {
	if m, ok := number(s["maxLength"]); ok && utf8.RuneCountInString(v) > int(m) {
		r := []rune(v)
		return string(r[len(r)-int(m):])
	}
	return v
}

// patterns generate strings matching the patterns Catalog writes.
var patterns = map[string]func(seq int) string{
	numericID:   func(seq int) string { return strconv.Itoa(100000 + seq) },
	ticketID:    func(seq int) string { return "SUP-" + strconv.Itoa(10000+seq) },
	invoiceID:   func(seq int) string { return fmt.Sprintf("in_%010d", seq) },
	paymentID:   func(seq int) string { return fmt.Sprintf("pi_%010d", seq) },
	patientID:   func(seq int) string { return fmt.Sprintf("P%07d", seq%10000000) },
	employeeID:  func(seq int) string { return fmt.Sprintf("E%07d", seq%10000000) },
	repoPattern: func(seq int) string { return fmt.Sprintf("acme/%s-svc", squads[seq%len(squads)]) },
	pageID:      func(seq int) string { return "KB-" + strconv.Itoa(seq) },
	queryID:     func(seq int) string { return fmt.Sprintf("q_%010d", seq) },
}

// satisfy makes the arguments meet condition c of a rule.
func (g *Generator) satisfy(args map[string]any, t *toolModel, c map[string]any, seq int) {
	p, _ := c["path"].(string)
	cur, present := lookup(args, strings.Split(p, "."))
	if !present && c["optional"] == true {
		return
	}
	if present && argumentHolds(args, c) {
		return
	}
	ps := propSchema(t.schema, p)
	if !present {
		cur = g.value(t, lastSegment(p), ps, seq)
	}
	want := c["value"]
	v := cur
	switch op, _ := c["op"].(string); op {
	case "eq":
		v = want
	case "ne":
		v = differentFrom(want, ps, g.rng)
	case "lt", "lte":
		w, _ := number(want)
		hi := int(w)
		if op == "lt" {
			hi--
		}
		lo := 0
		if m, ok := number(ps["minimum"]); ok {
			lo = int(m)
		}
		v = lo + g.rng.IntN(max(1, hi-lo+1))
	case "gt", "gte":
		w, _ := number(want)
		lo := int(w)
		if op == "gt" {
			lo++
		}
		v = lo + g.rng.IntN(10)
	case "in":
		l := list(want)
		v = l[g.rng.IntN(len(l))]
	case "not_in":
		v = differentFrom(list(want), ps, g.rng)
	case "prefix":
		w, _ := want.(string)
		v = clipTail(w+tail(fmt.Sprint(cur), w), ps)
	case "max_length":
		n, _ := number(want)
		if s, ok := cur.(string); ok {
			v = clip(s, map[string]any{"maxLength": n})
		}
	case "max_items":
		n, _ := number(want)
		if a, ok := cur.([]any); ok && len(a) > int(n) {
			v = a[:int(n)]
		}
	case "path_under":
		w, _ := want.(string)
		v = strings.TrimSuffix(w, "/") + "/" + strings.TrimPrefix(strings.TrimPrefix(fmt.Sprint(cur), "/srv/shared/"), "/")
	case "matches":
		switch lastSegment(p) {
		case "branch":
			v = fmt.Sprintf("feature/%s-%d", words[g.rng.IntN(len(words))], seq)
		case "recipient":
			v = fmt.Sprintf("%s.%d@acme.example", strings.ReplaceAll(surnames[g.rng.IntN(len(surnames))], "ü", "ue"), seq%1000)
		}
	}
	setPath(args, p, v)
}

// violate makes condition c of a rule fail while the arguments still fit
// the schema where it can; it reports whether it found a way.
func (g *Generator) violate(args map[string]any, t *toolModel, c map[string]any, seq int) bool {
	p, _ := c["path"].(string)
	ps := propSchema(t.schema, p)
	cur, present := lookup(args, strings.Split(p, "."))
	if !present {
		cur = g.value(t, lastSegment(p), ps, seq)
	}
	want := c["value"]
	var v any
	switch op, _ := c["op"].(string); op {
	case "eq":
		v = differentFrom(want, ps, g.rng)
	case "ne":
		v = want
	case "lt", "lte":
		w, _ := number(want)
		lo := int(w) + 1
		if op == "lt" {
			lo = int(w)
		}
		hi := lo + 10*max(1, int(w))
		if m, ok := number(ps["maximum"]); ok {
			hi = min(hi, int(m))
		}
		if hi < lo {
			return false
		}
		v = lo + g.rng.IntN(hi-lo+1)
	case "gt", "gte":
		w, _ := number(want)
		v = int(w) - 1 - g.rng.IntN(max(1, int(w)))
	case "in":
		v = differentFrom(list(want), ps, g.rng)
	case "not_in":
		l := list(want)
		v = l[g.rng.IntN(len(l))]
	case "prefix":
		w, _ := want.(string)
		if i := strings.LastIndex(w, "/"); i >= 0 {
			v = clipTail(w[:i+1]+"shared-"+tail(fmt.Sprint(cur), "shared-"), ps)
		} else {
			v = clipTail("ESC-"+tail(fmt.Sprint(cur), "ESC-"), ps)
		}
	case "max_length":
		n, _ := number(want)
		v = strings.Repeat("and then ", int(n)/9+1) + strconv.Itoa(seq)
	case "max_items":
		n, _ := number(want)
		items, _ := propSchema(t.schema, p)["items"].(map[string]any)
		a := make([]any, int(n)+1+g.rng.IntN(5))
		for i := range a {
			a[i] = g.value(t, lastSegment(p), items, seq*64+i)
		}
		v = a
	case "path_under":
		w, _ := want.(string)
		if g.rng.IntN(2) == 0 {
			v = fmt.Sprintf("%s/../../etc/%s-%d", strings.TrimSuffix(w, "/"), pickString(g.rng, "passwd", "shadow", "ssh"), seq)
		} else {
			v = fmt.Sprintf("/srv/teams/%s/%s-%d.csv", pickString(g.rng, "executive", "legal", "board"), words[g.rng.IntN(len(words))], seq)
		}
	case "matches":
		switch lastSegment(p) {
		case "recipient":
			v = fmt.Sprintf("partner.%d@gmail.example", seq%1000)
		default:
			v = fmt.Sprintf("tmp-%s-%d", words[g.rng.IntN(len(words))], seq)
		}
	default:
		return false
	}
	setPath(args, p, v)
	return true
}

// differentFrom returns a value of the member's schema that is not want
// (or, for a list, in it).
func differentFrom(want any, s map[string]any, rng *rand.Rand) any {
	avoid := list(want)
	if _, isList := want.([]any); !isList {
		avoid = []any{want}
	}
	if e, ok := s["enum"]; ok {
		var others []any
		for _, v := range list(e) {
			if !contains(avoid, v) {
				others = append(others, v)
			}
		}
		if len(others) > 0 {
			return others[rng.IntN(len(others))]
		}
	}
	if f, ok := number(avoid[0]); ok {
		return int(f) + 1
	}
	return fmt.Sprintf("%v-other", avoid[0])
}

// propSchema returns the schema of the member at dotted path p.
func propSchema(schema map[string]any, p string) map[string]any {
	cur := schema
	for _, k := range strings.Split(p, ".") {
		props, _ := cur["properties"].(map[string]any)
		next, _ := props[k].(map[string]any)
		if next == nil {
			return map[string]any{"type": "string"}
		}
		cur = next
	}
	return cur
}

func setPath(args map[string]any, p string, v any) {
	keys := strings.Split(p, ".")
	cur := args
	for _, k := range keys[:len(keys)-1] {
		next, ok := cur[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			cur[k] = next
		}
		cur = next
	}
	cur[keys[len(keys)-1]] = v
}

func lastSegment(p string) string { return p[strings.LastIndex(p, ".")+1:] }

// tail is what follows the last "/" or "." of s, with a separator fitting
// after prefix.
func tail(s, prefix string) string {
	if i := strings.LastIndexAny(s, "/."); i >= 0 {
		s = s[i+1:]
	}
	if prefix != "" && !strings.ContainsAny(prefix[len(prefix)-1:], "-./_") {
		return "-" + s
	}
	return s
}

// clipTail shortens a string to the schema's maxLength, keeping its start.
func clipTail(v string, s map[string]any) string {
	if m, ok := number(s["maxLength"]); ok && utf8.RuneCountInString(v) > int(m) {
		return string([]rune(v)[:int(m)])
	}
	return v
}

func pickString(rng *rand.Rand, ss ...string) string { return ss[rng.IntN(len(ss))] }
