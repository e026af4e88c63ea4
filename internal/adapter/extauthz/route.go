package extauthz

import (
	"net"
	"strings"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/verdictpdp/verdict/internal/guard"
)

// MCPRoute marks requests as MCP by where they go, for deployments that
// cannot set the mcp_server context extension per route (Istio's CUSTOM
// provider). It matches whatever the method: on a marked route a POST is an
// MCP message and every other method is decided by the ext_authz policy.
type MCPRoute struct {
	// Host matches the request's :authority without its port, ignoring
	// case: "crm.internal", "*.crm.internal" for any subdomain, "" for any
	// host.
	Host string
	// PathPrefix matches the path before "?" by whole segments: "/mcp"
	// matches "/mcp" and "/mcp/x", never "/mcpx"; "/" matches every path.
	PathPrefix string
	// Server names the MCP server (input.server.name).
	Server string
}

// routeClass says which policy decides a request.
type routeClass uint8

const (
	// routeExtAuthz: the route's ext_authz policy, at Options.Path.
	routeExtAuthz routeClass = iota
	// routeMCP: a POST on a route the operator marked as MCP, decided at
	// the MCP entrypoint.
	routeMCP
	// routeAmbiguous: a POST whose path is not in normal form and matches
	// a configured MCP route in some spelling (raw, normalized or in
	// another case). Which upstream serves it depends on the proxy's and
	// the upstream's normalization, so neither policy can be trusted with
	// it: it is refused.
	routeAmbiguous
)

// ReasonMCPRouteAmbiguous is the code of the refusal of a routeAmbiguous
// request.
const ReasonMCPRouteAmbiguous = "mcp_route_ambiguous"

// classify decides which policy decides req. Only what the operator set
// marks a route: the route's mcp_server context extension (Envoy sends it
// from the route's configuration; clients cannot set it), else a
// configured MCPRoute matching the request's host and path. The headers
// and the body never do.
func (m *MCPOptions) classify(req *authv3.CheckRequest) (routeClass, string) {
	if m == nil {
		return routeExtAuthz, ""
	}
	h := req.GetAttributes().GetRequest().GetHttp()
	post := strings.EqualFold(h.GetMethod(), "POST")
	if s := req.GetAttributes().GetContextExtensions()[ExtensionMCPServer]; s != "" {
		if post {
			return routeMCP, s
		}
		return routeExtAuthz, ""
	}
	if len(m.Routes) == 0 || !post {
		return routeExtAuthz, ""
	}
	host := routeHost(h.GetHost())
	raw := h.GetPath()
	if i := strings.IndexAny(raw, "?#"); i >= 0 {
		raw = raw[:i]
	}
	norm, v := guard.NormalizePath(h.GetPath())
	if v != nil {
		norm = "" // refused by the input's path check on the ext_authz path
	}
	clean := v == nil && norm == raw
	for i := range m.Routes {
		r := &m.Routes[i]
		if !hostMatches(r.Host, host) {
			continue
		}
		exact := prefixMatches(r.PathPrefix, raw, false)
		if clean && exact {
			return routeMCP, r.Server
		}
		if exact || prefixMatches(r.PathPrefix, raw, true) || (norm != "" && prefixMatches(r.PathPrefix, norm, true)) {
			return routeAmbiguous, ""
		}
	}
	return routeExtAuthz, ""
}

// routeHost is the host a route matcher compares: lower case, without a
// port or a trailing dot.
func routeHost(authority string) string {
	h := authority
	if hh, _, err := net.SplitHostPort(h); err == nil {
		h = hh
	}
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

// hostMatches matches a route's host (already lower case) against a
// request's routeHost.
func hostMatches(pattern, host string) bool {
	switch {
	case pattern == "":
		return true
	case strings.HasPrefix(pattern, "*."):
		return len(host) > len(pattern)-1 && strings.HasSuffix(host, pattern[1:])
	}
	return host == pattern
}

// prefixMatches reports whether path starts with prefix at a segment
// boundary. loose also ignores ASCII case and counts ";" (a path parameter,
// which some servers drop) as a boundary: the spellings some upstream may
// serve as the prefix's route.
func prefixMatches(prefix, path string, loose bool) bool {
	prefix = strings.TrimSuffix(prefix, "/")
	if len(path) < len(prefix) {
		return false
	}
	head := path[:len(prefix)]
	if loose && !strings.EqualFold(head, prefix) || !loose && head != prefix {
		return false
	}
	if len(path) == len(prefix) {
		return true
	}
	next := path[len(prefix)]
	return next == '/' || loose && next == ';'
}
