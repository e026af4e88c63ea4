package identity

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Codes of a refused token. They are stable: callers may match on them and
// use them as metric labels.
const (
	// CodeTokenMissing: no token was presented.
	CodeTokenMissing = "token_missing"
	// CodeTokenTooLarge: the token exceeds Config.MaxTokenBytes.
	CodeTokenTooLarge = "token_too_large"
	// CodeTokenMalformed: not a compact JWS of canonical base64url
	// segments, unsupported critical headers, claims that are not a JSON
	// object or have ill-typed registered claims, or no "exp".
	CodeTokenMalformed = "token_malformed"
	// CodeAlgorithmNotAllowed: the header's "alg" is missing, not in
	// Config.Algorithms, or does not fit the key its "kid" names.
	CodeAlgorithmNotAllowed = "algorithm_not_allowed"
	// CodeUnknownKey: no key with the token's "kid", even after a refresh
	// (or, without a kid, no key fits the algorithm).
	CodeUnknownKey = "unknown_key"
	// CodeInvalidSignature: the signature does not verify.
	CodeInvalidSignature = "invalid_signature"
	// CodeTokenExpired: "exp" is past, beyond the leeway.
	CodeTokenExpired = "token_expired"
	// CodeTokenNotYetValid: "nbf" is in the future, beyond the leeway.
	CodeTokenNotYetValid = "token_not_yet_valid" //nolint:gosec // G101: a refusal code, not a credential
	// CodeTokenIssuedInFuture: "iat" is in the future, beyond the leeway.
	CodeTokenIssuedInFuture = "token_issued_in_future"
	// CodeIssuerMismatch: "iss" is not Config.Issuer.
	CodeIssuerMismatch = "issuer_mismatch"
	// CodeAudienceMismatch: "aud" names none of Config.Audiences.
	CodeAudienceMismatch = "audience_mismatch"
	// CodeSubjectMissing: "sub" is missing or empty.
	CodeSubjectMissing = "subject_missing"
	// CodeJWKSUnavailable: no key set has loaded yet (a JWKS URL has been
	// unreachable since start).
	CodeJWKSUnavailable = "jwks_unavailable"
)

// Codes returns every refusal code, for example to pre-register metric
// label values.
func Codes() []string {
	return []string{
		CodeTokenMissing, CodeTokenTooLarge, CodeTokenMalformed,
		CodeAlgorithmNotAllowed, CodeUnknownKey, CodeInvalidSignature,
		CodeTokenExpired, CodeTokenNotYetValid, CodeTokenIssuedInFuture,
		CodeIssuerMismatch, CodeAudienceMismatch, CodeSubjectMissing,
		CodeJWKSUnavailable,
	}
}

// Error is why a credential was refused. Message is safe to return to the
// caller: it never contains the token, key material, file paths or URLs.
type Error struct {
	Code    string
	Message string
}

// Error implements error.
func (e *Error) Error() string { return e.Code + ": " + e.Message }

func newError(code, message string) *Error { return &Error{Code: code, Message: message} }

// Result is the outcome of [Verifier.Verify]. When Authenticated is false,
// only Err is set. The maps and slices are shared with the verifier's cache
// and must not be modified.
type Result struct {
	Authenticated bool
	// Subject is the "sub" claim.
	Subject string
	// Claims holds every claim of the verified token as decoded JSON, with
	// numbers as json.Number.
	Claims map[string]any
	// ClaimsJSON is Claims encoded as JSON with sorted object keys.
	ClaimsJSON []byte
	// Scopes come from "scope" (a space-separated string) and "scp" (a
	// string or a list), in that order, without duplicates.
	Scopes []string
	// Roles and Groups come from "roles" and "groups" (a list of strings or
	// a space-separated string).
	Roles, Groups []string
	// Tenant and Clearance are the "tenant" and "clearance" claims when
	// they are strings.
	Tenant, Clearance string
	// ExpiresAt is the "exp" claim.
	ExpiresAt time.Time
	// Err is nil when Authenticated.
	Err *Error
}

func refused(err *Error) Result { return Result{Err: err} }

// newResult builds the Result of a verified token from its payload.
func newResult(payload []byte, expiresAt time.Time) (Result, error) {
	claims, err := decodeClaims(payload)
	if err != nil {
		return Result{}, err
	}
	canonical, err := json.Marshal(claims) // encoding/json sorts map keys
	if err != nil {
		return Result{}, fmt.Errorf("encode claims: %w", err)
	}
	sub, _ := claims["sub"].(string)
	tenant, _ := claims["tenant"].(string)
	clearance, _ := claims["clearance"].(string)
	return Result{
		Authenticated: true,
		Subject:       sub,
		Claims:        claims,
		ClaimsJSON:    canonical,
		Scopes:        dedupe(append(stringList(claims["scope"], false), stringList(claims["scp"], true)...)),
		Roles:         stringList(claims["roles"], true),
		Groups:        stringList(claims["groups"], true),
		Tenant:        tenant,
		Clearance:     clearance,
		ExpiresAt:     expiresAt,
	}, nil
}

// decodeClaims decodes a JWT payload into a JSON object with json.Number
// numbers, refusing anything after the object.
func decodeClaims(payload []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var claims map[string]any
	if err := dec.Decode(&claims); err != nil {
		return nil, fmt.Errorf("decode claims: %w", err)
	}
	if claims == nil {
		return nil, errors.New("decode claims: payload is not a JSON object")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("decode claims: data after the JSON object")
	}
	return claims, nil
}

// stringList reads a claim holding a space-separated string or, when
// allowList is set, a JSON array whose string members are taken as they
// are (other members are ignored).
func stringList(v any, allowList bool) []string {
	var out []string
	switch v := v.(type) {
	case string:
		out = strings.Fields(v)
	case []any:
		if !allowList {
			return nil
		}
		for _, item := range v {
			if s, ok := item.(string); ok && s != "" {
				out = append(out, s)
			}
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// dedupe drops repeated values, keeping the first occurrence; nil when empty.
func dedupe(list []string) []string {
	if len(list) == 0 {
		return nil
	}
	seen := make(map[string]struct{}, len(list))
	out := list[:0]
	for _, s := range list {
		if _, dup := seen[s]; dup {
			continue
		}
		seen[s] = struct{}{}
		out = append(out, s)
	}
	return out
}
