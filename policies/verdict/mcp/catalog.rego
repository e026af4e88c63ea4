# MCP tool catalog lookups
# Everything the MCP policy knows about servers, tools, resources and
# prompts comes from data.mcp.servers, the trusted catalog in bundle data.
# Annotations, schemas and classifications in the request are never read.
package verdict.mcp

# input is the MCP request, whatever the transport: the native API and
# MCP over Envoy build the same document (Envoy's own input, when there is
# one, is input.envoy).

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

server_name := input.server.name

server := data.mcp.servers[server_name]

tool := server.tools[input.tool.name]

prompt := server.prompts[input.prompt.name]

# A resource entry matches by the longest uri_prefix that the URI starts with.
resource := entry if {
	matches := [e |
		some e in object.get(server, "resources", [])
		startswith(input.resource.uri, e.uri_prefix)
	]
	count(matches) > 0
	longest := max([count(e.uri_prefix) | some e in matches])
	some entry in matches
	count(entry.uri_prefix) == longest
}

# The catalog entry the request is about: a tool, a resource or a prompt.
target := tool if input.method == "tools/call"

target := resource if input.method == "resources/read"

target := prompt if input.method == "prompts/get"

target_kind := "tool" if input.method == "tools/call"

target_kind := "resource" if input.method == "resources/read"

target_kind := "prompt" if input.method == "prompts/get"

target_name := input.tool.name if input.method == "tools/call"

target_name := input.resource.uri if input.method == "resources/read"

target_name := input.prompt.name if input.method == "prompts/get"

classification_of(entry) := c if {
	c := object.get(entry, "classification", default_classification)
	levels[c]
} else := "restricted"

level_of(entry) := levels[classification_of(entry)]

classification := classification_of(target)

# The subject's clearance; none, or an unknown one, clears only public data.
clearance := c if {
	c := input.subject.clearance
	levels[c]
} else := "public"

clearance_level := levels[clearance]

categories := object.get(target, "data_categories", [])

# MCP annotation defaults (readOnlyHint false, destructiveHint true) apply to
# catalog entries that do not say otherwise.
annotation(entry, name) := object.get(object.get(entry, "annotations", {}), name, default_annotations[name])

default_annotations := {"readOnlyHint": false, "destructiveHint": true, "idempotentHint": false, "openWorldHint": true}

destructive if {
	input.method == "tools/call"
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
purpose := object.get(input, ["context", "purpose"], "")

region := object.get(input, ["context", "region"], "")

subject_tenant := object.get(input, ["subject", "tenant"], "")
