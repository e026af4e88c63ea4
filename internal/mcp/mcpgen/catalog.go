// Package mcpgen generates, for benchmarks and tests, the MCP bundle data
// of a realistic organisation and tools/call requests against it.
//
// Catalog returns data.mcp for the policy library in policies/verdict/mcp:
// servers of several kinds (crm, files, tickets, payments, ehr, hr, ...)
// whose tools have real-looking input schemas, annotations,
// classifications, data categories, redactions and rate limits, the access
// rules of the organisation's teams, and settings. Requests returns
// tools/call requests against such a catalog in which every request
// carries argument values no other request has, as real agent calls do,
// most of them allowed and the rest denied (or sent for approval) for the
// reasons an organisation sees; each request knows the decision the
// library gives it.
//
// Everything is deterministic from a seed. Nothing here reads the clock,
// the network or the file system.
package mcpgen

import (
	"fmt"
	"math/rand/v2"
	"slices"
)

// Spec sizes the organisation. Zero fields take their defaults.
type Spec struct {
	// Servers is the number of MCP servers (default 5). The first ten
	// are crm, files, tickets, payments, ehr, hr, github, analytics,
	// docs and mail; more repeat them as regional deployments (crm-us).
	Servers int
	// ToolsPerServer is the number of tools per server (default 8, at
	// most the 10 to 12 tools a server of its kind has).
	ToolsPerServer int
	// Rules is the number of access rules (default 100). More rules mean
	// more teams, each with grants of its own; no two rules are alike.
	Rules int
	// Seed varies thresholds, team order, office networks and which of
	// a server's less common tools are present.
	Seed uint64
}

func (s Spec) withDefaults() Spec {
	if s.Servers <= 0 {
		s.Servers = 5
	}
	if s.ToolsPerServer <= 0 {
		s.ToolsPerServer = 8
	}
	if s.Rules <= 0 {
		s.Rules = 100
	}
	return s
}

// Tenants of the multi-tenant servers; the organisation is the first.
var tenants = []string{"acme", "globex", "initech"}

// Catalog returns the bundle data {"mcp": {"servers", "rules", "settings"}}
// of the organisation described by s.
func Catalog(s Spec) map[string]any {
	s = s.withDefaults()
	rng := rand.New(rand.NewPCG(s.Seed, 0x6d6370676)) //nolint:gosec // benchmark data, not secrets
	servers := map[string]any{}
	present := map[string]*server{}
	var order []*server
	for i := range s.Servers {
		k := kinds[i%len(kinds)]
		name := k.name
		if i >= len(kinds) {
			name = fmt.Sprintf("%s-%s", k.name, deploymentRegions[(i/len(kinds)-1)%len(deploymentRegions)])
			if i >= len(kinds)*(len(deploymentRegions)+1) {
				name = fmt.Sprintf("%s-%d", name, i/(len(kinds)*(len(deploymentRegions)+1)))
			}
		}
		srv := k.build(name, s.ToolsPerServer, rng)
		servers[name] = srv.data
		present[name] = srv
		order = append(order, srv)
	}
	rules := buildRules(order, s.Rules, rng)
	return map[string]any{"mcp": map[string]any{
		"servers":  servers,
		"rules":    rules,
		"settings": settings(),
	}}
}

var deploymentRegions = []string{"us", "apac", "uk", "ca"}

func settings() map[string]any {
	return map[string]any{
		"default_classification": "restricted",
		"require_input_schema":   true,
		"retention_days":         map[string]any{"financial": 3650, "clinical": 3650},
		"gdpr": map[string]any{
			"allowed_regions": []any{"eu", "uk"},
			"purposes":        []any{"contract", "support", "legitimate_interest", "legal_obligation", "consent"},
		},
		"hipaa": map[string]any{
			"trained_roles": []any{"hipaa_trained"},
			"purposes":      []any{"treatment", "payment", "operations"},
		},
	}
}

