# Flow rules (toxic flows): a call is judged by what its session read
# before it. input.session holds the session's state, kept by Verdict
# after every allowed call and delivered result (see docs/policies.md):
#
#   classification          the most sensitive class the session read
#   classification_source   "server/target" that first read it
#   categories              data category -> "server/target" that read it
#   findings                data-loss detector -> matches in results
#
# data.mcp.flows lists the rules. Each names what the session must have
# read ("after") and the calls it then stops ("to"):
#
#   {"id": "no-egress-after-personal-data",
#    "after": {"classification": "confidential", "categories": ["personal_data"], "findings": ["secret"]},
#    "to": {"open_world": true, "tools": ["web/*"], "responses": true},
#    "effect": "deny"}                        # or "require_approval"
#
# "after" matches when the session read data of at least that class, or
# any of the categories, or its results had any of the findings. A tool
# that is itself explicitly classified at the level the session read, or
# that holds the category, is inside the boundary the data came from and
# is not stopped for it. "to" matches a tools/call whose catalog annotations say
# openWorldHint (MCP's default when the catalog says nothing), or whose
# server/tool name matches one of the globs.
package verdict.mcp

default flows := []

flows := data.mcp.flows

flow_effect(rule) := object.get(rule, "effect", "deny")

# flow_sink(rule) holds when this call is one the rule stops.
flow_sink(rule) if {
	input.method == "tools/call"
	not input.result
	object.get(rule, ["to", "open_world"], false) == true
	tool
	annotation(tool, "openWorldHint")
}

flow_sink(rule) if {
	input.method == "tools/call"
	not input.result
	some pattern in object.get(rule, ["to", "tools"], [])
	glob.match(pattern, ["/"], qualified(input.tool.name))
}

# flow_reads(rule) are the earlier reads that trigger the rule, in words.
flow_reads(rule) := (flow_class_reads(rule) | flow_category_reads(rule)) | flow_finding_reads(rule)

flow_class_reads(rule) := {sprintf("%s data from %s", [read, input.session.classification_source]) |
	want := rule.after.classification
	read := input.session.classification
	levels[read] >= levels[want]
	levels[read] > flow_target_level
}

flow_category_reads(rule) := {sprintf("%s data from %s", [category, source]) |
	some category in object.get(rule, ["after", "categories"], [])
	source := input.session.categories[category]
	not category in flow_target_categories
}

# The categories the call's target holds; none for a tool outside the
# catalog. (With categories undefined, "not category in categories" would
# be undefined, not true.)
default flow_target_categories := []

flow_target_categories := object.get(target, "data_categories", [])

flow_finding_reads(rule) := {sprintf("%s in a result", [detector]) |
	some detector in object.get(rule, ["after", "findings"], [])
	input.session.findings[detector] > 0
}

# The level the call's target is explicitly classified at. A tool without
# a classification (whatever default_classification says) or outside the
# catalog counts as public here: only a tool someone classified is
# trusted to hold the data a session read.
default flow_target_level := 0

flow_target_level := levels[target.classification]

# A client's response to a server's request (a sampling result, an
# elicited answer) carries what the model saw to that server.
flow_sink(rule) if {
	input.response == true
	not input.result
	object.get(rule, ["to", "responses"], false) == true
}

flow_egress := sprintf("%s is an egress tool", [qualified(input.tool.name)]) if input.method == "tools/call"

flow_egress := sprintf("a response to server %s is egress", [server_name]) if {
	input.response == true
	input.method != "tools/call"
}

flow_message(rule) := sprintf("%s and this session read %s earlier (flow rule %s)", [
	flow_egress,
	concat("; ", sort(reads)),
	object.get(rule, "id", "unnamed"),
]) if {
	flow_sink(rule)
	reads := flow_reads(rule)
	count(reads) > 0
}

deny contains reason("flow.toxic", msg) if {
	some rule in flows
	flow_effect(rule) == "deny"
	msg := flow_message(rule)
}

flow_approvals contains msg if {
	some rule in flows
	flow_effect(rule) == "require_approval"
	msg := flow_message(rule)
}
