# Under the bundle root (data.verdict.mcp) so the directory loads as is:
# OPA refuses a module whose package is outside the manifest roots.
package verdict.mcp.allow_all_test

import data.verdict.mcp

allowed := {
	"allow": true,
	"require_approval": false,
	"reasons": [],
	"obligations": {},
}

test_call_allowed if {
	mcp.decision == allowed with input as {
		"method": "tools/call",
		"server": "everything",
		"tool": {"name": "test_simple_text", "arguments": {}},
		"subject": {"authenticated": false},
	}
}

test_unauthenticated_initialize_allowed if {
	mcp.decision == allowed with input as {"method": "initialize", "subject": {}}
}

test_empty_input_allowed if {
	mcp.decision == allowed with input as {}
}

test_client_response_allowed if {
	mcp.decision == allowed with input as {"response": true, "method": "sampling/createMessage"}
}

test_tools_visible if {
	d := mcp.decision with input as {"method": "tools/list", "list": {"kind": "tools", "items": [
		{"name": "a", "inputSchema": {"type": "object"}},
		{"name": "b"},
	]}}
	d.allow
	d.visible == ["a", "b"]
	object.remove(d, ["visible"]) == allowed
}

test_prompts_visible if {
	d := mcp.decision with input as {"list": {"kind": "prompts", "items": [{"name": "p"}]}}
	d.visible == ["p"]
}

test_resources_visible_by_uri if {
	d := mcp.decision with input as {"list": {"kind": "resources", "items": [
		{"uri": "test://static-text", "name": "static-text"},
		{"uri": "test://static-binary", "name": "static-binary"},
	]}}
	d.visible == ["test://static-text", "test://static-binary"]
}

test_resource_templates_visible_by_uri_template if {
	d := mcp.decision with input as {"list": {"kind": "resource_templates", "items": [
		{"uriTemplate": "test://template/{id}/data", "name": "template"},
	]}}
	d.visible == ["test://template/{id}/data"]
}

test_entries_without_key_skipped if {
	d := mcp.decision with input as {"list": {"kind": "tools", "items": [{"description": "no name"}, {"name": 7}, {"name": "ok"}]}}
	d.visible == ["ok"]
}

test_empty_list if {
	d := mcp.decision with input as {"list": {"kind": "tools", "items": []}}
	d.visible == []
	d.allow
}

test_null_items if {
	d := mcp.decision with input as {"list": {"kind": "tools", "items": null}}
	d.visible == []
}