// --- servers and tools -------------------------------------------------------

// server is one generated server: its data, and what the rules need to
// know of it.
type server struct {
	kind  *kind
	name  string
	data  map[string]any
	tools []string // in catalog order
}

func (s *server) has(tool string) bool { return slices.Contains(s.tools, tool) }

// kind is a kind of MCP server: its tools, most common first.
type kind struct {
	name, owner string
	multiTenant bool
	tools       []*tool
	resources   []map[string]any
	prompts     map[string]any
}

// core is how many of a kind's first tools every server of that kind has;
// the seed picks among the rest.
const core = 4

func (k *kind) build(name string, n int, rng *rand.Rand) *server {
	tools := slices.Clone(k.tools)
	if len(tools) > core {
		rest := tools[core:]
		rng.Shuffle(len(rest), func(i, j int) { rest[i], rest[j] = rest[j], rest[i] })
	}
	tools = tools[:min(n, len(tools))]
	srv := &server{kind: k, name: name}
	td := map[string]any{}
	for _, t := range tools {
		td[t.name] = t.data(k.multiTenant)
		srv.tools = append(srv.tools, t.name)
	}
	data := map[string]any{"owner": k.owner, "tools": td}
	if k.multiTenant {
		data["tenants"] = texts(tenants...)
	}
	if len(k.resources) > 0 {
		res := make([]any, len(k.resources))
		for i, r := range k.resources {
			res[i] = clone(r)
		}
		data["resources"] = res
	}
	if len(k.prompts) > 0 {
		data["prompts"] = clone(k.prompts)
	}
	srv.data = data
	return srv
}

// tool is a tool of a kind of server.
type tool struct {
	name       string
	class      string
	categories []string
	access     access
	props      map[string]map[string]any
	required   []string
	extra      map[string]any // redact, rate_limit, purposes, retention...
}

// access is what a tool does, as its MCP annotations say.
type access int

const (
	readOnly    access = iota // readOnlyHint true
	write                     // readOnlyHint false, destructiveHint false
	destructive               // destructiveHint true
)

func (t *tool) data(multiTenant bool) map[string]any {
	props := map[string]any{}
	for name, p := range t.props {
		props[name] = clone(p)
	}
	required := slices.Clone(t.required)
	d := map[string]any{"classification": t.class}
	if multiTenant {
		props["tenant"] = map[string]any{"type": "string", "maxLength": 64}
		required = append([]string{"tenant"}, required...)
		d["tenant_argument"] = "tenant"
	}
	schema := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		schema["required"] = texts(required...)
	}
	d["input_schema"] = schema
	switch t.access {
	case readOnly:
		d["annotations"] = map[string]any{"readOnlyHint": true, "openWorldHint": false}
	case write:
		d["annotations"] = map[string]any{"readOnlyHint": false, "destructiveHint": false, "idempotentHint": false}
	case destructive:
		d["annotations"] = map[string]any{"readOnlyHint": false, "destructiveHint": true}
	}
	if len(t.categories) > 0 {
		d["data_categories"] = texts(t.categories...)
	}
	for k, v := range t.extra {
		d[k] = clone(v)
	}
	return d
}

// --- schema helpers ----------------------------------------------------------

func str(maxLength int) map[string]any {
	return map[string]any{"type": "string", "minLength": 1, "maxLength": maxLength}
}

func pattern(p string, maxLength int) map[string]any {
	if _, ok := patterns[p]; !ok {
		panic("mcpgen: no generator for pattern " + p)
	}
	return map[string]any{"type": "string", "pattern": p, "maxLength": maxLength}
}

func integer(lo, hi int) map[string]any {
	return map[string]any{"type": "integer", "minimum": lo, "maximum": hi}
}

func enum(values ...string) map[string]any {
	return map[string]any{"type": "string", "enum": texts(values...)}
}

func boolean() map[string]any { return map[string]any{"type": "boolean"} }

