# List filtering (FilterTools): input.list holds the entries of a
# tools/list, prompts/list, resources/list or resources/templates/list
# result. An entry is visible when it is in the catalog, the subject is
# cleared for it and some rule grants it (argument conditions are checked
# at call time). Entries that look poisoned (the poisoning scanner's
# findings), or whose definition no longer matches the hash pinned in the
# catalog, are hidden too.
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

# Tool poisoning. Verdict scans each entry (internal/scan/poison) and puts
# what it found in input.list.findings: entry key -> [{"rule", "severity"}].
# An entry is suspicious when a finding is at least as severe as
# data.mcp.settings.poisoning.hide_severity (low, medium, high or critical;
# default high; an unknown value hides at any severity).
poisoning_severities := {"low": 1, "medium": 2, "high": 3, "critical": 4}

hide_severity := object.get(object.get(settings, "poisoning", {}), "hide_severity", "high")

hide_level := level if {
	level := poisoning_severities[hide_severity]
} else := 1

# A finding of an unknown severity counts as critical. A rule a person
# reviewed and cleared for the entry (its catalog poisoning_exempt) does
# not count.
poisoning_rules(name) := sort({f.rule |
	some f in input.list.findings[name]
	object.get(poisoning_severities, f.severity, 4) >= hide_level
	not poisoning_exempt(name, f.rule)
})

poisoning_exempt(name, rule) if rule in list_entry(name).poisoning_exempt

# Without input.list.findings (an input built by something other than
# Verdict's adapters), instructions hidden in descriptions are looked for
# with one pattern: <IMPORTANT> blocks, "ignore previous instructions",
# invisible Unicode (zero-width, bidi and tag characters).
poisoning_pattern := `(?i)<\s*/?\s*important\s*>|ignore\s+(all\s+|any\s+)?(previous|prior|above|earlier)\s+instructions|do\s+not\s+(tell|inform|mention)\b[^.]*\buser|[\x{200B}-\x{200F}\x{202A}-\x{202E}\x{2060}-\x{2064}\x{FEFF}\x{E0000}-\x{E007F}]`

suspicious(_, name) := rules if {
	input.list.findings
	rules := poisoning_rules(name)
	count(rules) > 0
}

suspicious(item, _) := ["poisoning_pattern"] if {
	not input.list.findings
	some value in walk_strings(item)
	regex.match(poisoning_pattern, value)
}

walk_strings(x) := {v | some _, v in walk(x); is_string(v)}

hide_reason(item, name) := reason("list.suspicious", sprintf("%s looks poisoned: %s", [name, concat(", ", rules)])) if {
	rules := suspicious(item, name)
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
