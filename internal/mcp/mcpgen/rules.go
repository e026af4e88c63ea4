package mcpgen

import (
	"fmt"
	"math/rand/v2"
	"path"
	"strings"
)

// The organisation's access rules. A small organisation has one rule per
// department (its role on its own server) and a few organisation-wide
// ones; a larger one has teams (sales-emea, clinician-cardiology,
// eng-payments), each with grants of its own: a glob over the reads of
// its server, per-tool grants of writes with argument conditions, exports
// in office hours from the office network, resources and prompts, and
// grants on other departments' servers. Every team has its own role, so no
// two rules are alike.

// unit is a team's part of its department: a region, a ward or a squad.
type unit struct {
	name, tz string
}

var regions = []unit{
	{"emea", "Europe/Berlin"}, {"na", "America/New_York"}, {"apac", "Asia/Singapore"}, {"uk", "Europe/London"},
	{"dach", "Europe/Zurich"}, {"nordics", "Europe/Stockholm"}, {"france", "Europe/Paris"}, {"benelux", "Europe/Amsterdam"},
	{"iberia", "Europe/Madrid"}, {"italy", "Europe/Rome"}, {"latam", "America/Sao_Paulo"}, {"anz", "Australia/Sydney"},
	{"japan", "Asia/Tokyo"}, {"india", "Asia/Kolkata"}, {"canada", "America/Toronto"}, {"west", "America/Los_Angeles"},
	{"central", "America/Chicago"}, {"mexico", "America/Mexico_City"}, {"gulf", "Asia/Dubai"}, {"africa", "Africa/Johannesburg"},
	{"korea", "Asia/Seoul"}, {"cee", "Europe/Warsaw"}, {"israel", "Asia/Jerusalem"}, {"turkey", "Europe/Istanbul"},
	{"ireland", "Europe/Dublin"}, {"baltics", "Europe/Riga"}, {"greece", "Europe/Athens"}, {"austria", "Europe/Vienna"},
}

var squads = []string{
	"platform", "payments", "mobile", "web", "search", "growth", "identity", "infra", "billing", "ml", "observability", "api",
	"checkout", "messaging", "security", "reliability", "onboarding", "catalog", "pricing", "notifications", "storage", "edge",
	"analytics", "devex", "compliance", "fraud", "ledger", "scheduling",
}

func wardUnits() []unit {
	us := make([]unit, len(wards))
	for i, w := range wards {
		us[i] = unit{w, "Europe/Berlin"}
	}
	return us
}

func squadUnits() []unit {
	us := make([]unit, len(squads))
	for i, s := range squads {
		us[i] = unit{s, "Europe/Berlin"}
	}
	return us
}

// team is one team of a department.
type team struct {
	role string // the team's role, e.g. sales-emea
	unit unit
	n    int // the department's nth team, from 0
	seq  int // the organisation's nth team, from 0: its office network
}

// department groups teams that work on one kind of server.
type department struct {
	name    string
	role    string // the prefix of its teams' roles
	primary string // the kind of server it exists for
	units   []unit
	wide    func(o *org) []map[string]any
	team    func(o *org, t *team) []map[string]any
}

// org is what the rule templates see of the catalog.
type org struct {
	servers map[string][]*server // by kind name
	rng     *rand.Rand
}

// server returns the server of kind k that team n works with: teams take
// turns over regional deployments.
func (o *org) server(k string, n int) *server {
	ss := o.servers[k]
	if len(ss) == 0 {
		return nil
	}
	return ss[n%len(ss)]
}

// tools returns "server/tool" for each named tool the team's server of kind
// k has.
func (o *org) tools(k string, n int, names ...string) []any {
	s := o.server(k, n)
	if s == nil {
		return nil
	}
	var out []any
	for _, name := range names {
		if s.has(name) {
			out = append(out, s.name+"/"+name)
		}
	}
	return out
}

