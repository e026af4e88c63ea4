package mcp

import (
	"encoding/base64"
	"fmt"
	"strings"
	"unicode/utf8"
)

// HeaderProtocolVersion is the first protocol version whose Mcp-Method and
// Mcp-Name headers may be trusted: older clients do not send them, so on an
// older request such headers come from someone else.
const HeaderProtocolVersion = "2026-07-28"

// Streamable HTTP header names (lower case, as Envoy hands them over).
const (
	HeaderVersion     = "mcp-protocol-version"
	HeaderMethod      = "mcp-method"
	HeaderName        = "mcp-name"
	HeaderSession     = "mcp-session-id"
	headerParamPrefix = "mcp-param-"
)

// HTTPRequest is the part of an HTTP request MCP detection needs.
type HTTPRequest struct {
	Method string
	// Headers with lower-case names.
	Headers map[string]string
	Body    []byte
	// Parsed, when not nil, is Body already decoded as JSON (with numbers
	// as json.Number), so it is not decoded twice.
	Parsed any
	// BodyComplete is false when the proxy sent no body or cut it short.
	BodyComplete bool
	MaxDepth     int
}

// Envelope is an MCP request as it arrived over Streamable HTTP.
type Envelope struct {
	Messages []Message
	Batch    bool
	// FromHeaders is set when the request is decided from 2026 headers
	// alone, without its body: tool arguments are then unknown.
	FromHeaders     bool
	ProtocolVersion string
	SessionID       string
	// HeaderParams are the decoded Mcp-Param-* headers, by lower-case name.
	HeaderParams map[string]any
}

// FromHTTP recognises an MCP request: a POST whose body is JSON-RPC, or a
// 2026-07-28 request with an Mcp-Method header. It returns ErrNotMCP for
// anything else, and a *RequestError for an MCP request that must be
// refused: invalid JSON-RPC, headers that disagree with the body (-32020),
// or headers of an older version with no body to decide on.
func FromHTTP(r HTTPRequest) (*Envelope, error) {
	hasBody := len(r.Body) > 0 && r.BodyComplete && LooksLikeJSONRPC(r.Body)
	method, hasMethodHeader := r.Headers[HeaderMethod]
	if !strings.EqualFold(r.Method, "POST") || (!hasBody && !hasMethodHeader) {
		return nil, ErrNotMCP
	}
	env := &Envelope{
		ProtocolVersion: r.Headers[HeaderVersion],
		SessionID:       r.Headers[HeaderSession],
	}
	trusted := hasMethodHeader && env.ProtocolVersion >= HeaderProtocolVersion
	if !hasBody {
		if !trusted {
			return nil, invalidRequest("MCP request without a complete JSON-RPC body: Mcp-Method headers are trusted only from protocol version %s on", HeaderProtocolVersion)
		}
		return fromHeaders(env, r.Headers, method)
	}
	var msgs []Message
	var batch bool
	var err error
	if r.Parsed != nil {
		if berr := checkBody(r.Body, r.MaxDepth); berr != nil {
			return nil, berr
		}
		msgs, batch, err = messagesFrom(r.Parsed)
	} else {
		msgs, batch, err = ParseMessages(r.Body, r.MaxDepth)
	}
	if err != nil {
		return nil, err
	}
	env.Messages, env.Batch = msgs, batch
	if trusted {
		if err := checkHeaders(env, r.Headers, method); err != nil {
			return nil, err
		}
	}
	return env, nil
}

func fromHeaders(env *Envelope, h map[string]string, method string) (*Envelope, error) {
	method, err := DecodeHeaderValue(method)
	if err != nil {
		return nil, headerMismatch("Mcp-Method: %v", err)
	}
	params := map[string]any{}
	if name, ok := h[HeaderName]; ok {
		name, err := DecodeHeaderValue(name)
		if err != nil {
			return nil, headerMismatch("Mcp-Name: %v", err)
		}
		params[nameParam(method)] = name
	} else if needsName(method) {
		return nil, headerMismatch("%s needs an Mcp-Name header", method)
	}
	env.HeaderParams = map[string]any{}
	for k, v := range h {
		if p, ok := strings.CutPrefix(k, headerParamPrefix); ok && p != "" {
			dv, err := DecodeHeaderValue(v)
			if err != nil {
				return nil, headerMismatch("%s: %v", k, err)
			}
			env.HeaderParams[p] = dv
		}
	}
	env.FromHeaders = true
	env.Messages = []Message{{Method: method, Params: params}}
	return env, nil
}

// checkHeaders compares trusted 2026 headers with the body.
func checkHeaders(env *Envelope, h map[string]string, method string) error {
	if env.Batch || len(env.Messages) != 1 {
		return headerMismatch("a request with Mcp-Method headers carries one message, not a batch")
	}
	m := env.Messages[0]
	hm, err := DecodeHeaderValue(method)
	if err != nil {
		return headerMismatch("Mcp-Method: %v", err)
	}
	if hm != m.Method {
		return headerMismatch("Mcp-Method header %q disagrees with the body's method %q", hm, m.Method)
	}
	if !needsName(m.Method) {
		return nil
	}
	raw, ok := h[HeaderName]
	if !ok {
		return headerMismatch("%s needs an Mcp-Name header", m.Method)
	}
	hn, err := DecodeHeaderValue(raw)
	if err != nil {
		return headerMismatch("Mcp-Name: %v", err)
	}
	if bn, _ := m.Params[nameParam(m.Method)].(string); hn != bn {
		return headerMismatch("Mcp-Name header %q disagrees with the body's params.%s", hn, nameParam(m.Method))
	}
	return nil
}

func needsName(method string) bool {
	return method == MethodToolsCall || method == MethodResourcesRead || method == MethodPromptsGet
}

func nameParam(method string) string {
	if method == MethodResourcesRead {
		return "uri"
	}
	return "name"
}

func headerMismatch(format string, args ...any) *RequestError {
	return &RequestError{JSONRPCCode: CodeHeaderMismatch, Reason: fmt.Sprintf(format, args...)}
}

// DecodeHeaderValue decodes an MCP header value: printable ASCII as is, or
// "=?base64?...?=" (standard alphabet, padded) holding UTF-8 for values that
// are not. Raw bytes outside printable ASCII are refused: proxies disagree on
// how they are read.
func DecodeHeaderValue(v string) (string, error) {
	inner, ok := strings.CutPrefix(v, "=?base64?")
	if !ok {
		for i := range len(v) {
			if c := v[i]; (c < 0x20 && c != '\t') || c > 0x7e {
				return "", fmt.Errorf("value has a byte outside printable ASCII at offset %d: send it as =?base64?...?=", i)
			}
		}
		return v, nil
	}
	inner, ok = strings.CutSuffix(inner, "?=")
	if !ok {
		return "", fmt.Errorf("encoded value does not end with ?=")
	}
	b, err := base64.StdEncoding.DecodeString(inner)
	if err != nil {
		return "", fmt.Errorf("encoded value is not base64")
	}
	if !utf8.Valid(b) {
		return "", fmt.Errorf("encoded value is not UTF-8")
	}
	return string(b), nil
}
