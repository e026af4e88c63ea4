# MCP access rules (RBAC and ABAC)
# data.mcp.rules grant access. A rule names who (roles, groups, scopes,
# subjects: each list given must share an entry with the subject's), what
# (tools and prompts as "server/name" globs, resources as URI globs) and,
# under "when", the conditions: argument checks, hours, source networks,
# regions and purposes. Nothing is granted unless a rule grants it.
package verdict.mcp

default all_rules := []

all_rules := data.mcp.rules

# A rule applies to the subject when every who-list it has shares an entry
# with the subject's attributes.
rule_subject(rule) if {
	every field in ["roles", "groups", "scopes"] {
		who_matches(rule, field, input.subject[field])
	}
	who_matches(rule, "subjects", [input.subject.id])
}

who_matches(rule, field, _) if not rule[field]

who_matches(rule, field, have) if {
	some want in rule[field]
	want in have
}

# The qualified name rules match tools and prompts by: "server/name".
qualified(name) := concat("/", [server_name, name])

rule_target(rule) if {
	input.method == "tools/call"
	some pattern in object.get(rule, "tools", [])
	glob.match(pattern, ["/"], qualified(input.tool.name))
}

rule_target(rule) if {
	input.method == "prompts/get"
	some pattern in object.get(rule, "prompts", [])
	glob.match(pattern, ["/"], qualified(input.prompt.name))
}

rule_target(rule) if {
	input.method == "resources/read"
	some pattern in object.get(rule, "resources", [])
	glob.match(pattern, ["/"], input.resource.uri)
}

# Rules that apply to this subject and target, before conditions.
candidate_rules contains rule if {
	some rule in all_rules
	rule_subject(rule)
	rule_target(rule)
}

# Rules whose conditions also hold: these grant the request (as do
# just-in-time grants, below).
granting_rules contains rule if {
	some rule in candidate_rules
	count(condition_failures(rule)) == 0
}

granted if count(granting_rules) > 0

granted if count(granting_grants) > 0

# A destructive tool needs approval unless a granting rule says otherwise,
# or a just-in-time grant covers the call.
approval_exempt if {
	some rule in granting_rules
	rule.allow_destructive == true
}

approval_exempt if count(granting_grants) > 0

# --- just-in-time grants ---------------------------------------------------

# input.grants holds the caller's active just-in-time grants, added by
# Verdict only when there are some (already filtered to the caller and to
# unexpired ones). A grant whose tools globs match the call's "server/tool"
# and whose conditions all hold permits the call like a granting rule and
# exempts it from approval. Deny rules still deny: a grant lifts no deny.
# This body reads input.grants, which puts it in the decision cache key:
# a request with a grant never shares a decision with one without.
granting_grants contains grant if {
	some grant in input.grants
	input.method == "tools/call"
	some pattern in object.get(grant, "tools", [])
	glob.match(pattern, ["/"], qualified(input.tool.name))
	every cond in object.get(grant, "conditions", []) {
		argument_holds(cond)
	}
}

# condition_failures(rule) is the set of messages of the rule's conditions
# that do not hold for this request.
condition_failures(rule) := {msg |
	some cond in object.get(object.get(rule, "when", {}), "arguments", [])
	not argument_holds(cond)
	msg := sprintf("argument %s must satisfy %s %v", [cond.path, cond.op, cond.value])
} | {msg |
	some failure in context_failures
	failure[0] == rule
	msg := failure[1]
}

# context_failures holds [rule, message] for each context condition (hours,
# source networks, regions, purposes) of a candidate rule that does not hold.
# Each body starts with what it reads of bundle data alone: when no rule in
# the data has a condition, its body can never succeed, and the decision
# cache leaves what it reads of the input (context.time for hours) out of its
# key, so requests that differ only in their time share a cached decision.
context_failures contains [rule, msg] if {
	some rule in data.mcp.rules
	hours := rule.when.hours
	rule in candidate_rules
	not within_hours(hours)
	msg := sprintf("allowed only %v-%v %v", [hours.start, hours.end, object.get(hours, "timezone", "UTC")])
}

context_failures contains [rule, msg] if {
	some rule in data.mcp.rules
	cidrs := rule.when.source_cidrs
	rule in candidate_rules
	not source_in(cidrs)
	msg := "allowed only from the configured source networks"
}

context_failures contains [rule, msg] if {
	some rule in data.mcp.rules
	regions := rule.when.regions
	rule in candidate_rules
	not region in regions
	msg := sprintf("allowed only in regions %v", [regions])
}

context_failures contains [rule, msg] if {
	some rule in data.mcp.rules
	purposes := rule.when.purposes
	rule in candidate_rules
	not purpose in purposes
	msg := sprintf("allowed only for purposes %v", [purposes])
}

# --- argument conditions ---------------------------------------------------

arguments := object.get(input, ["tool", "arguments"], {})

missing := {"verdict": "missing argument"}

argument(path) := object.get(arguments, split(path, "."), missing)

argument_holds(cond) if {
	object.get(cond, "optional", false) == true
	argument(cond.path) == missing
}

argument_holds(cond) if {
	v := argument(cond.path)
	v != missing
	compare(cond.op, v, cond.value)
}

compare("eq", v, want) if v == want

compare("ne", v, want) if v != want

compare("lt", v, want) if {
	is_number(v)
	v < want
}

compare("lte", v, want) if {
	is_number(v)
	v <= want
}

compare("gt", v, want) if {
	is_number(v)
	v > want
}

compare("gte", v, want) if {
	is_number(v)
	v >= want
}

compare("in", v, want) if v in want

compare("not_in", v, want) if not v in want

compare("prefix", v, want) if {
	is_string(v)
	startswith(v, want)
}

compare("matches", v, want) if {
	is_string(v)
	regex.match(want, v)
}

compare("max_length", v, want) if {
	is_string(v)
	count(v) <= want
}

compare("max_items", v, want) if {
	is_array(v)
	count(v) <= want
}

# path_under: a file path inside the directory want, with no "." or ".."
# segment, backslash or NUL that could step outside it.
compare("path_under", v, want) if {
	is_string(v)
	not contains(v, "\\")
	not contains(v, "\u0000")
	segments := split(v, "/")
	not "." in segments
	not ".." in segments
	startswith(v, concat("", [trim_suffix(want, "/"), "/"]))
}

# --- context conditions ----------------------------------------------------

request_ns := time.parse_rfc3339_ns(input.context.time)

within_hours(hours) if {
	tz := object.get(hours, "timezone", "UTC")
	clock := time.clock([request_ns, tz])
	minutes := (clock[0] * 60) + clock[1]
	minutes >= hhmm(hours.start)
	minutes < hhmm(hours.end)
	days_match(hours, tz)
}

days_match(hours, _) if not hours.days

days_match(hours, tz) if {
	day := lower(substring(time.weekday([request_ns, tz]), 0, 3))
	day in {lower(substring(d, 0, 3)) | some d in hours.days}
}

hhmm(s) := (to_number(parts[0]) * 60) + to_number(parts[1]) if parts := split(s, ":")

source_in(cidrs) if {
	some cidr in cidrs
	net.cidr_contains(cidr, input.context.source_ip)
}
