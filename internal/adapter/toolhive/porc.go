package toolhive

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/verdictpdp/verdict/internal/guard"
	"github.com/verdictpdp/verdict/internal/mcp"
)

// Features and operations of ToolHive's PORC "operation" member
// ("mcp:<feature>:<operation>").
const (
	FeatureTool     = "tool"
	FeaturePrompt   = "prompt"
	FeatureResource = "resource"
	FeatureSkill    = "skill"

	OpCall = "call"
	OpGet  = "get"
	OpRead = "read"
	OpList = "list"
)

// Claim mappings ToolHive's httpv1 authorizer is configured with; the
// principal says which one built it.
const (
	MappingStandard = "standard"
	MappingMPE      = "mpe"
)

// Codes of refused bodies (HTTP 400), besides the guard package's codes for
// bodies that are not JSON or exceed a limit (invalid_json, too_large,
// too_deep, duplicate_key, …).
const (
	CodeMissingMember    = "missing_member"
	CodeWrongType        = "wrong_type"
	CodeInvalidOperation = "invalid_operation"
	CodeInvalidResource  = "invalid_resource"
	CodeFeatureMismatch  = "feature_mismatch"
	CodeContextMismatch  = "context_mismatch"
)

// maxTokenBytes bounds a feature or operation name.
const maxTokenBytes = 32

// Error is a body refused before it became a question. Code is stable;
// Message is safe to return to the caller: it never quotes the body beyond
// a validated feature name or the guard package's short excerpts.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func refuse(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Limits bound what ParsePORC accepts.
type Limits struct {
	// JSON bounds the body; MaxBytes is the body size limit and MaxDepth
	// is set from MaxDepth.
	JSON guard.JSONLimits
	// MaxDepth bounds the nesting of the arguments (as the native API
	// bounds params) and of the principal (as it bounds claims); default
	// mcp.DefaultMaxDepth.
	MaxDepth int
}

// withDefaults fills the defaults and lets the body nest deep enough for
// arguments at MaxDepth: the body holds them three levels further down
// (context.mcp.args) than the native API's params do.
func (l Limits) withDefaults() Limits {
	if l.MaxDepth <= 0 {
		l.MaxDepth = mcp.DefaultMaxDepth
	}
	l.JSON.MaxDepth = l.MaxDepth + 3
	l.JSON.RejectDuplicateKeys = true
	l.JSON = l.JSON.WithDefaults()
	return l
}

// Question is one ToolHive authorization question, parsed from its PORC
// body.
type Question struct {
	// Feature and Operation are the two parts of "mcp:<feature>:<op>".
	Feature   string
	Operation string
	// Server and ID are the parts of "mrn:mcp:<server>:<feature>:<id>":
	// the server's name in ToolHive, and the tool or prompt name, the
	// resource URI or the skill URI (empty for a list).
	Server string
	ID     string
	// Args are context.mcp.args; HasArgs says whether the body had them.
	// ToolHive sends them only when include_args is on and the call has
	// arguments, never for an entry of a list result.
	Args    map[string]any
	HasArgs bool
	// Subject is the principal, asserted by ToolHive from the claims of a
	// token it verified.
	Subject mcp.Subject
	// Mapping is the claim mapping the principal was built with.
	Mapping string
}

