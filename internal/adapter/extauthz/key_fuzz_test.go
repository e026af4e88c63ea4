package extauthz

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/open-policy-agent/opa/v1/ast"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/verdictpdp/verdict/internal/engine/enginetest"
	"github.com/verdictpdp/verdict/internal/guard"
	"github.com/verdictpdp/verdict/internal/identity"
	"github.com/verdictpdp/verdict/internal/mcp"
	"github.com/verdictpdp/verdict/internal/projection"
)

// fuzzKeyPolicies read, between them, every part of the input the fast key
// writes, whole, in part and as conditions.
var fuzzKeyPolicies = []string{
	keyPolicies["rbac"], keyPolicies["wide"], keyPolicies["presence"],
	`package envoy.authz
allow if {
	input.parsed_path[0] == "api"
	input.parsed_path[1] != "admin"
	input.parsed_query.limit[0] == "5"
	input.normalized_path != "/x"
	input.attributes.request.http.headers["content-type"] == "text/plain"
}`,
	`package envoy.authz
allow if {
	input.subject.id == "alice"
	input.subject.roles[0] == "x"
	input.subject.error.code == "token_expired"
	input.verified_claims.tenant == "acme"
	input.verified_claims.n > 1
	input.peer.dns_names[0] == "gw-a.example"
	input.peer.spiffe_id
	input.attributes.request.http.body == "x"
	input.attributes.request.http.rawBody
	input.attributes.request.http.query
	input.attributes.request.http.fragment
	input.attributes.source.address.socketAddress.namedPort
	input.attributes.source.service
	input.attributes.destination.principal
	input.attributes.metadataContext
	input.attributes.request.http.headerMap
}`,
	`package envoy.authz
allow if {
	input.attributes.source == {"principal": "a"}
	input.attributes.destination.address == {}
	input.attributes.request.http.headers == {}
	input.attributes.contextExtensions == {}
	input.parsed_query == {}
	input.version == {}
	input.subject == {}
	input.peer == {}
	input.verified_claims == {}
}`,
	`package envoy.authz
allow if input.attributes == {}
allow if input.attributes.request == {}
allow if count(input.attributes.request.http) > 3`,
	// Members one by one, none through an alias of its parent, so the
	// pruned input takes every object it builds apart.
	`package envoy.authz
allow if {
	input.attributes.request.http.method == "GET"
	input.attributes.request.http.path != "/admin"
	input.attributes.request.http.host
	input.attributes.request.http.headers["x-roles"] != ""
	input.attributes.request.http.headers[":authority"]
	input.attributes.request.http.headers["content-type"]
	input.attributes.request.http.headers.missing
	input.attributes.request.time
	input.attributes.source.principal
	input.attributes.destination.labels.app
	input.attributes.contextExtensions.mcp_server
	input.source_principal
	input.truncated_body == false
	input.parsed_body.a
	input.subject.id
}`,
}

// oddRefs are paths no sensible policy reads but any policy may: a number
// naming a map entry, a string indexing an array, a member of a string,
// the mcp member BuildValue never writes.
var oddRefs = []string{
	`input.attributes.request.http.headers[0]`, `input.parsed_path["0"]`, `input.parsed_path[-1]`,
	`input.parsed_path[100]`, `input.attributes.request.http.method.x`, `input.attributes.request.http.size`,
	`input.attributes.tlsSession`, `input.attributes.source.address.socketAddress.portValue`,
	`input.attributes.source.address.socketAddress.protocol`, `input.attributes.source.labels.app`,
	`input.attributes.request.time`, `input.attributes.request.time.x`, `input.version.ext_authz`,
	`input.parsed_body`, `input.parsed_body.a`, `input.truncated_body`, `input.source_principal`,
	`input.subject.claims`, `input.subject.scopes[0]`, `input.verified_claims.list[1]`, `input.peer.dns_names[1]`,
	`input.peer.verified`, `input.mcp`, `input.mcp.method`, `input.parsed_query.limit`,
	`input.attributes[0]`, `input.attributes.request.http.headers.authorization.x`, `input.normalized_path`,
}

