package extauthz

import (
	"encoding/base64"
	"errors"
	"net/url"
	"strconv"
	"unicode/utf8"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/util"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// LeanInput is the policy input built straight from a CheckRequest.
type LeanInput struct {
	Value      ast.Object // equal (ast.Compare == 0) to ast.InterfaceToValue(BuildInput(req, opts))
	ParsedBody any        // the Go value BuildInput puts under "parsed_body" (nil when absent), reused by the MCP-over-Envoy path
}

// handBuilt reports whether the generated messages have exactly the fields,
// under the JSON names, that the hand-built encoding writes. A newer
// go-control-plane that adds a field turns it off, so every request takes the
// protojson path instead of silently losing that field.
var handBuilt = hasFields(&authv3.CheckRequest{}, "attributes") &&
	hasFields(&authv3.AttributeContext{}, "source", "destination", "request", "contextExtensions",
		"metadataContext", "routeMetadataContext", "tlsSession") &&
	hasFields(&authv3.AttributeContext_Peer{}, "address", "service", "labels", "principal", "certificate") &&
	hasFields(&authv3.AttributeContext_Request{}, "time", "http") &&
	hasFields(&authv3.AttributeContext_HttpRequest{}, "id", "method", "headers", "headerMap", "path", "host",
		"scheme", "query", "fragment", "size", "protocol", "body", "rawBody") &&
	hasFields(&corev3.Address{}, "socketAddress", "pipe", "envoyInternalAddress") &&
	hasFields(&corev3.SocketAddress{}, "protocol", "address", "portValue", "namedPort", "resolverName",
		"ipv4Compat", "networkNamespaceFilepath")

// hasFields runs once at start-up; the request path never uses protoreflect.
func hasFields(m proto.Message, jsonNames ...string) bool {
	fields := m.ProtoReflect().Descriptor().Fields()
	for _, name := range jsonNames {
		if fields.ByJSONName(name) == nil {
			return false
		}
	}
	return fields.Len() == len(jsonNames)
}

// Object keys, allocated once and shared by every input.
var (
	kAttributes, kVersion, kParsedPath, kParsedQuery = key("attributes"), key("version"), key("parsed_path"), key("parsed_query")
	kParsedBody, kTruncatedBody, kSourcePrincipal    = key("parsed_body"), key("truncated_body"), key("source_principal")

	kSource, kDestination, kRequest, kContextExtensions  = key("source"), key("destination"), key("request"), key("contextExtensions")
	kMetadataContext, kRouteMetadataContext, kTLSSession = key("metadataContext"), key("routeMetadataContext"), key("tlsSession")

	kAddress, kService, kLabels, kPrincipal, kCertificate = key("address"), key("service"), key("labels"), key("principal"), key("certificate")
	kSocketAddress, kProtocol, kPortValue, kNamedPort     = key("socketAddress"), key("protocol"), key("portValue"), key("namedPort")
	kResolverName, kIpv4Compat                            = key("resolverName"), key("ipv4Compat")

	kTime, kHTTP, kID, kMethod, kHeaders, kHeaderMap = key("time"), key("http"), key("id"), key("method"), key("headers"), key("headerMap")
	kPath, kHost, kScheme, kQuery, kFragment         = key("path"), key("host"), key("scheme"), key("query"), key("fragment")
	kSize, kBody, kRawBody                           = key("size"), key("body"), key("rawBody")
)

func key(s string) *ast.Term { return ast.StringTerm(s) }

// versionTerm is shared by every input: policy evaluation never mutates its
// input, and OPA shares interned terms the same way.
var versionTerm = ast.NewTerm(ast.MustInterfaceToValue(versionInfo))

// BuildValue builds the input as BuildInput does, without the JSON round trip.
func BuildValue(req *authv3.CheckRequest, opts InputOptions) (LeanInput, error) {
	if !handBuilt {
		return buildValueViaJSON(req, opts)
	}
	line, err := checkRequest(req, opts)
	if err != nil {
		return LeanInput{}, err
	}
	return buildChecked(req, opts, &line)
}

// buildChecked is BuildValue after checkRequest accepted req.
func buildChecked(req *authv3.CheckRequest, opts InputOptions, line *requestLine) (LeanInput, error) {
	headers := line.http.GetHeaders()
	b := builder{terms: make([]ast.Term, 0, 2*len(headers)+48), kv: make([][2]*ast.Term, 0, len(headers)+16)}

	// Encoding errors come before body errors, as in BuildInput, which
	// encodes the request before it parses the body.
	b.add(kAttributes, b.attributes(req.GetAttributes()))
	if b.err != nil {
		return LeanInput{}, b.err
	}
	b.add(kVersion, versionTerm)
	segs, q, err := line.pathAndQuery()
	if err != nil {
		return LeanInput{}, err
	}
	b.add(kParsedPath, b.strings(segs))
	b.add(kParsedQuery, b.query(q))
	b.add(kNormalizedPath, b.str(line.norm))

	var parsed any
	if !opts.SkipBodyParse {
		h := line.http
		body, truncated, err := parseBody(headers, h.GetBody(), h.GetRawBody(), opts.jsonLimits())
		if err != nil {
			return LeanInput{}, err
		}
		v, err := ast.InterfaceToValue(body)
		if err != nil {
			return LeanInput{}, badRequest(reasonConvert, err)
		}
		parsed = body
		b.add(kParsedBody, b.term(v))
		b.add(kTruncatedBody, ast.InternedTerm(truncated))
	}
	if p := req.GetAttributes().GetSource().GetPrincipal(); p != "" {
		b.add(kSourcePrincipal, b.str(p))
	}
	return LeanInput{Value: ast.NewObject(b.kv...), ParsedBody: parsed}, nil
}

const reasonConvert = "request cannot be converted to policy input"

// buildValueViaJSON is BuildValue for messages the hand-built encoding does
// not know: the reference path itself.
func buildValueViaJSON(req *authv3.CheckRequest, opts InputOptions) (LeanInput, error) {
	input, err := BuildInput(req, opts)
	if err != nil {
		return LeanInput{}, err
	}
	v, err := ast.InterfaceToValue(input)
	if err != nil {
		return LeanInput{}, badRequest(reasonConvert, err)
	}
	obj, _ := v.(ast.Object) // a map[string]any always becomes an object
	return LeanInput{Value: obj, ParsedBody: input["parsed_body"]}, nil
}

// builder writes the protojson shape of a CheckRequest as ast terms. Terms
// come from a few large slices rather than one allocation each, and object
// items are collected on a shared stack: a nested object is finished (and its
// items popped) before its parent adds it, so one buffer serves every level.
// The first error sticks, and its subtree is left out.
type builder struct {
	terms []ast.Term
	kv    [][2]*ast.Term
	err   *InputError
}

func (b *builder) term(v ast.Value) *ast.Term {
	if len(b.terms) == cap(b.terms) {
		b.terms = make([]ast.Term, 0, 64)
	}
	b.terms = append(b.terms, ast.Term{Value: v})
	return &b.terms[len(b.terms)-1]
}

// str costs a map lookup instead of an allocation for the short strings
// nearly every request repeats.
func (b *builder) str(s string) *ast.Term {
	if len(s) <= commonMaxLen {
		if t, ok := commonStrings[s]; ok {
			return t
		}
	}
	return b.term(ast.String(s))
}

// commonStrings are Envoy's pseudo-headers, frequent header names, methods,
// schemes and protocols; commonMaxLen spares long values the lookup.
var commonStrings, commonMaxLen = internStrings("", ":authority", ":method", ":path", ":scheme", "accept",
	"accept-encoding", "accept-language", "authorization", "cache-control", "content-length", "content-type",
	"cookie", "origin", "referer", "traceparent", "tracestate", "user-agent", "x-envoy-expected-rq-timeout-ms",
	"x-envoy-internal", "x-forwarded-client-cert", "x-forwarded-for", "x-forwarded-proto", "x-request-id",
	"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE",
	"http", "https", "HTTP/1.0", "HTTP/1.1", "HTTP/2", "HTTP/3", "UDP", "*/*", "application/json")

func internStrings(ss ...string) (map[string]*ast.Term, int) {
	m, maxLen := make(map[string]*ast.Term, len(ss)), 0
	for _, s := range ss {
		m[s], maxLen = ast.StringTerm(s), max(maxLen, len(s))
	}
	return m, maxLen
}

// add leaves out an item whose key or value failed.
func (b *builder) add(k, v *ast.Term) {
	if k != nil && v != nil {
		b.kv = append(b.kv, [2]*ast.Term{k, v})
	}
}

// object finishes the object whose items were added since len(b.kv) was start.
func (b *builder) object(start int) *ast.Term {
	obj := ast.NewObject(b.kv[start:]...) // copies the items, so the stack can be reused
	b.kv = b.kv[:start]
	return b.term(obj)
}

// fail keeps the error protojson.Marshal would report: any encoding failure
// anywhere wins over a JSON decoding failure, as it does in BuildInput.
func (b *builder) fail(err *InputError) {
	if b.err == nil || (b.err.Reason == reasonDecode && err.Reason == reasonEncode) {
		b.err = err
	}
}

// field adds a proto3 string as protojson writes it: left out when empty,
// refused when not valid UTF-8.
func (b *builder) field(k *ast.Term, s string) {
	if s != "" {
		b.add(k, b.text(s))
	}
}

// text is a string that is present even when empty (a map value, a oneof).
func (b *builder) text(s string) *ast.Term {
	if !utf8.ValidString(s) {
		b.fail(badRequest(reasonEncode, errors.New("string field or map key is not valid UTF-8")))
		return nil
	}
	return b.str(s)
}

func (b *builder) stringMap(m map[string]string) *ast.Term {
	start := len(b.kv)
	for k, v := range m {
		b.add(b.text(k), b.text(v))
	}
	return b.object(start)
}

func (b *builder) strings(ss []string) *ast.Term {
	terms := make([]*ast.Term, len(ss))
	for i, s := range ss {
		terms[i] = b.str(s)
	}
	return b.term(ast.NewArray(terms...))
}

func (b *builder) query(q url.Values) *ast.Term {
	start := len(b.kv)
	for k, vs := range q {
		b.add(b.str(k), b.strings(vs))
	}
	return b.object(start)
}

// viaJSON takes BuildInput's road for one subtree: the cold and open-ended
// messages (metadata with Struct and Any, TLS, header_map, pipe addresses),
// where matching protojson by hand is not worth the risk.
func (b *builder) viaJSON(m proto.Message) *ast.Term {
	bs, err := protojson.Marshal(m)
	if err != nil {
		b.fail(badRequest(reasonEncode, err))
		return nil
	}
	var x any
	var v ast.Value
	if err = util.UnmarshalJSON(bs, &x); err == nil {
		v, err = ast.InterfaceToValue(x)
	}
	if err != nil {
		b.fail(badRequest(reasonDecode, err))
		return nil
	}
	return b.term(v)
}

func (b *builder) attributes(a *authv3.AttributeContext) *ast.Term {
	start := len(b.kv)
	if p := a.GetSource(); p != nil {
		b.add(kSource, b.peer(p))
	}
	if p := a.GetDestination(); p != nil {
		b.add(kDestination, b.peer(p))
	}
	if r := a.GetRequest(); r != nil {
		b.add(kRequest, b.request(r))
	}
	if m := a.GetContextExtensions(); len(m) > 0 {
		b.add(kContextExtensions, b.stringMap(m))
	}
	if m := a.GetMetadataContext(); m != nil {
		b.add(kMetadataContext, b.viaJSON(m))
	}
	if m := a.GetRouteMetadataContext(); m != nil {
		b.add(kRouteMetadataContext, b.viaJSON(m))
	}
	if t := a.GetTlsSession(); t != nil {
		b.add(kTLSSession, b.viaJSON(t))
	}
	return b.object(start)
}

func (b *builder) peer(p *authv3.AttributeContext_Peer) *ast.Term {
	start := len(b.kv)
	if a := p.GetAddress(); a != nil {
		b.add(kAddress, b.address(a))
	}
	for _, f := range peerStrings {
		b.field(f.key, f.get(p))
	}
	if m := p.GetLabels(); len(m) > 0 {
		b.add(kLabels, b.stringMap(m))
	}
	return b.object(start)
}

// address hand-builds the common socket address and leaves every other
// shape (pipe, internal address, network namespace, unset oneof) to protojson.
func (b *builder) address(a *corev3.Address) *ast.Term {
	w, ok := a.GetAddress().(*corev3.Address_SocketAddress)
	if !ok || w == nil || w.SocketAddress == nil || w.SocketAddress.GetNetworkNamespaceFilepath() != "" {
		return b.viaJSON(a)
	}
	sa := w.SocketAddress
	start := len(b.kv)
	if p := sa.GetProtocol(); p != corev3.SocketAddress_TCP {
		// protojson writes a value the enum does not name as its number.
		if name, ok := corev3.SocketAddress_Protocol_name[int32(p)]; ok {
			b.add(kProtocol, b.str(name))
		} else {
			b.add(kProtocol, b.term(ast.Number(strconv.FormatInt(int64(p), 10))))
		}
	}
	b.field(kAddress, sa.GetAddress())
	// A oneof member is written whenever it is set, even to its zero value;
	// a nil wrapper counts as unset.
	switch port := sa.GetPortSpecifier().(type) {
	case *corev3.SocketAddress_PortValue:
		if port != nil {
			b.add(kPortValue, b.term(ast.Number(strconv.FormatUint(uint64(port.PortValue), 10))))
		}
	case *corev3.SocketAddress_NamedPort:
		if port != nil {
			b.add(kNamedPort, b.text(port.NamedPort))
		}
	}
	b.field(kResolverName, sa.GetResolverName())
	if sa.GetIpv4Compat() {
		b.add(kIpv4Compat, ast.InternedTerm(true))
	}
	inner := b.object(start)
	start = len(b.kv)
	b.add(kSocketAddress, inner)
	return b.object(start)
}

func (b *builder) request(r *authv3.AttributeContext_Request) *ast.Term {
	start := len(b.kv)
	if t := r.GetTime(); t != nil {
		b.add(kTime, b.timestamp(t))
	}
	if h := r.GetHttp(); h != nil {
		b.add(kHTTP, b.http(h))
	}
	return b.object(start)
}

// timestamp writes what protojson writes (see appendTimestamp), and refuses
// what protojson refuses (years outside 1..9999, nanos outside [0, 1e9)).
func (b *builder) timestamp(ts *timestamppb.Timestamp) *ast.Term {
	if err := ts.CheckValid(); err != nil {
		b.fail(badRequest(reasonEncode, err))
		return nil
	}
	var buf [32]byte
	return b.str(string(appendTimestamp(buf[:0], ts)))
}

// appendTimestamp appends a valid timestamp as protojson writes it: UTC RFC
// 3339 with 0, 3, 6 or 9 fractional digits.
func appendTimestamp(out []byte, ts *timestamppb.Timestamp) []byte {
	out = ts.AsTime().AppendFormat(out, "2006-01-02T15:04:05")
	switch n := ts.GetNanos(); {
	case n == 0:
	case n%1_000_000 == 0:
		out = appendFraction(out, n/1_000_000, 3)
	case n%1_000 == 0:
		out = appendFraction(out, n/1_000, 6)
	default:
		out = appendFraction(out, n, 9)
	}
	return append(out, 'Z')
}

// appendFraction appends "." and v zero-padded to digits digits.
func appendFraction(out []byte, v int32, digits int) []byte {
	out = append(out, ".000000000"[:digits+1]...)
	for i := len(out) - 1; v > 0; i-- {
		out[i] = byte('0' + v%10)
		v /= 10
	}
	return out
}

func (b *builder) http(h *authv3.AttributeContext_HttpRequest) *ast.Term {
	start := len(b.kv)
	for _, f := range httpStrings {
		b.field(f.key, f.get(h))
	}
	if m := h.GetHeaders(); len(m) > 0 {
		b.add(kHeaders, b.stringMap(m))
	}
	if m := h.GetHeaderMap(); m != nil {
		b.add(kHeaderMap, b.viaJSON(m))
	}
	return b.object(start)
}

// stringMember is a member of a hand-built message that protojson writes as
// a JSON string and leaves out when empty. The builder and the cache's fast
// key both read the members from these tables.
type stringMember[M any] struct {
	key  *ast.Term
	name string // key's string
	get  func(M) string
}

func member[M any](k *ast.Term, get func(M) string) stringMember[M] {
	return stringMember[M]{key: k, name: string(k.Value.(ast.String)), get: get}
}

type (
	httpAttrs = *authv3.AttributeContext_HttpRequest
	peerAttrs = *authv3.AttributeContext_Peer
)

var httpStrings = []stringMember[httpAttrs]{
	member(kID, httpAttrs.GetId), member(kMethod, httpAttrs.GetMethod), member(kPath, httpAttrs.GetPath),
	member(kHost, httpAttrs.GetHost), member(kScheme, httpAttrs.GetScheme), member(kQuery, httpAttrs.GetQuery),
	member(kFragment, httpAttrs.GetFragment), member(kProtocol, httpAttrs.GetProtocol), member(kBody, httpAttrs.GetBody),
	member(kSize, func(h httpAttrs) string {
		if n := h.GetSize(); n != 0 {
			return strconv.FormatInt(n, 10) // 64-bit integers are JSON strings
		}
		return ""
	}),
	member(kRawBody, func(h httpAttrs) string { return base64.StdEncoding.EncodeToString(h.GetRawBody()) }),
}

var peerStrings = []stringMember[peerAttrs]{
	member(kService, peerAttrs.GetService), member(kPrincipal, peerAttrs.GetPrincipal), member(kCertificate, peerAttrs.GetCertificate),
}

// lookupMember returns the getter of the member called name.
func lookupMember[M any](members []stringMember[M], name string) (func(M) string, bool) {
	for _, f := range members {
		if f.name == name {
			return f.get, true
		}
	}
	return nil, false
}