// ParsePORC reads a ToolHive PORC body:
//
//	{"principal": {"sub": …, claims…},
//	 "operation": "mcp:<feature>:<operation>",
//	 "resource":  "mrn:mcp:<server>:<feature>:<id>",
//	 "context":   {"mcp": {"feature", "operation", "resource_id", "args", "annotations"}}}
//
// It refuses, with an *Error, a body that is not one JSON object within
// the limits, whose members have the wrong type, whose operation or
// resource is not in ToolHive's format, whose resource names another
// feature than its operation, or whose context.mcp disagrees with them.
// Members it does not know, and context.mcp.annotations (hints from the
// MCP server, which the policy takes from its own catalog), are ignored.
// A well-formed question about an operation Verdict does not decide is
// not refused here: it is answered with a deny.
func ParsePORC(body []byte, lim Limits) (*Question, *Error) {
	lim = lim.withDefaults()
	if v := guard.ScanJSON(body, lim.JSON); v != nil {
		return nil, &Error{Code: v.Code, Message: v.Message}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		// ScanJSON accepted it: cannot happen, but never trust that.
		return nil, refuse(guard.CodeInvalidJSON, "body is not valid JSON")
	}
	obj, ok := doc.(map[string]any)
	if !ok {
		return nil, refuse(CodeWrongType, "body is %s, not an object", mcp.TypeName(doc))
	}
	q := &Question{}
	op, err := requiredString(obj, "operation")
	if err != nil {
		return nil, err
	}
	if q.Feature, q.Operation, ok = parseOperation(op); !ok {
		return nil, refuse(CodeInvalidOperation, `operation is not "mcp:<feature>:<operation>"`)
	}
	res, err := requiredString(obj, "resource")
	if err != nil {
		return nil, err
	}
	if err := q.parseResource(res); err != nil {
		return nil, err
	}
	if err := q.parseContext(obj["context"], lim.MaxDepth); err != nil {
		return nil, err
	}
	p, ok := obj["principal"]
	if !ok || p == nil {
		return nil, refuse(CodeMissingMember, "principal is missing")
	}
	principal, ok := p.(map[string]any)
	if !ok {
		return nil, refuse(CodeWrongType, "principal is %s, not an object", mcp.TypeName(p))
	}
	if err := mcp.CheckValueDepth(principal, lim.MaxDepth); err != nil {
		return nil, refuse(guard.CodeTooDeep, "principal: %v", err)
	}
	if q.Subject, q.Mapping, err = subjectOf(principal); err != nil {
		return nil, err
	}
	return q, nil
}

func requiredString(obj map[string]any, key string) (string, *Error) {
	v, ok := obj[key]
	if !ok || v == nil {
		return "", refuse(CodeMissingMember, "%s is missing", key)
	}
	s, ok := v.(string)
	if !ok {
		return "", refuse(CodeWrongType, "%s is %s, not a string", key, mcp.TypeName(v))
	}
	return s, nil
}

// parseOperation splits "mcp:<feature>:<operation>"; both parts are
// lower-case tokens.
func parseOperation(s string) (feature, op string, ok bool) {
	rest, ok := strings.CutPrefix(s, "mcp:")
	if !ok {
		return "", "", false
	}
	feature, op, ok = strings.Cut(rest, ":")
	if !ok || !isToken(feature) || !isToken(op) {
		return "", "", false
	}
	return feature, op, true
}

