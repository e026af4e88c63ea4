// Package challenge builds the HTTP authorization challenges of an OAuth 2.1
// resource server, as the MCP authorization rules use them: 401 with
// WWW-Authenticate and resource_metadata (RFC 9728) for a missing or invalid
// token, and 403 with error="insufficient_scope" and every scope needed for
// step-up (RFC 6750 section 3). It formats; it decides nothing.
package challenge

import (
	"slices"
	"strings"
)

// OAuth error codes of RFC 6750 section 3.1.
const (
	ErrInvalidToken      = "invalid_token"
	ErrInsufficientScope = "insufficient_scope"
)

// Challenge is an HTTP answer asking the client to authenticate again.
type Challenge struct {
	// Status is 401 or 403.
	Status int
	// Error is the OAuth error: empty when no token was presented.
	Error string
	// Scopes are every scope the request needs (step-up).
	Scopes []string
	// Header is the WWW-Authenticate value.
	Header string
}

// Code names the challenge in audit reasons: "challenge.token_missing",
// "challenge.invalid_token" or "challenge.insufficient_scope".
func (c Challenge) Code() string {
	if c.Error == "" {
		return "challenge.token_missing"
	}
	return "challenge." + c.Error
}

// Unauthorized answers a request without a usable token: 401, with
// error="invalid_token" when a token was presented (tokenErr is then a short
// reason such as "token_expired", sent as error_description).
// resourceMetadata, when set, points the client at the protected resource
// metadata so it can find the authorization server.
func Unauthorized(resourceMetadata string, tokenPresented bool, description string) Challenge {
	c := Challenge{Status: 401}
	if tokenPresented {
		c.Error = ErrInvalidToken
	}
	c.Header = header(c.Error, nil, resourceMetadata, description)
	return c
}

// InsufficientScope answers a request whose token lacks scopes the policy
// asks for: 403 naming every needed scope in one challenge. Scopes that are
// not valid scope tokens (RFC 6749 section 3.3) are left out; the rest are
// sorted and deduplicated.
func InsufficientScope(resourceMetadata string, scopes []string, description string) Challenge {
	valid := make([]string, 0, len(scopes))
	for _, s := range scopes {
		if ValidScope(s) {
			valid = append(valid, s)
		}
	}
	slices.Sort(valid)
	valid = slices.Compact(valid)
	c := Challenge{Status: 403, Error: ErrInsufficientScope, Scopes: valid}
	c.Header = header(c.Error, valid, resourceMetadata, description)
	return c
}

// ValidScope reports whether s is an RFC 6749 scope-token: one or more of
// %x21 / %x23-5B / %x5D-7E (printable ASCII without space, '"' and '\').
func ValidScope(s string) bool {
	if s == "" {
		return false
	}
	for i := range len(s) {
		if !scopeChar(s[i]) {
			return false
		}
	}
	return true
}

func scopeChar(c byte) bool {
	return c == 0x21 || (c >= 0x23 && c <= 0x5b) || (c >= 0x5d && c <= 0x7e)
}

// header writes `Bearer error="…", scope="…", resource_metadata="…",
// error_description="…"`, leaving out what is empty.
func header(errCode string, scopes []string, resourceMetadata, description string) string {
	var b strings.Builder
	b.WriteString("Bearer")
	sep := " "
	param := func(name, value string) {
		if value == "" {
			return
		}
		b.WriteString(sep)
		b.WriteString(name)
		b.WriteString(`="`)
		b.WriteString(value)
		b.WriteString(`"`)
		sep = ", "
	}
	param("error", errCode)
	param("scope", strings.Join(scopes, " "))
	param("resource_metadata", quotable(resourceMetadata))
	param("error_description", quotable(description))
	return b.String()
}

// quotable keeps the characters RFC 6750 allows in a quoted attribute
// (%x20-21 / %x23-5B / %x5D-7E) and replaces the others with a space, so
// no value can end the quoted string or the header.
func quotable(s string) string {
	if len(s) > 256 {
		s = s[:256]
	}
	return strings.Map(func(r rune) rune {
		if r == ' ' || (r < 0x80 && scopeChar(byte(r))) { //nolint:gosec // r < 0x80 fits a byte
			return r
		}
		return ' '
	}, s)
}