// fuzzKeyProjections are the projections of fuzzKeyPolicies, each also
// with every path read for its type only (the analysis may yield Type
// reads anywhere), and oddRefs under each kind.
func fuzzKeyProjections(t testing.TB) []*projection.Projection {
	t.Helper()
	var out []*projection.Projection
	for _, src := range fuzzKeyPolicies {
		p := analyzeKeyPolicy(t, src)
		typed := &projection.Projection{Paths: slices.Clone(p.Paths)}
		for i := range typed.Paths {
			typed.Paths[i].Kind = projection.Type
		}
		out = append(out, p, typed)
	}
	for _, kind := range []projection.Kind{projection.Full, projection.Presence, projection.Type} {
		p := &projection.Projection{}
		for _, r := range oddRefs {
			p.Paths = append(p.Paths, projection.Path{Ref: ast.MustParseRef(r)[1:], Kind: kind})
		}
		out = append(out, p)
	}
	return out
}

// checkEnvoyKey asserts the fast key's contract on one request: when it
// writes a key, the input builds and the key is the bytes
// Projection.AppendKey writes for it; when the input does not build, it
// writes none. The pruned input is held to the same (enginetest.CheckPruned).
func checkEnvoyKey(t testing.TB, req *authv3.CheckRequest, opts InputOptions, ident *requestIdentity, ps []*projection.Projection) {
	t.Helper()
	if path := req.GetAttributes().GetRequest().GetHttp().GetPath(); plainPath(path) {
		if _, _, err := splitPathAndQuery(path); err != nil {
			t.Fatalf("plainPath(%q), but splitPathAndQuery refuses it: %v", path, err)
		}
	}
	v, err := (&envoyInput{req: req, opts: opts, ident: ident}).Value()
	for _, p := range ps {
		fast, ok := (&envoyInput{req: req, opts: opts, ident: ident}).AppendKey(nil, p)
		switch {
		case !ok:
		case err != nil:
			t.Fatalf("fast key written for a request the builder refuses (%v); paths %v", err, p.Strings())
		case !bytes.Equal(fast, p.AppendKey(nil, v)):
			t.Fatalf("paths %v:\nfast key  %q\nbuilt key %q", p.Strings(), fast, p.AppendKey(nil, v))
		}
		enginetest.CheckPruned(t, &envoyInput{req: req, opts: opts, ident: ident}, p, v, err)
	}
}

// Bits of FuzzEnvoyKey's flags.
const (
	fSkipBody = 1 << iota
	fVerifying
	fAuthenticated
	fPeer
	fTime
	fDestination
	fShortPaths // PathLimits.MaxBytes 64: normalization may refuse what the path check accepts
	fMetadata
	fNamedPort
	fSize
	fNoSource
	fSourceLabels
	fQuery
)

// envoyKeyArgs are FuzzEnvoyKey's arguments.
type envoyKeyArgs struct {
	path, method, headers, body string
	rawBody                     []byte
	ext, principal              string
	sec                         int64
	nanos                       int32
	flags                       uint16
	subject, claims, dns, ref   string
}

// fuzzRequest builds the request, options and identity the arguments
// describe. headers and ext are "name: value" and "name=value" lines;
// subject is "id,role,role"; dns is comma-separated.
func (a envoyKeyArgs) request() (*authv3.CheckRequest, InputOptions, *requestIdentity) {
	headers := lines(a.headers, ": ")
	h := &authv3.AttributeContext_HttpRequest{
		Id: "1", Method: a.method, Path: a.path, Host: headers[":authority"], Scheme: "http", Protocol: "HTTP/1.1",
		Headers: headers, Body: a.body, RawBody: a.rawBody,
	}
	if a.flags&fSize != 0 {
		h.Size = int64(len(a.body))
	}
	if a.flags&fQuery != 0 {
		if _, q, ok := strings.Cut(a.path, "?"); ok {
			h.Query = q
		}
	}
	ext := lines(a.ext, "=")
	sa := &corev3.SocketAddress{Address: "10.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(a.sec)}}
	if a.flags&fNamedPort != 0 {
		sa.PortSpecifier = &corev3.SocketAddress_NamedPort{NamedPort: a.principal}
	}
	attrs := &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{
			Principal: a.principal, Service: a.method,
			Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: sa}},
		},
		Request:           &authv3.AttributeContext_Request{Http: h},
		ContextExtensions: ext,
	}
	if a.flags&fSourceLabels != 0 {
		attrs.Source.Labels = ext
	}
	if a.flags&fNoSource != 0 {
		attrs.Source = nil
	}
	if a.flags&fDestination != 0 {
		attrs.Destination = &authv3.AttributeContext_Peer{Principal: a.subject, Labels: ext}
	}
	if a.flags&fTime != 0 {
		attrs.Request.Time = &timestamppb.Timestamp{Seconds: a.sec, Nanos: a.nanos}
	}
	if a.flags&fMetadata != 0 {
		attrs.MetadataContext = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
			"x": {Fields: map[string]*structpb.Value{"a": structpb.NewStringValue(a.subject)}},
		}}
	}
	opts := InputOptions{SkipBodyParse: a.flags&fSkipBody != 0, MaxBodyBytes: 1 << 16}
	if a.flags&fShortPaths != 0 {
		opts.Path = guard.PathLimits{MaxBytes: 64}
	}
	return &authv3.CheckRequest{Attributes: attrs}, opts, a.identity()
}