// isToken reports whether s is a non-empty lower-case ASCII name: what
// ToolHive's features and operations are.
func isToken(s string) bool {
	if s == "" || len(s) > maxTokenBytes {
		return false
	}
	for _, c := range []byte(s) {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

// parseResource reads "mrn:mcp:<server>:<feature>:<id>". The server is
// the segment up to the first colon (ToolHive's server names have none);
// the id is the rest, colons included (URIs).
func (q *Question) parseResource(s string) *Error {
	const format = `resource is not "mrn:mcp:<server>:<feature>:<id>"`
	rest, ok := strings.CutPrefix(s, "mrn:mcp:")
	if !ok {
		return refuse(CodeInvalidResource, format)
	}
	server, rest, ok := strings.Cut(rest, ":")
	if !ok {
		return refuse(CodeInvalidResource, format)
	}
	feature, id, ok := strings.Cut(rest, ":")
	if !ok || !isToken(feature) {
		return refuse(CodeInvalidResource, format)
	}
	if err := mcp.ValidName("the resource's server", server); err != nil {
		return refuse(CodeInvalidResource, "%v", err)
	}
	if feature != q.Feature {
		return refuse(CodeFeatureMismatch, "resource names feature %q, operation names %q", feature, q.Feature)
	}
	if q.Operation != OpList || id != "" {
		if err := mcp.ValidName("the resource's id", id); err != nil {
			return refuse(CodeInvalidResource, "%v", err)
		}
	}
	q.Server, q.ID = server, id
	return nil
}

// parseContext reads context.mcp: its feature, operation and resource_id,
// when present, must agree with the operation and resource; its args are
// the call's arguments.
func (q *Question) parseContext(v any, maxDepth int) *Error {
	if v == nil {
		return nil
	}
	ctx, ok := v.(map[string]any)
	if !ok {
		return refuse(CodeWrongType, "context is %s, not an object", mcp.TypeName(v))
	}
	mv := ctx["mcp"]
	if mv == nil {
		return nil
	}
	m, ok := mv.(map[string]any)
	if !ok {
		return refuse(CodeWrongType, "context.mcp is %s, not an object", mcp.TypeName(mv))
	}
	for _, f := range [...]struct{ key, want string }{
		{"feature", q.Feature}, {"operation", q.Operation}, {"resource_id", q.ID},
	} {
		got, ok := m[f.key]
		if !ok || got == nil {
			continue
		}
		s, ok := got.(string)
		if !ok {
			return refuse(CodeWrongType, "context.mcp.%s is %s, not a string", f.key, mcp.TypeName(got))
		}
		if s != f.want {
			return refuse(CodeContextMismatch, "context.mcp.%s disagrees with the operation and resource", f.key)
		}
	}
	av := m["args"]
	if av == nil {
		return nil
	}
	args, ok := av.(map[string]any)
	if !ok {
		return refuse(CodeWrongType, "context.mcp.args is %s, not an object", mcp.TypeName(av))
	}
	// The native API bounds params ({"name", "arguments": args}) at
	// maxDepth: the arguments one level less.
	if err := mcp.CheckValueDepth(args, maxDepth-1); err != nil {
		return refuse(guard.CodeTooDeep, "context.mcp.args: %v", err)
	}
	q.Args, q.HasArgs = args, true
	return nil
}

// mpeClaims are the members only ToolHive's "mpe" claim mapping writes
// (it always writes mannotations).
var mpeClaims = [...]string{"mroles", "mgroups", "mclearance", "mannotations"}

// subjectOf maps the principal onto the subject. The "standard" mapping
// gives sub, roles, groups and scopes; "mpe" gives sub, mroles, mgroups,
// scopes, mclearance and mannotations. A principal with any m-prefixed
// member is read as mpe, its roles, groups and clearance taken from the
// m-prefixed members only. scope/scopes may be a space-separated string or
// a list; a role or group given as one string is one role or group. tenant
// and clearance are read when present. The whole principal is offered as
// subject.claims. ToolHive verified the token: the subject is asserted by
// the gateway, authenticated when sub is not empty.
func subjectOf(p map[string]any) (mcp.Subject, string, *Error) {
	var s mcp.Subject
	mapping := MappingStandard
	for _, k := range mpeClaims {
		if _, ok := p[k]; ok {
			mapping = MappingMPE
			break
		}
	}
	roles, groups, clearance := "roles", "groups", "clearance"
	if mapping == MappingMPE {
		roles, groups, clearance = "mroles", "mgroups", "mclearance"
	}
	var err *Error
	if s.ID, err = optString(p, "sub"); err != nil {
		return s, "", err
	}
	if s.Roles, err = optStrings(p, roles, false); err != nil {
		return s, "", err
	}
	if s.Groups, err = optStrings(p, groups, false); err != nil {
		return s, "", err
	}
	scopes := "scopes"
	if _, ok := p[scopes]; !ok {
		scopes = "scope"
	}
	if s.Scopes, err = optStrings(p, scopes, true); err != nil {
		return s, "", err
	}
	if s.Clearance, err = optString(p, clearance); err != nil {
		return s, "", err
	}
	if s.Tenant, err = optString(p, "tenant"); err != nil {
		return s, "", err
	}
	s.Claims = p
	s.Authenticated = s.ID != ""
	if s.Authenticated {
		s.Source = mcp.SourceGateway
	}
	return s, mapping, nil
}

func optString(p map[string]any, key string) (string, *Error) {
	v, ok := p[key]
	if !ok || v == nil {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", refuse(CodeWrongType, "principal.%s is %s, not a string", key, mcp.TypeName(v))
	}
	return s, nil
}

// optStrings reads a list of strings, or one string: split on white space
// when fields is set (OAuth's scope claim), one element otherwise.
func optStrings(p map[string]any, key string, fields bool) ([]string, *Error) {
	switch v := p[key].(type) {
	case nil:
		return nil, nil
	case string:
		if fields {
			return strings.Fields(v), nil
		}
		return []string{v}, nil
	case []any:
		out := make([]string, len(v))
		for i, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, refuse(CodeWrongType, "principal.%s[%d] is %s, not a string", key, i, mcp.TypeName(e))
			}
			out[i] = s
		}
		return out, nil
	default:
		return nil, refuse(CodeWrongType, "principal.%s is %s, not a string or a list of strings", key, mcp.TypeName(v))
	}
}