func dateTime() map[string]any {
	return map[string]any{"type": "string", "format": "date-time", "maxLength": 40}
}

func array(items map[string]any, maxItems int) map[string]any {
	return map[string]any{"type": "array", "items": items, "minItems": 1, "maxItems": maxItems}
}

func object(props map[string]map[string]any, required ...string) map[string]any {
	p := map[string]any{}
	for k, v := range props {
		p[k] = v
	}
	o := map[string]any{"type": "object", "properties": p, "additionalProperties": false}
	if len(required) > 0 {
		o["required"] = texts(required...)
	}
	return o
}

type props = map[string]map[string]any

func texts(ss ...string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// clone deep-copies JSON-like values, so that no two places of a catalog
// share a map or slice.
func clone(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = clone(e)
		}
		return m
	case []any:
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = clone(e)
		}
		return s
	default:
		return v
	}
}

func rateLimit(limit, period int) map[string]any {
	return map[string]any{"limit": limit, "period_seconds": period}
}

// --- the kinds of server ----------------------------------------------------

var (
	personal = []string{"personal_data"}
	phi      = []string{"phi"}
)

var (
	numericID   = `^[0-9]{1,12}$`
	ticketID    = `^SUP-[0-9]{1,9}$`
	invoiceID   = `^in_[0-9a-z]{8,24}$`
	paymentID   = `^pi_[0-9a-z]{8,24}$`
	patientID   = `^P[0-9]{6,8}$`
	employeeID  = `^E[0-9]{6,8}$`
	repoPattern = `^[a-z0-9-]+/[a-z0-9._-]+$`
	pageID      = `^[A-Z]{2,10}-[0-9]{1,9}$`
	queryID     = `^q_[0-9a-z]{8,24}$`
)

var wards = []string{"cardiology", "oncology", "pediatrics", "emergency", "radiology", "neurology", "orthopedics", "icu",
	"maternity", "geriatrics", "psychiatry", "dermatology", "nephrology", "urology", "surgery", "gastroenterology"}

var kinds = []*kind{crmKind(), filesKind(), ticketsKind(), paymentsKind(), ehrKind(), hrKind(), githubKind(), analyticsKind(), docsKind(), mailKind()}

