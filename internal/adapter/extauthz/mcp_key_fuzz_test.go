package extauthz

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/verdictpdp/verdict/internal/engine/enginetest"
	"github.com/verdictpdp/verdict/internal/mcp"
	"github.com/verdictpdp/verdict/internal/pipeline"
	"github.com/verdictpdp/verdict/internal/projection"
)

// mcpEnvoyKeyPolicies read the MCP-over-Envoy input in both of its
// layouts (the MCP object under input.mcp or at input, the Envoy input at
// input or under input.envoy), so the fuzzer keeps its reach when the
// layout changes.
var mcpEnvoyKeyPolicies = []string{
	`package verdict.mcp
decision := {"allow": true} if {
	input.mcp.method == "tools/call"
	input.mcp.tool.name == "search"
	input.mcp.tool.arguments.limit <= 10
	input.mcp.tool.arguments.q[0]
	input.mcp.subject.id == "alice"
	input.mcp.subject.claims.level > 1
	input.mcp.peer.dns_names[0] == "gw-a.example"
	input.mcp.server.name
	input.mcp.session.id
	input.mcp.context.source_ip
	input.mcp.from_headers
	input.attributes.request.http.headers["mcp-session-id"]
	input.attributes.contextExtensions.mcp_server
	input.parsed_body.params.arguments
	input.parsed_path[0]
	input.peer.dns_names[1]
	input.subject.id
}`,
	`package verdict.mcp
decision := {"allow": true} if {
	input.method == "tools/call"
	input.tool.arguments.limit <= 10
	input.subject.claims.level > 1
	input.peer.dns_names[0] == "gw-a.example"
	input.envoy.attributes.request.http.headers["mcp-session-id"]
	input.envoy.parsed_body.params
	input.envoy.attributes.metadataContext
}`,
	`package verdict.mcp
decision := {"allow": true} if {
	input.mcp == {}
	input.tool == {}
	input.envoy.attributes == {}
	input.attributes.request.http == {}
}`,
	`package verdict.mcp
decision := {"allow": true} if input[_] == "x"`, // reads the whole input
}

func mcpEnvoyKeyProjections(t testing.TB) []*projection.Projection {
	t.Helper()
	return enginetest.Projections(t, "data.verdict.mcp.decision", mcpEnvoyKeyPolicies...)
}

// Bits of FuzzMCPEnvoyKey's flags.
const (
	eJWT = 1 << iota
	ePeer
	eTime
	eSource
	eGet
	eSkipBody
)

// mcpEnvoyRequest is the CheckRequest FuzzMCPEnvoyKey's arguments
// describe: headers and ext are "name: value" and "name=value" lines,
// claims the JSON payload Envoy's jwt_authn filter verified.
func mcpEnvoyRequest(path, headers, body, ext, claims string, flags uint8) *authv3.CheckRequest {
	method := "POST"
	if flags&eGet != 0 {
		method = "GET"
	}
	attrs := &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: method, Path: path, Host: "crm.internal:8080", Headers: lines(headers, ": "), Body: body,
		}},
		ContextExtensions: lines(ext, "="),
	}
	if flags&eTime != 0 {
		attrs.Request.Time = timestamppb.New(timestamppb.Now().AsTime().Truncate(1e9))
	}
	if flags&eSource != 0 {
		attrs.Source = &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "10.1.2.3", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 50000}},
		}}}
	}
	if flags&eJWT != 0 {
		if payload, err := structpb.NewStruct(decodeClaims(claims)); err == nil {
			attrs.MetadataContext = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
				JWTFilterNamespace: {Fields: map[string]*structpb.Value{"payload": structpb.NewStructValue(payload)}},
			}}
		}
	}
	return &authv3.CheckRequest{Attributes: attrs}
}

