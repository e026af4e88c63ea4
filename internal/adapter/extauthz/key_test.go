package extauthz

import (
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/open-policy-agent/opa/v1/ast"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/verdictpdp/verdict/internal/projection"
)

// keyPolicies read the parts of the input the fast key writes by hand.
var keyPolicies = map[string]string{
	"rbac": `package envoy.authz
http_request := input.attributes.request.http
allow if {
	http_request.method == "GET"
	startswith(http_request.headers["x-roles"], "reader")
	input.parsed_path[0] == "api"
}`,
	"wide": `package envoy.authz
allow if {
	input.attributes.request.http.headers
	input.attributes.source.address.socketAddress.portValue > 0
	input.attributes.source.principal != ""
	input.attributes.destination.labels.app == "x"
	input.attributes.contextExtensions.mcp_server == "crm"
	input.attributes.request.time != ""
	input.parsed_query.limit[0] == "5"
	input.source_principal
	input.attributes.request.http.host == input.attributes.request.http.scheme
	input.attributes.request.http.size == input.attributes.request.http.protocol
	input.parsed_body == input.truncated_body
	not input.mcp
	input.version.ext_authz
}`,
	"presence": `package envoy.authz
allow if {
	input.attributes.request.http.headers.authorization
	input.attributes.request.http.id
	input.attributes.source
}`,
}

func analyzeKeyPolicy(t testing.TB, src string) *projection.Projection {
	t.Helper()
	m := ast.MustParseModuleWithOpts(src, ast.ParserOptions{RegoVersion: ast.RegoV1})
	c := ast.NewCompiler().WithDefaultRegoVersion(ast.RegoV1)
	if c.Compile(map[string]*ast.Module{"p": m}); c.Failed() {
		t.Fatal(c.Errors)
	}
	p := projection.Analyze(c, ast.MustParseRef("data.envoy.authz.allow"), projection.Options{})
	if p.Whole || len(p.Paths) == 0 {
		t.Fatalf("projection %v", p.Strings())
	}
	return p
}

func baseKeyRequest() *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{
			Principal: "spiffe://a", Labels: map[string]string{"app": "web"},
			Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Address: "10.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 4000},
			}}},
		},
		Destination:       &authv3.AttributeContext_Peer{Labels: map[string]string{"app": "x"}},
		ContextExtensions: map[string]string{"mcp_server": "crm"},
		Request: &authv3.AttributeContext_Request{
			Time: timestamppb.New(timestamppb.Now().AsTime().Truncate(1e9)),
			Http: &authv3.AttributeContext_HttpRequest{
				Id: "1", Method: "GET", Path: "/api/items?limit=5", Host: "h", Scheme: "http", Protocol: "HTTP/1.1",
				Headers: map[string]string{"x-roles": "reader", "x-request-id": "r1", "authorization": "Bearer t"},
			},
		},
	}}
}

// keyVariants change one thing each in the base request.
var keyVariants = map[string]func(*authv3.CheckRequest){
	"base":             func(*authv3.CheckRequest) {},
	"request id":       func(r *authv3.CheckRequest) { h(r).Headers["x-request-id"] = "r2" },
	"id":               func(r *authv3.CheckRequest) { h(r).Id = "2" },
	"no id":            func(r *authv3.CheckRequest) { h(r).Id = "" },
	"method":           func(r *authv3.CheckRequest) { h(r).Method = "POST" },
	"role":             func(r *authv3.CheckRequest) { h(r).Headers["x-roles"] = "writer" },
	"empty role":       func(r *authv3.CheckRequest) { h(r).Headers["x-roles"] = "" },
	"no role":          func(r *authv3.CheckRequest) { delete(h(r).Headers, "x-roles") },
	"no authorization": func(r *authv3.CheckRequest) { delete(h(r).Headers, "authorization") },
	"path":             func(r *authv3.CheckRequest) { h(r).Path = "/other/items?limit=5" },
	"query":            func(r *authv3.CheckRequest) { h(r).Path = "/api/items?limit=6" },
	"host":             func(r *authv3.CheckRequest) { h(r).Host = "g" },
	"size":             func(r *authv3.CheckRequest) { h(r).Size = 10 },
	"port":             func(r *authv3.CheckRequest) { sock(r).PortSpecifier = &corev3.SocketAddress_PortValue{PortValue: 4001} },
	"named port": func(r *authv3.CheckRequest) {
		sock(r).PortSpecifier = &corev3.SocketAddress_NamedPort{NamedPort: "4000"}
	},
	"udp":       func(r *authv3.CheckRequest) { sock(r).Protocol = corev3.SocketAddress_UDP },
	"principal": func(r *authv3.CheckRequest) { r.Attributes.Source.Principal = "spiffe://b" },
	"no source": func(r *authv3.CheckRequest) { r.Attributes.Source = nil },
	"labels":    func(r *authv3.CheckRequest) { r.Attributes.Destination.Labels["app"] = "y" },
	"extension": func(r *authv3.CheckRequest) { r.Attributes.ContextExtensions["mcp_server"] = "erp" },
	"time":      func(r *authv3.CheckRequest) { r.Attributes.Request.Time.Nanos = 5 },
	"json content": func(r *authv3.CheckRequest) {
		h(r).Headers["content-type"] = "application/json"
	},
	"skipped body": func(r *authv3.CheckRequest) {
		h(r).Headers["content-type"] = "text/plain"
		h(r).Body = "hello"
	},
}