func crmKind() *kind {
	query, limit := str(200), integer(1, 1000)
	return &kind{
		name: "crm", owner: "sales-platform", multiTenant: true,
		tools: []*tool{
			{name: "search_contacts", class: "confidential", categories: personal, access: readOnly,
				props: props{"query": query, "limit": limit, "owner": str(64)}, required: []string{"query"},
				extra: map[string]any{"redact": texts("/result/structuredContent/contacts/*/phone"), "rate_limit": rateLimit(600, 60)}},
			{name: "get_contact", class: "confidential", categories: personal, access: readOnly,
				props: props{"id": pattern(numericID, 12)}, required: []string{"id"},
				extra: map[string]any{"redact": texts("/result/structuredContent/phone", "/result/structuredContent/email")}},
			{name: "search_accounts", class: "internal", access: readOnly,
				props: props{"query": query, "limit": limit, "industry": enum("software", "retail", "health", "finance", "public")}, required: []string{"query"}},
			{name: "update_contact", class: "confidential", categories: personal, access: write,
				props: props{"id": pattern(numericID, 12), "fields": object(props{
					"email": str(254), "phone": str(32), "title": str(120), "owner": str(64),
				}), "reason": str(500)}, required: []string{"id", "fields"}},
			{name: "export_contacts", class: "confidential", categories: personal, access: readOnly,
				props: props{"query": query, "format": enum("csv", "json", "xlsx"), "limit": integer(1, 100000)}, required: []string{"query", "format", "limit"},
				extra: map[string]any{"retention_days": 30, "rate_limit": rateLimit(20, 3600)}},
			{name: "get_account", class: "internal", access: readOnly,
				props: props{"id": pattern(numericID, 12)}, required: []string{"id"}},
			{name: "create_note", class: "internal", access: write,
				props:    props{"account_id": pattern(numericID, 12), "body": str(5000), "visibility": enum("team", "private", "company")},
				required: []string{"account_id", "body"}},
			{name: "update_opportunity", class: "confidential", access: write,
				props: props{"id": pattern(numericID, 12), "stage": enum("qualify", "propose", "negotiate", "won", "lost"),
					"amount": integer(0, 100000000), "reason": str(500)}, required: []string{"id", "stage"}},
			{name: "delete_contact", class: "confidential", categories: personal, access: destructive,
				props: props{"id": pattern(numericID, 12), "reason": str(500)}, required: []string{"id", "reason"}},
			{name: "search_opportunities", class: "confidential", access: readOnly,
				props: props{"query": query, "stage": enum("qualify", "propose", "negotiate", "won", "lost"), "limit": limit}, required: []string{"query"}},
			{name: "log_activity", class: "internal", access: write,
				props:    props{"account_id": pattern(numericID, 12), "type": enum("call", "meeting", "email"), "summary": str(2000)},
				required: []string{"account_id", "type", "summary"}},
			{name: "merge_contacts", class: "confidential", categories: personal, access: destructive,
				props: props{"id": pattern(numericID, 12), "duplicate_ids": array(pattern(numericID, 12), 10)}, required: []string{"id", "duplicate_ids"}},
		},
		resources: []map[string]any{
			{"uri_prefix": "crm://contacts/", "classification": "confidential", "data_categories": texts("personal_data")},
			{"uri_prefix": "crm://reports/", "classification": "internal", "retention_class": "financial"},
		},
		prompts: map[string]any{
			"summarize_account": map[string]any{"classification": "internal"},
			"draft_followup":    map[string]any{"classification": "internal"},
		},
	}
}

func filesKind() *kind {
	path := str(4096)
	return &kind{
		name: "files", owner: "data-platform",
		tools: []*tool{
			{name: "read_file", class: "internal", access: readOnly, props: props{"path": path}, required: []string{"path"},
				extra: map[string]any{"block_on": texts("secret")}},
			{name: "list_directory", class: "internal", access: readOnly,
				props: props{"path": path, "recursive": boolean(), "cursor": str(128)}, required: []string{"path"}},
			{name: "search_files", class: "internal", access: readOnly,
				props: props{"query": str(256), "path": path, "limit": integer(1, 200)}, required: []string{"query", "path"}},
			{name: "write_file", class: "internal", access: destructive,
				props: props{"path": path, "content": str(1 << 20), "mode": enum("overwrite", "append")}, required: []string{"path", "content"}},
			{name: "get_file_info", class: "internal", access: readOnly, props: props{"path": path}, required: []string{"path"}},
			{name: "move_file", class: "internal", access: destructive, props: props{"from": path, "to": path}, required: []string{"from", "to"}},
			{name: "share_file", class: "confidential", access: write,
				props: props{"path": path, "recipient": str(254), "expires_days": integer(1, 30)}, required: []string{"path", "recipient"},
				extra: map[string]any{"rate_limit": rateLimit(60, 3600)}},
			{name: "delete_file", class: "internal", access: destructive, props: props{"path": path, "reason": str(500)}, required: []string{"path"}},
			{name: "create_directory", class: "internal", access: write, props: props{"path": path}, required: []string{"path"}},
			{name: "restore_file", class: "internal", access: write, props: props{"path": path, "version": integer(1, 10000)}, required: []string{"path", "version"}},
		},
		resources: []map[string]any{
			{"uri_prefix": "file:///srv/teams/", "classification": "internal"},
			{"uri_prefix": "file:///srv/finance/", "classification": "confidential", "retention_class": "financial"},
		},
	}
}

