# List filtering (FilterTools): input.list holds the entries of a
# tools/list, prompts/list, resources/list or resources/templates/list
# result. An entry is visible when it is in the catalog, the subject is
# cleared for it and some rule grants it (argument conditions are checked
# at call time). Entries that look poisoned, or whose definition no longer
# matches the hash pinned in the catalog, are hidden too.
package verdict.mcp

list_key(item) := item.name if input.list.kind in {"tools", "prompts"}

list_key(item) := item.uri if input.list.kind == "resources"

list_key(item) := item.uriTemplate if input.list.kind == "resource_templates"

list_entry(name) := server.tools[name] if input.list.kind == "tools"

list_entry(name) := server.prompts[name] if input.list.kind == "prompts"

list_entry(uri) := entry if {
	input.list.kind in {"resources", "resource_templates"}
	some entry in object.get(server, "resources", [])
	startswith(uri, entry.uri_prefix)
}

list_granted(name) if {
	input.list.kind in {"tools", "prompts"}
	some rule in all_rules
	rule_subject(rule)
	some pattern in object.get(rule, input.list.kind, [])
	glob.match(pattern, ["/"], qualified(name))
}

list_granted(uri) if {
	input.list.kind in {"resources", "resource_templates"}
	some rule in all_rules
	rule_subject(rule)
	some pattern in object.get(rule, "resources", [])
	glob.match(pattern, ["/"], uri)
}

# Instructions hidden in descriptions (tool poisoning): <IMPORTANT> blocks,
# "ignore previous instructions", invisible Unicode (zero-width, bidi and tag
# characters).
poisoning_pattern := `(?i)<\s*/?\s*important\s*>|ignore\s+(all\s+|any\s+)?(previous|prior|above|earlier)\s+instructions|do\s+not\s+(tell|inform|mention)\b[^.]*\buser|[\x{200B}-\x{200F}\x{202A}-\x{202E}\x{2060}-\x{2064}\x{FEFF}\x{E0000}-\x{E007F}]`

suspicious(item) if {
	some value in walk_strings(item)
	regex.match(poisoning_pattern, value)
}

walk_strings(x) := {v | some _, v in walk(x); is_string(v)}

hide_reason(item, name) := reason("list.suspicious", sprintf("%s has instructions hidden in its definition", [name])) if {
	suspicious(item)
} else := reason("list.unknown", sprintf("%s is not in the catalog of server %s", [name, server_name])) if {
	not list_entry(name)
} else := reason("list.definition_changed", sprintf("%s differs from the definition pinned in the catalog", [name])) if {
	pin := list_entry(name).pin_sha256
	crypto.sha256(json.marshal(item)) != pin
} else := reason("list.clearance", sprintf("%s is %s; the subject is cleared for %s", [name, classification_of(list_entry(name)), clearance])) if {
	level_of(list_entry(name)) > clearance_level
} else := reason("access.no_rule", sprintf("no rule grants %s", [name])) if {
	not list_granted(name)
}

hidden[name] := r if {
	some item in input.list.items
	name := list_key(item)
	r := hide_reason(item, name)
}

visible contains name if {
	some item in input.list.items
	name := list_key(item)
	not hide_reason(item, name)
}
