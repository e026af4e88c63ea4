# METADATA
# title: Verdict approvals policy
# description: |
#   The approvals entrypoint, data.verdict.approvals.decision. Verdict asks
#   it before an approver views, approves or denies a pending approval,
#   grants or revokes a just-in-time grant, or quarantines or releases a
#   server, tool or subject. Who may do what comes from bundle data under
#   data.mcp.approvals. See docs/policies.md.
package verdict.approvals

# --- bundle data -------------------------------------------------------------

default config := {}

config := data.mcp.approvals

# Approver rules: which roles or groups may approve which targets (tools and
# prompts as "server/name" globs, resources as URI globs). None: nobody may
# approve.
approver_rules := object.get(config, "rules", [])

grant_roles := object.get(config, "grant_roles", [])

containment_roles := object.get(config, "containment_roles", [])

viewer_roles := object.get(config, "viewer_roles", [])

default_max_grant_seconds := 86400

max_grant_seconds := object.get(config, "max_grant_seconds", default_max_grant_seconds)

# --- input -------------------------------------------------------------------

actions := {"view", "approve", "deny", "grant", "revoke", "quarantine", "release"}

action := object.get(input, "action", "")

approver_id := object.get(input, ["approver", "id"], "")

approver_roles := object.get(input, ["approver", "roles"], [])

approver_groups := object.get(input, ["approver", "groups"], [])

authenticated if {
	is_string(approver_id)
	approver_id != ""
}

has_role(roles) if {
	some role in roles
	role in approver_roles
}

# --- decision ----------------------------------------------------------------

reason(code, message) := {"code": code, "message": message}

decision := {"allow": allow, "reasons": reasons}

default allow := false

allow if {
	count(deny) == 0
	authorized
}

reasons := [r | some r in deny] if count(deny) > 0

reasons := [reason("approver.not_authorized", sprintf("%s may not %s", [approver_id, action]))] if {
	count(deny) == 0
	not authorized
}

reasons := [] if allow

deny contains reason("approver.unauthenticated", "the approver is not authenticated") if not authenticated

deny contains reason("action.unknown", sprintf("unknown action %v", [action])) if not action in actions

# --- rules: who may approve what ---------------------------------------------

# A rule applies to the approver when it lists one of the approver's roles
# or groups. A rule that lists neither applies to nobody.
rule_approver(rule) if {
	some role in object.get(rule, "roles", [])
	role in approver_roles
}

rule_approver(rule) if {
	some group in object.get(rule, "groups", [])
	group in approver_groups
}

# Targets match as the MCP library's access rules match them: tools and
# prompts as "server/name", resources by URI, with "/" as the delimiter.
rule_target(rule, approval) if {
	approval.method == "tools/call"
	some pattern in object.get(rule, "tools", [])
	glob.match(pattern, ["/"], concat("/", [approval.server, approval.target]))
}

rule_target(rule, approval) if {
	approval.method == "prompts/get"
	some pattern in object.get(rule, "prompts", [])
	glob.match(pattern, ["/"], concat("/", [approval.server, approval.target]))
}

rule_target(rule, approval) if {
	approval.method == "resources/read"
	some pattern in object.get(rule, "resources", [])
	glob.match(pattern, ["/"], approval.target)
}

# The approver may decide the approval: a rule for its target names them.
may_decide(approval) if {
	some rule in approver_rules
	rule_approver(rule)
	rule_target(rule, approval)
}

# The approver appears in some rule: they approve something.
approves_something if {
	some rule in approver_rules
	rule_approver(rule)
}

approval_target(approval) := sprintf("%s %s/%s", [approval.method, approval.server, approval.target]) if {
	approval.method != "resources/read"
} else := sprintf("%s %s", [approval.method, approval.target])

# --- view ----------------------------------------------------------------------

# The list: anyone who approves something, or holds a viewer, grant or
# containment role.
authorized if {
	action == "view"
	not input.approval
	viewer
}

viewer if approves_something