func ticketsKind() *kind {
	status := enum("open", "pending", "solved", "closed")
	priority := enum("low", "normal", "high", "urgent")
	return &kind{
		name: "tickets", owner: "support-platform",
		tools: []*tool{
			{name: "search_tickets", class: "internal", access: readOnly,
				props: props{"query": str(200), "project": str(16), "status": status, "limit": integer(1, 500)}, required: []string{"query"}},
			{name: "get_ticket", class: "internal", access: readOnly, props: props{"id": pattern(ticketID, 16)}, required: []string{"id"}},
			{name: "create_ticket", class: "internal", categories: personal, access: write,
				props:    props{"project": str(16), "subject": str(200), "body": str(20000), "priority": priority, "requester_email": str(254)},
				required: []string{"project", "subject", "body"}},
			{name: "add_comment", class: "internal", access: write,
				props: props{"ticket_id": pattern(ticketID, 16), "body": str(20000), "public": boolean()}, required: []string{"ticket_id", "body"}},
			{name: "update_ticket", class: "internal", access: write,
				props: props{"id": pattern(ticketID, 16), "status": status, "priority": priority, "assignee": str(64)}, required: []string{"id"}},
			{name: "get_customer", class: "confidential", categories: personal, access: readOnly,
				props: props{"id": pattern(numericID, 12)}, required: []string{"id"},
				extra: map[string]any{"redact": texts("/result/structuredContent/email", "/result/structuredContent/address")}},
			{name: "search_customers", class: "confidential", categories: personal, access: readOnly,
				props: props{"query": str(200), "limit": integer(1, 100)}, required: []string{"query"},
				extra: map[string]any{"rate_limit": rateLimit(300, 60)}},
			{name: "close_ticket", class: "internal", access: write,
				props:    props{"id": pattern(ticketID, 16), "resolution": enum("fixed", "duplicate", "wont_fix", "no_response"), "note": str(2000)},
				required: []string{"id", "resolution"}},
			{name: "delete_ticket", class: "internal", categories: personal, access: destructive,
				props: props{"id": pattern(ticketID, 16), "reason": str(500)}, required: []string{"id", "reason"}},
			{name: "apply_macro", class: "internal", access: write,
				props: props{"ticket_id": pattern(ticketID, 16), "macro": str(64)}, required: []string{"ticket_id", "macro"}},
		},
		resources: []map[string]any{{"uri_prefix": "tickets://attachments/", "classification": "confidential", "data_categories": texts("personal_data")}},
		prompts:   map[string]any{"draft_reply": map[string]any{"classification": "internal"}},
	}
}

