package extauthz

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"sync"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/open-policy-agent/opa/v1/ast"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// sameInput reports how BuildValue disagrees with BuildInput, the reference,
// on req: success against failure, the kind of failure, or the value.
func sameInput(req *authv3.CheckRequest, opts InputOptions) error {
	want, wantErr := BuildInput(req, opts)
	got, gotErr := BuildValue(req, opts)
	if wantErr != nil {
		var we, ge *InputError
		if !errors.As(wantErr, &we) {
			return fmt.Errorf("BuildInput error is not an *InputError: %w", wantErr)
		}
		if !errors.As(gotErr, &ge) {
			return fmt.Errorf("BuildInput failed (%w), BuildValue gave %w", wantErr, gotErr)
		}
		if we.HTTPStatus != ge.HTTPStatus || we.Reason != ge.Reason {
			return fmt.Errorf("BuildInput failed with %v %q (%w), BuildValue with %v %q (%w)",
				we.HTTPStatus, we.Reason, wantErr, ge.HTTPStatus, ge.Reason, gotErr)
		}
		return nil
	}
	if gotErr != nil {
		return fmt.Errorf("BuildInput succeeded, BuildValue failed: %w", gotErr)
	}
	wantVal, err := ast.InterfaceToValue(want)
	if err != nil {
		return fmt.Errorf("BuildInput result is not a Rego value: %w", err)
	}
	if ast.Compare(got.Value, wantVal) != 0 || !ast.NewTerm(got.Value).Equal(ast.NewTerm(wantVal)) || got.Value.Hash() != wantVal.Hash() {
		wj, _ := ast.JSON(wantVal)
		gj, _ := ast.JSON(got.Value)
		return fmt.Errorf("value differs (-BuildInput +BuildValue):\n%s", cmp.Diff(wj, gj))
	}
	if !reflect.DeepEqual(got.ParsedBody, want["parsed_body"]) {
		return fmt.Errorf("ParsedBody = %#v, BuildInput has %#v", got.ParsedBody, want["parsed_body"])
	}
	return nil
}

func httpRequest(h *authv3.AttributeContext_HttpRequest) *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: h},
	}}
}

// withAttrs is a GET / request carrying the attributes a sets.
func withAttrs(a *authv3.AttributeContext) *authv3.CheckRequest {
	if a.Request == nil {
		a.Request = &authv3.AttributeContext_Request{}
	}
	if a.Request.Http == nil {
		a.Request.Http = &authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/"}
	}
	return &authv3.CheckRequest{Attributes: a}
}

func at(sec int64, nanos int32) *authv3.CheckRequest {
	return withAttrs(&authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Time: &timestamppb.Timestamp{Seconds: sec, Nanos: nanos},
	}})
}

func body(ctype, b string, extra ...string) *authv3.CheckRequest {
	h := map[string]string{"content-type": ctype}
	for i := 0; i+1 < len(extra); i += 2 {
		h[extra[i]] = extra[i+1]
	}
	return httpRequest(&authv3.AttributeContext_HttpRequest{Method: "POST", Path: "/submit", Headers: h, Body: b})
}

func socketPeer(sa *corev3.SocketAddress) *authv3.AttributeContext_Peer {
	return &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: sa}}}
}

func mustAny(t testing.TB, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func mustStruct(t testing.TB, m map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func withUnknownField(m proto.Message) proto.Message {
	r := m.ProtoReflect()
	r.SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 999, protowire.VarintType), 42))
	return m
}

const multipartBody = "--XyZ\r\nContent-Disposition: form-data; name=\"meta\"\r\nContent-Type: application/json\r\n\r\n" +
	`{"n":1.50,"big":12345678901234567890}` + "\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\r\nhello\r\n" +
	"--XyZ\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nagain\r\n--XyZ--\r\n"

// manyTerms outgrows the builder's first block of terms.
func manyTerms() *authv3.CheckRequest {
	req := withAttrs(&authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Labels: map[string]string{}}, ContextExtensions: map[string]string{},
	})
	var q strings.Builder
	for i := range 100 {
		fmt.Fprintf(&q, "&q%d=%d&q%d=x", i, i, i)
		req.Attributes.Source.Labels[fmt.Sprint("l", i)] = fmt.Sprint(i)
		req.Attributes.ContextExtensions[fmt.Sprint("e", i)] = fmt.Sprint(i)
	}
	req.Attributes.Request.Http.Path = "/" + strings.Repeat("seg/", 100) + "?" + q.String()
	return req
}

