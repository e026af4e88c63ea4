package mcp

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/util"

	"github.com/verdictpdp/verdict/internal/guard"
)

// JSON-RPC error codes a gateway answers with.
const (
	CodeParseError     = -32700
	CodeInvalidRequest = -32600
	CodeInvalidParams  = -32602
	// CodeDenied: the policy denied the request (implementation-defined range).
	CodeDenied = -32001
	// CodeApprovalRequired: a human must approve the request first.
	CodeApprovalRequired = -32003
	// CodeURLElicitationRequired is MCP's URLElicitationRequired
	// (2025-11-25): the client shows the user a URL (here, the approval's
	// page) and retries once it is done.
	CodeURLElicitationRequired = -32042
	// CodeHeaderMismatch: an Mcp-* header disagrees with the body (MCP 2026-07-28).
	CodeHeaderMismatch = -32020
)

// DefaultMaxDepth bounds the nesting of a JSON-RPC body or params.
const DefaultMaxDepth = 64

// Message is one element of a JSON-RPC body.
type Message struct {
	// ID is the request id (string or json.Number), nil for a notification.
	ID     any
	HasID  bool
	Method string
	Params map[string]any
	// Response marks a JSON-RPC response (no method).
	Response bool
	// Result is a response's decoded result (nil for an error response).
	Result any
}

// ParseMessages parses a JSON-RPC 2.0 body: one message or a batch array. It
// rejects invalid UTF-8, nesting deeper than maxDepth, an empty batch and
// elements that are not JSON-RPC 2.0 messages. Errors are *RequestError.
func ParseMessages(body []byte, maxDepth int) (msgs []Message, batch bool, err error) {
	return parseMessages(body, maxDepth, false)
}

// ParseSizedMessages is ParseMessages for a body whose size the caller
// already bounded (a gateway's message limit): strings, members and
// elements are bounded by that size instead of the per-value defaults, so
// a tool result holding a large file is not refused. Depth, UTF-8 and
// duplicate members are checked as always.
func ParseSizedMessages(body []byte, maxDepth int) (msgs []Message, batch bool, err error) {
	return parseMessages(body, maxDepth, true)
}

func parseMessages(body []byte, maxDepth int, sized bool) (msgs []Message, batch bool, err error) {
	if err := checkBody(body, maxDepth, sized); err != nil {
		return nil, false, err
	}
	var doc any
	if err := util.UnmarshalJSON(body, &doc); err != nil {
		return nil, false, &RequestError{JSONRPCCode: CodeParseError, Reason: "JSON-RPC body is not valid JSON"}
	}
	return messagesFrom(doc)
}

// checkBody refuses, before decoding, bodies that are not UTF-8, nest too
// deep, are too large in elements or strings, are not JSON, or repeat a
// member name in one object: parsers disagree on which duplicate wins, so a
// gateway and its MCP server could see different tool names or arguments.
// Names are compared without case: the Go MCP SDK (encoding/json) reads
// "Name" as "name", where policy reads only "name".
func checkBody(body []byte, maxDepth int, sized bool) *RequestError {
	if maxDepth <= 0 {
		maxDepth = DefaultMaxDepth
	}
	if !utf8.Valid(body) {
		return &RequestError{JSONRPCCode: CodeParseError, Reason: "JSON-RPC body is not valid UTF-8"}
	}
	limits := guard.JSONLimits{MaxDepth: maxDepth, MaxBytes: len(body), RejectDuplicateKeys: true, FoldCase: true}
	if sized {
		limits.MaxStringBytes, limits.MaxElements, limits.MaxMembers = len(body), len(body), len(body)
	}
	limits = limits.WithDefaults()
	if v := guard.ScanJSON(body, limits); v != nil {
		code := CodeInvalidRequest
		if v.Code == "invalid_json" || v.Code == "trailing_data" || v.Code == "invalid_utf8" {
			code = CodeParseError
		}
		return &RequestError{JSONRPCCode: code, Reason: "JSON-RPC body refused (" + v.Code + "): " + v.Message}
	}
	return nil
}

// messagesFrom reads the messages of a decoded JSON-RPC body.
func messagesFrom(doc any) (msgs []Message, batch bool, err error) {
	switch v := doc.(type) {
	case map[string]any:
		m, err := parseMessage(v)
		if err != nil {
			return nil, false, err
		}
		return []Message{m}, false, nil
	case []any:
		if len(v) == 0 {
			return nil, true, invalidRequest("JSON-RPC batch is empty")
		}
		msgs = make([]Message, 0, len(v))
		for i, el := range v {
			obj, ok := el.(map[string]any)
			if !ok {
				return nil, true, invalidRequest("JSON-RPC batch element %d is %s, not an object", i, TypeName(el))
			}
			m, err := parseMessage(obj)
			if err != nil {
				return nil, true, &RequestError{JSONRPCCode: err.JSONRPCCode, Reason: fmt.Sprintf("batch element %d: %s", i, err.Reason)}
			}
			msgs = append(msgs, m)
		}
		return msgs, true, nil
	default:
		return nil, false, invalidRequest("JSON-RPC body is %s, not an object or array", TypeName(doc))
	}
}

