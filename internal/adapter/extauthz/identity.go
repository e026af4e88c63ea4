package extauthz

import (
	"context"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/verdictpdp/verdict/internal/identity"
	"github.com/verdictpdp/verdict/internal/mcp"
	"github.com/verdictpdp/verdict/internal/projection"
)

// Input members this service adds to the opa-envoy-plugin input. They are
// new keys: every key opa-envoy-plugin writes keeps its value.
var (
	kNormalizedPath = key("normalized_path")
	kSubject        = key("subject")
	kVerifiedClaims = key("verified_claims")
	kPeer           = key("peer")
)

// requestIdentity is who one request is about, established once per
// request before the cache: the bearer token this service verified (when
// identity.jwt is configured) and the calling gateway's mTLS identity.
type requestIdentity struct {
	// verifying is set when bearer tokens are verified: input.subject and
	// input.verified_claims are then present.
	verifying bool
	subject   mcp.Subject
	peer      identity.Peer
	// subjectIn and peerIn are input.subject and input.peer as Go values,
	// built on first use: by the input, or by a cache key that reads them.
	subjectIn, peerIn map[string]any
}

// identify verifies the request's bearer token (from the Authorization
// header Envoy forwarded) and reads the gRPC peer's certificate identity.
func (s *Server) identify(ctx context.Context, req *authv3.CheckRequest) *requestIdentity {
	p := identity.PeerFromContext(ctx)
	if s.opts.Verifier == nil && !p.Verified {
		return nil
	}
	id := &requestIdentity{peer: p, verifying: s.opts.Verifier != nil}
	if !id.verifying {
		return id
	}
	token, perr := identity.BearerToken(req.GetAttributes().GetRequest().GetHttp().GetHeaders()["authorization"])
	if perr != nil {
		id.subject = mcp.Subject{Source: mcp.SourceToken, AuthError: &mcp.AuthError{Code: perr.Code, Message: perr.Message}}
		return id
	}
	id.subject = mcp.SubjectFromResult(s.opts.Verifier.Verify(ctx, token))
	return id
}

// identityMembers are the input members the identity adds, by key.
var identityMembers = [...]*ast.Term{kSubject, kVerifiedClaims, kPeer}

// member returns the value of the input member name as Go values, and
// whether the identity adds it. The input (addTo) and the cache key both ask
// it, so they agree on what is present.
func (id *requestIdentity) member(name string) (any, bool) {
	if id == nil {
		return nil, false
	}
	switch name {
	case "subject":
		if id.verifying {
			if id.subjectIn == nil {
				id.subjectIn = subjectInput(id.subject)
			}
			return id.subjectIn, true
		}
	case "verified_claims":
		if id.verifying && id.subject.Authenticated {
			return id.subject.Claims, true
		}
	case "peer":
		if id.peer.Verified {
			if id.peerIn == nil {
				id.peerIn = id.peer.Input()
			}
			return id.peerIn, true
		}
	}
	return nil, false
}

// converts reports whether addTo succeeds. input.subject and input.peer are
// strings, booleans and lists of strings (subjectInput, identity.Peer.Input),
// which always convert; the claims are the token's JSON, whose numbers may
// not.
func (id *requestIdentity) converts() bool {
	claims, ok := id.member("verified_claims")
	return !ok || projection.Convertible(claims)
}

// subjectInput is input.subject: the MCP subject shape without the claims,
// which are input.verified_claims.
func subjectInput(s mcp.Subject) map[string]any {
	in := map[string]any{"authenticated": s.Authenticated, "source": s.Source}
	if s.Authenticated {
		in["id"] = s.ID
		in["scopes"] = anyStrings(s.Scopes)
		in["roles"] = anyStrings(s.Roles)
		in["groups"] = anyStrings(s.Groups)
		if s.Tenant != "" {
			in["tenant"] = s.Tenant
		}
		if s.Clearance != "" {
			in["clearance"] = s.Clearance
		}
	}
	if e := s.AuthError; e != nil {
		in["error"] = map[string]any{"code": e.Code, "message": e.Message}
	}
	return in
}

func anyStrings(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// addTo inserts input.subject, input.verified_claims and input.peer.
func (id *requestIdentity) addTo(obj ast.Object) error {
	for _, k := range identityMembers {
		x, ok := id.member(string(k.Value.(ast.String)))
		if !ok {
			continue
		}
		v, err := ast.InterfaceToValue(x)
		if err != nil {
			return err
		}
		obj.Insert(k, ast.NewTerm(v))
	}
	return nil
}
