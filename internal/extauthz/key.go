package extauthz

import (
	"net/url"
	"slices"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/verdictpdp/verdict/internal/projection"
)

// encodingEnvoy tags cache keys this adapter writes straight from a
// CheckRequest, apart from keys hashed from a built input.
const encodingEnvoy byte = 'E'

// envoyInput is a CheckRequest as the engine's Decide sees it. A cache hit
// never builds the input: the key is written from the request's fields that
// determine the projected paths (parsed_path is determined by the path
// header, for instance).
type envoyInput struct {
	req   *authv3.CheckRequest
	opts  InputOptions
	ident *requestIdentity

	built LeanInput
	err   error
	done  bool
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

func (in *envoyInput) Value() (ast.Value, error) {
	if !in.done {
		in.built, in.err = BuildValue(in.req, in.opts)
		if in.err == nil {
			if err := in.ident.addTo(in.built.Value); err != nil {
				in.err = badRequest(reasonConvert, err)
			}
		}
		in.done = true
	}
	if in.err != nil {
		return nil, in.err
	}
	return in.built.Value, nil
}

// AppendKey writes the key without building the input when it can prove
// that building would succeed and knows what determines every projected
// path. Anything else (a body to parse, a rarely used attribute, an invalid
// field) returns false, and Decide builds the input: the key then comes from
// the built value and every error comes from BuildValue, exactly as without
// the cache.
func (in *envoyInput) AppendKey(dst []byte, p *projection.Projection) ([]byte, bool) {
	if p.Whole || !handBuilt || !in.wouldBuild() {
		return dst, false
	}
	k := keyWriter{req: in.req, http: in.req.GetAttributes().GetRequest().GetHttp(), opts: in.opts, ident: in.ident}
	dst = append(dst, encodingEnvoy)
	for _, path := range p.Paths {
		var ok bool
		if dst, ok = k.path(dst, path); !ok {
			return dst, false
		}
	}
	return dst, true
}

// wouldBuild reports whether BuildValue would succeed without parsing a
// body, checking what it checks: the HTTP attributes and body size, the
// attributes it leaves to protojson, out-of-range timestamps, the path's
// syntax. It does not re-check UTF-8: gRPC's codec refuses a CheckRequest
// with invalid UTF-8 in any proto3 string before Check is called, as does
// protojson for `pdp eval`.
func (in *envoyInput) wouldBuild() bool {
	a := in.req.GetAttributes()
	if a.GetMetadataContext() != nil || a.GetRouteMetadataContext() != nil || a.GetTlsSession() != nil {
		return false
	}
	h, err := checkHTTP(in.req, in.opts)
	if err != nil || h.GetHeaderMap() != nil {
		return false
	}
	if t := a.GetRequest().GetTime(); t != nil && t.CheckValid() != nil {
		return false
	}
	if !socketOnly(a.GetSource()) || !socketOnly(a.GetDestination()) {
		return false
	}
	if !plainPath(h.GetPath()) {
		if _, err := url.Parse(h.GetPath()); err != nil {
			return false
		}
	}
	return in.opts.SkipBodyParse || !bodyToParse(h)
}

// socketOnly reports whether a peer's address, if any, is a socket address
// BuildValue writes by hand (others go through protojson).
func socketOnly(p *authv3.AttributeContext_Peer) bool {
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
	switch port := w.SocketAddress.GetPortSpecifier().(type) {
	case *corev3.SocketAddress_PortValue:
		return port != nil
	case *corev3.SocketAddress_NamedPort:
		return port != nil
	}
	return true
}

// plainPath reports whether url.Parse certainly accepts path, without
// calling it: an absolute path (not "//", which starts an authority) with no
// escapes and no control characters. url.Parse can only fail on those.
func plainPath(path string) bool {
	if len(path) == 0 || path[0] != '/' || (len(path) > 1 && path[1] == '/') {
		return false
	}
	for i := range len(path) {
		if c := path[i]; c == '%' || c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

// bodyToParse mirrors parseBody: whether it would parse (and so could
// refuse) the body, or mark it truncated from Envoy's partial-body header.
func bodyToParse(h *authv3.AttributeContext_HttpRequest) bool {
	if h.GetHeaders()[HeaderPartialBody] == "true" {
		return true
	}
	ctype, ok := h.GetHeaders()["content-type"]
	if !ok || (h.GetBody() == "" && len(h.GetRawBody()) == 0) {
		return false
	}
	return strings.Contains(ctype, "application/json") ||
		strings.Contains(ctype, "application/x-www-form-urlencoded") ||
		strings.Contains(ctype, "multipart/form-data")
}

type keyWriter struct {
	req   *authv3.CheckRequest
	http  *authv3.AttributeContext_HttpRequest
	opts  InputOptions
	ident *requestIdentity
}

// identityPart writes the whole of input.subject, input.verified_claims or
// input.peer (canonical JSON) whatever part of it the policy reads: the
// key is then more specific than needed, never less.
func (k keyWriter) identityPart(dst []byte, part func(*requestIdentity) []byte) []byte {
	if k.ident == nil {
		return projection.AppendUndefined(dst)
	}
	b := part(k.ident)
	if b == nil {
		return projection.AppendUndefined(dst)
	}
	return projection.AppendString(dst, string(b))
}

// path writes what determines the input's value at one projected path.
func (k keyWriter) path(dst []byte, p projection.Path) ([]byte, bool) {
	r := p.Ref
	switch {
	case len(r) == 0:
		return dst, false
	case isKey(r[0], "attributes"):
		return k.attributes(dst, r[1:], p.Kind)
	case isKey(r[0], "parsed_path"), isKey(r[0], "parsed_query"), isKey(r[0], "normalized_path"):
		return projection.AppendString(dst, k.http.GetPath()), true
	case isKey(r[0], "parsed_body"), isKey(r[0], "truncated_body"):
		// wouldBuild let through no body to parse: parsed_body is null and
		// truncated_body false, or both are absent when parsing is off.
		return projection.AppendPresence(dst, k.opts.SkipBodyParse, false), true
	case isKey(r[0], "version"):
		return dst, true // the same for every request
	case isKey(r[0], "source_principal"):
		return appendField(dst, k.req.GetAttributes().GetSource().GetPrincipal(), r[1:], p.Kind), true
	case isKey(r[0], "subject"):
		return k.identityPart(dst, (*requestIdentity).subjectKey), true
	case isKey(r[0], "verified_claims"):
		return k.identityPart(dst, func(id *requestIdentity) []byte { return id.claimsJSON }), true
	case isKey(r[0], "peer"):
		return k.identityPart(dst, (*requestIdentity).peerKey), true
	case isKey(r[0], "mcp"):
		// BuildValue never adds an mcp member: MCP messages are decided
		// at the MCP entrypoint, with an input of their own.
		return projection.AppendUndefined(dst), true
	}
	return dst, false
}

func (k keyWriter) attributes(dst []byte, r ast.Ref, kind projection.Kind) ([]byte, bool) {
	a := k.req.GetAttributes()
	switch {
	case len(r) == 0:
		return dst, false
	case isKey(r[0], "request"):
		if len(r) == 1 {
			return dst, false
		}
		switch {
		case isKey(r[1], "http"):
			return k.httpPath(dst, r[2:], kind)
		case isKey(r[1], "time"):
			t := a.GetRequest().GetTime()
			if t == nil {
				return projection.AppendUndefined(dst), true
			}
			return projection.AppendString(dst, strconv.FormatInt(t.GetSeconds(), 10)+"."+strconv.Itoa(int(t.GetNanos()))), true
		}
	case isKey(r[0], "source"):
		return peerPath(dst, a.GetSource(), r[1:], kind)
	case isKey(r[0], "destination"):
		return peerPath(dst, a.GetDestination(), r[1:], kind)
	case isKey(r[0], "contextExtensions"):
		return appendMap(dst, a.GetContextExtensions(), r[1:], kind), true
	}
	return dst, false
}

func (k keyWriter) httpPath(dst []byte, r ast.Ref, kind projection.Kind) ([]byte, bool) {
	h := k.http
	if len(r) == 0 {
		if kind == projection.Presence {
			return projection.AppendPresence(dst, false, false), true // checkHTTP passed
		}
		return dst, false
	}
	var s string
	switch {
	case isKey(r[0], "headers"):
		return appendMap(dst, h.GetHeaders(), r[1:], kind), true
	case isKey(r[0], "method"):
		s = h.GetMethod()
	case isKey(r[0], "path"):
		s = h.GetPath()
	case isKey(r[0], "host"):
		s = h.GetHost()
	case isKey(r[0], "scheme"):
		s = h.GetScheme()
	case isKey(r[0], "id"):
		s = h.GetId()
	case isKey(r[0], "query"):
		s = h.GetQuery()
	case isKey(r[0], "fragment"):
		s = h.GetFragment()
	case isKey(r[0], "protocol"):
		s = h.GetProtocol()
	case isKey(r[0], "body"):
		s = h.GetBody()
	case isKey(r[0], "size"):
		if n := h.GetSize(); n != 0 {
			s = strconv.FormatInt(n, 10)
		}
	default:
		return dst, false
	}
	return appendField(dst, s, r[1:], kind), true
}

func peerPath(dst []byte, p *authv3.AttributeContext_Peer, r ast.Ref, kind projection.Kind) ([]byte, bool) {
	if len(r) == 0 {
		if p == nil {
			return projection.AppendUndefined(dst), true
		}
		if kind == projection.Presence {
			return projection.AppendPresence(dst, false, false), true
		}
		return dst, false
	}
	switch {
	case isKey(r[0], "principal"):
		return appendField(dst, p.GetPrincipal(), r[1:], kind), true
	case isKey(r[0], "service"):
		return appendField(dst, p.GetService(), r[1:], kind), true
	case isKey(r[0], "certificate"):
		return appendField(dst, p.GetCertificate(), r[1:], kind), true
	case isKey(r[0], "labels"):
		return appendMap(dst, p.GetLabels(), r[1:], kind), true
	case isKey(r[0], "address"):
		return appendAddress(dst, p.GetAddress().GetSocketAddress()), true
	}
	return dst, false
}

// appendAddress writes every field of a socket address, whatever part of
// it the policy reads.
func appendAddress(dst []byte, sa *corev3.SocketAddress) []byte {
	if sa == nil {
		return projection.AppendUndefined(dst)
	}
	dst = projection.AppendString(dst, sa.GetAddress())
	dst = projection.AppendString(dst, sa.GetProtocol().String())
	dst = projection.AppendString(dst, sa.GetResolverName())
	dst = projection.AppendPresence(dst, false, !sa.GetIpv4Compat())
	switch port := sa.GetPortSpecifier().(type) {
	case *corev3.SocketAddress_PortValue:
		return projection.AppendString(dst, "port:"+strconv.FormatUint(uint64(port.PortValue), 10))
	case *corev3.SocketAddress_NamedPort:
		return projection.AppendString(dst, "named:"+port.NamedPort)
	}
	return projection.AppendUndefined(dst)
}

// appendField writes a protojson string field (omitted when empty) read at
// rest below it: a string has no members, so anything below is undefined.
func appendField(dst []byte, s string, rest ast.Ref, kind projection.Kind) []byte {
	switch {
	case s == "" || len(rest) > 0:
		return projection.AppendUndefined(dst)
	case kind == projection.Presence:
		return projection.AppendPresence(dst, false, false)
	}
	return projection.AppendString(dst, s)
}

// appendMap writes a map<string, string> (omitted when empty), one entry of
// it, or the whole map sorted by key.
func appendMap(dst []byte, m map[string]string, rest ast.Ref, kind projection.Kind) []byte {
	if len(rest) > 0 {
		name, ok := rest[0].Value.(ast.String)
		if !ok {
			return projection.AppendUndefined(dst) // a number never names a map entry
		}
		// protojson writes a map entry even when its value is "".
		v, found := m[string(name)]
		switch {
		case !found || len(rest) > 1:
			return projection.AppendUndefined(dst)
		case kind == projection.Presence:
			return projection.AppendPresence(dst, false, false)
		}
		return projection.AppendString(dst, v)
	}
	if len(m) == 0 {
		return projection.AppendUndefined(dst)
	}
	if kind == projection.Presence {
		return projection.AppendPresence(dst, false, false)
	}
	keys := make([]string, 0, len(m))
	for name := range m {
		keys = append(keys, name)
	}
	slices.Sort(keys)
	dst = projection.AppendString(dst, strconv.Itoa(len(keys)))
	for _, name := range keys {
		dst = projection.AppendString(dst, name)
		dst = projection.AppendString(dst, m[name])
	}
	return dst
}

func isKey(t *ast.Term, name string) bool {
	s, ok := t.Value.(ast.String)
	return ok && string(s) == name
}
