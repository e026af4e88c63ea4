package extauthz

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/open-policy-agent/opa/v1/util"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/verdictpdp/verdict/internal/guard"
)

// DefaultMaxBodyBytes bounds the request body (body plus raw_body) that is
// parsed for policy. Envoy's with_request_body.max_request_bytes should be at
// most this.
const DefaultMaxBodyBytes = 1 << 20

// InputOptions control how a CheckRequest becomes policy input.
type InputOptions struct {
	// SkipBodyParse leaves parsed_body and truncated_body out of the input.
	SkipBodyParse bool
	// MaxBodyBytes bounds body plus raw_body; larger requests are refused.
	MaxBodyBytes int
	// JSON bounds JSON bodies (depth, elements, strings, members); Headers
	// and Path bound the request line and headers. Zero values mean the
	// guard package's defaults. JSON.RejectDuplicateKeys is not read:
	// AllowDuplicateKeys decides.
	JSON    guard.JSONLimits
	Headers guard.HeaderLimits
	Path    guard.PathLimits
	// AllowDuplicateKeys accepts JSON bodies (and JSON multipart fields)
	// that name a member twice, the last one winning, as opa-envoy-plugin
	// does. By default they are refused (duplicate_key): an upstream that
	// keeps the first one would act on a value the policy never saw.
	AllowDuplicateKeys bool
}

// jsonLimits are the limits body parsing applies.
func (o InputOptions) jsonLimits() guard.JSONLimits {
	l := o.JSON.WithDefaults()
	l.RejectDuplicateKeys = !o.AllowDuplicateKeys
	return l
}

// InputError is a request that cannot become policy input. Reason is safe to
// send back to the caller; Err is detail for logs.
type InputError struct {
	HTTPStatus typev3.StatusCode
	// Code is a stable reason code (guard's, such as "too_deep"); empty
	// means invalid_request.
	Code   string
	Reason string
	Err    error
}

func (e *InputError) Error() string {
	if e.Err != nil {
		return e.Reason + ": " + e.Err.Error()
	}
	return e.Reason
}

func (e *InputError) Unwrap() error { return e.Err }

func badRequest(reason string, err error) *InputError {
	return &InputError{HTTPStatus: typev3.StatusCode_BadRequest, Reason: reason, Err: err}
}

var versionInfo = map[string]any{"ext_authz": "v3", "encoding": "protojson"}

// BuildInput maps a CheckRequest onto the input document opa-envoy-plugin
// builds, the way it builds it: the protojson form of the request plus
// version, parsed_path, parsed_query, parsed_body, truncated_body and
// source_principal. It is the reference the service's BuildValue is tested
// against (byte for byte, and by fuzzing); the service itself uses
// BuildValue, which builds the same input without the JSON round trip.
func BuildInput(req *authv3.CheckRequest, opts InputOptions) (map[string]any, error) {
	line, err := checkRequest(req, opts)
	if err != nil {
		return nil, err
	}

	bs, err := protojson.Marshal(req)
	if err != nil {
		return nil, badRequest(reasonEncode, err)
	}
	var input map[string]any
	if err := util.UnmarshalJSON(bs, &input); err != nil {
		return nil, badRequest(reasonDecode, err)
	}
	input["version"] = versionInfo
	segs, q, err := line.pathAndQuery()
	if err != nil {
		return nil, err
	}
	input["parsed_path"], input["parsed_query"] = parsePathAndQuery(segs, q)
	input["normalized_path"] = line.norm

	if !opts.SkipBodyParse {
		h := line.http
		body, truncated, err := parseBody(h.GetHeaders(), h.GetBody(), h.GetRawBody(), opts.jsonLimits())
		if err != nil {
			return nil, err
		}
		input["parsed_body"] = body
		input["truncated_body"] = truncated
	}
	if p := req.GetAttributes().GetSource().GetPrincipal(); p != "" {
		input["source_principal"] = p
	}
	return input, nil
}

// Reasons shared by BuildInput and BuildValue, which must refuse alike.
const (
	reasonEncode = "CheckRequest cannot be encoded (invalid UTF-8 in a string field?)"
	reasonDecode = "CheckRequest cannot be encoded"
	reasonPath   = "request path cannot be parsed"
)

// checkHTTP returns the HTTP attributes of req, refusing a request without
// them or with a body above the limit before any encoding work is done, and
// whether every header value is valid UTF-8 (learnt while checking them).
func checkHTTP(req *authv3.CheckRequest, opts InputOptions) (*authv3.AttributeContext_HttpRequest, bool, error) {
	httpReq := req.GetAttributes().GetRequest().GetHttp()
	if httpReq == nil {
		return nil, false, badRequest("CheckRequest has no HTTP request attributes (attributes.request.http)", nil)
	}
	maxBody := opts.MaxBodyBytes
	if maxBody <= 0 {
		maxBody = DefaultMaxBodyBytes
	}
	if n := len(httpReq.GetBody()) + len(httpReq.GetRawBody()); n > maxBody {
		return nil, false, &InputError{
			HTTPStatus: typev3.StatusCode_PayloadTooLarge,
			Code:       "too_large",
			Reason:     fmt.Sprintf("request body is %d bytes; the limit is %d", n, maxBody),
		}
	}
	v, headersUTF8 := guard.CheckHeadersUTF8(httpReq.GetHeaders(), opts.Headers)
	if v != nil {
		return nil, false, refused(v)
	}
	if v := guard.CheckPath(httpReq.GetPath(), opts.Path); v != nil {
		return nil, false, refused(v)
	}
	return httpReq, headersUTF8, nil
}

