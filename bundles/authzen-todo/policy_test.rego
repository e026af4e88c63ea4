# The tests live under the bundle's root (data.authzen) so that the bundle
# directory loads as is: OPA refuses a module whose package is outside the
# manifest's roots. They run on the users of data.json.
package authzen.todo_test

import data.authzen

rick := "CiRmZDA2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"

morty := "CiRmZDE2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"

summer := "CiRmZDI2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"

beth := "CiRmZDM2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"

jerry := "CiRmZDQ2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"

req(subject_id, action_name, resource) := {
	"subject": {"type": "user", "id": subject_id},
	"action": {"name": action_name},
	"resource": resource,
}

todo(owner) := {"type": "todo", "id": "7240d0db-8ff0-41ec-98b2-34a096273b9a", "properties": {"ownerID": owner}}

new_todo := {"type": "todo", "id": "todo-1"}

user(email) := {"type": "user", "id": email}

allows(subject_id, action_name, resource) if {
	authzen.decision == {"decision": true} with input as req(subject_id, action_name, resource)
}

denies(subject_id, action_name, resource) if {
	authzen.decision == {"decision": false} with input as req(subject_id, action_name, resource)
}

# Users with one of Rick's two roles each, to test the roles apart.
only_admin := "admin-only"

only_evil_genius := "evil-genius-only"

split_users := object.union(data.authzen.users, {
	only_admin: {"name": "Admin", "email": "admin@example.com", "roles": ["admin"]},
	only_evil_genius: {"name": "Evil", "email": "evil@example.com", "roles": ["evil_genius"]},
})

# viewer: read users and todos, nothing else, not even on their own todos.

test_viewer_reads_users_and_todos if {
	allows(beth, "can_read_user", user("beth@the-smiths.com"))
	allows(beth, "can_read_user", user("rick@the-citadel.com"))
	allows(jerry, "can_read_user", user("jerry@the-smiths.com"))
	allows(jerry, "can_read_todos", new_todo)
}

test_viewer_cannot_create if {
	denies(beth, "can_create_todo", new_todo)
	denies(jerry, "can_create_todo", new_todo)
}

test_viewer_cannot_update_or_delete_own_todo if {
	denies(beth, "can_update_todo", todo("beth@the-smiths.com"))
	denies(beth, "can_delete_todo", todo("beth@the-smiths.com"))
	denies(jerry, "can_update_todo", todo("jerry@the-smiths.com"))
	denies(jerry, "can_delete_todo", todo("jerry@the-smiths.com"))
}

test_viewer_cannot_update_or_delete_others_todo if {
	denies(jerry, "can_update_todo", todo("rick@the-citadel.com"))
	denies(jerry, "can_delete_todo", todo("rick@the-citadel.com"))
}

# editor: viewer, create, and update/delete of their own todos only.

test_editor_reads_and_creates if {
	allows(morty, "can_read_user", user("morty@the-citadel.com"))
	allows(summer, "can_read_todos", new_todo)
	allows(morty, "can_create_todo", new_todo)
	allows(summer, "can_create_todo", new_todo)
}

test_editor_updates_and_deletes_own_todo if {
	allows(morty, "can_update_todo", todo("morty@the-citadel.com"))
	allows(morty, "can_delete_todo", todo("morty@the-citadel.com"))
	allows(summer, "can_update_todo", todo("summer@the-smiths.com"))
	allows(summer, "can_delete_todo", todo("summer@the-smiths.com"))
}

test_editor_cannot_update_or_delete_others_todo if {
	denies(morty, "can_update_todo", todo("rick@the-citadel.com"))
	denies(morty, "can_delete_todo", todo("rick@the-citadel.com"))
	denies(summer, "can_update_todo", todo("morty@the-citadel.com"))
	denies(summer, "can_delete_todo", todo("morty@the-citadel.com"))
}

test_owner_is_matched_by_email_not_subject_id if {
	denies(morty, "can_update_todo", todo(morty))
	denies(morty, "can_delete_todo", todo(morty))
}

# admin: editor, and delete of any todo; update of own todos only.

test_admin_deletes_any_todo if {
	allows(only_admin, "can_delete_todo", todo("morty@the-citadel.com")) with data.authzen.users as split_users
	allows(only_admin, "can_delete_todo", todo("admin@example.com")) with data.authzen.users as split_users
}

test_admin_updates_own_todo_only if {
	allows(only_admin, "can_update_todo", todo("admin@example.com")) with data.authzen.users as split_users
	denies(only_admin, "can_update_todo", todo("morty@the-citadel.com")) with data.authzen.users as split_users
}

test_admin_reads_and_creates if {
	allows(only_admin, "can_read_user", user("beth@the-smiths.com")) with data.authzen.users as split_users
	allows(only_admin, "can_read_todos", new_todo) with data.authzen.users as split_users
	allows(only_admin, "can_create_todo", new_todo) with data.authzen.users as split_users
}

# evil_genius: editor, and update of any todo; delete of own todos only.

test_evil_genius_updates_any_todo if {
	allows(only_evil_genius, "can_update_todo", todo("morty@the-citadel.com")) with data.authzen.users as split_users
	allows(only_evil_genius, "can_update_todo", todo("evil@example.com")) with data.authzen.users as split_users
}

test_evil_genius_deletes_own_todo_only if {
	allows(only_evil_genius, "can_delete_todo", todo("evil@example.com")) with data.authzen.users as split_users
	denies(only_evil_genius, "can_delete_todo", todo("morty@the-citadel.com")) with data.authzen.users as split_users
}

test_evil_genius_reads_and_creates if {
	allows(only_evil_genius, "can_read_user", user("beth@the-smiths.com")) with data.authzen.users as split_users
	allows(only_evil_genius, "can_read_todos", new_todo) with data.authzen.users as split_users
	allows(only_evil_genius, "can_create_todo", new_todo) with data.authzen.users as split_users
}

