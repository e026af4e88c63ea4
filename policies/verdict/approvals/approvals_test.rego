package verdict.approvals.policy_test

import data.verdict.approvals

config := {
	"rules": [
		{"tools": ["crm/*"], "roles": ["sre"]},
		{"tools": ["billing/refund"], "groups": ["finance"]},
		{"prompts": ["crm/summarize"], "roles": ["editor"]},
		{"resources": ["file:///srv/*"], "groups": ["storage"]},
		{"tools": ["hr/*"]},
	],
	"grant_roles": ["security-admin"],
	"containment_roles": ["incident"],
	"viewer_roles": ["auditor"],
	"max_grant_seconds": 7200,
}

approver(id, roles, groups) := {"id": id, "roles": roles, "groups": groups, "scopes": ["approvals"], "tenant": "acme", "claims": {"sub": id}}

bob := approver("bob", ["sre"], ["ops"])

approval(subject, server, method, target) := {
	"id": "apr_1", "subject": subject, "server": server, "method": method, "target": target,
	"arguments_sha256": "00", "revision": "r1", "status": "pending",
	"created_at": "2026-11-18T10:00:00Z", "expires_at": "2026-11-18T11:00:00Z",
}

crm_call := approval("alice", "crm", "tools/call", "export_contacts")

grant(subject, group, seconds) := {
	"id": "grt_1", "subject": subject, "group": group, "tools": ["crm/export_*"],
	"expires_at": "2026-11-18T11:00:00Z", "duration_seconds": seconds,
	"conditions": [{"path": "limit", "op": "lte", "value": 100}],
}

quarantine(kind) := {"id": "qua_1", "kind": kind, "server": "crm", "tool": "export_contacts", "subject": "mallory"}

ask(action, who, extra) := object.union({"action": action, "approver": who}, extra)

decide(req) := d if {
	d := approvals.decision with input as req with data.mcp.approvals as config
}

# decide_default evaluates with no data.mcp.approvals at all.
decide_default(req) := d if {
	d := approvals.decision with input as req
}

codes(d) := {r.code | some r in d.reasons}

allowed(d) if {
	d.allow
	d.reasons == []
}

refused(d, code) if {
	not d.allow
	code in codes(d)
	every r in d.reasons {
		r.message != ""
	}
}

# --- approve and deny --------------------------------------------------------

test_approve_by_role if {
	allowed(decide(ask("approve", bob, {"approval": crm_call})))
	allowed(decide(ask("deny", bob, {"approval": crm_call})))
}

test_approve_by_group if {
	carol := approver("carol", [], ["finance"])
	allowed(decide(ask("approve", carol, {"approval": approval("alice", "billing", "tools/call", "refund")})))
	refused(decide(ask("approve", carol, {"approval": approval("alice", "billing", "tools/call", "charge")})), "approver.not_authorized")
}

test_approve_prompt_and_resource if {
	ed := approver("ed", ["editor"], [])
	allowed(decide(ask("approve", ed, {"approval": approval("alice", "crm", "prompts/get", "summarize")})))
	refused(decide(ask("approve", ed, {"approval": approval("alice", "crm", "tools/call", "summarize")})), "approver.not_authorized")
	st := approver("sam", [], ["storage"])
	allowed(decide(ask("approve", st, {"approval": approval("alice", "files", "resources/read", "file:///srv/a.csv")})))
	d := decide(ask("approve", st, {"approval": approval("alice", "files", "resources/read", "file:///etc/passwd")}))
	refused(d, "approver.not_authorized")
	d.reasons[0].message == "no rule in data.mcp.approvals.rules lets sam approve resources/read file:///etc/passwd"
}

# The glob delimiter is "/": crm/* does not reach into deeper names.
test_glob_delimiter if {
	refused(decide(ask("approve", bob, {"approval": approval("alice", "crm", "tools/call", "a/b")})), "approver.not_authorized")
}

test_approve_other_target_refused if {
	d := decide(ask("approve", bob, {"approval": approval("alice", "billing", "tools/call", "refund")}))
	codes(d) == {"approver.not_authorized"}
	d.reasons[0].message == "no rule in data.mcp.approvals.rules lets bob approve tools/call billing/refund"
}

test_wrong_role_refused if {
	refused(decide(ask("approve", approver("dan", ["dev"], ["ops"]), {"approval": crm_call})), "approver.not_authorized")
}

# A rule that names neither roles nor groups names nobody.
test_rule_without_approvers_names_nobody if {
	refused(decide(ask("approve", approver("dan", [], []), {"approval": approval("alice", "hr", "tools/call", "fire")})), "approver.not_authorized")
}

