package controlapi

import (
	"context"
	"net/http"

	"github.com/verdictpdp/verdict/internal/control"
	"github.com/verdictpdp/verdict/internal/identity"
)

// Authenticator turns an Authorization header value into a verified
// approver.
type Authenticator struct {
	// Verifier verifies bearer tokens; nil refuses every approver.
	Verifier *identity.Verifier
}

// Approver returns the approver the authorization header value proves,
// or a refusal a caller can act on.
func (a Authenticator) Approver(ctx context.Context, authorization string) (control.Approver, *control.Error) {
	if a.Verifier == nil {
		return control.Approver{}, &control.Error{Code: control.CodeUnauthenticated, Status: http.StatusUnauthorized,
			Message: "approver tokens cannot be verified: the service has no identity.jwt configuration"}
	}
	tok, terr := identity.BearerToken(authorization)
	if terr != nil {
		return control.Approver{}, &control.Error{Code: control.CodeUnauthenticated, Status: http.StatusUnauthorized, Message: terr.Message}
	}
	res := a.Verifier.Verify(ctx, tok)
	if !res.Authenticated {
		return control.Approver{}, &control.Error{Code: control.CodeUnauthenticated, Status: http.StatusUnauthorized, Message: res.Err.Message}
	}
	return control.Approver{
		ID: res.Subject, Roles: res.Roles, Groups: res.Groups, Scopes: res.Scopes,
		Tenant: res.Tenant, Claims: res.Claims,
	}, nil
}
