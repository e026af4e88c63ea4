package controlapi

import (
	"context"
	"net/http"
	"slices"

	"github.com/verdictpdp/verdict/internal/control"
	"github.com/verdictpdp/verdict/internal/identity"
)

// CodeScopeMissing refuses a verified token without the approver scope.
const CodeScopeMissing = "approver.scope_missing"

// Authenticator turns an Authorization header value into a verified
// approver.
type Authenticator struct {
	// Verifier verifies bearer tokens; nil refuses every approver.
	Verifier *identity.Verifier
	// RequiredScope, when set, must be among the token's scopes: a token an
	// agent calls tools with does not approve its own calls.
	RequiredScope string
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
	if a.RequiredScope != "" && !slices.Contains(res.Scopes, a.RequiredScope) {
		return control.Approver{}, &control.Error{Code: CodeScopeMissing, Status: http.StatusForbidden,
			Message: "the token lacks the scope " + a.RequiredScope + " that acting on approvals needs"}
	}
	return control.Approver{
		ID: res.Subject, Roles: res.Roles, Groups: res.Groups, Scopes: res.Scopes,
		Tenant: res.Tenant, Claims: res.Claims,
	}, nil
}