func paymentsKind() *kind {
	currency := enum("EUR", "USD", "GBP", "CHF")
	financial := func(m map[string]any) map[string]any { m["retention_class"] = "financial"; return m }
	return &kind{
		name: "payments", owner: "finance-platform",
		tools: []*tool{
			{name: "search_invoices", class: "confidential", access: readOnly,
				props: props{"query": str(200), "status": enum("draft", "open", "paid", "void"), "limit": integer(1, 500)}, required: []string{"query"},
				extra: financial(map[string]any{})},
			{name: "get_invoice", class: "confidential", access: readOnly, props: props{"id": pattern(invoiceID, 27)}, required: []string{"id"},
				extra: financial(map[string]any{})},
			{name: "get_payment", class: "restricted", categories: personal, access: readOnly, props: props{"id": pattern(paymentID, 27)}, required: []string{"id"},
				extra: financial(map[string]any{"redact": texts("/result/structuredContent/card/number", "/result/structuredContent/billing_address")})},
			{name: "refund_payment", class: "restricted", categories: personal, access: destructive,
				props: props{"payment_id": pattern(paymentID, 27), "amount": integer(1, 100000000), "currency": currency,
					"reason": enum("duplicate", "fraudulent", "requested_by_customer")},
				required: []string{"payment_id", "amount", "currency", "reason"},
				extra:    financial(map[string]any{"rate_limit": rateLimit(120, 60)})},
			{name: "create_invoice", class: "confidential", access: write,
				props: props{"customer_id": pattern(numericID, 12), "currency": currency, "due_days": integer(1, 90),
					"lines": array(object(props{"description": str(200), "amount": integer(1, 100000000)}, "description", "amount"), 50)},
				required: []string{"customer_id", "currency", "lines"}, extra: financial(map[string]any{})},
			{name: "list_payouts", class: "confidential", access: readOnly,
				props: props{"since": dateTime(), "cursor": str(128), "limit": integer(1, 100)}, required: []string{"since"}, extra: financial(map[string]any{})},
			{name: "void_invoice", class: "confidential", access: destructive,
				props: props{"id": pattern(invoiceID, 27), "reason": str(500)}, required: []string{"id", "reason"}, extra: financial(map[string]any{})},
			{name: "export_transactions", class: "restricted", access: readOnly,
				props:    props{"from": dateTime(), "to": dateTime(), "format": enum("csv", "parquet"), "account": str(64)},
				required: []string{"from", "to", "format"}, extra: financial(map[string]any{"rate_limit": rateLimit(10, 3600)})},
			{name: "update_subscription", class: "confidential", access: write,
				props:    props{"id": pattern(numericID, 12), "plan": enum("starter", "team", "business", "enterprise"), "quantity": integer(1, 10000)},
				required: []string{"id", "plan"}, extra: financial(map[string]any{})},
			{name: "cancel_subscription", class: "confidential", access: destructive,
				props: props{"id": pattern(numericID, 12), "reason": str(500)}, required: []string{"id", "reason"}, extra: financial(map[string]any{})},
		},
		prompts: map[string]any{"explain_invoice": map[string]any{"classification": "confidential"}},
	}
}

func ehrKind() *kind {
	ward := enum(wards...)
	clinical := func(m map[string]any) map[string]any {
		m["purposes"] = texts("treatment", "payment", "operations")
		m["retention_class"] = "clinical"
		return m
	}
	return &kind{
		name: "ehr", owner: "clinical-systems",
		tools: []*tool{
			{name: "get_patient_record", class: "restricted", categories: phi, access: readOnly,
				props: props{"patient_id": pattern(patientID, 9), "ward": ward,
					"sections": array(enum("summary", "allergies", "medications", "history", "imaging"), 5)},
				required: []string{"patient_id", "ward"},
				extra:    clinical(map[string]any{"redact": texts("/result/structuredContent/ssn"), "block_on": texts("secret")})},
			{name: "search_patients", class: "restricted", categories: phi, access: readOnly,
				props: props{"query": str(100), "ward": ward, "limit": integer(1, 50)}, required: []string{"query", "ward"}, extra: clinical(map[string]any{})},
			{name: "list_appointments", class: "confidential", categories: phi, access: readOnly,
				props: props{"ward": ward, "date": dateTime(), "cursor": str(128)}, required: []string{"ward", "date"}, extra: clinical(map[string]any{})},
			{name: "create_care_note", class: "restricted", categories: phi, access: write,
				props: props{"patient_id": pattern(patientID, 9), "ward": ward, "note": str(10000)}, required: []string{"patient_id", "ward", "note"},
				extra: clinical(map[string]any{})},
			{name: "get_lab_results", class: "restricted", categories: phi, access: readOnly,
				props: props{"patient_id": pattern(patientID, 9), "ward": ward, "since": dateTime()}, required: []string{"patient_id", "ward"},
				extra: clinical(map[string]any{})},
			{name: "schedule_appointment", class: "confidential", categories: phi, access: write,
				props:    props{"patient_id": pattern(patientID, 9), "ward": ward, "start": dateTime(), "duration_minutes": integer(5, 240)},
				required: []string{"patient_id", "ward", "start"}, extra: clinical(map[string]any{})},
			{name: "prescribe_medication", class: "restricted", categories: phi, access: destructive,
				props:    props{"patient_id": pattern(patientID, 9), "ward": ward, "medication": str(100), "dose_mg": integer(1, 5000)},
				required: []string{"patient_id", "ward", "medication", "dose_mg"}, extra: clinical(map[string]any{})},
			{name: "update_allergies", class: "restricted", categories: phi, access: write,
				props:    props{"patient_id": pattern(patientID, 9), "ward": ward, "allergies": array(str(100), 20)},
				required: []string{"patient_id", "ward", "allergies"}, extra: clinical(map[string]any{})},
		},
	}
}

