package challenge_test

import (
	"testing"

	"github.com/verdictpdp/verdict/internal/challenge"
)

func TestChallenges(t *testing.T) {
	const md = "https://mcp.example.com/.well-known/oauth-protected-resource"
	for _, tc := range []struct {
		name       string
		got        challenge.Challenge
		status     int
		header     string
		wantScopes int
	}{
		{"no token", challenge.Unauthorized(md, false, ""), 401, `Bearer resource_metadata="` + md + `"`, 0},
		{"no token, no metadata", challenge.Unauthorized("", false, ""), 401, `Bearer`, 0},
		{"expired token", challenge.Unauthorized(md, true, "token_expired"), 401,
			`Bearer error="invalid_token", resource_metadata="` + md + `", error_description="token_expired"`, 0},
		{"step-up", challenge.InsufficientScope(md, []string{"files:write", "files:read", "files:write"}, "export needs files:write"), 403,
			`Bearer error="insufficient_scope", scope="files:read files:write", resource_metadata="` + md + `", error_description="export needs files:write"`, 2},
		{"hostile scope and description", challenge.InsufficientScope("", []string{`a"b`, "ok", "with space", ""}, "x\"\r\nSet-Cookie: y\\"), 403,
			`Bearer error="insufficient_scope", scope="ok", error_description="x   Set-Cookie: y "`, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got.Status != tc.status || tc.got.Header != tc.header || len(tc.got.Scopes) != tc.wantScopes {
				t.Errorf("got %d %q %v\nwant %d %q (%d scopes)", tc.got.Status, tc.got.Header, tc.got.Scopes, tc.status, tc.header, tc.wantScopes)
			}
		})
	}
}

func TestValidScope(t *testing.T) {
	for s, want := range map[string]bool{"read": true, "crm:export/all": true, "": false, "a b": false, `a"`: false, `a\`: false, "é": false, "!#[]~": true} {
		if got := challenge.ValidScope(s); got != want {
			t.Errorf("ValidScope(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestCode(t *testing.T) {
	for c, want := range map[string]string{
		challenge.Unauthorized("", false, "").Code():              "challenge.token_missing",
		challenge.Unauthorized("", true, "x").Code():              "challenge.invalid_token",
		challenge.InsufficientScope("", []string{"a"}, "").Code(): "challenge.insufficient_scope",
	} {
		if c != want {
			t.Errorf("Code() = %q, want %q", c, want)
		}
	}
}