func h(r *authv3.CheckRequest) *authv3.AttributeContext_HttpRequest {
	return r.GetAttributes().GetRequest().GetHttp()
}

func sock(r *authv3.CheckRequest) *corev3.SocketAddress {
	return r.GetAttributes().GetSource().GetAddress().GetSocketAddress()
}

// TestEnvoyKeyAgreesWithTheBuiltInput checks the cache key written straight
// from a CheckRequest against the key of the input BuildValue builds: they
// must be the same bytes, so two requests share a key only when their built
// inputs agree on every projected path. A changed request id must never
// matter.
func TestEnvoyKeyAgreesWithTheBuiltInput(t *testing.T) {
	t.Parallel()
	for name, src := range keyPolicies {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := analyzeKeyPolicy(t, src)
			keys := map[string]string{}
			for vname, mutate := range keyVariants {
				r := proto.CloneOf(baseKeyRequest())
				mutate(r)
				in := &envoyInput{req: r}
				fast, ok := in.AppendKey(nil, p)
				if !ok {
					t.Fatalf("%s: no fast key for a request BuildValue builds without a body", vname)
				}
				v, err := in.Value()
				if err != nil {
					t.Fatalf("%s: %v", vname, err)
				}
				if built := p.AppendKey(nil, v); string(fast) != string(built) {
					t.Errorf("%s: fast key %q, built input's key %q (paths %v)", vname, fast, built, p.Strings())
				}
				keys[vname] = string(fast)
			}
			if keys["base"] != keys["request id"] {
				t.Errorf("a changed x-request-id changes the key (paths %v)", p.Strings())
			}
			distinct := map[string]bool{}
			for _, k := range keys {
				distinct[k] = true
			}
			if len(distinct) == 1 || len(distinct) == len(keys) {
				t.Errorf("%d distinct keys for %d variants: the policy should read some of what they change, not all", len(distinct), len(keys))
			}
		})
	}
}

// TestEnvoyKeyDefersToBuildValue: whatever BuildValue would refuse or needs
// to parse gets no fast key, so its answer (or refusal) comes from the
// built input.
func TestEnvoyKeyDefersToBuildValue(t *testing.T) {
	t.Parallel()
	p := analyzeKeyPolicy(t, keyPolicies["rbac"])
	for name, mutate := range map[string]func(*authv3.CheckRequest){
		"json body":  func(r *authv3.CheckRequest) { h(r).Headers["content-type"] = "application/json"; h(r).Body = `{"a":1}` },
		"bad escape": func(r *authv3.CheckRequest) { h(r).Path = "/api/%zz" },
		"no http":    func(r *authv3.CheckRequest) { r.Attributes.Request.Http = nil },
		"huge body":  func(r *authv3.CheckRequest) { h(r).Body = strings.Repeat("a", DefaultMaxBodyBytes+1) },
		"bad time":   func(r *authv3.CheckRequest) { r.Attributes.Request.Time.Nanos = -1 },
		"metadata":   func(r *authv3.CheckRequest) { r.Attributes.MetadataContext = &corev3.Metadata{} },
		"pipe address": func(r *authv3.CheckRequest) {
			r.Attributes.Source.Address = &corev3.Address{Address: &corev3.Address_Pipe{Pipe: &corev3.Pipe{Path: "/s"}}}
		},
		"ambiguous path": func(r *authv3.CheckRequest) { h(r).Path = "/api/..;/admin" },
		// truncated_body is true without a body to parse.
		"partial body header": func(r *authv3.CheckRequest) { h(r).Headers[HeaderPartialBody] = "true" },
	} {
		r := proto.CloneOf(baseKeyRequest())
		mutate(r)
		if _, ok := (&envoyInput{req: r}).AppendKey(nil, p); ok {
			t.Errorf("%s: fast key written", name)
		}
	}
}

func TestEnvoyKeyNilOneofWrappers(t *testing.T) {
	t.Parallel()
	p := analyzeKeyPolicy(t, keyPolicies["wide"])
	for name, addr := range map[string]*corev3.Address{
		"nil socket wrapper": {Address: (*corev3.Address_SocketAddress)(nil)},
		"nil port wrapper": {Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			PortSpecifier: (*corev3.SocketAddress_PortValue)(nil),
		}}},
	} {
		r := baseKeyRequest()
		r.Attributes.Source.Address = addr
		if _, ok := (&envoyInput{req: r}).AppendKey(nil, p); ok {
			t.Errorf("%s: fast key written", name)
		}
	}
}

// TestPlainPathParses holds plainPath to its promise: a path it accepts
// without splitting is one splitPathAndQuery accepts. FuzzEnvoyKey checks the same on
// every path it makes.
func TestPlainPathParses(t *testing.T) {
	t.Parallel()
	plain := 0
	for _, path := range []string{"/", "/a", "/a/b?c=d#e", "/a:b", "/a b", "/ä", "/*", "/a?%zz", "/a#%zz", "/a;b=c", `/a\b`,
		"//host:bad/a", "/a%zz", "*", "", "a", "/\x7f", "/\x00"} {
		if !plainPath(path) {
			continue
		}
		plain++
		if _, _, err := splitPathAndQuery(path); err != nil {
			t.Errorf("plainPath(%q) but splitPathAndQuery fails: %v", path, err)
		}
	}
	if plain == 0 {
		t.Fatal("plainPath accepted none of the paths")
	}
}
