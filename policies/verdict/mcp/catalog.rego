# MCP tool catalog lookups
# Everything the MCP policy knows about servers, tools, resources and
# prompts comes from data.mcp.servers, the trusted catalog in bundle data.
# Annotations, schemas and classifications in the request are never read.
package verdict.mcp

# req is the MCP request: input itself on the native API, input.mcp when the
# request came through Envoy ext_authz (where input is opa-envoy-plugin's).
req := input.mcp if input.mcp

req := input if not input.mcp

# Classification levels, from least to most sensitive.
levels := {"public": 0, "internal": 1, "confidential": 2, "restricted": 3}

# Retention in days per class, unless data.mcp.settings.retention_days
# overrides or extends it: 7, 5, 3 and 1 years.
default_retention_days := {"public": 2555, "internal": 1825, "confidential": 1095, "restricted": 365}

default settings := {}

settings := data.mcp.settings

retention_days := object.union(default_retention_days, object.get(settings, "retention_days", {}))

# Unclassified catalog entries are treated as this class.
default_classification := object.get(settings, "default_classification", "restricted")

server_name := req.server.name

server := data.mcp.servers[server_name]

tool := server.tools[req.tool.name]

prompt := server.prompts[req.prompt.name]

# A resource entry matches by the longest uri_prefix that the URI starts with.
resource := entry if {
	matches := [e |
		some e in object.get(server, "resources", [])
		startswith(req.resource.uri, e.uri_prefix)
	]
	count(matches) > 0
	longest := max([count(e.uri_prefix) | some e in matches])
	some entry in matches
	count(entry.uri_prefix) == longest
}

# The catalog entry the request is about: a tool, a resource or a prompt.
target := tool if req.method == "tools/call"

target := resource if req.method == "resources/read"

target := prompt if req.method == "prompts/get"

target_kind := "tool" if req.method == "tools/call"

target_kind := "resource" if req.method == "resources/read"

target_kind := "prompt" if req.method == "prompts/get"

target_name := req.tool.name if req.method == "tools/call"

target_name := req.resource.uri if req.method == "resources/read"

target_name := req.prompt.name if req.method == "prompts/get"

classification_of(entry) := c if {
	c := object.get(entry, "classification", default_classification)
	levels[c]
} else := "restricted"

level_of(entry) := levels[classification_of(entry)]

classification := classification_of(target)

# The subject's clearance; none, or an unknown one, clears only public data.
clearance := c if {
	c := req.subject.clearance
	levels[c]
} else := "public"

clearance_level := levels[clearance]

categories := object.get(target, "data_categories", [])

# MCP annotation defaults (readOnlyHint false, destructiveHint true) apply to
# catalog entries that do not say otherwise.
annotation(entry, name) := object.get(object.get(entry, "annotations", {}), name, default_annotations[name])

default_annotations := {"readOnlyHint": false, "destructiveHint": true, "idempotentHint": false, "openWorldHint": true}

destructive if {
	req.method == "tools/call"
	not annotation(tool, "readOnlyHint")
	annotation(tool, "destructiveHint")
}

# Retention: the entry's retention_days, else its retention_class, else its
# classification's default.
retention := target.retention_days

retention := retention_days[target.retention_class] if not target.retention_days

retention := retention_days[classification] if {
	not target.retention_days
	not target.retention_class
}

# Context values with a default, so that "not x in list" denies when the
# value is missing (a missing operand would make the whole test undefined).
purpose := object.get(req, ["context", "purpose"], "")

region := object.get(req, ["context", "region"], "")

subject_tenant := object.get(req, ["subject", "tenant"], "")
