package envoy.authz_test

import data.envoy.authz

routes := [
	{"name": "liveness", "methods": ["GET"], "path": "/healthz"},
	{"name": "docs", "methods": ["*"], "path_prefix": "/docs/"},
]

req(method, path) := {"attributes": {"request": {"http": {"method": method, "path": path}}}}

test_unlisted_route_is_denied_with_reason if {
	d := authz.allow with input as req("GET", "/admin") with data.verdict.default.public_routes as routes
	d.allowed == false
	d.http_status == 403
	contains(d.body, "no rule of the default policy allows this request")
}

test_exact_path_and_method_allowed if {
	d := authz.allow with input as req("GET", "/healthz") with data.verdict.default.public_routes as routes
	d.allowed == true
}

test_query_string_ignored_for_matching if {
	d := authz.allow with input as req("GET", "/healthz?verbose=1") with data.verdict.default.public_routes as routes
	d.allowed == true
}

test_wrong_method_denied if {
	d := authz.allow with input as req("POST", "/healthz") with data.verdict.default.public_routes as routes
	d.allowed == false
}

test_exact_path_is_not_a_prefix if {
	d := authz.allow with input as req("GET", "/healthz/extra") with data.verdict.default.public_routes as routes
	d.allowed == false
}

test_prefix_and_wildcard_method if {
	d := authz.allow with input as req("DELETE", "/docs/page") with data.verdict.default.public_routes as routes
	d.allowed == true
}

test_no_routes_denies_everything if {
	d := authz.allow with input as req("GET", "/healthz") with data.verdict.default.public_routes as []
	d.allowed == false
}

test_missing_http_attributes_denied if {
	d := authz.allow with input as {} with data.verdict.default.public_routes as routes
	d.allowed == false
}

test_normalized_path_is_matched if {
	d := authz.allow with input as object.union(req("GET", "/docs/../admin"), {"normalized_path": "/admin"})
		with data.verdict.default.public_routes as routes
	d.allowed == false
}

test_normalized_path_allows_equivalent_spelling if {
	d := authz.allow with input as object.union(req("GET", "//docs/./guide"), {"normalized_path": "/docs/guide"})
		with data.verdict.default.public_routes as routes
	d.allowed == true
}

# Without normalized_path (opa-envoy-plugin's input), a raw path that a
# server could resolve out of the /docs/ prefix matches no route.
test_ambiguous_raw_paths_match_no_route if {
	every path in [
		"/docs/..;/admin", "/docs/..%2Fadmin", `/docs/..\admin`, "/docs/..%5Cadmin",
		"/docs/%2e%2e/admin", "/docs/../admin", "/docs/./x", "/docs//x", "//docs/x",
		"/docs;x/page", "/docs/page;v=1",
	] {
		d := authz.allow with input as req("GET", path) with data.verdict.default.public_routes as routes
		d.allowed == false
	}
}

test_plain_raw_paths_still_match if {
	every path in ["/docs/page", "/docs/a/b/", "/docs/page?x=..;%2F", "/healthz"] {
		d := authz.allow with input as req("GET", path) with data.verdict.default.public_routes as routes
		d.allowed == true
	}
}

test_ambiguous_raw_path_does_not_match_exact_route if {
	d := authz.allow with input as req("GET", "/healthz;x") with data.verdict.default.public_routes as routes
	d.allowed == false
}