// globs returns "server/glob" for each glob that matches some tool of the
// team's server of kind k.
func (o *org) globs(k string, n int, globs ...string) []any {
	s := o.server(k, n)
	if s == nil {
		return nil
	}
	var out []any
	for _, g := range globs {
		for _, t := range s.tools {
			if ok, _ := path.Match(g, t); ok {
				out = append(out, s.name+"/"+g)
				break
			}
		}
	}
	return out
}

func (o *org) pick(vals ...int) int { return vals[o.rng.IntN(len(vals))] }

// rule builds a rule from members; it returns nil when the rule would
// grant nothing (its tools are not in the catalog).
func rule(id, description string, members map[string]any) map[string]any {
	r := map[string]any{"id": id, "description": description}
	granted := false
	for k, v := range members {
		if l, ok := v.([]any); ok && len(l) == 0 {
			continue
		}
		if k == "tools" || k == "prompts" || k == "resources" {
			granted = true
		}
		r[k] = v
	}
	if !granted {
		return nil
	}
	return r
}

func cond(path, op string, value any) map[string]any {
	return map[string]any{"path": path, "op": op, "value": value}
}

func optional(c map[string]any) map[string]any {
	c["optional"] = true
	return c
}

func args(cs ...map[string]any) []any {
	out := make([]any, len(cs))
	for i, c := range cs {
		out[i] = c
	}
	return out
}

func officeHours(tz string) map[string]any {
	return map[string]any{"start": "07:00", "end": "20:00", "days": texts("Mon", "Tue", "Wed", "Thu", "Fri"), "timezone": tz}
}

// office is team seq's office network.
func office(seq int) string { return fmt.Sprintf("10.%d.%d.0/22", 32+seq/64, (seq%64)*4) }