# Rick is admin and evil_genius: everything, on any todo.

test_admin_and_evil_genius_does_everything if {
	allows(rick, "can_read_user", user("beth@the-smiths.com"))
	allows(rick, "can_read_todos", new_todo)
	allows(rick, "can_create_todo", new_todo)
	allows(rick, "can_update_todo", todo("rick@the-citadel.com"))
	allows(rick, "can_update_todo", todo("jerry@the-smiths.com"))
	allows(rick, "can_delete_todo", todo("rick@the-citadel.com"))
	allows(rick, "can_delete_todo", todo("morty@the-citadel.com"))
}

# Subjects, roles and actions the policy does not know are denied.

test_unknown_subject_denied if {
	denies("unknown", "can_read_user", user("beth@the-smiths.com"))
	denies("unknown", "can_read_todos", new_todo)
	denies("rick@the-citadel.com", "can_read_todos", new_todo)
}

test_subject_of_other_type_denied if {
	request := {"subject": {"type": "service", "id": rick}, "action": {"name": "can_read_todos"}, "resource": new_todo}
	authzen.decision == {"decision": false} with input as request
}

test_unknown_role_grants_nothing if {
	users := {"u": {"name": "U", "email": "u@example.com", "roles": ["superuser"]}}
	denies("u", "can_read_todos", new_todo) with data.authzen.users as users
	denies("u", "can_update_todo", todo("u@example.com")) with data.authzen.users as users
}

test_unknown_action_denied if {
	denies(rick, "can_do_anything", new_todo)
	denies(rick, "can_read_todo", new_todo)
	denies(rick, "CAN_READ_TODOS", new_todo)
}

test_action_on_resource_of_other_type_denied if {
	denies(rick, "can_read_user", new_todo)
	denies(rick, "can_read_todos", user("beth@the-smiths.com"))
	denies(rick, "can_delete_todo", user("beth@the-smiths.com"))
}

# Update and delete without resource.properties.ownerID: the todo has no
# owner, so only the "any todo" roles apply.

test_missing_owner_denies_editor if {
	denies(morty, "can_update_todo", new_todo)
	denies(morty, "can_delete_todo", new_todo)
	denies(morty, "can_update_todo", {"type": "todo", "id": "t", "properties": {}})
}

test_missing_owner_allows_any_todo_roles if {
	allows(rick, "can_update_todo", new_todo)
	allows(rick, "can_delete_todo", new_todo)
	denies(only_admin, "can_update_todo", new_todo) with data.authzen.users as split_users
	denies(only_evil_genius, "can_delete_todo", new_todo) with data.authzen.users as split_users
}

test_missing_members_denied if {
	authzen.decision == {"decision": false} with input as {}
	authzen.decision == {"decision": false} with input as {"subject": {"type": "user", "id": rick}}
	authzen.decision == {"decision": false} with input as {"subject": {"type": "user", "id": rick}, "action": {"name": "can_read_todos"}}
}

test_context_is_ignored if {
	request := object.union(req(morty, "can_update_todo", todo("morty@the-citadel.com")), {"context": {"time": "2024-10-26T01:22-07:00"}})
	authzen.decision == {"decision": true} with input as request
}

# Search API candidates.

test_search_subject_lists_every_user if {
	s := authzen.search.subject with input as {"subject": {"type": "user"}, "action": {"name": "can_read_todos"}, "resource": new_todo}
	s == [
		{"type": "user", "id": rick},
		{"type": "user", "id": morty},
		{"type": "user", "id": summer},
		{"type": "user", "id": beth},
		{"type": "user", "id": jerry},
	]
}

test_search_subject_other_type_is_empty if {
	authzen.search.subject == [] with input as {"subject": {"type": "service"}}
	authzen.search.subject == [] with input as {}
}

test_search_resource_users_by_email if {
	s := authzen.search.resource with input as {"subject": {"type": "user", "id": beth}, "action": {"name": "can_read_user"}, "resource": {"type": "user"}}
	s == [
		user("beth@the-smiths.com"),
		user("jerry@the-smiths.com"),
		user("morty@the-citadel.com"),
		user("rick@the-citadel.com"),
		user("summer@the-smiths.com"),
	]
}

test_search_resource_todo_and_other_types_are_empty if {
	authzen.search.resource == [] with input as {"subject": {"type": "user", "id": rick}, "resource": {"type": "todo"}}
	authzen.search.resource == [] with input as {"resource": {"type": "document"}}
	authzen.search.resource == [] with input as {}
}

test_search_action_lists_every_action if {
	expected := [
		{"name": "can_create_todo"},
		{"name": "can_delete_todo"},
		{"name": "can_read_todos"},
		{"name": "can_read_user"},
		{"name": "can_update_todo"},
	]
	authzen.search.action == expected with input as {"subject": {"type": "user", "id": beth}, "resource": new_todo}
	authzen.search.action == expected with input as {}
}

# The search proposes; the evaluation of each candidate decides. A viewer
# searching the actions on a todo keeps only the read actions.
test_search_action_candidates_filtered_by_decision if {
	kept := [a.name |
		some a in authzen.search.action with input as {}
		authzen.decision.decision with input as req(beth, a.name, todo("beth@the-smiths.com"))
	]
	kept == ["can_read_todos"]
}

test_search_subject_candidates_filtered_by_decision if {
	resource := todo("morty@the-citadel.com")
	kept := [s.id |
		some s in authzen.search.subject with input as {"subject": {"type": "user"}}
		authzen.decision.decision with input as req(s.id, "can_delete_todo", resource)
	]
	kept == [rick, morty]
}