func buildValueCases(t testing.TB) map[string]*authv3.CheckRequest {
	t.Helper()
	// full sets every field and passes the guards, so that both builders
	// encode all of them; refusedFull breaks the guards on top.
	full := &authv3.AttributeContext_HttpRequest{
		Id: "req-1", Method: "POST", Path: "//api/v1/caf%C3%A9/a%3Fb;v=1?x=1&x=2&empty=&sp=a+b&bad=%zz&%41=%42",
		Host: "api.example.com", Scheme: "https", Query: "x=1&x=2", Fragment: "frag", Size: 123, Protocol: "HTTP/2",
		Headers: map[string]string{":authority": "api.example.com", "content-type": "text/plain", "x-empty": "", "x-unicode": "värde\u2028"},
		Body:    "hello",
	}
	refusedFull := proto.CloneOf(full)
	refusedFull.Path += "#frag"
	refusedFull.Headers["x-ünïcode"] = "värde\u2028\x00"
	sa := func(m func(*corev3.SocketAddress)) *corev3.SocketAddress {
		s := &corev3.SocketAddress{Address: "10.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 8080}}
		m(s)
		return s
	}
	return map[string]*authv3.CheckRequest{
		"nil request":               nil,
		"no attributes":             {},
		"no http":                   {Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{}}},
		"empty http":                httpRequest(&authv3.AttributeContext_HttpRequest{}),
		"minimal":                   httpRequest(&authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/"}),
		"every http field":          httpRequest(full),
		"every http field refused":  httpRequest(refusedFull),
		"negative size":             httpRequest(&authv3.AttributeContext_HttpRequest{Path: "/", Size: -1}),
		"huge size":                 httpRequest(&authv3.AttributeContext_HttpRequest{Path: "/", Size: math.MaxInt64}),
		"raw body non-UTF-8":        httpRequest(&authv3.AttributeContext_HttpRequest{Path: "/", RawBody: []byte{0xff, 0xfe, 0, 'a', 0x80}}),
		"raw body padding":          httpRequest(&authv3.AttributeContext_HttpRequest{Path: "/", RawBody: []byte("ab")}),
		"raw body JSON invalid":     {Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{Path: "/", Headers: map[string]string{"content-type": "application/json"}, RawBody: []byte{'"', 0xff, '"'}}}}},
		"raw body JSON":             {Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{Path: "/", Headers: map[string]string{"content-type": "application/json"}, RawBody: []byte(`{"a":[1,2.50,1e400]}`)}}}},
		"time epoch":                withAttrs(&authv3.AttributeContext{Request: &authv3.AttributeContext_Request{Time: &timestamppb.Timestamp{}}}),
		"time 0 digits":             at(1700000000, 0),
		"time 3 digits":             at(1700000000, 120_000_000),
		"time 6 digits":             at(1700000000, 1_500_000),
		"time 6 digits micro":       at(1700000000, 1_000),
		"time 9 digits":             at(1700000000, 123_456_789),
		"time 9 digits one":         at(-1, 1),
		"time min":                  at(-62135596800, 0),
		"time max":                  at(253402300799, 999_999_999),
		"time seconds too big":      at(253402300800, 0),
		"time seconds too small":    at(-62135596801, 0),
		"time nanos negative":       at(0, -1),
		"time nanos too big":        at(0, 1_000_000_000),
		"JSON body":                 body("application/json; charset=utf-8", `{"name":"x","n":[1,2.5,-0,1E3],"ok":true,"z":null}  `),
		"JSON body invalid":         body("application/json", `{"a":`),
		"JSON body trailing":        body("application/json", `{} {}`),
		"form body":                 body("application/x-www-form-urlencoded", "a=1&a=2&b=%20x+y&c"),
		"form body invalid":         body("application/x-www-form-urlencoded", "a=%zz"),
		"multipart body":            body("multipart/form-data; boundary=XyZ", multipartBody),
		"multipart no boundary":     body("multipart/form-data", multipartBody),
		"multipart bad JSON":        body("multipart/form-data; boundary=XyZ", strings.Replace(multipartBody, `"big"`, `big`, 1)),
		"multipart bad ctype":       body("multipart/form-data; boundary=", multipartBody),
		"truncated body":            body("application/json", `{"a":`, "content-length", "100"),
		"content-length -1":         body("application/json", `{"a":1}`, "content-length", "-1"),
		"content-length bad":        body("application/json", `{}`, "content-length", "ten"),
		"grpc body not parsed":      body("application/grpc", "\x00\x00"),
		"oversized body":            body("application/json", strings.Repeat(" ", DefaultMaxBodyBytes+1)),
		"oversized body plus raw":   {Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{Body: strings.Repeat("a", DefaultMaxBodyBytes), RawBody: []byte("b")}}}},
		"bad path escape":           httpRequest(&authv3.AttributeContext_HttpRequest{Path: "/a%zz"}),
		"bad path control":          httpRequest(&authv3.AttributeContext_HttpRequest{Path: "/a\x7f"}),
		"path decodes to non-UTF-8": httpRequest(&authv3.AttributeContext_HttpRequest{Path: "/%ff/%c3?%ff=%fe&k=%e2%82"}),
		"empty path":                httpRequest(&authv3.AttributeContext_HttpRequest{Path: ""}),
		"many terms":                manyTerms(),
		"query repeated keys":       httpRequest(&authv3.AttributeContext_HttpRequest{Path: "//a//b/?k=1&k=2&k&%6B=3&j=%E2%82%AC;x=y"}),
		"authority-like path":       httpRequest(&authv3.AttributeContext_HttpRequest{Path: "//public/x?a=1"}),
		"authority with port":       httpRequest(&authv3.AttributeContext_HttpRequest{Path: "//host:bad/x"}),
		"path tricks":               httpRequest(&authv3.AttributeContext_HttpRequest{Path: "/docs/..;/admin"}),
		"encoded slash":             httpRequest(&authv3.AttributeContext_HttpRequest{Path: "/docs/..%2Fadmin"}),
		"backslash":                 httpRequest(&authv3.AttributeContext_HttpRequest{Path: `/docs/..\admin`}),
		"JSON body duplicate":       body("application/json", `{"action":"write","action":"read"}`),
		"JSON body duplicate deep":  body("application/json", `{"a":[{"b":1,"\u0062":2}]}`),
		"multipart JSON duplicate":  body("multipart/form-data; boundary=XyZ", strings.Replace(multipartBody, `"big"`, `"n"`, 1)),
		"partial body header":       body("application/json", `{"a":`, HeaderPartialBody, "true"),
		"partial body header false": body("application/json", `{"a":1}`, HeaderPartialBody, "false"),
		"partial body no type":      httpRequest(&authv3.AttributeContext_HttpRequest{Path: "/", Headers: map[string]string{HeaderPartialBody: "true"}}),
		"partial body bad length":   body("application/json", `{}`, HeaderPartialBody, "true", "content-length", "ten"),
		"peers": withAttrs(&authv3.AttributeContext{
			Source: &authv3.AttributeContext_Peer{
				Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: sa(func(*corev3.SocketAddress) {})}},
				Service: "frontend", Labels: map[string]string{"app": "web", "empty": ""},
				Principal: "spiffe://cluster.local/ns/default/sa/frontend", Certificate: "-----BEGIN CERTIFICATE-----\n...",
			},
			Destination: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Protocol: corev3.SocketAddress_UDP, Address: "::1", PortSpecifier: &corev3.SocketAddress_NamedPort{NamedPort: "dns"},
				ResolverName: "custom", Ipv4Compat: true,
			}}}},
		}),
		"empty peers":      withAttrs(&authv3.AttributeContext{Source: &authv3.AttributeContext_Peer{}, Destination: &authv3.AttributeContext_Peer{Address: &corev3.Address{}}}),
		"port value zero":  withAttrs(&authv3.AttributeContext{Source: socketPeer(sa(func(s *corev3.SocketAddress) { s.PortSpecifier = &corev3.SocketAddress_PortValue{} }))}),
		"named port empty": withAttrs(&authv3.AttributeContext{Source: socketPeer(sa(func(s *corev3.SocketAddress) { s.PortSpecifier = &corev3.SocketAddress_NamedPort{} }))}),
		"nil port wrapper": withAttrs(&authv3.AttributeContext{Source: socketPeer(sa(func(s *corev3.SocketAddress) { s.PortSpecifier = (*corev3.SocketAddress_PortValue)(nil) }))}),
		"max port": withAttrs(&authv3.AttributeContext{Source: socketPeer(sa(func(s *corev3.SocketAddress) {
			s.PortSpecifier = &corev3.SocketAddress_PortValue{PortValue: math.MaxUint32}
		}))}),
		"no port empty address": withAttrs(&authv3.AttributeContext{Source: socketPeer(&corev3.SocketAddress{})}),
		"unknown protocol":      withAttrs(&authv3.AttributeContext{Source: socketPeer(sa(func(s *corev3.SocketAddress) { s.Protocol = 7 }))}),
		"negative protocol":     withAttrs(&authv3.AttributeContext{Source: socketPeer(sa(func(s *corev3.SocketAddress) { s.Protocol = -3 }))}),
		"network namespace":     withAttrs(&authv3.AttributeContext{Source: socketPeer(sa(func(s *corev3.SocketAddress) { s.NetworkNamespaceFilepath = "/run/netns/a" }))}),
		"named port bad UTF-8":  withAttrs(&authv3.AttributeContext{Source: socketPeer(sa(func(s *corev3.SocketAddress) { s.PortSpecifier = &corev3.SocketAddress_NamedPort{NamedPort: "\xff"} }))}),
		"address bad UTF-8":     withAttrs(&authv3.AttributeContext{Source: socketPeer(sa(func(s *corev3.SocketAddress) { s.Address = "\xc3" }))}),
		"nil socket address":    withAttrs(&authv3.AttributeContext{Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{}}}}),
		"pipe address": withAttrs(&authv3.AttributeContext{
			Source:      &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_Pipe{Pipe: &corev3.Pipe{Path: "/var/run/envoy.sock", Mode: 0o644}}}},
			Destination: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_EnvoyInternalAddress{EnvoyInternalAddress: &corev3.EnvoyInternalAddress{EndpointId: "e1", AddressNameSpecifier: &corev3.EnvoyInternalAddress_ServerListenerName{ServerListenerName: "l"}}}}},
		}),
		"context extensions": withAttrs(&authv3.AttributeContext{ContextExtensions: map[string]string{"virtual_host": "vh", "": "empty key"}}),
		"metadata": withAttrs(&authv3.AttributeContext{
			MetadataContext: &corev3.Metadata{
				FilterMetadata: map[string]*structpb.Struct{"envoy.filters.http.jwt_authn": mustStruct(t, map[string]any{
					"payload": map[string]any{"sub": "alice", "exp": 1.7e9, "big": 1e21, "tiny": 5e-324, "neg": -0.5, "roles": []any{"a", nil, true}},
				})},
				TypedFilterMetadata: map[string]*anypb.Any{
					"str":    mustAny(t, wrapperspb.String("v")),
					"i64":    mustAny(t, wrapperspb.Int64(-5)),
					"struct": mustAny(t, mustStruct(t, map[string]any{"k": 1})),
					"time":   mustAny(t, &timestamppb.Timestamp{Seconds: 1700000000, Nanos: 5000}),
				},
			},
			RouteMetadataContext: &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"route": mustStruct(t, map[string]any{"tier": "gold"})}},
		}),
		"empty metadata":          withAttrs(&authv3.AttributeContext{MetadataContext: &corev3.Metadata{}, RouteMetadataContext: &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"x": nil}}}),
		"metadata unknown Any":    withAttrs(&authv3.AttributeContext{MetadataContext: &corev3.Metadata{TypedFilterMetadata: map[string]*anypb.Any{"x": {TypeUrl: "type.googleapis.com/no.such.Type", Value: []byte{8, 1}}}}}),
		"metadata NaN":            withAttrs(&authv3.AttributeContext{MetadataContext: &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"x": {Fields: map[string]*structpb.Value{"n": structpb.NewNumberValue(math.NaN())}}}}}),
		"metadata bad UTF-8 key":  withAttrs(&authv3.AttributeContext{MetadataContext: &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"\xff": {}}}}),
		"tls session":             withAttrs(&authv3.AttributeContext{TlsSession: &authv3.AttributeContext_TLSSession{Sni: "api.example.com"}}),
		"empty tls session":       withAttrs(&authv3.AttributeContext{TlsSession: &authv3.AttributeContext_TLSSession{}}),
		"header map":              httpRequest(&authv3.AttributeContext_HttpRequest{Path: "/", HeaderMap: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{{Key: "a", Value: "1"}, {Key: "a", RawValue: []byte{0xff}}, {}}}}),
		"empty header map":        httpRequest(&authv3.AttributeContext_HttpRequest{Path: "/", HeaderMap: &corev3.HeaderMap{}}),
		"header key bad UTF-8":    httpRequest(&authv3.AttributeContext_HttpRequest{Path: "/", Headers: map[string]string{"x-\xff": "v"}}),
		"header value bad UTF-8":  httpRequest(&authv3.AttributeContext_HttpRequest{Path: "/", Headers: map[string]string{"x": "\xfe"}}),
		"method bad UTF-8":        httpRequest(&authv3.AttributeContext_HttpRequest{Path: "/", Method: "G\xffT"}),
		"body bad UTF-8":          httpRequest(&authv3.AttributeContext_HttpRequest{Path: "/", Body: "\xff"}),
		"path bad UTF-8":          httpRequest(&authv3.AttributeContext_HttpRequest{Path: "/\xff"}),
		"label bad UTF-8":         withAttrs(&authv3.AttributeContext{Destination: &authv3.AttributeContext_Peer{Labels: map[string]string{"k": "\xff"}}}),
		"principal bad UTF-8":     withAttrs(&authv3.AttributeContext{Source: &authv3.AttributeContext_Peer{Principal: "\xff"}}),
		"extension key bad UTF-8": withAttrs(&authv3.AttributeContext{ContextExtensions: map[string]string{"\xff": "v"}}),
		"bad UTF-8 and bad time":  withAttrs(&authv3.AttributeContext{Source: &authv3.AttributeContext_Peer{Service: "\xff"}, Request: &authv3.AttributeContext_Request{Time: &timestamppb.Timestamp{Nanos: -1}}}),
		"bad UTF-8 and bad path":  httpRequest(&authv3.AttributeContext_HttpRequest{Path: "/%zz", Host: "\xff"}),
		"unknown fields": withAttrs(&authv3.AttributeContext{
			Source:  withUnknownField(&authv3.AttributeContext_Peer{Service: "s"}).(*authv3.AttributeContext_Peer),
			Request: withUnknownField(&authv3.AttributeContext_Request{Http: withUnknownField(&authv3.AttributeContext_HttpRequest{Path: "/"}).(*authv3.AttributeContext_HttpRequest)}).(*authv3.AttributeContext_Request),
		}),
	}
}