var departments = []*department{
	{
		name: "sales", role: "sales", primary: "crm", units: regions,
		wide: func(o *org) []map[string]any {
			return []map[string]any{rule("sales-crm", "Sales reads the CRM, at most 200 records per search.", map[string]any{
				"roles": texts("sales"), "tools": o.globs("crm", 0, "search_*", "get_*"),
				"when": map[string]any{"arguments": args(optional(cond("limit", "lte", 200)))},
			})}
		},
		team: func(o *org, t *team) []map[string]any {
			r, u, n := t.role, t.unit.name, t.n
			return []map[string]any{
				rule(r+"-crm-read", "Searches and reads CRM records.", map[string]any{
					"roles": texts(r), "tools": o.globs("crm", n, "search_*", "get_*"),
					"when": map[string]any{"arguments": args(optional(cond("limit", "lte", o.pick(50, 100, 200))))},
				}),
				rule(r+"-contacts-update", "Updates contacts; a new owner must be in the team's region.", map[string]any{
					"roles": texts(r), "tools": o.tools("crm", n, "update_contact"),
					"when": map[string]any{"arguments": args(optional(cond("fields.owner", "prefix", u+".")), optional(cond("reason", "max_length", 280)))},
				}),
				rule(r+"-pipeline", "Moves opportunities through the pipeline; closing is for managers.", map[string]any{
					"roles": texts(r), "tools": o.tools("crm", n, "update_opportunity", "search_opportunities"),
					"when": map[string]any{"arguments": args(
						optional(cond("stage", "in", texts("qualify", "propose", "negotiate"))),
						optional(cond("amount", "lte", o.pick(100000, 250000, 500000))))},
				}),
				rule(r+"-notes", "Logs notes and activities, never company-wide.", map[string]any{
					"roles": texts(r), "tools": o.tools("crm", n, "create_note", "log_activity"),
					"when": map[string]any{"arguments": args(optional(cond("visibility", "in", texts("team", "private"))))},
				}),
				rule(r+"-export", "Exports contacts in office hours from the office network.", map[string]any{
					"roles": texts(r), "tools": o.tools("crm", n, "export_contacts"),
					"when": map[string]any{
						"arguments":    args(cond("limit", "lte", o.pick(1000, 5000)), cond("format", "in", texts("csv", "xlsx"))),
						"hours":        officeHours(t.unit.tz),
						"source_cidrs": texts(office(t.seq)),
						"purposes":     texts("contract", "legitimate_interest"),
					},
				}),
				rule(r+"-reports", "Reads the region's CRM reports and contacts.", map[string]any{
					"roles": texts(r), "resources": texts("crm://reports/"+u+"/*", "crm://contacts/*"),
				}),
				rule(r+"-prompts", "Uses the CRM prompts.", map[string]any{
					"roles": texts(r), "prompts": o.tools("crm", n, "summarize_account", "draft_followup"),
				}),
				rule(r+"-mail", "Sends and searches email, at most 10 recipients.", map[string]any{
					"roles": texts(r), "tools": o.tools("mail", n, "send_email", "search_email"),
					"when": map[string]any{"arguments": args(optional(cond("to", "max_items", 10)))},
				}),
				rule(r+"-files", "Reads the team's share.", map[string]any{
					"roles": texts(r), "tools": o.tools("files", n, "read_file", "list_directory", "search_files", "get_file_info"),
					"when": map[string]any{"arguments": args(cond("path", "path_under", "/srv/teams/"+r))},
				}),
				rule(r+"-managers-pipeline", "Managers close deals and export more.", map[string]any{
					"roles": texts(r + "-managers"), "tools": o.tools("crm", n, "update_opportunity", "export_contacts"),
					"when": map[string]any{"arguments": args(optional(cond("limit", "lte", 50000)))},
				}),
				rule(r+"-managers-cleanup", "Managers delete and merge contacts; each needs approval.", map[string]any{
					"roles": texts(r + "-managers"), "tools": o.tools("crm", n, "delete_contact", "merge_contacts"),
				}),
			}
		},
	},
	{
		name: "support", role: "support", primary: "tickets", units: regions,
		wide: func(o *org) []map[string]any {
			return []map[string]any{rule("support-tickets", "Support works tickets; deletions need approval.", map[string]any{
				"roles": texts("support"), "tools": o.globs("tickets", 0, "*"),
			})}
		},
		team: func(o *org, t *team) []map[string]any {
			r, u, n := t.role, t.unit.name, t.n
			project := strings.ToUpper(u)
			return []map[string]any{
				rule(r+"-tickets-read", "Reads the region's tickets.", map[string]any{
					"roles": texts(r), "tools": o.tools("tickets", n, "search_tickets", "get_ticket"),
					"when": map[string]any{"arguments": args(optional(cond("project", "prefix", project)))},
				}),
				rule(r+"-tickets-write", "Creates and updates the region's tickets; urgent is for tier 2.", map[string]any{
					"roles": texts(r), "tools": o.tools("tickets", n, "create_ticket", "add_comment", "update_ticket", "apply_macro"),
					"when": map[string]any{"arguments": args(
						optional(cond("priority", "in", texts("low", "normal", "high"))),
						optional(cond("project", "prefix", project)))},
				}),
				rule(r+"-customers", "Looks customers up to support them.", map[string]any{
					"roles": texts(r), "tools": o.tools("tickets", n, "get_customer", "search_customers"),
					"when": map[string]any{"arguments": args(optional(cond("limit", "lte", 20))), "purposes": texts("support")},
				}),
				rule(r+"-refunds", "Refunds small amounts; each refund needs approval.", map[string]any{
					"roles": texts(r), "tools": o.tools("payments", n, "refund_payment"),
					"when": map[string]any{"arguments": args(cond("amount", "lte", o.pick(2000, 5000, 10000)), cond("currency", "in", texts("EUR", "GBP")))},
				}),
				rule(r+"-crm", "Reads CRM contacts of the customers it supports.", map[string]any{
					"roles": texts(r), "tools": o.tools("crm", n, "get_contact", "search_contacts"),
					"when": map[string]any{"arguments": args(optional(cond("limit", "lte", 20))), "purposes": texts("support")},
				}),
				rule(r+"-attachments", "Reads the region's attachments and drafts replies.", map[string]any{
					"roles": texts(r), "resources": texts("tickets://attachments/" + u + "/*"), "prompts": o.tools("tickets", n, "draft_reply"),
				}),
				rule(r+"-kb", "Writes the region's knowledge base.", map[string]any{
					"roles": texts(r), "tools": o.tools("docs", n, "create_page"),
					"when": map[string]any{"arguments": args(cond("space", "eq", r))},
				}),
				rule(r+"-tier2", "Tier 2 closes, escalates and deletes tickets.", map[string]any{
					"roles": texts(r + "-tier2"), "tools": o.tools("tickets", n, "close_ticket", "delete_ticket", "update_ticket", "get_ticket"),
				}),
				rule(r+"-tier2-payments", "Tier 2 reads payments to investigate disputes.", map[string]any{
					"roles": texts(r + "-tier2"), "tools": o.tools("payments", n, "get_payment", "get_invoice"),
					"when": map[string]any{"purposes": texts("support")},
				}),
			}
		},
	},
	{
		name: "finance", role: "finance", primary: "payments", units: regions,
		wide: func(o *org) []map[string]any {
			return []map[string]any{rule("finance-payments", "Finance reads payments data.", map[string]any{
				"roles": texts("finance"), "tools": o.globs("payments", 0, "search_*", "get_*", "list_*"),
			})}
		},
		team: func(o *org, t *team) []map[string]any {
			r, u, n := t.role, t.unit.name, t.n
			currencies := texts("EUR", "GBP", "CHF")
			if strings.HasPrefix(t.unit.tz, "America/") {
				currencies = texts("USD")
			}
			return []map[string]any{
				rule(r+"-read", "Reads invoices and payouts.", map[string]any{
					"roles": texts(r), "tools": o.tools("payments", n, "search_invoices", "get_invoice", "list_payouts", "get_payment"),
					"when": map[string]any{"arguments": args(optional(cond("limit", "lte", o.pick(100, 200))))},
				}),
				rule(r+"-refunds", "Refunds in the region's currencies in office hours, without a second approval.", map[string]any{
					"roles": texts(r), "tools": o.tools("payments", n, "refund_payment"),
					"when": map[string]any{
						"arguments": args(cond("amount", "lte", o.pick(50000, 100000, 250000)), cond("currency", "in", currencies)),
						"hours":     officeHours(t.unit.tz),
					},
					"allow_destructive": true,
				}),
				rule(r+"-invoicing", "Issues and voids invoices; voiding needs approval.", map[string]any{
					"roles": texts(r), "tools": o.tools("payments", n, "create_invoice", "void_invoice"),
					"when": map[string]any{"arguments": args(optional(cond("currency", "in", currencies)), optional(cond("due_days", "lte", 60)))},
				}),
				rule(r+"-export", "Exports transactions from the office, for the auditors.", map[string]any{
					"roles": texts(r), "tools": o.tools("payments", n, "export_transactions"),
					"when": map[string]any{
						"hours": officeHours(t.unit.tz), "source_cidrs": texts(office(t.seq)), "purposes": texts("legal_obligation"),
					},
				}),
				rule(r+"-subscriptions", "Changes subscriptions below enterprise; cancelling needs approval.", map[string]any{
					"roles": texts(r), "tools": o.tools("payments", n, "update_subscription", "cancel_subscription"),
					"when": map[string]any{"arguments": args(optional(cond("plan", "not_in", texts("enterprise"))))},
				}),
				rule(r+"-warehouse", "Queries the finance and reporting warehouses.", map[string]any{
					"roles": texts(r), "tools": o.tools("analytics", n, "run_query", "list_tables", "preview_table"),
					"when": map[string]any{"arguments": args(cond("warehouse", "in", texts("finance", "reporting")), optional(cond("sql", "max_length", 8000)))},
				}),
				rule(r+"-files", "Reads and writes the region's finance share.", map[string]any{
					"roles": texts(r), "tools": o.tools("files", n, "read_file", "write_file", "list_directory"),
					"when":              map[string]any{"arguments": args(cond("path", "path_under", "/srv/finance/"+u))},
					"allow_destructive": true,
				}),
				rule(r+"-controllers", "Controllers read restricted payments in the EU and the UK only.", map[string]any{
					"roles": texts(r + "-controllers"), "tools": o.tools("payments", n, "get_payment", "export_transactions"),
					"when": map[string]any{"regions": texts("eu", "uk")},
				}),
			}
		},
	},
	{
		name: "clinical", role: "clinician", primary: "ehr", units: wardUnits(),
		wide: func(o *org) []map[string]any {
			return []map[string]any{rule("clinicians-ehr", "Attending clinicians read every ward's records.", map[string]any{
				"roles": texts("clinician"), "tools": o.globs("ehr", 0, "get_*", "search_*", "list_*"),
			})}
		},
		team: func(o *org, t *team) []map[string]any {
			r, w, n := t.role, t.unit.name, t.n
			ward := cond("ward", "eq", w)
			return []map[string]any{
				rule(r+"-read", "Reads the ward's patients.", map[string]any{
					"roles": texts(r), "tools": o.tools("ehr", n, "get_patient_record", "search_patients", "get_lab_results", "list_appointments"),
					"when": map[string]any{"arguments": args(ward)},
				}),
				rule(r+"-care", "Writes care notes and appointments for treatment.", map[string]any{
					"roles": texts(r), "tools": o.tools("ehr", n, "create_care_note", "schedule_appointment", "update_allergies"),
					"when": map[string]any{"arguments": args(cond("ward", "eq", w), optional(cond("note", "max_length", 8000))), "purposes": texts("treatment")},
				}),
				rule(r+"-prescribe", "Prescribes up to a dose; a pharmacist approves.", map[string]any{
					"roles": texts(r), "tools": o.tools("ehr", n, "prescribe_medication"),
					"when": map[string]any{"arguments": args(cond("ward", "eq", w), cond("dose_mg", "lte", o.pick(500, 1000)))},
				}),
				rule(r+"-files", "Reads the ward's share.", map[string]any{
					"roles": texts(r), "tools": o.tools("files", n, "read_file", "list_directory"),
					"when": map[string]any{"arguments": args(cond("path", "path_under", "/srv/clinical/"+w))},
				}),
				rule(r+"-research", "Queries the clinical warehouse.", map[string]any{
					"roles": texts(r), "tools": o.tools("analytics", n, "run_query"),
					"when": map[string]any{"arguments": args(cond("warehouse", "eq", "clinical"), cond("sql", "max_length", 4000))},
				}),
				rule(r+"-nurses", "Nurses read records and schedule appointments on their ward.", map[string]any{
					"roles": texts("nurse-" + w), "tools": o.tools("ehr", n, "get_patient_record", "list_appointments", "schedule_appointment"),
					"when": map[string]any{"arguments": args(cond("ward", "eq", w), optional(cond("sections", "max_items", 3)))},
				}),
			}
		},
	},
	{
		name: "people", role: "hr", primary: "hr", units: regions,
		wide: func(o *org) []map[string]any {
			return []map[string]any{rule("hr-people", "HR works in the EU and the UK; terminations need approval.", map[string]any{
				"roles": texts("hr"), "tools": o.globs("hr", 0, "*"), "when": map[string]any{"regions": texts("eu", "uk")},
			})}
		},
		team: func(o *org, t *team) []map[string]any {
			r, n := t.role, t.n
			return []map[string]any{
				rule(r+"-directory", "Reads employee records for contracts and legal obligations.", map[string]any{
					"roles": texts(r), "tools": o.tools("hr", n, "search_employees", "get_employee"),
					"when": map[string]any{"arguments": args(optional(cond("limit", "lte", 50))), "regions": texts("eu", "uk"),
						"purposes": texts("contract", "legal_obligation")},
				}),
				rule(r+"-time-off", "Files and approves time off, at most 20 days at once.", map[string]any{
					"roles": texts(r), "tools": o.tools("hr", n, "request_time_off", "approve_time_off"),
					"when": map[string]any{"arguments": args(optional(cond("days", "lte", 20)))},
				}),
				rule(r+"-compensation", "Reads compensation from the office in office hours.", map[string]any{
					"roles": texts(r), "tools": o.tools("hr", n, "get_compensation"),
					"when": map[string]any{"hours": officeHours(t.unit.tz), "source_cidrs": texts(office(t.seq))},
				}),
				rule(r+"-records", "Updates employee records and writes reviews.", map[string]any{
					"roles": texts(r), "tools": o.tools("hr", n, "update_employee", "create_review"),
					"when": map[string]any{"arguments": args(optional(cond("summary", "max_length", 5000)))},
				}),
				rule(r+"-offboarding", "Terminates employment; each termination needs approval.", map[string]any{
					"roles": texts(r), "tools": o.tools("hr", n, "terminate_employee"),
				}),
				rule(r+"-mail", "Writes to at most five people at once.", map[string]any{
					"roles": texts(r), "tools": o.tools("mail", n, "send_email"),
					"when": map[string]any{"arguments": args(cond("to", "max_items", 5))},
				}),
			}
		},
	},
	{
		name: "engineering", role: "eng", primary: "github", units: squadUnits(),
		wide: func(o *org) []map[string]any {
			return []map[string]any{rule("engineering-read", "Engineers with a repo:read token read code and issues.", map[string]any{
				"groups": texts("engineering"), "scopes": texts("repo:read"), "tools": o.globs("github", 0, "list_*", "get_*", "search_*"),
			})}
		},
		team: func(o *org, t *team) []map[string]any {
			r, s, n := t.role, t.unit.name, t.n
			repo := cond("repo", "prefix", "acme/"+s+"-")
			branch := cond("branch", "matches", `^(feature|fix|chore)/[a-z0-9._-]+$`)
			return []map[string]any{
				rule(r+"-issues", "Files and comments on the squad's issues.", map[string]any{
					"roles": texts(r), "scopes": texts("repo:write"), "tools": o.tools("github", n, "create_issue", "comment_on_issue"),
					"when": map[string]any{"arguments": args(repo)},
				}),
				rule(r+"-branches", "Creates branches named by convention.", map[string]any{
					"roles": texts(r), "tools": o.tools("github", n, "create_branch"),
					"when": map[string]any{"arguments": args(cond("repo", "prefix", "acme/"+s+"-"), branch)},
				}),
				rule(r+"-merge", "Merges the squad's pull requests; a reviewer approves.", map[string]any{
					"roles": texts(r), "tools": o.tools("github", n, "merge_pull_request"),
					"when": map[string]any{"arguments": args(cond("repo", "prefix", "acme/"+s+"-"), optional(cond("method", "in", texts("squash", "rebase"))))},
				}),
				rule(r+"-cleanup", "Deletes the squad's feature branches.", map[string]any{
					"roles": texts(r), "tools": o.tools("github", n, "delete_branch"),
					"when":              map[string]any{"arguments": args(cond("repo", "prefix", "acme/"+s+"-"), cond("branch", "matches", `^(feature|fix|chore)/[a-z0-9._-]+$`))},
					"allow_destructive": true,
				}),
				rule(r+"-builds", "Reads and writes the squad's build share.", map[string]any{
					"roles": texts(r), "tools": o.tools("files", n, "read_file", "write_file", "list_directory", "create_directory"),
					"when":              map[string]any{"arguments": args(cond("path", "path_under", "/srv/builds/"+s))},
					"allow_destructive": true,
				}),
				rule(r+"-warehouse", "Queries the product warehouse.", map[string]any{
					"roles": texts(r), "tools": o.tools("analytics", n, "run_query", "preview_table", "list_tables"),
					"when": map[string]any{"arguments": args(cond("warehouse", "eq", "product"), optional(cond("sql", "max_length", 4000)))},
				}),
				rule(r+"-docs", "Writes the squad's pages.", map[string]any{
					"roles": texts(r), "tools": o.tools("docs", n, "create_page", "update_page"),
					"when": map[string]any{"arguments": args(optional(cond("space", "eq", s)))},
				}),
				rule(r+"-release", "Release managers merge without a second approval.", map[string]any{
					"roles": texts(r + "-release"), "tools": o.tools("github", n, "merge_pull_request", "get_pull_request"),
					"when":              map[string]any{"arguments": args(cond("repo", "prefix", "acme/"+s+"-"))},
					"allow_destructive": true,
				}),
			}
		},
	},
	{
		name: "data", role: "data", primary: "analytics", units: squadUnits(),
		wide: func(o *org) []map[string]any {
			return []map[string]any{rule("data-analytics", "Data engineers use the analytics server.", map[string]any{
				"roles": texts("data"), "tools": o.globs("analytics", 0, "*"),
			})}
		},
		team: func(o *org, t *team) []map[string]any {
			r, s, n := t.role, t.unit.name, t.n
			return []map[string]any{
				rule(r+"-query", "Queries the shared warehouses, five minutes at most.", map[string]any{
					"roles": texts(r), "tools": o.tools("analytics", n, "run_query", "list_tables", "preview_table"),
					"when": map[string]any{"arguments": args(cond("warehouse", "in", texts("reporting", "product", "marketing")),
						optional(cond("timeout_seconds", "lte", 300)))},
				}),
				rule(r+"-export", "Exports results in office hours.", map[string]any{
					"roles": texts(r), "tools": o.tools("analytics", n, "export_query_result"),
					"when": map[string]any{"hours": officeHours(t.unit.tz), "purposes": texts("legitimate_interest")},
				}),
				rule(r+"-reports", "Schedules reports for at most ten recipients.", map[string]any{
					"roles": texts(r), "tools": o.tools("analytics", n, "schedule_report"),
					"when": map[string]any{"arguments": args(optional(cond("recipients", "max_items", 10)))},
				}),
				rule(r+"-files", "Works on the squad's data share.", map[string]any{
					"roles": texts(r), "tools": o.tools("files", n, "read_file", "list_directory", "search_files", "write_file"),
					"when":              map[string]any{"arguments": args(cond("path", "path_under", "/srv/data/"+s))},
					"allow_destructive": true,
				}),
				rule(r+"-prompts", "Uses the query prompts.", map[string]any{
					"roles": texts(r), "prompts": o.tools("analytics", n, "explain_query"),
				}),
			}
		},
	},
	{
		name: "marketing", role: "marketing", primary: "mail", units: regions,
		wide: func(o *org) []map[string]any {
			return []map[string]any{rule("marketing-mail", "Marketing mails up to 50 recipients at once.", map[string]any{
				"roles": texts("marketing"), "tools": o.tools("mail", 0, "send_email"),
				"when": map[string]any{"arguments": args(cond("to", "max_items", 50))},
			})}
		},
		team: func(o *org, t *team) []map[string]any {
			r, n := t.role, t.n
			return []map[string]any{
				rule(r+"-audience", "Searches contacts who consented.", map[string]any{
					"roles": texts(r), "tools": o.tools("crm", n, "search_contacts", "search_accounts"),
					"when": map[string]any{"arguments": args(optional(cond("limit", "lte", 1000))), "purposes": texts("consent")},
				}),
				rule(r+"-campaigns", "Mails and invites up to 50 people.", map[string]any{
					"roles": texts(r), "tools": o.tools("mail", n, "send_email", "create_event"),
					"when": map[string]any{"arguments": args(optional(cond("to", "max_items", 50)), optional(cond("attendees", "max_items", 50)))},
				}),
				rule(r+"-warehouse", "Queries the marketing warehouse.", map[string]any{
					"roles": texts(r), "tools": o.tools("analytics", n, "run_query"),
					"when": map[string]any{"arguments": args(cond("warehouse", "eq", "marketing"))},
				}),
			}
		},
	},
	{
		name: "it", role: "it", primary: "files", units: regions,
		wide: func(o *org) []map[string]any {
			return []map[string]any{rule("it-files", "IT administers the file servers; destructive calls need approval.", map[string]any{
				"roles": texts("it-admin"), "tools": o.globs("files", 0, "*"),
			})}
		},
		team: func(o *org, t *team) []map[string]any {
			r, n := t.role, t.n
			return []map[string]any{
				rule(r+"-files", "Reads and restores files anywhere under /srv.", map[string]any{
					"roles": texts(r), "tools": o.tools("files", n, "read_file", "list_directory", "get_file_info", "restore_file", "create_directory"),
					"when": map[string]any{"arguments": args(cond("path", "path_under", "/srv"))},
				}),
				rule(r+"-cleanup", "Moves and deletes files; each needs approval.", map[string]any{
					"roles": texts(r), "tools": o.tools("files", n, "move_file", "delete_file"),
				}),
				rule(r+"-sharing", "Shares files inside the company for a week at most.", map[string]any{
					"roles": texts(r), "tools": o.tools("files", n, "share_file"),
					"when": map[string]any{"arguments": args(cond("expires_days", "lte", 7), cond("recipient", "matches", `^[a-z0-9._-]+@acme\.example$`))},
				}),
			}
		},
	},
}

