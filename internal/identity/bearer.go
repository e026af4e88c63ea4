package identity

import "strings"

// BearerToken extracts the token from an HTTP Authorization header value
// (RFC 6750 section 2.1). An empty value means the request carries no
// credentials: it returns ("", nil). The scheme is matched
// case-insensitively; it must be followed by one or more spaces and exactly
// one b64token. Anything else is refused with [CodeTokenMalformed].
func BearerToken(authorization string) (string, *Error) {
	value := strings.Trim(authorization, " \t")
	if value == "" {
		return "", nil
	}
	scheme, rest, found := strings.Cut(value, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", newError(CodeTokenMalformed, "authorization scheme is not Bearer")
	}
	token := strings.TrimLeft(rest, " ")
	if !found || !isB64Token(token) {
		return "", newError(CodeTokenMalformed, "authorization header must hold exactly one bearer token")
	}
	return token, nil
}

// isB64Token reports whether s matches RFC 6750's
// b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isB64Token(s string) bool {
	body := strings.TrimRight(s, "=")
	if body == "" {
		return false
	}
	for i := range len(body) {
		if !isB64TokenChar(body[i]) {
			return false
		}
	}
	return true
}

func isB64TokenChar(c byte) bool {
	switch {
	case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		return true
	default:
		return strings.IndexByte("-._~+/", c) >= 0
	}
}