test_other_tenant_refused if {
	acme_call := object.union(crm_call, {"subject_tenant": "acme"})
	allowed(decide(ask("approve", bob, {"approval": acme_call})))
	globex_bob := object.union(bob, {"tenant": "globex"})
	refused(decide(ask("approve", globex_bob, {"approval": acme_call})), "approver.other_tenant")
	refused(decide(ask("view", globex_bob, {"approval": acme_call})), "approver.other_tenant")
	no_tenant := object.remove(bob, ["tenant"])
	refused(decide(ask("deny", no_tenant, {"approval": acme_call})), "approver.other_tenant")

	# A caller without a tenant: any approver's tenant will do.
	allowed(decide(ask("approve", globex_bob, {"approval": crm_call})))
}

test_self_approval_refused if {
	self := approval("bob", "crm", "tools/call", "export_contacts")
	d := decide(ask("approve", bob, {"approval": self}))
	codes(d) == {"approval.self"}
	refused(decide(ask("deny", bob, {"approval": self})), "approval.self")
}

# Self-approval is refused even to those who hold every role.
test_self_approval_refused_for_admins if {
	boss := approver("boss", ["sre", "auditor", "security-admin", "incident"], ["finance"])
	refused(decide(ask("approve", boss, {"approval": approval("boss", "crm", "tools/call", "purge")})), "approval.self")
}

test_no_rules_nobody_approves if {
	d := decide_default(ask("approve", bob, {"approval": crm_call}))
	codes(d) == {"approver.not_authorized"}
	contains(d.reasons[0].message, "data.mcp.approvals.rules")
	d2 := approvals.decision with input as ask("approve", bob, {"approval": crm_call}) with data.mcp.approvals as object.union(config, {"rules": []})
	codes(d2) == {"approver.not_authorized"}
	contains(d2.reasons[0].message, "data.mcp.approvals.rules")
}

test_approve_needs_the_approval if {
	refused(decide(ask("approve", bob, {})), "approval.missing")
	refused(decide(ask("deny", bob, {})), "approval.missing")
}

# --- view ----------------------------------------------------------------------

test_view_list if {
	allowed(decide(ask("view", bob, {})))
	allowed(decide(ask("view", approver("carol", [], ["finance"]), {})))
	allowed(decide(ask("view", approver("ann", ["auditor"], []), {})))
	allowed(decide(ask("view", approver("gus", ["security-admin"], []), {})))
	allowed(decide(ask("view", approver("ivy", ["incident"], []), {})))
	d := decide(ask("view", approver("dan", ["dev"], ["ops"]), {}))
	codes(d) == {"approver.not_authorized"}
}

test_view_list_default_data if {
	refused(decide_default(ask("view", bob, {})), "approver.not_authorized")
}

test_view_one if {
	allowed(decide(ask("view", bob, {"approval": crm_call})))
	allowed(decide(ask("view", approver("ann", ["auditor"], []), {"approval": crm_call})))
	refused(decide(ask("view", approver("carol", [], ["finance"]), {"approval": crm_call})), "approver.not_authorized")

	# A grant or containment role sees the list, not each approval.
	refused(decide(ask("view", approver("gus", ["security-admin"], []), {"approval": crm_call})), "approver.not_authorized")
}

# Viewing is not deciding: an approver may see their own request.
test_view_own if {
	allowed(decide(ask("view", bob, {"approval": approval("bob", "crm", "tools/call", "x")})))
}

# --- grants --------------------------------------------------------------------

gus := approver("gus", ["security-admin"], ["sec"])

test_grant_allowed if {
	allowed(decide(ask("grant", gus, {"grant": grant("alice", "", 3600)})))
	allowed(decide(ask("grant", gus, {"grant": grant("", "sales", 7200)})))
	allowed(decide(ask("revoke", gus, {"grant": grant("alice", "", 3600)})))
}

test_grant_needs_grant_role if {
	d := decide(ask("grant", bob, {"grant": grant("alice", "", 3600)}))
	codes(d) == {"grant.not_authorized"}
	refused(decide(ask("revoke", bob, {"grant": grant("alice", "", 3600)})), "grant.not_authorized")
	refused(decide_default(ask("grant", gus, {"grant": grant("alice", "", 3600)})), "grant.not_authorized")
}

test_grant_self_refused if {
	d := decide(ask("grant", gus, {"grant": grant("gus", "", 3600)}))
	codes(d) == {"approval.self"}
	refused(decide(ask("revoke", gus, {"grant": grant("gus", "", 3600)})), "approval.self")
	refused(decide(ask("grant", gus, {"grant": grant("", "sec", 3600)})), "approval.self")
}

