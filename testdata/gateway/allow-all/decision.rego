# METADATA
# title: Allow-all MCP policy for the gateway conformance run
# description: |
#   Replaces the MCP library (it claims the root verdict/mcp) with a
#   decision that allows every MCP request and response, and makes every
#   entry of a list result visible. scripts/conformance.sh serves it behind
#   pdp gateway, so the conformance suite sees the upstream server unchanged.
#   Never serve it anywhere else.
package verdict.mcp

# The member of a list entry that names it, by input.list.kind (see
# internal/mcp/filter.go).
list_keys := {
	"tools": "name",
	"prompts": "name",
	"resources": "uri",
	"resource_templates": "uriTemplate",
}

decision := {
	"allow": true,
	"require_approval": false,
	"reasons": [],
	"obligations": {},
} if not input.list

decision := {
	"allow": true,
	"require_approval": false,
	"reasons": [],
	"obligations": {},
	"visible": visible,
} if input.list

visible := [key |
	some item in input.list.items
	key := item[list_keys[input.list.kind]]
	is_string(key)
]