viewer if has_role(viewer_roles)

viewer if has_role(grant_roles)

viewer if has_role(containment_roles)

# One approval: a rule for its target names the approver, or a viewer role.
authorized if {
	action == "view"
	may_decide(input.approval)
}

authorized if {
	action == "view"
	input.approval
	has_role(viewer_roles)
}

# --- approve and deny ------------------------------------------------------

deciding if action in {"approve", "deny"}

authorized if {
	deciding
	may_decide(input.approval)
}

deny contains reason("approval.missing", sprintf("%s needs the approval it decides", [action])) if {
	deciding
	not input.approval
}

# An approval of a caller with a tenant is resolved (or seen) only by an
# approver of that tenant.
deny contains reason("approver.other_tenant", sprintf("%s is not of tenant %s", [approver_id, tenant])) if {
	action in {"approve", "deny", "view"}
	tenant := object.get(input, ["approval", "subject_tenant"], "")
	tenant != ""
	object.get(input, ["approver", "tenant"], "") != tenant
}

# Nobody approves their own request.
deny contains reason("approval.self", sprintf("%s may not %s their own request", [approver_id, action])) if {
	deciding
	authenticated
	input.approval.subject == approver_id
}

# Why the approver may not decide (or see) one approval.
deny contains reason("approver.not_authorized", not_decider(approval)) if {
	action in {"approve", "deny", "view"}
	approval := input.approval
	not may_decide(approval)
	not one_viewer
}

one_viewer if {
	action == "view"
	has_role(viewer_roles)
}

not_decider(_) := msg if {
	count(approver_rules) == 0
	msg := "no approver rules: data.mcp.approvals.rules lists who may approve what, and it is empty"
}

not_decider(approval) := msg if {
	count(approver_rules) > 0
	msg := sprintf("no rule in data.mcp.approvals.rules lets %s %s %s", [approver_id, action, approval_target(approval)])
}

deny contains reason("approver.not_authorized", msg) if {
	action == "view"
	not input.approval
	not viewer
	msg := sprintf("%s approves nothing and holds no viewer, grant or containment role", [approver_id])
}

# --- just-in-time grants ---------------------------------------------------

granting if action in {"grant", "revoke"}

authorized if {
	granting
	input.grant
	has_role(grant_roles)
}

deny contains reason("grant.missing", sprintf("%s needs the grant", [action])) if {
	granting
	not input.grant
}

deny contains reason("grant.not_authorized", sprintf("%s needs one of the roles %v to %s grants", [approver_id, grant_roles, action])) if {
	granting
	not has_role(grant_roles)
}

# Nobody grants to (or revokes from) themselves.
deny contains reason("approval.self", sprintf("%s may not %s a grant for themselves", [approver_id, action])) if {
	granting
	authenticated
	input.grant.subject == approver_id
}

# A grant to a group the approver belongs to would grant them too.
deny contains reason("approval.self", sprintf("%s may not grant to their own group %s", [approver_id, group])) if {
	action == "grant"
	group := input.grant.group
	group != ""
	group in approver_groups
}

# Only a new grant is bounded: revoking one always shortens access.
deny contains reason("grant.too_long", sprintf("a grant lasts between 1 and %v seconds, not %v", [max_grant_seconds, duration])) if {
	action == "grant"
	duration := object.get(input, ["grant", "duration_seconds"], 0)
	not valid_duration(duration)
}

valid_duration(d) if {
	is_number(d)
	d > 0
	d <= max_grant_seconds
}

# --- containment -------------------------------------------------------------

containing if action in {"quarantine", "release"}

authorized if {
	containing
	input.quarantine
	has_role(containment_roles)
}

deny contains reason("quarantine.missing", sprintf("%s needs the quarantine", [action])) if {
	containing
	not input.quarantine
}

deny contains reason("containment.not_authorized", sprintf("%s needs one of the roles %v to %s", [approver_id, containment_roles, action])) if {
	containing
	not has_role(containment_roles)
}
