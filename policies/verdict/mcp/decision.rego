# METADATA
# title: Verdict MCP policy library
# description: |
#   The default MCP entrypoint, data.verdict.mcp.decision. It decides MCP
#   requests (native API and MCP over Envoy) from bundle data alone: the
#   tool catalog in data.mcp.servers, access rules in data.mcp.rules and
#   settings in data.mcp.settings. See docs/policies.md.
package verdict.mcp

# Methods any authenticated subject may call; list results are filtered.
default_open_methods := [
	"initialize", "server/discover", "ping", "tools/list", "resources/list", "resources/templates/list", "prompts/list",
	"notifications/initialized", "notifications/cancelled", "notifications/progress",
	"notifications/roots/list_changed",
]

open_methods := object.get(settings, "open_methods", default_open_methods)

reason(code, message) := {"code": code, "message": message}

decision := {
	"allow": allow,
	"require_approval": require_approval,
	"reasons": reasons,
	"obligations": obligations,
} if not input.list

decision := {
	"allow": allow,
	"require_approval": false,
	"reasons": reasons,
	"obligations": {},
	"visible": visible,
	"hidden": hidden,
} if input.list

default allow := false

allow if {
	count(deny) == 0
	not require_approval
	permitted
}

default require_approval := false

require_approval if {
	count(deny) == 0
	permitted
	needs_approval
}

# Approval is asked for before a call, never when its result comes back.
needs_approval if destructive_approval

needs_approval if {
	not input.result
	count(flow_approvals) > 0
}

destructive_approval if {
	not input.result
	destructive
	not approval_exempt
}

permitted if input.method in open_methods

permitted if input.response == true

permitted if granted

reasons := [r | some r in deny] if count(deny) > 0

reasons := [r | some r in approval_reasons] if {
	count(deny) == 0
	require_approval
}

approval_reasons contains reason("approval.required", sprintf("%s is destructive: a human must approve the call", [target_name])) if destructive_approval

approval_reasons contains reason("flow.approval", msg) if some msg in flow_approvals

reasons := [reason("access.no_rule", sprintf("no rule grants %s on %s", [target_kind, target_name]))] if {
	count(deny) == 0
	not permitted
	target_name
}

reasons := [reason("method.unsupported", sprintf("method %s is not allowed", [input.method]))] if {
	count(deny) == 0
	not permitted
	not target_name
}

reasons := [] if allow

# --- deny rules --------------------------------------------------------------

deny contains reason("subject.unauthenticated", "the caller is not authenticated") if {
	not input.subject.authenticated
	not object.get(settings, "allow_unauthenticated", false)
}

deny contains reason("server.unknown", sprintf("server %q is not in the catalog", [server_name])) if {
	target_kind
	not server
}

deny contains reason("tenant.mismatch", sprintf("server %s serves other tenants", [server_name])) if {
	tenants := server.tenants
	not subject_tenant in tenants
}

deny contains reason(sprintf("%s.unknown", [target_kind]), sprintf("%s %q is not in the catalog of server %s", [target_kind, target_name, server_name])) if {
	server
	not target
}

deny contains reason(sprintf("%s.clearance", [target_kind]), msg) if {
	target
	level_of(target) > clearance_level
	msg := sprintf("%s is %s; the subject is cleared for %s", [target_name, classification, clearance])
}

deny contains reason("tenant.argument", sprintf("argument %s must be the subject's tenant", [tool.tenant_argument])) if {
	argument(tool.tenant_argument) != subject_tenant
}

# Behind Envoy, a 2026 request may be decided from its Mcp-* headers alone.
# Tool arguments are then unknown, so no argument check could run.
deny contains reason("arguments.unavailable", sprintf("%s was decided from MCP headers without its body: argument checks need the body (Envoy with_request_body)", [input.tool.name])) if {
	input.from_headers
	tool
}

deny contains reason("tool.schema_missing", sprintf("tool %s has no input_schema in the catalog", [input.tool.name])) if {
	tool
	not tool.input_schema
	object.get(settings, "require_input_schema", true)
}

deny contains reason("arguments.invalid", sprintf("arguments do not match the schema of %s: %s", [input.tool.name, concat("; ", sort(messages))])) if {
	[valid, errors] := json.match_schema(arguments, tool.input_schema)
	not valid
	messages := [sprintf("%s: %s", [e.field, e.desc]) | some e in errors] # sorted below: the schema checker reports in no fixed order
}

# Rules that name this subject and target but whose conditions fail explain
# why instead of the generic "no rule" reason.
deny contains reason("access.condition", sprintf("rule %s: %s", [object.get(rule, "id", "unnamed"), msg])) if {
	target
	not granted
	some rule in candidate_rules
	some msg in condition_failures(rule)
}

deny contains reason("result.blocked", sprintf("the result contains %s data", [detector])) if {
	input.result
	some detector in object.get(target, "block_on", [])
	input.findings[detector] > 0
}

# --- obligations -------------------------------------------------------------

obligations["classification"] := classification

obligations["retention_days"] := retention

obligations["redact"] := redactions if count(redactions) > 0

obligations["controls"] := sort(applied_controls) if count(applied_controls) > 0

obligations["labels"] := labels if count(labels) > 0

# The data categories the target holds: session state records them as
# read when the call is allowed (see flows.rego).
obligations["data_categories"] := sorted_categories if count(sorted_categories) > 0

sorted_categories := sort({c | some c in categories})

obligations["rate_limit"] := rate_limit

labels["classification"] := classification

labels["audit"] := "full" if full_audit

# Redactions: the entry's own, the defaults for its class, and for
# restricted tools the arguments themselves (never logged in clear).
redactions := sort((({r |
	some r in object.get(target, "redact", [])
} | {r |
	some r in object.get(object.get(settings, "redact", default_redact), classification, [])
}) | {"/arguments" |
	classification == "restricted"
	input.method == "tools/call"
}))

default_redact := {
	"public": ["secret"],
	"internal": ["card_number", "secret"],
	"confidential": ["card_number", "email", "iban", "secret", "us_ssn"],
	"restricted": ["card_number", "email", "iban", "secret", "us_ssn"],
}

rate_limit := object.union(
	{"limit": limit.limit, "period_seconds": limit.period_seconds, "burst": object.get(limit, "burst", limit.limit)},
	{"key": rate_limit_key},
) if limit := target.rate_limit

# The key counts per tenant, subject and tool: the same subject id in two
# tenants has two budgets.
rate_limit_key := concat("/", [subject_tenant, concat(":", [input.subject.id, qualified(target_name)])]) if {
	is_string(subject_tenant)
	subject_tenant != ""
} else := concat(":", [input.subject.id, qualified(target_name)])