test_grant_duration if {
	codes(decide(ask("grant", gus, {"grant": grant("alice", "", 7201)}))) == {"grant.too_long"}
	codes(decide(ask("grant", gus, {"grant": grant("alice", "", 0)}))) == {"grant.too_long"}
	codes(decide(ask("grant", gus, {"grant": grant("alice", "", -5)}))) == {"grant.too_long"}
	codes(decide(ask("grant", gus, {"grant": grant("alice", "", "3600")}))) == {"grant.too_long"}
	codes(decide(ask("grant", gus, {"grant": object.remove(grant("alice", "", 1), ["duration_seconds"])}))) == {"grant.too_long"}
}

# Without data.mcp.approvals.max_grant_seconds a grant lasts up to a day.
test_grant_default_max if {
	cfg := object.remove(config, ["max_grant_seconds"])
	allowed(approvals.decision) with input as ask("grant", gus, {"grant": grant("alice", "", 86400)}) with data.mcp.approvals as cfg
	d := approvals.decision with input as ask("grant", gus, {"grant": grant("alice", "", 86401)}) with data.mcp.approvals as cfg
	codes(d) == {"grant.too_long"}
	d.reasons[0].message == "a grant lasts between 1 and 86400 seconds, not 86401"
}

# Revoking shortens access: a grant longer than today's maximum can still go.
test_revoke_ignores_duration if {
	allowed(decide(ask("revoke", gus, {"grant": grant("alice", "", 999999)})))
}

test_grant_needs_the_grant if {
	refused(decide(ask("grant", gus, {})), "grant.missing")
}

# --- containment -------------------------------------------------------------

ivy := approver("ivy", ["incident"], [])

test_quarantine_allowed if {
	every kind in ["server", "tool", "subject"] {
		allowed(decide(ask("quarantine", ivy, {"quarantine": quarantine(kind)})))
		allowed(decide(ask("release", ivy, {"quarantine": quarantine(kind)})))
	}
}

test_quarantine_self_allowed if {
	q := object.union(quarantine("subject"), {"subject": "ivy"})
	allowed(decide(ask("quarantine", ivy, {"quarantine": q})))
}

test_quarantine_needs_containment_role if {
	d := decide(ask("quarantine", gus, {"quarantine": quarantine("server")}))
	codes(d) == {"containment.not_authorized"}
	refused(decide(ask("release", bob, {"quarantine": quarantine("tool")})), "containment.not_authorized")
	refused(decide_default(ask("quarantine", ivy, {"quarantine": quarantine("tool")})), "containment.not_authorized")
}

test_quarantine_needs_the_quarantine if {
	refused(decide(ask("quarantine", ivy, {})), "quarantine.missing")
}

# --- identity and actions ----------------------------------------------------

test_unauthenticated if {
	anon := object.union(bob, {"id": ""})
	d := decide(ask("approve", anon, {"approval": crm_call}))
	refused(d, "approver.unauthenticated")
	refused(decide(ask("view", object.remove(bob, ["id"]), {})), "approver.unauthenticated")
	refused(decide({"action": "view"}), "approver.unauthenticated")
	refused(decide(ask("grant", object.union(gus, {"id": ""}), {"grant": grant("alice", "", 60)})), "approver.unauthenticated")
	refused(decide(ask("quarantine", object.union(ivy, {"id": ""}), {"quarantine": quarantine("tool")})), "approver.unauthenticated")
}

# An anonymous approver is not the subject of an anonymous request either.
test_unauthenticated_self_is_not_self if {
	anon := object.union(bob, {"id": ""})
	d := decide(ask("approve", anon, {"approval": approval("", "crm", "tools/call", "x")}))
	codes(d) == {"approver.unauthenticated"}
}

test_unknown_action if {
	d := decide(ask("delete", bob, {"approval": crm_call}))
	codes(d) == {"action.unknown"}
	codes(decide(object.remove(ask("view", bob, {}), ["action"]))) == {"action.unknown"}
}

# Every refusal says why.
test_every_refusal_has_reasons if {
	reqs := [
		ask("approve", approver("x", [], []), {"approval": crm_call}),
		ask("view", approver("x", [], []), {}),
		ask("grant", approver("x", [], []), {"grant": grant("a", "", 1)}),
		ask("quarantine", approver("x", [], []), {"quarantine": quarantine("tool")}),
		ask("view", approver("x", [], []), {"approval": {}}),
		ask("approve", approver("x", ["sre"], []), {"approval": {"subject": "a"}}),
	]
	every req in reqs {
		d := decide(req)
		not d.allow
		count(d.reasons) > 0
	}
}
