package mcp

import (
	"context"

	"github.com/verdictpdp/verdict/internal/identity"
)

// Subject sources: who established a subject.
const (
	SourceToken    = "token"
	SourceJWTAuthn = "envoy_jwt_authn"
	SourceGateway  = "gateway"
)

// SubjectFromToken verifies a bare token (no "Bearer " prefix).
func SubjectFromToken(ctx context.Context, v *identity.Verifier, token string) Subject {
	if v == nil {
		return Subject{Source: SourceToken, AuthError: &AuthError{
			Code: "token_unverifiable", Message: "this service is not configured to verify tokens (identity.jwt)",
		}}
	}
	return SubjectFromResult(v.Verify(ctx, token))
}

// SubjectFromResult maps a verification result onto the subject.
func SubjectFromResult(r identity.Result) Subject {
	if !r.Authenticated {
		e := &AuthError{Code: identity.CodeTokenMalformed, Message: "the token is not valid"}
		if r.Err != nil {
			e = &AuthError{Code: r.Err.Code, Message: r.Err.Message}
		}
		return Subject{Source: SourceToken, AuthError: e}
	}
	return Subject{
		ID: r.Subject, Roles: r.Roles, Groups: r.Groups, Scopes: r.Scopes,
		Tenant: r.Tenant, Clearance: r.Clearance, Claims: r.Claims,
		Authenticated: true, Source: SourceToken,
	}
}