// FuzzMCPEnvoyKey holds the cache keys of MCP requests that come through
// Envoy (the map the ext_authz MCP path builds for the MCP decider, and the
// Envoy input of requests that turn out not to be MCP) to the keys of the
// built inputs, through Server.Decide with evaluators that check instead of
// deciding.
func FuzzMCPEnvoyKey(f *testing.F) {
	call := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","arguments":{"limit":5,"q":["a",1,null,{"b":1.5e3}]}}}`
	f.Add("/mcp", "content-type: application/json\nmcp-session-id: s-1", call, "mcp_server=crm",
		`{"sub":"alice","level":2,"roles":["sales"]}`, "gw-a.example,gw-b.example", uint8(eJWT|ePeer|eTime|eSource))
	f.Add("/mcp", "content-type: application/json", call, "mcp_server=crm", "", "gw-b.example", uint8(ePeer))
	f.Add("/mcp", "content-type: application/json", `[`+call+`,{"jsonrpc":"2.0","method":"notifications/initialized"}]`, "mcp_server=crm", "", "", uint8(0))
	f.Add("/mcp", "mcp-protocol-version: 2026-07-28\nmcp-method: tools/call\nmcp-name: search\nmcp-param-limit: 5", "", "mcp_server=crm", "", "", uint8(0))
	f.Add("/mcp", "content-type: application/json", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"n":1e999999999}}}`, "", "", "", uint8(0))
	f.Add("/mcp", "content-type: application/json", call, "mcp_server=crm", `{"sub":"alice","n":1e999999999}`, "", uint8(eJWT))
	for _, wire := range seedRequestsFrom(f, "../../../testdata/mcp/envoy.yaml", "../../../testdata/hostile/mcp_over_envoy.yaml") {
		var req authv3.CheckRequest
		if proto.Unmarshal(wire, &req) != nil {
			continue
		}
		a := seedArgs(&req)
		var flags uint8
		var claims []byte
		md := req.GetAttributes().GetMetadataContext().GetFilterMetadata()[JWTFilterNamespace]
		if p := md.GetFields()["payload"].GetStructValue(); p != nil {
			flags |= eJWT
			claims, _ = protojson.Marshal(p)
		}
		if req.GetAttributes().GetSource() != nil {
			flags |= eSource
		}
		body := a.body
		if body == "" {
			body = string(a.rawBody)
		}
		f.Add(a.path, a.headers, body, a.ext, string(claims), "", flags)
	}
	ps := mcpEnvoyKeyProjections(f)
	f.Fuzz(func(t *testing.T, path, headers, body, ext, claims, dns string, flags uint8) {
		k := &enginetest.KeyChecker{T: t, Projections: ps}
		p := pipeline.New(k, pipeline.Options{})
		srv := NewServer(p, Options{
			Input: InputOptions{SkipBodyParse: flags&eSkipBody != 0, MaxBodyBytes: 1 << 16},
			MCP:   &MCPOptions{Decider: mcp.NewDecider(p, mcp.DefaultPath, false), MaxDepth: 32},
		})
		ctx := context.Background()
		if flags&ePeer != 0 {
			leaf := &x509.Certificate{}
			if dns != "" {
				leaf.DNSNames = strings.Split(dns, ",")
			}
			ctx = peer.NewContext(ctx, &peer.Peer{AuthInfo: credentials.TLSInfo{State: tls.ConnectionState{
				VerifiedChains: [][]*x509.Certificate{{leaf}},
			}}})
		}
		srv.Decide(ctx, mcpEnvoyRequest(path, headers, body, ext, claims, flags))
	})
}

// TestMCPEnvoyKeySeesInputs keeps FuzzMCPEnvoyKey honest: its seeds reach
// the MCP decider with inputs that get fast keys.
func TestMCPEnvoyKeySeesInputs(t *testing.T) {
	t.Parallel()
	ps := mcpEnvoyKeyProjections(t)
	k := &enginetest.KeyChecker{T: t, Projections: ps}
	srv := NewServer(pipeline.New(k, pipeline.Options{}), Options{MCP: &MCPOptions{Decider: mcp.NewDecider(pipeline.New(k, pipeline.Options{}), mcp.DefaultPath, false)}})
	call := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","arguments":{"limit":5}}}`
	out := srv.Decide(context.Background(), mcpEnvoyRequest("/mcp", "content-type: application/json", call, "mcp_server=crm", "", 0))
	if len(out.MCP) != 1 || k.Checked != 1 {
		t.Fatalf("decided as MCP: %d messages, %d inputs checked; want 1, 1", len(out.MCP), k.Checked)
	}
	if k.Keyed != len(ps) {
		t.Errorf("%d of %d projections got a fast key for a plain tools/call", k.Keyed, len(ps))
	}
}
