package extauthz

import (
	"unicode/utf8"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/verdictpdp/verdict/internal/projection"
)

// envoyInput is a CheckRequest as the engine's Decide sees it. A cache hit
// never builds the input: the key is written from the request's fields that
// determine the projected paths.
type envoyInput struct {
	req   *authv3.CheckRequest
	opts  InputOptions
	ident *requestIdentity

	// line is checkRequest's answer, asked once for the key and the input.
	line    requestLine
	lineErr error
	checked bool

	// handChecked and handOK are byHand's answer, asked once.
	handChecked, handOK bool

	built LeanInput
	err   error
	done  bool
	// pruned is set when the policy was evaluated on PrunedValue's input:
	// the whole input is built only if something asks for it.
	pruned bool
}

// Subject names whose decision this is, so the cache can flush it: the
// subject of the token this service verified, else the one Envoy's
// jwt_authn filter passed, else the calling peer's principal.
func (in *envoyInput) Subject() string {
	if in.ident != nil && in.ident.subject.Authenticated {
		return in.ident.subject.ID
	}
	if id := envoySubject(in.req).ID; id != "" {
		return id
	}
	return in.req.GetAttributes().GetSource().GetPrincipal()
}

func (in *envoyInput) check() (*requestLine, error) {
	if !in.checked {
		in.line, in.lineErr = checkRequest(in.req, in.opts)
		in.checked = true
	}
	return &in.line, in.lineErr
}

func (in *envoyInput) Value() (ast.Value, error) {
	if !in.done {
		in.done = true
		if !handBuilt {
			in.built, in.err = BuildValue(in.req, in.opts)
		} else if line, err := in.check(); err != nil {
			in.err = err
		} else {
			in.built, in.err = buildChecked(in.req, in.opts, line)
		}
		if in.err == nil {
			if err := in.ident.addTo(in.built.Value); err != nil {
				in.err = badRequest(reasonConvert, err)
			}
		}
	}
	if in.err != nil {
		return nil, in.err
	}
	return in.built.Value, nil
}

// AppendKey writes exactly the key Projection.AppendKey writes for the input
// Value would build, without building it, when it can tell that Value
// succeeds: checkRequest (the very checks BuildValue makes) accepts the
// request, there is no body to parse, the builder encodes every attribute by
// hand and can (handEncodable), and the identity converts. Anything else
// returns false, and Decide builds the input: the key then comes from the
// built value and every error from BuildValue, exactly as without the cache.
func (in *envoyInput) AppendKey(dst []byte, p *projection.Projection) ([]byte, bool) {
	if p.Whole {
		return dst, false
	}
	line, ok := in.byHand()
	if !ok {
		return dst, false
	}
	k := keyWriter{req: in.req, line: line, opts: in.opts, ident: in.ident}
	return p.AppendKeyWith(dst, k.path)
}

// byHand returns the checked request line when Value certainly succeeds and
// builds every member by hand: checkRequest (the very checks BuildValue
// makes) accepts the request, there is no body to parse, the builder
// encodes every attribute by hand and can (handEncodable), and the identity
// converts. The fast key and the pruned input are written only then.
func (in *envoyInput) byHand() (*requestLine, bool) {
	if !in.handChecked && handBuilt {
		in.handChecked = true
		line, err := in.check()
		in.handOK = err == nil && (in.opts.SkipBodyParse || line.body == bodyNone) && line.headersUTF8 &&
			handEncodable(in.req.GetAttributes()) && in.ident.converts()
	}
	return &in.line, in.handOK
}

// handEncodable reports whether the builder writes every attribute by hand
// and can: no member it leaves to protojson (metadata, the TLS session,
// header_map, an address other than a socket address), a valid request
// time, and valid UTF-8 in every string it writes but the headers, which
// checkRequest has looked at (requestLine.headersUTF8). gRPC's codec refuses
// a CheckRequest with invalid UTF-8 in a string before Check is called, but
// a request built in Go (tests, another caller of Decide) may hold any
// bytes.
func handEncodable(a *authv3.AttributeContext) bool {
	if a.GetMetadataContext() != nil || a.GetRouteMetadataContext() != nil || a.GetTlsSession() != nil {
		return false
	}
	h := a.GetRequest().GetHttp()
	if h.GetHeaderMap() != nil {
		return false
	}
	if t := a.GetRequest().GetTime(); t != nil && t.CheckValid() != nil {
		return false
	}
	if !peerEncodable(a.GetSource()) || !peerEncodable(a.GetDestination()) || !validMap(a.GetContextExtensions()) {
		return false
	}
	// size and rawBody are written as ASCII (digits, base64).
	return validStrings(h.GetId(), h.GetMethod(), h.GetPath(), h.GetHost(), h.GetScheme(), h.GetQuery(),
		h.GetFragment(), h.GetProtocol(), h.GetBody())
}

