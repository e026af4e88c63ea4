package extmcp

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/verdictpdp/verdict/internal/guard"
	"github.com/verdictpdp/verdict/internal/identity"
	"github.com/verdictpdp/verdict/internal/mcp"
	agw "github.com/verdictpdp/verdict/proto/agentgateway/dev/ext_mcp"
)

// Keys of metadata_context that Verdict reads. agentgateway fills
// metadata_context with the processor's `metadata` CEL expressions, one
// field per key the operator chose; these are the keys to choose.
const (
	// MetaJWT holds the claims of the token agentgateway verified (CEL
	// `jwt`): the gateway-asserted subject when the request carries no
	// bearer token of its own for Verdict to verify.
	MetaJWT = "jwt"
	// MetaDecisionID holds, in a response's metadata_context, the decision
	// id CheckRequest returned in its metadata (CEL
	// `mcpGuardrails.decision_id`): it names the request the response
	// answers.
	MetaDecisionID = "decision_id"
	// MetaPurpose, MetaRegion and MetaSourceIP fill input.context.
	MetaPurpose  = "purpose"
	MetaRegion   = "region"
	MetaSourceIP = "source_ip"
)

// Request headers Verdict reads from McpRequest.headers (lower case, as
// agentgateway sends them).
const (
	headerAuthorization = "authorization"
)

// refusal is a request Verdict refuses to decide, with the JSON-RPC code
// and a reason the caller can act on.
type refusal struct {
	code   int
	reason string
}

func (r *refusal) Error() string { return r.reason }

func invalid(format string, args ...any) *refusal {
	return &refusal{code: mcp.CodeInvalidRequest, reason: fmt.Sprintf(format, args...)}
}

// singleTarget reports whether method names one thing on one MCP server,
// so agentgateway sends it with exactly one service name.
func singleTarget(method string) bool {
	switch method {
	case mcp.MethodToolsCall, mcp.MethodResourcesRead, mcp.MethodPromptsGet:
		return true
	}
	return false
}

// MaxServices bounds service_names: a fan-out request is decided once per
// server.
const MaxServices = 128

// services validates service_names: one to MaxServices MCP server names,
// each a valid name, none twice.
func services(names []string) *refusal {
	switch {
	case len(names) == 0:
		return invalid("service_names is empty: the request names no MCP server")
	case len(names) > MaxServices:
		return invalid("service_names lists %d servers; the limit is %d", len(names), MaxServices)
	}
	seen := make(map[string]bool, len(names))
	for i, n := range names {
		if err := mcp.ValidName("server", n); err != nil {
			return invalid("service_names[%d]: %v", i, err)
		}
		if seen[n] {
			return invalid("service_names[%d]: %q is listed twice", i, n)
		}
		seen[n] = true
	}
	return nil
}

// gatewayContext is what metadata_context says about the request.
type gatewayContext struct {
	claims     map[string]any // nil without MetaJWT
	decisionID string
	context    mcp.Context
}

// readMetadata reads the keys of metadata_context Verdict uses; other keys
// are ignored. A key of the wrong type is refused: it is a configuration
// mistake, and guessing would decide on something else.
func (s *Server) readMetadata(st *structpb.Struct) (gatewayContext, *refusal) {
	var g gatewayContext
	fields := st.GetFields()
	if len(fields) == 0 {
		return g, nil
	}
	str := func(key string) (string, *refusal) {
		v, ok := fields[key]
		if !ok {
			return "", nil
		}
		if _, isNull := v.GetKind().(*structpb.Value_NullValue); isNull {
			return "", nil
		}
		sv, ok := v.GetKind().(*structpb.Value_StringValue)
		if !ok {
			return "", invalid("metadata_context.%s must be a string", key)
		}
		if sv.StringValue == "" {
			return "", nil
		}
		if err := mcp.ValidName("metadata_context."+key, sv.StringValue); err != nil {
			return "", invalid("%v", err)
		}
		return sv.StringValue, nil
	}
	var r *refusal
	if g.decisionID, r = str(MetaDecisionID); r != nil {
		return g, r
	}
	if g.context.Purpose, r = str(MetaPurpose); r != nil {
		return g, r
	}
	if g.context.Region, r = str(MetaRegion); r != nil {
		return g, r
	}
	if g.context.SourceIP, r = str(MetaSourceIP); r != nil {
		return g, r
	}
	if v, ok := fields[MetaJWT]; ok {
		switch k := v.GetKind().(type) {
		case *structpb.Value_NullValue:
		case *structpb.Value_StructValue:
			claims := k.StructValue.AsMap()
			if err := mcp.CheckValueDepth(claims, s.opts.MaxDepth); err != nil {
				return g, invalid("metadata_context.jwt: %v", err)
			}
			if sub, _ := claims["sub"].(string); sub == "" {
				return g, invalid("metadata_context.jwt has no sub claim: set it to the verified token's claims (CEL jwt)")
			}
			if err := mcp.ValidName("metadata_context.jwt.sub", claims["sub"].(string)); err != nil {
				return g, invalid("%v", err)
			}
			g.claims = claims
		default:
			return g, invalid("metadata_context.jwt must be an object of claims (CEL jwt)")
		}
	}
	return g, nil
}

