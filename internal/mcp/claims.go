package mcp

import "strings"

// SubjectFromClaims reads an authenticated subject from the claims of a
// token a gateway verified (Envoy's jwt_authn payload, agentgateway's jwt
// claims), vouched for by source: "sub" is the id (without one, ok is
// false), "roles", "groups" and "scope" (else "scp") are lists of strings or
// space-separated strings, "tenant" and "clearance" strings. Every claim is
// kept under Claims.
func SubjectFromClaims(claims map[string]any, source string) (s Subject, ok bool) {
	sub, _ := claims["sub"].(string)
	if sub == "" {
		return Subject{}, false
	}
	s = Subject{ID: sub, Claims: claims, Authenticated: true, Source: source}
	s.Roles = claimStrings(claims["roles"])
	s.Groups = claimStrings(claims["groups"])
	s.Scopes = claimStrings(claims["scope"])
	if len(s.Scopes) == 0 {
		s.Scopes = claimStrings(claims["scp"])
	}
	s.Tenant, _ = claims["tenant"].(string)
	s.Clearance, _ = claims["clearance"].(string)
	return s, true
}

// claimStrings reads a claim that is a list of strings or a space-separated
// string (the OAuth "scope" form).
func claimStrings(v any) []string {
	switch x := v.(type) {
	case string:
		return strings.Fields(x)
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	default:
		return nil
	}
}