// refused turns a guard violation into the caller's answer: 431 for
// oversized headers, 414 for an oversized path, 413 for an oversized body,
// else 400, each with the violation's code and message.
func refused(v *guard.Violation) *InputError {
	status := typev3.StatusCode_BadRequest
	switch v.Code {
	case "header_too_large", "too_many_headers":
		status = typev3.StatusCode_RequestHeaderFieldsTooLarge
	case "path_too_long":
		status = typev3.StatusCode_URITooLong
	case "too_large":
		status = typev3.StatusCode_PayloadTooLarge
	}
	return &InputError{HTTPStatus: status, Code: v.Code, Reason: v.Message}
}

// splitPathAndQuery is the parse behind parsed_path and parsed_query, as
// opa-envoy-plugin does it: the part before the first "?" percent-decoded,
// its leading slashes trimmed and the rest split on "/" ("//a/b" is
// ["a","b"]: the path is never read as a URL with an authority), and the
// query values. The query is parsed leniently, malformed pairs left out.
func splitPathAndQuery(path string) ([]string, url.Values, error) {
	rawPath, rawQuery, _ := strings.Cut(path, "?")
	decoded, err := url.PathUnescape(rawPath)
	if err != nil {
		return nil, nil, err
	}
	query, _ := url.ParseQuery(rawQuery) // lenient, as before: the valid pairs are kept
	return strings.Split(strings.TrimLeft(decoded, "/"), "/"), query, nil
}

// requestLine is what BuildInput, BuildValue and the cache's fast key all
// derive from a request before building anything: the checks that refuse it
// (checkHTTP, the path's syntax, its normal form) and which body parser will
// run. All three call checkRequest, so the fast key can never accept a
// request the builders refuse.
type requestLine struct {
	http *authv3.AttributeContext_HttpRequest
	// norm is normalized_path.
	norm string
	// body is the parser parseBody will run; bodyNone means it returns a
	// null body, not truncated, without looking at the payload.
	body bodyKind
	// headersUTF8 is set when every header value is valid UTF-8, which the
	// builder requires (names that pass checkHTTP are ASCII).
	headersUTF8 bool
	// segs and query are parsed_path and parsed_query, split on first use
	// when checkRequest could tell without splitting that the path splits.
	split bool
	segs  []string
	query url.Values
}

func checkRequest(req *authv3.CheckRequest, opts InputOptions) (requestLine, error) {
	h, headersUTF8, err := checkHTTP(req, opts)
	if err != nil {
		return requestLine{}, err
	}
	line := requestLine{http: h, body: bodyKindOf(h.GetHeaders(), h.GetBody(), h.GetRawBody()), headersUTF8: headersUTF8}
	if !plainPath(h.GetPath()) {
		if _, _, err := line.pathAndQuery(); err != nil {
			return requestLine{}, err
		}
	}
	norm, v := opts.Path.Normalize(h.GetPath())
	if v != nil {
		return requestLine{}, refused(v)
	}
	line.norm = norm
	return line, nil
}

// plainPath reports whether splitPathAndQuery certainly accepts path,
// without calling it (a cache hit need not split the path): it can only
// fail on a percent escape.
func plainPath(path string) bool { return !strings.Contains(path, "%") }

// pathAndQuery returns parsed_path's segments and parsed_query's values.
// plainPath promised that they split (see TestPlainPathParses and
// FuzzEnvoyKey); should they not, the error refuses the request as when
// checkRequest splits them.
func (l *requestLine) pathAndQuery() ([]string, url.Values, error) {
	if !l.split {
		segs, q, err := splitPathAndQuery(l.http.GetPath())
		if err != nil {
			return nil, nil, badRequest(reasonPath, err)
		}
		l.segs, l.query, l.split = segs, q, true
	}
	return l.segs, l.query, nil
}

func parsePathAndQuery(segs []string, q url.Values) ([]any, map[string]any) {
	parsedPath := make([]any, len(segs))
	for i, s := range segs {
		parsedPath[i] = s
	}
	parsedQuery := make(map[string]any, len(q))
	for k, vs := range q {
		vals := make([]any, len(vs))
		for i, v := range vs {
			vals[i] = v
		}
		parsedQuery[k] = vals
	}
	return parsedPath, parsedQuery
}

// bodyKind names the parser parseBody runs.
type bodyKind uint8