// orgRules are the organisation-wide rules.
func orgRules(o *org) []map[string]any {
	return []map[string]any{
		rule("everyone-docs", "Everyone reads the handbook.", map[string]any{
			"tools": o.tools("docs", 0, "search_docs", "get_page"), "resources": texts("docs://handbook/*"),
		}),
		rule("backup-service", "The backup service reads everything under /srv.", map[string]any{
			"subjects": texts("svc-backup"), "tools": o.tools("files", 0, "read_file", "list_directory"),
			"when": map[string]any{"arguments": args(cond("path", "path_under", "/srv"))},
		}),
	}
}

// buildRules returns n rules: the organisation-wide ones and one per
// department, then team after team, each department's next team in turn.
func buildRules(servers []*server, n int, rng *rand.Rand) []any {
	o := &org{servers: map[string][]*server{}, rng: rng}
	for _, s := range servers {
		o.servers[s.kind.name] = append(o.servers[s.kind.name], s)
	}
	var depts []*department
	for _, d := range departments {
		if len(o.servers[d.primary]) > 0 {
			depts = append(depts, d)
		}
	}
	out := make([]any, 0, n)
	add := func(rs []map[string]any) bool {
		for _, r := range rs {
			if r == nil {
				continue
			}
			if len(out) == n {
				return false
			}
			out = append(out, r)
		}
		return len(out) < n
	}
	for _, d := range depts {
		if !add(d.wide(o)) {
			return out
		}
	}
	if !add(orgRules(o)) {
		return out
	}
	seq := 0
	for wave := 0; len(depts) > 0; wave++ {
		before := len(out)
		for _, d := range depts {
			u := d.units[wave%len(d.units)]
			if wave >= len(d.units) {
				u.name = fmt.Sprintf("%s%d", u.name, wave/len(d.units)+1)
			}
			t := &team{role: d.role + "-" + u.name, unit: u, n: wave, seq: seq}
			seq++
			if !add(d.team(o, t)) {
				return out
			}
		}
		if len(out) == before {
			return out // no department has a team with a grant in this catalog
		}
	}
	return out
}