// peerEncodable is handEncodable for a peer: its strings, and an address,
// if any, that the builder writes by hand.
func peerEncodable(p *authv3.AttributeContext_Peer) bool {
	if p == nil {
		return true
	}
	if !validStrings(p.GetService(), p.GetPrincipal(), p.GetCertificate()) || !validMap(p.GetLabels()) {
		return false
	}
	a := p.GetAddress()
	if a == nil {
		return true
	}
	// A nil oneof wrapper (possible only in messages built in Go) would
	// make the generated getters panic.
	w, ok := a.GetAddress().(*corev3.Address_SocketAddress)
	if !ok || w == nil || w.SocketAddress == nil || w.SocketAddress.GetNetworkNamespaceFilepath() != "" {
		return false
	}
	sa := w.SocketAddress
	if !validStrings(sa.GetAddress(), sa.GetResolverName()) {
		return false
	}
	switch port := sa.GetPortSpecifier().(type) {
	case *corev3.SocketAddress_PortValue:
		return port != nil
	case *corev3.SocketAddress_NamedPort:
		return port != nil && utf8.ValidString(port.NamedPort)
	}
	return true
}

func validStrings(ss ...string) bool {
	for _, s := range ss {
		if !utf8.ValidString(s) {
			return false
		}
	}
	return true
}

func validMap(m map[string]string) bool {
	if len(m) == 0 {
		return true
	}
	for k, v := range m {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return false
		}
	}
	return true
}

// keyWriter appends, for one projected path, what Projection.AppendKey
// appends for that path of the input BuildValue builds (with the identity's
// members). It walks the request's messages by their protojson names and
// hands each value to the projection package's encoders: strings and maps as
// they are, a rarely read subtree built by the builder's own code.
type keyWriter struct {
	req   *authv3.CheckRequest
	line  *requestLine
	opts  InputOptions
	ident *requestIdentity
}

func (k *keyWriter) path(dst []byte, p projection.Path) ([]byte, bool) {
	r, kind := p.Ref, p.Kind
	if len(r) == 0 {
		return dst, false
	}
	name, ok := r[0].Value.(ast.String)
	if !ok {
		return projection.AppendUndefined(dst), true // the input is an object: a number names no member
	}
	rest := r[1:]
	switch string(name) {
	case "attributes":
		return k.attributes(dst, rest, kind)
	case "version":
		return projection.AppendValueAt(dst, versionTerm.Value, rest, kind), true
	case "parsed_path", "parsed_query":
		segs, q, err := k.line.pathAndQuery()
		if err != nil {
			return dst, false
		}
		if name == "parsed_path" {
			return projection.AppendGoAt(dst, segs, rest, kind)
		}
		return built(dst, func(b *builder) *ast.Term { return b.query(q) }, rest, kind)
	case "normalized_path":
		return projection.AppendStringAt(dst, k.line.norm, rest, kind), true
	case "parsed_body", "truncated_body":
		if k.opts.SkipBodyParse {
			return projection.AppendUndefined(dst), true
		}
		// AppendKey let through only requests without a body to parse:
		// parseBody answers without looking at the payload.
		h := k.line.http
		body, truncated, err := parseBody(h.GetHeaders(), h.GetBody(), h.GetRawBody(), k.opts.jsonLimits())
		if err != nil {
			return dst, false
		}
		if name == "truncated_body" {
			return projection.AppendValueAt(dst, ast.Boolean(truncated), rest, kind), true
		}
		return projection.AppendGoAt(dst, body, rest, kind)
	case "source_principal":
		return field(dst, k.req.GetAttributes().GetSource().GetPrincipal(), rest, kind), true
	case "subject", "verified_claims", "peer":
		v, ok := k.ident.member(string(name))
		if !ok {
			return projection.AppendUndefined(dst), true
		}
		return projection.AppendGoAt(dst, v, rest, kind)
	case "mcp":
		// Requests decided here are not decided as MCP: their input has no
		// mcp member.
		return projection.AppendUndefined(dst), true
	}
	// A member BuildValue does not write today; if it starts to, the built
	// input keys it.
	return dst, false
}