func hrKind() *kind {
	return &kind{
		name: "hr", owner: "people-platform",
		tools: []*tool{
			{name: "search_employees", class: "confidential", categories: personal, access: readOnly,
				props: props{"query": str(200), "department": str(64), "limit": integer(1, 200)}, required: []string{"query"}},
			{name: "get_employee", class: "confidential", categories: personal, access: readOnly,
				props: props{"id": pattern(employeeID, 9)}, required: []string{"id"},
				extra: map[string]any{"redact": texts("/result/structuredContent/home_address", "/result/structuredContent/national_id")}},
			{name: "request_time_off", class: "internal", categories: personal, access: write,
				props:    props{"employee_id": pattern(employeeID, 9), "start": dateTime(), "days": integer(1, 30), "type": enum("vacation", "sick", "parental", "unpaid")},
				required: []string{"employee_id", "start", "days", "type"}},
			{name: "approve_time_off", class: "internal", categories: personal, access: write,
				props: props{"request_id": pattern(numericID, 12), "comment": str(500)}, required: []string{"request_id"}},
			{name: "get_compensation", class: "restricted", categories: personal, access: readOnly,
				props: props{"employee_id": pattern(employeeID, 9), "year": integer(2015, 2030)}, required: []string{"employee_id"}},
			{name: "update_employee", class: "confidential", categories: personal, access: write,
				props: props{"id": pattern(employeeID, 9), "fields": object(props{"title": str(120), "manager": pattern(employeeID, 9), "location": str(64)}),
					"reason": str(500)}, required: []string{"id", "fields"}},
			{name: "create_review", class: "confidential", categories: personal, access: write,
				props:    props{"employee_id": pattern(employeeID, 9), "cycle": str(16), "summary": str(10000), "rating": integer(1, 5)},
				required: []string{"employee_id", "cycle", "summary"}},
			{name: "terminate_employee", class: "restricted", categories: personal, access: destructive,
				props:    props{"employee_id": pattern(employeeID, 9), "effective": dateTime(), "reason": str(1000)},
				required: []string{"employee_id", "effective", "reason"}},
		},
	}
}

func githubKind() *kind {
	repo := pattern(repoPattern, 140)
	return &kind{
		name: "github", owner: "developer-platform",
		tools: []*tool{
			{name: "list_issues", class: "internal", access: readOnly,
				props:    props{"repo": repo, "state": enum("open", "closed", "all"), "labels": array(str(50), 10), "since": dateTime(), "cursor": str(128)},
				required: []string{"repo", "since"}},
			{name: "get_pull_request", class: "internal", access: readOnly, props: props{"repo": repo, "number": integer(1, 1000000)}, required: []string{"repo", "number"}},
			{name: "create_issue", class: "internal", access: write,
				props: props{"repo": repo, "title": str(256), "body": str(65536), "labels": array(str(50), 10)}, required: []string{"repo", "title"}},
			{name: "search_code", class: "internal", access: readOnly, props: props{"query": str(256), "repo": repo}, required: []string{"query"}},
			{name: "comment_on_issue", class: "internal", access: write,
				props: props{"repo": repo, "number": integer(1, 1000000), "body": str(65536)}, required: []string{"repo", "number", "body"}},
			{name: "create_branch", class: "internal", access: write,
				props: props{"repo": repo, "branch": str(100), "from": str(100)}, required: []string{"repo", "branch"}},
			{name: "merge_pull_request", class: "internal", access: destructive,
				props: props{"repo": repo, "number": integer(1, 1000000), "method": enum("merge", "squash", "rebase")}, required: []string{"repo", "number"}},
			{name: "delete_branch", class: "internal", access: destructive, props: props{"repo": repo, "branch": str(100)}, required: []string{"repo", "branch"}},
		},
	}
}

