// Package mcp is the decision core's view of Model Context Protocol traffic:
// it turns one MCP JSON-RPC request into the policy input documented in
// DESIGN.md, reads the policy's MCP decision back, filters list results
// and builds JSON-RPC errors. Its Decider asks the MCP questions (Check,
// Filter, CheckResult) on the shared decision pipeline, for every adapter
// that describes MCP calls: the native API, MCP over Envoy, ToolHive,
// agentgateway's ExtMcp and AuthZEN.
//
// It holds no policy logic and must not import Envoy or gRPC types: the
// adapters (internal/adapter/...) translate their wire types into a Request
// and the outcome back.
package mcp

import (
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/verdictpdp/verdict/internal/identity"
)

// Methods with members of their own in the input.
const (
	MethodToolsCall     = "tools/call"
	MethodToolsList     = "tools/list"
	MethodResourcesRead = "resources/read"
	MethodResourcesList = "resources/list"
	MethodPromptsGet    = "prompts/get"
	MethodPromptsList   = "prompts/list"
)

// metaProtocolVersion is the params._meta key 2026 clients send the
// protocol version in.
const metaProtocolVersion = "io.modelcontextprotocol/protocolVersion"

// maxNameBytes bounds method, tool, prompt and server names and URIs.
const maxNameBytes = 1024

// Subject is who a request is made for.
type Subject struct {
	ID        string
	Roles     []string
	Groups    []string
	Scopes    []string
	Tenant    string
	Clearance string
	Claims    map[string]any
	// Authenticated says whether ID was established by a verified credential.
	Authenticated bool
	// Source says who established the subject: "token" (a bearer token
	// this service verified), "envoy_jwt_authn" (Envoy's jwt_authn filter),
	// "gateway" (asserted by the calling gateway), or "" (nobody).
	Source string
	// AuthError, when set, is why a presented or required token was not
	// accepted; the subject is then unauthenticated.
	AuthError *AuthError
	// Claimed is set when an asker that did not prove it may speak for
	// the subject named it (AuthZEN without a verified PEP): the decision
	// is answered, but records nothing in the subject's session state and
	// counts toward no containment signal.
	Claimed bool
}

// AuthError is why a subject is not authenticated: a stable code such as
// "token_expired" and a message safe to show the caller.
type AuthError struct {
	Code    string
	Message string
}

// TokenPresented reports whether the caller presented a token that was
// refused (as opposed to presenting none).
func (s Subject) TokenPresented() bool {
	return s.AuthError != nil && s.AuthError.Code != identity.CodeTokenMissing
}

// Context is what the caller knows about the circumstances of a request.
type Context struct {
	Time     time.Time
	SourceIP string
	Purpose  string
	Region   string
}

// Request is one client-to-server MCP JSON-RPC request, proto-free.
type Request struct {
	Subject         Subject
	Server          string
	Method          string
	Params          map[string]any
	SessionID       string
	ProtocolVersion string
	Context         Context
	// Response marks a client's JSON-RPC response to a server request
	// (sampling, elicitation): it has no method.
	Response bool
	// Peer is the calling gateway's verified mTLS identity (input.peer),
	// nil without one.
	Peer map[string]any
	// ApprovalID is the human approval the caller says it holds for this
	// call; when empty, params._meta["io.verdictpdp/approval"] is read.
	ApprovalID string
	// NoApproval marks a question that is not a call a person could
	// approve (ToolHive asking about a list entry): a require_approval
	// stays one and no approval is recorded.
	NoApproval bool
}

// MaxSessionIDBytes bounds a request's MCP session id.
const MaxSessionIDBytes = 256

// MetaApproval is the params._meta key a client may name the approval it
// holds in.
const MetaApproval = "io.verdictpdp/approval"

// approvalID is the approval the request names, if any.
func (r *Request) approvalID() string {
	if r.ApprovalID != "" {
		return r.ApprovalID
	}
	if meta, ok := r.Params["_meta"].(map[string]any); ok {
		if v, ok := meta[MetaApproval].(string); ok {
			return v
		}
	}
	return ""
}

// RequestError is an MCP request that cannot become policy input. Reason is
// safe to return to the caller; JSONRPCCode is the JSON-RPC error code a
// gateway should answer with.
type RequestError struct {
	JSONRPCCode int
	Reason      string
}

func (e *RequestError) Error() string { return e.Reason }

func invalidParams(format string, args ...any) *RequestError {
	return &RequestError{JSONRPCCode: CodeInvalidParams, Reason: fmt.Sprintf(format, args...)}
}

func invalidRequest(format string, args ...any) *RequestError {
	return &RequestError{JSONRPCCode: CodeInvalidRequest, Reason: fmt.Sprintf(format, args...)}
}

// ValidName reports why s cannot be a method, tool, prompt or server name or
// a resource URI: empty, too long, invalid UTF-8 or control characters.
func ValidName(what, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%s is empty", what)
	case len(s) > maxNameBytes:
		return fmt.Errorf("%s is %d bytes; the limit is %d", what, len(s), maxNameBytes)
	case !utf8.ValidString(s):
		return fmt.Errorf("%s is not valid UTF-8", what)
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return fmt.Errorf("%s contains a control character", what)
	}
	return nil
}