func (a envoyKeyArgs) identity() *requestIdentity {
	if a.flags&(fVerifying|fPeer) == 0 {
		return nil
	}
	id := &requestIdentity{verifying: a.flags&fVerifying != 0}
	parts := strings.Split(a.subject, ",")
	switch {
	case !id.verifying:
	case a.flags&fAuthenticated != 0:
		id.subject = mcp.Subject{
			ID: parts[0], Roles: parts[1:], Scopes: parts[1:], Tenant: "acme",
			Claims: decodeClaims(a.claims), Authenticated: true, Source: mcp.SourceToken,
		}
	default:
		id.subject = mcp.Subject{Source: mcp.SourceToken, AuthError: &mcp.AuthError{Code: "token_expired", Message: a.subject}}
	}
	if a.flags&fPeer != 0 {
		id.peer = identity.Peer{Verified: true, SpiffeID: "spiffe://" + parts[0], Subject: "CN=" + parts[0]}
		if a.dns != "" {
			id.peer.DNSNames = strings.Split(a.dns, ",")
		}
	}
	return id
}

// decodeClaims decodes claims as the token verifier does (json.Number
// numbers); text that is not a JSON object becomes one claim.
func decodeClaims(s string) map[string]any {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var m map[string]any
	if dec.Decode(&m) != nil || m == nil {
		return map[string]any{"raw": s}
	}
	return m
}

func lines(s, sep string) map[string]string {
	if s == "" {
		return nil
	}
	m := map[string]string{}
	for line := range strings.SplitSeq(s, "\n") {
		k, v, _ := strings.Cut(line, sep)
		m[k] = v
	}
	return m
}

// seedArgs describes a corpus request as FuzzEnvoyKey's arguments.
func seedArgs(req *authv3.CheckRequest) envoyKeyArgs {
	a := req.GetAttributes()
	h := a.GetRequest().GetHttp()
	var hdrs, ext []string
	for _, k := range slices.Sorted(maps.Keys(h.GetHeaders())) {
		hdrs = append(hdrs, k+": "+h.GetHeaders()[k])
	}
	for _, k := range slices.Sorted(maps.Keys(a.GetContextExtensions())) {
		ext = append(ext, k+"="+a.GetContextExtensions()[k])
	}
	args := envoyKeyArgs{
		path: h.GetPath(), method: h.GetMethod(), headers: strings.Join(hdrs, "\n"), body: h.GetBody(), rawBody: h.GetRawBody(),
		ext: strings.Join(ext, "\n"), principal: a.GetSource().GetPrincipal(),
	}
	if t := a.GetRequest().GetTime(); t != nil {
		args.flags |= fTime
		args.sec, args.nanos = t.GetSeconds(), t.GetNanos()
	}
	if a.GetMetadataContext() != nil {
		args.flags |= fMetadata
	}
	if a.GetSource() == nil {
		args.flags |= fNoSource
	}
	return args
}