// requestHeaders are the headers of the client's request Verdict reads.
type requestHeaders struct {
	authorization    string
	hasAuthorization bool
	sessionID        string
	protocolVersion  string
}

// readHeaders reads the headers Verdict uses; each may appear once. Other
// headers are not part of the policy input and are ignored.
func readHeaders(hs []*agw.McpHeader) (requestHeaders, *refusal) {
	var h requestHeaders
	seen := map[string]bool{}
	for _, hd := range hs {
		key := strings.ToLower(hd.GetKey())
		var dst *string
		switch key {
		case headerAuthorization:
			dst = &h.authorization
			h.hasAuthorization = true
		case mcp.HeaderSession:
			dst = &h.sessionID
		case mcp.HeaderVersion:
			dst = &h.protocolVersion
		default:
			continue
		}
		if seen[key] {
			return h, invalid("header %s appears more than once", key)
		}
		seen[key] = true
		v := string(hd.GetValue())
		if key != headerAuthorization && v != "" {
			// The token is checked by its own parser, which never echoes it.
			if err := mcp.ValidName("header "+key, v); err != nil {
				return h, invalid("%v", err)
			}
		}
		*dst = v
	}
	return h, nil
}

// subject establishes who the request is for: a bearer token in the
// client's Authorization header, verified here; else the claims agentgateway
// verified (metadata_context.jwt), as the gateway asserts them; else nobody.
// A token this service cannot verify (no identity.jwt) gives way to the
// gateway's claims: agentgateway forwards the Authorization header it
// verified itself unless told not to. A token it can verify never does: an
// invalid one is an unauthenticated subject with the reason, whatever the
// gateway says.
func (s *Server) subject(ctx context.Context, h requestHeaders, g gatewayContext) mcp.Subject {
	if h.hasAuthorization && strings.TrimSpace(h.authorization) != "" && (s.opts.Verifier != nil || g.claims == nil) {
		tok, perr := identity.BearerToken(h.authorization)
		if perr != nil {
			return mcp.Subject{Source: mcp.SourceToken, AuthError: &mcp.AuthError{Code: perr.Code, Message: perr.Message}}
		}
		return mcp.SubjectFromToken(ctx, s.opts.Verifier, tok)
	}
	if g.claims != nil {
		if sub, ok := mcp.SubjectFromClaims(g.claims, mcp.SourceGateway); ok {
			return sub
		}
	}
	return mcp.Subject{}
}

// parseObject reads the JSON text of params or a result.
func (s *Server) parseObject(what string, b []byte, maxBytes int) (map[string]any, *refusal) {
	if len(b) > maxBytes {
		return nil, invalid("%s is %d bytes; the limit is %d", what, len(b), maxBytes)
	}
	obj, err := mcp.ParseObject(what, b, guard.JSONLimits{MaxBytes: maxBytes, MaxDepth: s.opts.MaxDepth, MaxStringBytes: maxBytes})
	if err != nil {
		if re, ok := errors.AsType[*mcp.RequestError](err); ok {
			return nil, &refusal{code: re.JSONRPCCode, reason: re.Reason}
		}
		return nil, invalid("%s: %v", what, err)
	}
	// The scanner bounds the text's nesting; this bounds the value the same
	// way the native API bounds a Struct.
	if err := mcp.CheckValueDepth(obj, s.opts.MaxDepth); err != nil {
		return nil, invalid("%s: %v", what, err)
	}
	return obj, nil
}
