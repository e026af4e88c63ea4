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

// HTTPRequest is a POST to a route the operator marked as MCP.
type HTTPRequest struct {
	// Headers with lower-case names.
	Headers map[string]string
	Body    []byte
	// Parsed, when not nil, is Body already decoded as JSON (with numbers
	// as json.Number), so it is not decoded twice.
	Parsed any
	// BodyComplete is false when the proxy sent no body or cut it short.
	BodyComplete bool
	MaxDepth     int
	// Sized marks a body whose size the caller bounded: see
	// ParseSizedMessages.
	Sized bool
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

// FromHTTP reads the MCP messages of a POST to a route the operator marked
// as MCP. It never guesses whether a request is MCP: that is the route's
// business, and a request that is not an MCP message is refused with a
// *RequestError:
//   - a complete body must parse as JSON-RPC 2.0 (one message or a batch);
//   - Mcp-Method, Mcp-Name and MCP-Protocol-Version headers, when sent,
//     must agree with the body (-32020);
//   - without a complete body, only the Mcp-Method headers of protocol
//     version 2026-07-28 or later are decided on (-32600 otherwise).
func FromHTTP(r HTTPRequest) (*Envelope, error) {
	env := &Envelope{
		ProtocolVersion: r.Headers[HeaderVersion],
		SessionID:       r.Headers[HeaderSession],
	}
	method, hasMethodHeader := r.Headers[HeaderMethod]
	if len(r.Body) == 0 || !r.BodyComplete {
		if !hasMethodHeader {
			return nil, invalidRequest("a POST to an MCP route needs a complete JSON-RPC body, or MCP %s Mcp-Method headers", HeaderProtocolVersion)
		}
		if env.ProtocolVersion < HeaderProtocolVersion {
			return nil, invalidRequest("MCP request without a complete JSON-RPC body: Mcp-Method headers are trusted only from protocol version %s on", HeaderProtocolVersion)
		}
		return fromHeaders(env, r.Headers, method)
	}
	var msgs []Message
	var batch bool
	var err error
	if r.Parsed != nil {
		if berr := checkBody(r.Body, r.MaxDepth, r.Sized); berr != nil {
			return nil, berr
		}
		msgs, batch, err = messagesFrom(r.Parsed)
	} else {
		msgs, batch, err = parseMessages(r.Body, r.MaxDepth, r.Sized)
	}
	if err != nil {
		return nil, err
	}
	env.Messages, env.Batch = msgs, batch
	if err := checkHeaders(env, r.Headers); err != nil {
		return nil, err
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

// checkHeaders compares the Mcp-* headers a request carries with its body,
// whatever version it claims: a header that disagrees with the body is
// refused, so a proxy or server that reads the header never acts on another
// request than the one decided. Mcp-Name is required for the methods that
// name something once Mcp-Method is trusted (2026-07-28 on).
func checkHeaders(env *Envelope, h map[string]string) error {
	if v := env.ProtocolVersion; v != "" {
		for _, m := range env.Messages {
			meta, _ := m.Params["_meta"].(map[string]any)
			if mv, ok := meta[metaProtocolVersion].(string); ok && mv != v {
				return headerMismatch("MCP-Protocol-Version header %q disagrees with the body's params._meta protocol version %q", v, mv)
			}
		}
	}
	rawMethod, hasMethod := h[HeaderMethod]
	rawName, hasName := h[HeaderName]
	if !hasMethod && !hasName {
		return nil
	}
	if env.Batch || len(env.Messages) != 1 {
		return headerMismatch("a request with Mcp-Method or Mcp-Name headers carries one message, not a batch")
	}
	m := env.Messages[0]
	if hasMethod {
		hm, err := DecodeHeaderValue(rawMethod)
		if err != nil {
			return headerMismatch("Mcp-Method: %v", err)
		}
		if hm != m.Method {
			return headerMismatch("Mcp-Method header %q disagrees with the body's method %q", hm, m.Method)
		}
	}
	if !needsName(m.Method) {
		if hasName {
			return headerMismatch("Mcp-Name header on a %q message, which names nothing", m.Method)
		}
		return nil
	}
	if !hasName {
		if hasMethod && env.ProtocolVersion >= HeaderProtocolVersion {
			return headerMismatch("%s needs an Mcp-Name header", m.Method)
		}
		return nil
	}
	hn, err := DecodeHeaderValue(rawName)
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
