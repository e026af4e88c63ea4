package envoy.authz

# An RBAC policy in the style of opa-envoy-plugin's examples, used by the
# benchmarks: the role comes from a header, permissions from data.

http_request := input.attributes.request.http

default allow := {"allowed": false, "http_status": 403, "body": "forbidden"}

allow := {"allowed": true, "headers": {"x-role": role}} if {
	some role in user_roles
	some perm in data.rbac.permissions[role]
	perm.method == http_request.method
	glob.match(perm.path, ["/"], request_path)
}

request_path := split(http_request.path, "?")[0]

user_roles := split(http_request.headers["x-roles"], ",")
