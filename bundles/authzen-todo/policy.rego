# METADATA
# title: AuthZEN Todo interop policy
# description: |
#   The OpenID AuthZEN "Todo" interop scenario (Authorization API 1.0).
#   input is one evaluation request: subject, action, resource and context.
#   decision is {"decision": bool}, false unless a rule below allows the
#   request. search.subject, search.resource and search.action propose the
#   candidates of the search API; only those whose evaluation allows are kept.
#   The users (subject id to name, e-mail and roles) are data.authzen.users.
package authzen

# The actions of the scenario and the type of resource each acts on.
actions := {
	"can_read_user": "user",
	"can_read_todos": "todo",
	"can_create_todo": "todo",
	"can_update_todo": "todo",
	"can_delete_todo": "todo",
}

# Each role and the roles it includes: an editor is also a viewer, an admin
# and an evil_genius are also editors.
role_includes := {
	"viewer": {"viewer"},
	"editor": {"editor", "viewer"},
	"admin": {"admin", "editor", "viewer"},
	"evil_genius": {"evil_genius", "editor", "viewer"},
}

default decision := {"decision": false}

decision := {"decision": true} if allowed

# The subject's user record: a subject of type "user" whose id is a key of
# data.authzen.users. Unknown subjects have no user, hence no role.
user := data.authzen.users[input.subject.id] if input.subject.type == "user"

# The subject's roles, with the roles they include. Unknown roles grant nothing.
roles contains role if {
	some assigned in user.roles
	some role in role_includes[assigned]
}

# The requested action, when the policy knows it and the resource is of the
# type it acts on.
action := input.action.name if actions[input.action.name] == input.resource.type

# The subject owns the todo: its ownerID is the user's e-mail. A todo without
# resource.properties.ownerID has no owner.
owner if input.resource.properties.ownerID == user.email

default allowed := false

# can_read_user, can_read_todos: viewer and above.
allowed if {
	action in {"can_read_user", "can_read_todos"}
	"viewer" in roles
}

# can_create_todo: editor and above.
allowed if {
	action == "can_create_todo"
	"editor" in roles
}

# can_update_todo, can_delete_todo: an editor (or above) on the todos they own.
allowed if {
	action in {"can_update_todo", "can_delete_todo"}
	"editor" in roles
	owner
}

# can_update_todo: an evil_genius on any todo.
allowed if {
	action == "can_update_todo"
	"evil_genius" in roles
}

# can_delete_todo: an admin on any todo.
allowed if {
	action == "can_delete_todo"
	"admin" in roles
}

# Search API candidates: search.subject, search.resource and search.action,
# each an array, empty when nothing applies.
search := {
	"subject": subject_candidates,
	"resource": resource_candidates,
	"action": action_candidates,
}

# Subject search: every user, when the subject type searched is "user".
default subject_candidates := []

subject_candidates := sort([{"type": "user", "id": id} | some id, _ in data.authzen.users]) if {
	input.subject.type == "user"
}

# Resource search: every user by e-mail for type "user". There is no todo
# catalog, so type "todo" (like any other type) has no candidates.
default resource_candidates := []

resource_candidates := sort([{"type": "user", "id": u.email} | some u in data.authzen.users]) if {
	input.resource.type == "user"
}

# Action search: every action the policy knows.
action_candidates := [{"name": name} | some name in sort(object.keys(actions))]
