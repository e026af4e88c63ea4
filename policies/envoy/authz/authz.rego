# METADATA
# title: Default Envoy authorization policy
# description: |
#   Deny by default. A request is allowed only when its method and path match
#   one of data.verdict.default.public_routes; each route has a name, a list of
#   methods ("*" for any) and either an exact "path" or a "path_prefix".
#   Everything else gets a 403 with a JSON body that says why.
package envoy.authz

http_request := input.attributes.request.http

# The path routes match on: input.normalized_path (dot segments resolved,
# duplicate slashes merged) when Verdict provides it, so "/docs/../admin"
# matches as "/admin" and cannot ride on the /docs/ prefix; Verdict refuses
# paths that servers read in different ways ("/docs/..;/admin",
# "/docs/..%2Fadmin", "/docs/..\admin", "/docs/%2e%2e/admin") before any
# policy runs. Without normalized_path (an input made by hand, or
# opa-envoy-plugin) the raw path before "?", but only when it cannot be read
# another way; any other raw path matches no route.
default request_path := ""

request_path := input.normalized_path

request_path := raw if {
	not input.normalized_path
	raw := split(http_request.path, "?")[0]
	unambiguous(raw)
}

# unambiguous: no escapes, no backslash, no ";" parameters, no empty, "."
# or ".." segment: every server resolves such a path to itself.
unambiguous(path) if {
	regex.match(`^(/[^/%\\;]+)*/?$`, path)
	not regex.match(`(^|/)\.\.?(/|$)`, path)
}

default allow := {
	"allowed": false,
	"http_status": 403,
	"headers": {"content-type": "application/json"},
	"body": "{\"error\":\"forbidden\",\"reason\":\"no rule of the default policy allows this request\"}",
}

allow := {"allowed": true} if some_route_matches

some_route_matches if {
	some route in data.verdict.default.public_routes
	method_matches(route)
	path_matches(route)
}

method_matches(route) if "*" in route.methods

method_matches(route) if http_request.method in route.methods

path_matches(route) if request_path == route.path

path_matches(route) if {
	route.path_prefix != ""
	startswith(request_path, route.path_prefix)
}