func TestBuildValueMatchesBuildInput(t *testing.T) {
	cases := buildValueCases(t)
	for _, mode := range []struct {
		name      string
		handBuilt bool
	}{{"hand-built", true}, {"protojson fallback", false}} {
		t.Run(mode.name, func(t *testing.T) {
			defer func(prev bool) { handBuilt = prev }(handBuilt)
			handBuilt = mode.handBuilt
			for name, req := range cases {
				for _, opts := range []InputOptions{{}, {SkipBodyParse: true}, {MaxBodyBytes: 16}, {AllowDuplicateKeys: true}} {
					if err := sameInput(req, opts); err != nil {
						t.Errorf("%s %+v: %v", name, opts, err)
					}
				}
			}
		})
	}
}

func TestBuildValueMatchesCorpus(t *testing.T) {
	for i, wire := range seedRequests(t) {
		var req authv3.CheckRequest
		if err := proto.Unmarshal(wire, &req); err != nil {
			t.Fatal(err)
		}
		for _, opts := range []InputOptions{{}, {SkipBodyParse: true}, {AllowDuplicateKeys: true}} {
			if err := sameInput(&req, opts); err != nil {
				t.Errorf("corpus request %d %+v: %v", i, opts, err)
			}
		}
	}
}

// TestHandBuiltLayout fails when go-control-plane adds a field to a message
// BuildValue writes by hand: BuildValue then stays correct through protojson
// but loses its speed until the new field is handled.
func TestHandBuiltLayout(t *testing.T) {
	if !handBuilt {
		t.Fatal("the CheckRequest messages have fields BuildValue does not write by hand; update astinput.go")
	}
	if hasFields(&authv3.AttributeContext_Request{}, "time") || hasFields(&authv3.AttributeContext_Request{}, "time", "htp") {
		t.Error("hasFields accepts a field list that does not match the message")
	}
}