func (k *keyWriter) attributes(dst []byte, r ast.Ref, kind projection.Kind) ([]byte, bool) {
	a := k.req.GetAttributes()
	if len(r) == 0 {
		return built(dst, func(b *builder) *ast.Term { return b.attributes(a) }, r, kind)
	}
	name, ok := r[0].Value.(ast.String)
	if !ok {
		return projection.AppendUndefined(dst), true
	}
	switch string(name) {
	case "source":
		return peerPath(dst, a.GetSource(), r[1:], kind)
	case "destination":
		return peerPath(dst, a.GetDestination(), r[1:], kind)
	case "request":
		return k.request(dst, r[1:], kind)
	case "contextExtensions":
		return stringMap(dst, a.GetContextExtensions(), r[1:], kind)
	}
	// The other members are written through protojson: handEncodable let
	// through only requests without them.
	return projection.AppendUndefined(dst), true
}

func (k *keyWriter) request(dst []byte, r ast.Ref, kind projection.Kind) ([]byte, bool) {
	req := k.req.GetAttributes().GetRequest()
	if len(r) == 0 {
		return built(dst, func(b *builder) *ast.Term { return b.request(req) }, r, kind)
	}
	name, ok := r[0].Value.(ast.String)
	if !ok {
		return projection.AppendUndefined(dst), true
	}
	switch string(name) {
	case "time":
		t := req.GetTime()
		if t == nil {
			return projection.AppendUndefined(dst), true
		}
		var buf [40]byte
		return projection.AppendStringAt(dst, string(appendTimestamp(buf[:0], t)), r[1:], kind), true
	case "http":
		return k.http(dst, r[1:], kind)
	}
	return projection.AppendUndefined(dst), true
}

func (k *keyWriter) http(dst []byte, r ast.Ref, kind projection.Kind) ([]byte, bool) {
	h := k.line.http
	if len(r) == 0 {
		return built(dst, func(b *builder) *ast.Term { return b.http(h) }, r, kind)
	}
	name, ok := r[0].Value.(ast.String)
	if !ok {
		return projection.AppendUndefined(dst), true
	}
	if get, ok := lookupMember(httpStrings, string(name)); ok {
		return field(dst, get(h), r[1:], kind), true
	}
	if name == "headers" {
		return stringMap(dst, h.GetHeaders(), r[1:], kind)
	}
	return projection.AppendUndefined(dst), true // headerMap: handEncodable let through none
}

func peerPath(dst []byte, p *authv3.AttributeContext_Peer, r ast.Ref, kind projection.Kind) ([]byte, bool) {
	if p == nil {
		return projection.AppendUndefined(dst), true
	}
	if len(r) == 0 {
		return built(dst, func(b *builder) *ast.Term { return b.peer(p) }, r, kind)
	}
	name, ok := r[0].Value.(ast.String)
	if !ok {
		return projection.AppendUndefined(dst), true
	}
	if get, ok := lookupMember(peerStrings, string(name)); ok {
		return field(dst, get(p), r[1:], kind), true
	}
	switch string(name) {
	case "labels":
		return stringMap(dst, p.GetLabels(), r[1:], kind)
	case "address":
		a := p.GetAddress()
		if a == nil {
			return projection.AppendUndefined(dst), true
		}
		return built(dst, func(b *builder) *ast.Term { return b.address(a) }, r[1:], kind)
	}
	return projection.AppendUndefined(dst), true
}

// anObject stands for a message the builder writes (always an object) when
// only its presence or type is read.
var anObject ast.Value = ast.NewObject()

// built keys a subtree the way the input holds it, by building it with the
// builder's own code: for members read whole, or rarely.
func built(dst []byte, build func(*builder) *ast.Term, rest ast.Ref, kind projection.Kind) ([]byte, bool) {
	if len(rest) == 0 && kind != projection.Full {
		return projection.AppendValueAt(dst, anObject, nil, kind), true
	}
	var b builder
	t := build(&b)
	if b.err != nil || t == nil {
		return dst, false
	}
	return projection.AppendValueAt(dst, t.Value, rest, kind), true
}

// field keys a string member as builder.field writes it: absent when empty.
func field(dst []byte, s string, rest ast.Ref, kind projection.Kind) []byte {
	if s == "" {
		return projection.AppendUndefined(dst)
	}
	return projection.AppendStringAt(dst, s, rest, kind)
}

// stringMap keys a map<string, string> member, which the builder leaves out
// when empty.
func stringMap(dst []byte, m map[string]string, rest ast.Ref, kind projection.Kind) ([]byte, bool) {
	if len(m) == 0 {
		return projection.AppendUndefined(dst), true
	}
	return projection.AppendGoAt(dst, m, rest, kind)
}