// Input builds the policy input for r: the "mcp" document of DESIGN.md.
// now is used when r carries no time. Only the members that apply to the
// method are present. A request whose params do not fit its method returns
// a *RequestError.
func (r *Request) Input(now time.Time) (map[string]any, error) {
	if !r.Response {
		if err := ValidName("method", r.Method); err != nil {
			return nil, invalidRequest("%v", err)
		}
	}
	if r.Server != "" {
		if err := ValidName("server", r.Server); err != nil {
			return nil, invalidRequest("%v", err)
		}
	}
	in := map[string]any{
		"kind":             "mcp",
		"method":           r.Method,
		"protocol_version": r.protocolVersion(),
		"subject":          r.Subject.input(),
		"server":           map[string]any{"name": r.Server},
		"context":          r.Context.input(now),
	}
	if r.Response {
		in["response"] = true
	}
	if r.Peer != nil {
		in["peer"] = r.Peer
	}
	if r.SessionID != "" {
		// Session ids are the caller's: bounded, and printable like MCP's
		// (visible ASCII), before they key any state.
		if len(r.SessionID) > MaxSessionIDBytes {
			return nil, invalidRequest("session id is %d bytes; the limit is %d", len(r.SessionID), MaxSessionIDBytes)
		}
		if strings.IndexFunc(r.SessionID, func(c rune) bool { return c < 0x21 || c > 0x7e }) >= 0 {
			return nil, invalidRequest("session id must be visible ASCII (0x21 to 0x7E)")
		}
		in["session"] = map[string]any{"id": r.SessionID}
	}
	switch r.Method {
	case MethodToolsCall:
		name, err := r.stringParam("name", true)
		if err != nil {
			return nil, err
		}
		args, err := r.arguments("an object")
		if err != nil {
			return nil, err
		}
		in["tool"] = map[string]any{"name": name, "arguments": args}
	case MethodResourcesRead:
		uri, err := r.stringParam("uri", true)
		if err != nil {
			return nil, err
		}
		in["resource"] = map[string]any{"uri": uri}
	case MethodPromptsGet:
		name, err := r.stringParam("name", true)
		if err != nil {
			return nil, err
		}
		args, err := r.arguments("an object of strings")
		if err != nil {
			return nil, err
		}
		for k, av := range args {
			if _, ok := av.(string); !ok {
				return nil, invalidParams("prompts/get argument %q must be a string, not %s", k, TypeName(av))
			}
		}
		in["prompt"] = map[string]any{"name": name, "arguments": args}
	}
	return in, nil
}

// arguments returns params.arguments: an object, empty when absent.
func (r *Request) arguments(want string) (map[string]any, error) {
	v, ok := r.Params["arguments"]
	if !ok || v == nil {
		return map[string]any{}, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, invalidParams("%s arguments must be %s, not %s", r.Method, want, TypeName(v))
	}
	return m, nil
}

func (r *Request) stringParam(key string, required bool) (string, error) {
	v, ok := r.Params[key]
	if !ok || v == nil {
		if required {
			return "", invalidParams("%s needs params.%s", r.Method, key)
		}
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", invalidParams("%s params.%s must be a string, not %s", r.Method, key, TypeName(v))
	}
	if err := ValidName("params."+key, s); err != nil {
		return "", invalidParams("%s %v", r.Method, err)
	}
	return s, nil
}

// protocolVersion is the version the request declares, falling back to the
// one 2026 clients put in params._meta.
func (r *Request) protocolVersion() string {
	if r.ProtocolVersion != "" {
		return r.ProtocolVersion
	}
	if meta, ok := r.Params["_meta"].(map[string]any); ok {
		if v, ok := meta[metaProtocolVersion].(string); ok {
			return v
		}
	}
	return ""
}

func (s Subject) input() map[string]any {
	claims := s.Claims
	if claims == nil {
		claims = map[string]any{}
	}
	in := map[string]any{
		"id":            s.ID,
		"roles":         stringsInput(s.Roles),
		"groups":        stringsInput(s.Groups),
		"scopes":        stringsInput(s.Scopes),
		"tenant":        s.Tenant,
		"clearance":     s.Clearance,
		"authenticated": s.Authenticated,
		"claims":        claims,
	}
	if s.Source != "" {
		in["source"] = s.Source
	}
	if e := s.AuthError; e != nil {
		in["error"] = map[string]any{"code": e.Code, "message": e.Message}
	}
	return in
}

func (c Context) input(now time.Time) map[string]any {
	t := c.Time
	if t.IsZero() {
		t = now
	}
	out := map[string]any{"time": t.UTC().Format(time.RFC3339Nano)}
	if c.SourceIP != "" {
		out["source_ip"] = c.SourceIP
	}
	if c.Purpose != "" {
		out["purpose"] = c.Purpose
	}
	if c.Region != "" {
		out["region"] = c.Region
	}
	return out
}

func stringsInput(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// TypeName names the JSON type of a decoded value for messages: "a
// string", "an object", "null", ….
func TypeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	default:
		return "a number"
	}
}