func TestBuildValueTimestampFormat(t *testing.T) {
	for nanos, want := range map[int32]string{
		0: "2023-11-14T22:13:20Z", 120_000_000: "2023-11-14T22:13:20.120Z", 1_500_000: "2023-11-14T22:13:20.001500Z",
		1_000: "2023-11-14T22:13:20.000001Z", 123_456_789: "2023-11-14T22:13:20.123456789Z", 10: "2023-11-14T22:13:20.000000010Z",
	} {
		lean, err := BuildValue(at(1700000000, nanos), InputOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got, err := lean.Value.Find(ast.MustParseRef("x.attributes.request.time")[1:])
		if err != nil || got.Compare(ast.String(want)) != 0 {
			t.Errorf("nanos %d: time = %v (%v), want %q", nanos, got, err, want)
		}
	}
}

// TestBuildValueConcurrent shares keys, common strings and the version term
// across goroutines; the race detector checks that reading them is safe.
func TestBuildValueConcurrent(t *testing.T) {
	req := buildValueCases(t)["peers"]
	want, err := BuildValue(req, InputOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 50 {
				got, err := BuildValue(req, InputOptions{})
				if err != nil || ast.Compare(got.Value, want.Value) != 0 {
					t.Errorf("concurrent BuildValue = %v, %v", got.Value, err)
					return
				}
			}
		})
	}
	wg.Wait()
}