// envoyKeySeeds are the bypasses and edges the fuzzer should start from.
var envoyKeySeeds = []envoyKeyArgs{
	// The path check accepts it; normalization turns each "\" into %5C and
	// refuses the result as too long (414). The fast key once skipped it.
	{path: "/" + strings.Repeat(`\`, 30), method: "GET", headers: "x-roles: reader", flags: fShortPaths},
	{path: "/api/%2e%2e/admin;x=1//b?limit=5&limit=6", method: "GET", headers: "x-roles: reader\n:authority: h", flags: fQuery},
	{path: "//evil.example/api", method: "GET"},
	{path: "/api/" + strings.Repeat("a", 100), method: "GET", flags: fShortPaths},
	{path: "/api/items?limit=5", method: "POST", headers: "content-type: application/json", body: `{"a":[1,2.5,1e400]}`},
	{path: "/api/items", method: "POST", headers: "content-type: application/json", body: `{"a":`},
	{path: "/api/items", method: "POST", headers: "content-type: text/plain", body: "hello", flags: fSize},
	{path: "/api/items", method: "POST", headers: "content-type: application/x-www-form-urlencoded", rawBody: []byte("a=1&b=%zz")},
	{path: "/x", method: "GET", headers: "x-note: caf\xc3", flags: fTime, sec: 1, nanos: 5},
	{path: "/x", method: "GET", flags: fTime, sec: 1, nanos: -1},
	{path: "/x", method: "GET", ext: "mcp_server=crm\nregion=eu", principal: "spiffe://a", flags: fDestination | fSourceLabels | fNamedPort},
	{path: "/x", method: "GET", flags: fVerifying | fAuthenticated | fPeer, subject: "alice,x", claims: `{"tenant":"acme","n":2,"list":[1,"b"]}`, dns: "gw-a.example,gw-b.example"},
	{path: "/x", method: "GET", flags: fVerifying | fAuthenticated, subject: "alice", claims: `{"n":1e999999999}`},
	{path: "/x", method: "GET", flags: fVerifying, subject: "expired"},
	{path: "/x", method: "GET", flags: fPeer, dns: "gw-b.example"},
	{path: "/api/items?x=1", method: "GET", headers: "x-roles: r\n:authority: h\ncontent-type: a", ext: "mcp_server=crm\napp=web",
		principal: "spiffe://a", flags: fTime | fDestination | fSourceLabels | fVerifying | fAuthenticated, sec: 1700000000, nanos: 5000, subject: "alice,x"},
	{path: "/api/items", method: "GET", ref: `parsed_path[1]`},
	{path: "/api/items", method: "GET", ref: `attributes.request.http.headers["x-roles"].y`},
}

// FuzzEnvoyKey holds the ext_authz fast key to the key of the input
// BuildValue builds (identity included), on requests built from fuzz bytes
// and read by the projections of policies that read every part of the
// input, plus a path the fuzzer picks (ref, under each kind).
func FuzzEnvoyKey(f *testing.F) {
	for _, a := range envoyKeySeeds {
		f.Add(a.path, a.method, a.headers, a.body, a.rawBody, a.ext, a.principal, a.sec, a.nanos, a.flags, a.subject, a.claims, a.dns, a.ref)
	}
	for _, wire := range seedRequestsFrom(f, "../../../testdata/extauthz/*.yaml", "../../../testdata/hostile/envoy.yaml") {
		var req authv3.CheckRequest
		if proto.Unmarshal(wire, &req) != nil {
			continue
		}
		a := seedArgs(&req)
		f.Add(a.path, a.method, a.headers, a.body, a.rawBody, a.ext, a.principal, a.sec, a.nanos, a.flags, a.subject, a.claims, a.dns, a.ref)
	}
	ps := fuzzKeyProjections(f)
	f.Fuzz(func(t *testing.T, path, method, headers, body string, rawBody []byte, ext, principal string,
		sec int64, nanos int32, flags uint16, subject, claims, dns, ref string,
	) {
		a := envoyKeyArgs{path, method, headers, body, rawBody, ext, principal, sec, nanos, flags, subject, claims, dns, ref}
		req, opts, ident := a.request()
		all := ps
		if r, err := ast.ParseRef("input." + ref); err == nil && r.IsGround() && len(r) > 1 {
			for _, kind := range []projection.Kind{projection.Full, projection.Presence, projection.Type} {
				all = append(all[:len(all):len(all)], &projection.Projection{Paths: []projection.Path{{Ref: r[1:], Kind: kind}}})
			}
		}
		checkEnvoyKey(t, req, opts, ident, all)
	})
}
