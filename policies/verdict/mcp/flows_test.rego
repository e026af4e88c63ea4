package verdict.mcp.flows_test

import data.verdict.mcp

flow_catalog := {
	"servers": {
		"crm": {"tools": {
			"get": {
				"classification": "confidential", "data_categories": ["personal_data"],
				"annotations": {"readOnlyHint": true, "openWorldHint": false}, "input_schema": {"type": "object"},
			},
			"note": {
				"classification": "confidential", "data_categories": ["personal_data"],
				"annotations": {"readOnlyHint": true}, "input_schema": {"type": "object"},
			},
		}},
		"web": {"tools": {
			"fetch": {"classification": "public", "annotations": {"readOnlyHint": true, "openWorldHint": true}, "input_schema": {"type": "object"}},
			"closed": {"classification": "public", "annotations": {"readOnlyHint": true, "openWorldHint": false}, "input_schema": {"type": "object"}},
		}},
		"mail": {"tools": {"send": {"classification": "internal", "annotations": {"readOnlyHint": true, "openWorldHint": false}, "input_schema": {"type": "object"}}}},
	},
	"rules": [{"id": "all", "roles": ["agent"], "tools": ["crm/*", "web/*", "mail/*"]}],
	"flows": [
		{"id": "no-egress", "after": {"classification": "confidential", "categories": ["personal_data"]}, "to": {"open_world": true}},
		{"id": "mail-needs-approval", "after": {"categories": ["personal_data"], "findings": ["secret"]}, "to": {"tools": ["mail/*"]}, "effect": "require_approval"},
	],
}

agent := {"id": "a1", "roles": ["agent"], "groups": [], "scopes": [], "claims": {}, "tenant": "acme", "clearance": "restricted", "authenticated": true}

call(server, tool, session) := {
	"kind": "mcp", "method": "tools/call", "protocol_version": "2025-11-25",
	"subject": agent, "server": {"name": server}, "tool": {"name": tool, "arguments": {}},
	"context": {"time": "2026-11-18T10:00:00Z", "purpose": "support", "region": "eu"}, "session": session,
}

decide(req) := d if {
	d := mcp.decision with input as req with data.mcp as flow_catalog
}

read_crm := {"id": "s1", "calls": 1, "classification": "confidential", "classification_source": "crm/get", "categories": {"personal_data": "crm/get"}}

codes(d) := {r.code | some r in d.reasons}

test_fresh_session_may_egress if {
	d := decide(call("web", "fetch", {"id": "s2", "calls": 0}))
	d.allow
}

test_no_session_may_egress if {
	d := mcp.decision with input as object.remove(call("web", "fetch", {}), ["session"]) with data.mcp as flow_catalog
	d.allow
}

test_egress_after_confidential_read_denied if {
	d := decide(call("web", "fetch", read_crm))
	not d.allow
	codes(d) == {"flow.toxic"}
	some r in d.reasons
	contains(r.message, "web/fetch is an egress tool")
	contains(r.message, "confidential data from crm/get")
	contains(r.message, "personal_data data from crm/get")
	contains(r.message, "flow rule no-egress")
}

test_closed_world_tool_allowed_after_read if {
	d := decide(call("web", "closed", read_crm))
	d.allow
}

# A tool inside the boundary the data came from (same class, same
# category) is not an egress for it, even when open-world by default.
test_same_boundary_tool_allowed if {
	d := decide(call("crm", "note", read_crm))
	d.allow
}

test_public_read_does_not_trigger if {
	d := decide(call("web", "fetch", {"id": "s3", "calls": 1, "classification": "public", "classification_source": "web/fetch"}))
	d.allow
}

test_listed_tool_needs_approval if {
	d := decide(call("mail", "send", read_crm))
	not d.allow
	d.require_approval
	codes(d) == {"flow.approval"}
}

test_findings_trigger if {
	d := decide(call("mail", "send", {"id": "s4", "calls": 1, "findings": {"secret": 1}}))
	d.require_approval
	some r in d.reasons
	contains(r.message, "secret in a result")
}

test_zero_findings_do_not_trigger if {
	d := decide(call("mail", "send", {"id": "s4", "calls": 1, "findings": {"secret": 0}}))
	d.allow
}

test_no_flows_no_effect if {
	d := mcp.decision with input as call("web", "fetch", read_crm) with data.mcp as object.remove(flow_catalog, ["flows"])
	d.allow
}

test_obligations_carry_categories if {
	d := decide(call("crm", "get", {"id": "s5", "calls": 0}))
	d.obligations.data_categories == ["personal_data"]
}

# A tool outside the catalog holds nothing: it is not exempt for what the
# session read (and is denied as unknown too).
test_unknown_listed_tool_not_exempt if {
	deny_mail := object.union(flow_catalog, {"flows": [{"id": "mail", "after": {"categories": ["personal_data"]}, "to": {"tools": ["mail/*"]}}]})
	d := mcp.decision with input as call("mail", "bcc_everyone", read_crm) with data.mcp as deny_mail
	codes(d) == {"flow.toxic", "tool.unknown"}
}

# A tool without a classification is not trusted to hold what the
# session read, whatever default_classification makes of it.
test_unclassified_sink_not_exempt if {
	unclassified := json.patch(flow_catalog, [{"op": "add", "path": "/servers/web/tools/post", "value": {"annotations": {"readOnlyHint": true}, "input_schema": {"type": "object"}}}])
	restricted := object.union(read_crm, {"classification": "restricted", "classification_source": "ehr/chart"})
	d := mcp.decision with input as call("web", "post", restricted) with data.mcp as unclassified
	codes(d) == {"flow.toxic"}
}

respond(server, session) := {
	"kind": "mcp", "method": "", "response": true, "protocol_version": "2025-11-25",
	"subject": agent, "server": {"name": server},
	"context": {"time": "2026-11-18T10:00:00Z", "purpose": "support", "region": "eu"}, "session": session,
}

test_response_after_read_denied if {
	responses := object.union(flow_catalog, {"flows": [{"id": "answers", "after": {"categories": ["personal_data"]}, "to": {"responses": true}}]})
	d := mcp.decision with input as respond("web", read_crm) with data.mcp as responses
	not d.allow
	some r in d.reasons
	r.code == "flow.toxic"
	r.message == "a response to server web is egress and this session read personal_data data from crm/get earlier (flow rule answers)"
}

test_response_without_rule_allowed if {
	d := decide(respond("web", read_crm))
	d.allow
}