const (
	bodyNone bodyKind = iota
	// bodyPartial: Envoy says it cut the body; it is not parsed.
	bodyPartial
	bodyJSON
	bodyForm
	bodyMultipart
)

// bodyKindOf picks the parser from the content-type header, as
// opa-envoy-plugin does; bodyNone without a content-type, for other types
// (gRPC and the like are not parsed), or without a payload.
func bodyKindOf(headers map[string]string, body string, rawBody []byte) bodyKind {
	if headers[HeaderPartialBody] == "true" {
		return bodyPartial
	}
	ctype, ok := headers["content-type"]
	if !ok || (body == "" && len(rawBody) == 0) {
		return bodyNone
	}
	switch {
	case strings.Contains(ctype, "application/json"):
		return bodyJSON
	case strings.Contains(ctype, "application/x-www-form-urlencoded"):
		return bodyForm
	case strings.Contains(ctype, "multipart/form-data"):
		return bodyMultipart
	}
	return bodyNone
}

// HeaderPartialBody is the header Envoy's ext_authz filter adds, "true" or
// "false", when with_request_body.allow_partial_message is set.
const HeaderPartialBody = "x-envoy-auth-partial-body"

// parseBody follows opa-envoy-plugin: Envoy's x-envoy-auth-partial-body:
// true marks the body truncated, the content-type header picks the parser,
// raw_body is used when body is empty, and a content-length larger than
// what Envoy sent marks the body truncated too (parsed_body is then null).
// JSON (bodies and multipart fields) is checked against limits first.
func parseBody(headers map[string]string, body string, rawBody []byte, limits guard.JSONLimits) (any, bool, error) {
	kind := bodyKindOf(headers, body, rawBody)
	switch kind {
	case bodyNone:
		return nil, false, nil
	case bodyPartial:
		// Envoy's x-envoy-auth-partial-body: true, reliable even without
		// a content-length (HTTP/2, chunked).
		return nil, true, nil
	case bodyJSON, bodyForm, bodyMultipart:
	}
	payload := body
	if payload == "" {
		payload = string(rawBody)
	}
	if cl, ok := headers["content-length"]; ok {
		n, err := strconv.ParseInt(cl, 10, 64)
		if err != nil {
			return nil, false, badRequest("content-length header is not an integer", err)
		}
		if n != -1 && n > int64(len(payload)) {
			return nil, true, nil
		}
	}
	if !utf8.ValidString(payload) {
		return nil, false, badRequest("request body is not valid UTF-8", nil)
	}
	switch kind {
	case bodyJSON:
		if err := scanJSON([]byte(payload), limits, "request body"); err != nil {
			return nil, false, err
		}
		var v any
		if err := util.UnmarshalJSON([]byte(payload), &v); err != nil {
			return nil, false, badRequest("request body is not valid JSON", err)
		}
		return v, false, nil
	case bodyForm:
		vals, err := url.ParseQuery(payload)
		if err != nil {
			return nil, false, badRequest("request body is not valid form data", err)
		}
		out := make(map[string]any, len(vals))
		for k, vs := range vals {
			arr := make([]any, len(vs))
			for i, v := range vs {
				arr[i] = v
			}
			out[k] = arr
		}
		return out, false, nil
	default:
		return parseMultipart(headers["content-type"], payload, limits)
	}
}

// scanJSON checks a JSON document against limits before it is decoded.
func scanJSON(b []byte, limits guard.JSONLimits, what string) error {
	v := guard.ScanJSON(b, limits)
	switch {
	case v == nil:
		return nil
	case v.Code == guard.CodeInvalidJSON || v.Code == guard.CodeTrailingData:
		return &InputError{HTTPStatus: typev3.StatusCode_BadRequest, Code: v.Code, Reason: what + " is not valid JSON: " + v.Message}
	}
	return refused(v)
}

func parseMultipart(ctype, payload string, limits guard.JSONLimits) (any, bool, error) {
	_, params, err := mime.ParseMediaType(ctype)
	if err != nil {
		return nil, false, badRequest("content-type header cannot be parsed", err)
	}
	boundary, ok := params["boundary"]
	if !ok {
		return nil, false, nil
	}
	values := map[string]any{}
	mr := multipart.NewReader(strings.NewReader(payload), boundary)
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, false, badRequest("request body is not valid multipart data", err)
		}
		name := p.FormName()
		if name == "" {
			continue
		}
		raw, err := io.ReadAll(p)
		if err != nil {
			return nil, false, badRequest("request body is not valid multipart data", err)
		}
		var v any = string(raw)
		if strings.Contains(p.Header.Get("Content-Type"), "application/json") {
			if err := scanJSON(raw, limits, "a multipart field declared as JSON"); err != nil {
				return nil, false, err
			}
			if err := util.UnmarshalJSON(raw, &v); err != nil {
				return nil, false, badRequest("a multipart field declared as JSON is not valid JSON", err)
			}
		}
		prev, _ := values[name].([]any)
		values[name] = append(prev, v)
	}
	return values, false, nil
}