func analyticsKind() *kind {
	warehouse := enum("reporting", "product", "finance", "clinical", "marketing")
	return &kind{
		name: "analytics", owner: "data-platform",
		tools: []*tool{
			{name: "run_query", class: "internal", access: readOnly,
				props: props{"sql": str(20000), "warehouse": warehouse, "timeout_seconds": integer(1, 900)}, required: []string{"sql", "warehouse"}},
			{name: "list_tables", class: "internal", access: readOnly,
				props: props{"warehouse": warehouse, "schema": str(64), "cursor": str(128)}, required: []string{"warehouse", "schema"}},
			{name: "preview_table", class: "internal", access: readOnly,
				props: props{"warehouse": warehouse, "table": str(128), "filter": str(2000), "rows": integer(1, 100)}, required: []string{"warehouse", "table", "filter"}},
			{name: "export_query_result", class: "confidential", access: readOnly,
				props: props{"query_id": pattern(queryID, 27), "format": enum("csv", "parquet", "json")}, required: []string{"query_id", "format"},
				extra: map[string]any{"rate_limit": rateLimit(30, 3600)}},
			{name: "schedule_report", class: "internal", access: write,
				props:    props{"name": str(120), "sql": str(20000), "cron": str(64), "recipients": array(str(254), 20)},
				required: []string{"name", "sql", "cron"}},
			{name: "delete_report", class: "internal", access: destructive, props: props{"name": str(120), "reason": str(500)}, required: []string{"name"}},
		},
		prompts: map[string]any{"explain_query": map[string]any{"classification": "internal"}},
	}
}

func docsKind() *kind {
	return &kind{
		name: "docs", owner: "people-team",
		tools: []*tool{
			{name: "search_docs", class: "public", access: readOnly, props: props{"query": str(500), "space": str(32)}, required: []string{"query"}},
			{name: "get_page", class: "public", access: readOnly, props: props{"page_id": pattern(pageID, 20)}, required: []string{"page_id"}},
			{name: "create_page", class: "internal", access: write,
				props: props{"space": str(32), "title": str(200), "body": str(100000)}, required: []string{"space", "title", "body"}},
			{name: "update_page", class: "internal", access: write,
				props: props{"page_id": pattern(pageID, 20), "body": str(100000), "comment": str(500)}, required: []string{"page_id", "body"}},
			{name: "delete_page", class: "internal", access: destructive, props: props{"page_id": pattern(pageID, 20)}, required: []string{"page_id"}},
		},
		resources: []map[string]any{{"uri_prefix": "docs://handbook/", "classification": "public"}},
	}
}

func mailKind() *kind {
	return &kind{
		name: "mail", owner: "workplace",
		tools: []*tool{
			{name: "search_email", class: "confidential", categories: personal, access: readOnly,
				props: props{"query": str(200), "folder": enum("inbox", "sent", "archive"), "limit": integer(1, 100)}, required: []string{"query"}},
			{name: "send_email", class: "confidential", categories: personal, access: write,
				props: props{"to": array(str(254), 50), "subject": str(200), "body": str(100000)}, required: []string{"to", "subject", "body"},
				extra: map[string]any{"rate_limit": rateLimit(120, 60)}},
			{name: "create_event", class: "internal", access: write,
				props:    props{"title": str(200), "start": dateTime(), "duration_minutes": integer(5, 480), "attendees": array(str(254), 50)},
				required: []string{"title", "start"}},
			{name: "list_events", class: "internal", access: readOnly,
				props: props{"from": dateTime(), "to": dateTime(), "cursor": str(128)}, required: []string{"from", "to"}},
		},
	}
}