// envelopeMembers and paramMembers are the member names a gateway and
// policy read. Another spelling of one ("Params", "NAME") is refused: a
// server decoding with Go's encoding/json reads it as the real one, which
// policy never saw.
var (
	envelopeMembers = []string{"jsonrpc", "id", "method", "params", "result", "error"}
	paramMembers    = []string{"name", "arguments", "uri", "_meta", "cursor"}
)

// caseVariant returns a member of obj that spells one of names in another
// case, if any.
func caseVariant(obj map[string]any, names []string) (got, want string, found bool) {
	for k := range obj {
		for _, n := range names {
			if k != n && strings.EqualFold(k, n) {
				return k, n, true
			}
		}
	}
	return "", "", false
}

func parseMessage(obj map[string]any) (Message, *RequestError) {
	var m Message
	if got, want, found := caseVariant(obj, envelopeMembers); found {
		return m, invalidRequest("member %q is not JSON-RPC's %q: member names are case-sensitive", excerpt(got), want)
	}
	if p, ok := obj["params"].(map[string]any); ok {
		if got, want, found := caseVariant(p, paramMembers); found {
			return m, invalidParams("params member %q is not MCP's %q: member names are case-sensitive", excerpt(got), want)
		}
	}
	if v, _ := obj["jsonrpc"].(string); v != "2.0" {
		return m, invalidRequest(`"jsonrpc" must be "2.0"`)
	}
	if id, ok := obj["id"]; ok {
		switch id.(type) {
		case string, json.Number:
		default:
			return m, invalidRequest(`"id" must be a string or a number, not %s`, TypeName(id))
		}
		m.ID, m.HasID = id, true
	}
	method, hasMethod := obj["method"]
	if !hasMethod {
		_, hasResult := obj["result"]
		_, hasError := obj["error"]
		if !m.HasID || hasResult == hasError {
			return m, invalidRequest(`message has no "method" and is not a response`)
		}
		m.Response, m.Result = true, obj["result"]
		return m, nil
	}
	s, ok := method.(string)
	if !ok {
		return m, invalidRequest(`"method" must be a string, not %s`, TypeName(method))
	}
	if err := ValidName("method", s); err != nil {
		return m, invalidRequest("%v", err)
	}
	m.Method = s
	if p, ok := obj["params"]; ok && p != nil {
		pm, ok := p.(map[string]any)
		if !ok {
			return m, invalidParams(`"params" must be an object, not %s`, TypeName(p))
		}
		m.Params = pm
	}
	return m, nil
}

// ErrorObject is a JSON-RPC 2.0 error object.
type ErrorObject struct {
	Code    int            `json:"code"`
	Message string         `json:"message"`
	Data    map[string]any `json:"data,omitempty"`
}

// ErrorResponse is a JSON-RPC 2.0 error response.
type ErrorResponse struct {
	JSONRPC string      `json:"jsonrpc"`
	ID      any         `json:"id"`
	Error   ErrorObject `json:"error"`
}

// NewErrorResponse wraps e for the request with the given id (nil when the
// request's id is unknown).
func NewErrorResponse(id any, e ErrorObject) ErrorResponse {
	return ErrorResponse{JSONRPC: "2.0", ID: id, Error: e}
}

// CheckValueDepth returns an error when a decoded JSON value nests arrays
// and objects deeper than limit, or holds a number that is not finite.
func CheckValueDepth(v any, limit int) error {
	if valueDepth(v, 0, limit) > limit {
		return fmt.Errorf("value nests deeper than %d levels", limit)
	}
	if !finite(v) {
		return errors.New("value holds a number that is not finite (NaN or infinity), which JSON cannot carry")
	}
	return nil
}

// finite reports whether every number in v is finite: a protobuf Struct can
// carry NaN and infinities, which no JSON document (and no policy) can.
func finite(v any) bool {
	switch x := v.(type) {
	case float64:
		return !math.IsNaN(x) && !math.IsInf(x, 0)
	case map[string]any:
		for _, e := range x {
			if !finite(e) {
				return false
			}
		}
	case []any:
		for _, e := range x {
			if !finite(e) {
				return false
			}
		}
	}
	return true
}

func valueDepth(v any, d, limit int) int {
	if d > limit {
		return d
	}
	deepest := d
	switch x := v.(type) {
	case map[string]any:
		for _, e := range x {
			deepest = max(deepest, valueDepth(e, d+1, limit))
		}
	case []any:
		for _, e := range x {
			deepest = max(deepest, valueDepth(e, d+1, limit))
		}
	}
	return deepest
}

// excerpt bounds a member name quoted in an error.
func excerpt(s string) string {
	if len(s) > 32 {
		return strings.ToValidUTF8(s[:32], "") + "…"
	}
	return s
}
