package extauthz

import (
	"context"
	"encoding/json"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/verdictpdp/verdict/internal/identity"
	"github.com/verdictpdp/verdict/internal/mcp"
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
	// claimsJSON is the verifier's canonical JSON of the claims.
	claimsJSON []byte
	peer       identity.Peer
	// subjectJSON and peerJSON are written into cache keys, built on first
	// use: only policies that read input.subject or input.peer pay for them.
	subjectJSON, peerJSON []byte
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
	r := s.opts.Verifier.Verify(ctx, token)
	id.subject = mcp.SubjectFromResult(r)
	if r.Authenticated {
		id.claimsJSON = r.ClaimsJSON
	}
	return id
}

// subjectKey is input.subject as canonical JSON (nil when absent).
func (id *requestIdentity) subjectKey() []byte {
	if id.verifying && id.subjectJSON == nil {
		id.subjectJSON, _ = json.Marshal(subjectInput(id.subject)) //nolint:errchkjson // JSON values
	}
	return id.subjectJSON
}

// peerKey is input.peer as canonical JSON (nil when absent).
func (id *requestIdentity) peerKey() []byte {
	if id.peer.Verified && id.peerJSON == nil {
		id.peerJSON, _ = json.Marshal(id.peer.Input()) //nolint:errchkjson // strings and a bool
	}
	return id.peerJSON
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

// addIdentity inserts input.subject, input.verified_claims and input.peer.
func (id *requestIdentity) addTo(obj ast.Object) error {
	if id == nil {
		return nil
	}
	if id.verifying {
		v, err := ast.InterfaceToValue(subjectInput(id.subject))
		if err != nil {
			return err
		}
		obj.Insert(kSubject, ast.NewTerm(v))
		if id.subject.Authenticated {
			c, err := ast.InterfaceToValue(id.subject.Claims)
			if err != nil {
				return err
			}
			obj.Insert(kVerifiedClaims, ast.NewTerm(c))
		}
	}
	if id.peer.Verified {
		v, err := ast.InterfaceToValue(id.peer.Input())
		if err != nil {
			return err
		}
		obj.Insert(kPeer, ast.NewTerm(v))
	}
	return nil
}
