package mcpapi_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"sigs.k8s.io/yaml"

	"github.com/verdictpdp/verdict/internal/adapter/mcpapi"
	"github.com/verdictpdp/verdict/internal/engine/enginetest"
	"github.com/verdictpdp/verdict/internal/mcp"
	"github.com/verdictpdp/verdict/internal/pipeline"
	"github.com/verdictpdp/verdict/internal/projection"
	mcpv1 "github.com/verdictpdp/verdict/proto/verdict/mcp/v1"
)

// mcpKeyPolicies read, between them, every member of the MCP input the
// native server builds, whole, in part and as conditions.
var mcpKeyPolicies = []string{
	`package verdict.mcp
decision := {"allow": true} if {
	input.peer.dns_names[0] == "gw-a.example"
	input.peer.dns_names[1]
	input.peer.spiffe_id
	input.subject.id == "alice"
	input.subject.roles[0] == "sales"
	input.subject.claims.level > 2
	input.subject.claims.tags[1] == "x"
	input.subject.authenticated
	input.subject.error.code
	input.tool.name == "search"
	input.tool.arguments.limit <= 100
	input.tool.arguments.query
	input.tool.arguments.nested.list[0] == null
	input.resource.uri
	input.prompt.arguments.x
	input.context.purpose == "support"
	input.context.time
	input.session.id
	input.server.name == "crm"
	input.method == "tools/call"
	input.protocol_version
	input.result.content[0].text
	input.findings.email > 0
	input.list.items[0].name
}`,
	`package verdict.mcp
decision := {"allow": true} if {
	input.peer == {}
	input.subject == {}
	input.tool.arguments == {}
	input.context == {}
	input.list == {}
	input.result == {}
}`,
	`package verdict.mcp
decision := {"allow": true} if input.kind == "mcp"
decision := {"allow": true} if input[_] == "x"`, // reads the whole input
}

// mcpOddRefs are paths no sensible policy reads but any policy may.
var mcpOddRefs = []string{
	`input.peer.dns_names["0"]`, `input.peer.dns_names[7]`, `input.peer.dns_names[0].x`, `input.peer.verified`,
	`input.subject.roles[0].x`, `input.subject.claims[0]`, `input.tool.arguments[0]`, `input.kind.x`,
	`input.tool.arguments.limit.x`, `input.findings`, `input.peer.subject`, `input.response`,
}

// mcpKeyProjections are the projections of mcpKeyPolicies, each also with
// every path read for its type only, and mcpOddRefs under each kind.
func mcpKeyProjections(t testing.TB) []*projection.Projection {
	t.Helper()
	out := enginetest.Projections(t, "data.verdict.mcp.decision", mcpKeyPolicies...)
	for _, kind := range []projection.Kind{projection.Full, projection.Presence, projection.Type} {
		p := &projection.Projection{}
		for _, r := range mcpOddRefs {
			p.Paths = append(p.Paths, projection.Path{Ref: ast.MustParseRef(r)[1:], Kind: kind})
		}
		out = append(out, p)
	}
	return out
}

// withPeer returns ctx with a gRPC peer whose verified client certificate
// names spiffe (a URI SAN) and dns (DNS SANs).
func withPeer(ctx context.Context, spiffe string, dns []string) context.Context {
	leaf := &x509.Certificate{Subject: pkix.Name{CommonName: "gateway"}, DNSNames: dns}
	if u, err := url.Parse(spiffe); err == nil {
		leaf.URIs = []*url.URL{u}
	}
	state := tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{leaf}}}
	return peer.NewContext(ctx, &peer.Peer{AuthInfo: credentials.TLSInfo{State: state}})
}

// jsonStruct decodes a JSON object into a Struct; nil when s is not one.
func jsonStruct(s string) *structpb.Struct {
	var m map[string]any
	if json.Unmarshal([]byte(s), &m) != nil || m == nil {
		return nil
	}
	st, err := structpb.NewStruct(m)
	if err != nil {
		return nil
	}
	return st
}

// Bits of FuzzMCPKey's flags.
const (
	mPeer = 1 << iota
	mToken
	mTime
	mSession
)

// FuzzMCPKey holds the native MCP API's cache keys (mcp.Request.Input plus
// what the server adds: peer, list, result, findings) to the key of the
// built input, on requests built from fuzz bytes: subject, claims and
// arguments of every JSON type, peers with DNS names.
func FuzzMCPKey(f *testing.F) {
	type seed struct {
		mode                                                 uint8
		method, server, subject, claims, params, result, dns string
		flags                                                uint8
	}
	seeds := []seed{
		// Two gateways once shared a key: dns_names is a []string.
		{0, "tools/call", "crm", "alice,sales", `{"level":3}`, `{"name":"search","arguments":{"limit":20}}`, "", "gw-a.example", mPeer},
		{0, "tools/call", "crm", "alice,sales", `{"level":3}`, `{"name":"search","arguments":{"limit":20}}`, "", "gw-b.example,x", mPeer},
		{0, "tools/call", "crm", "alice", `{"tags":["a","x"],"n":1.5,"big":1e300,"neg":-0,"t":true,"z":null}`,
			`{"name":"search","arguments":{"query":"smith","limit":1e2,"nested":{"list":[null,1,"a",[true],{}]}}}`, "", "", mTime | mSession},
		{0, "resources/read", "docs", "", "", `{"uri":"docs://a"}`, "", "", mToken},
		{0, "prompts/get", "p", "bob", "", `{"name":"greet","arguments":{"x":"1"}}`, "", "", 0},
		{1, "tools/call", "crm", "alice", "", `{"name":"search","arguments":{}}`, "", "gw-a.example", mPeer},
		{2, "tools/list", "crm", "alice", "", "", `{"tools":[{"name":"search"},{"name":"drop"}]}`, "", 0},
		{3, "tools/call", "crm", "alice", "", `{"name":"search"}`, `{"content":[{"type":"text","text":"mail a@b.example"}]}`, "", 0},
	}
	for _, s := range seeds {
		f.Add(s.mode, s.method, s.server, s.subject, s.claims, s.params, s.result, s.dns, s.flags)
	}
	for _, c := range mcpCorpus(f) {
		p, _ := protojson.Marshal(c.GetParams())
		cl, _ := protojson.Marshal(c.GetSubject().GetClaims())
		subject := strings.Join(append([]string{c.GetSubject().GetId()}, c.GetSubject().GetRoles()...), ",")
		f.Add(uint8(0), c.GetMethod(), c.GetServer(), subject, string(cl), string(p), "", "", uint8(mTime))
	}
	ps := mcpKeyProjections(f)
	f.Fuzz(func(t *testing.T, mode uint8, method, server, subject, claims, params, result, dns string, flags uint8) {
		k := &enginetest.KeyChecker{T: t, Projections: ps}
		srv := mcpapi.NewServer(mcp.NewDecider(pipeline.New(k, pipeline.Options{}), mcp.DefaultPath, false), mcpapi.Options{})
		ctx := context.Background()
		if flags&mPeer != 0 {
			var names []string
			if dns != "" {
				names = strings.Split(dns, ",")
			}
			ctx = withPeer(ctx, "spiffe://example.org/gw/"+server, names)
		}
		parts := strings.Split(subject, ",")
		req := &mcpv1.CheckRequest{
			Subject: &mcpv1.Subject{Id: parts[0], Roles: parts[1:], Groups: parts[1:], Scopes: parts[1:], Tenant: "acme", Claims: jsonStruct(claims)},
			Server:  server, Method: method, Params: jsonStruct(params),
			Context: &mcpv1.RequestContext{Purpose: "support", Region: "eu", SourceIp: "10.0.0.1"},
		}
		if flags&mToken != 0 {
			req.Subject, req.BearerToken = nil, subject
		}
		if flags&mTime != 0 {
			req.Context.Time = timestamppb.New(timestamppb.Now().AsTime().Truncate(1e9))
		}
		if flags&mSession != 0 {
			req.SessionId = "s-" + server
		}
		switch mode % 4 {
		case 0:
			resp, err := srv.Check(ctx, req)
			// Only an input refused before the decision may skip the
			// evaluator, or the fuzzer tests nothing.
			if err == nil && k.Checked == 0 && resp.GetReasons()[0].GetCode() != mcp.ReasonInvalidRequest {
				t.Fatalf("decided without asking the evaluator: %v", resp)
			}
		case 1:
			_, _ = srv.CheckBatch(ctx, &mcpv1.CheckBatchRequest{
				Subject: req.GetSubject(), Server: server, BearerToken: req.GetBearerToken(), Context: req.GetContext(),
				Items: []*mcpv1.BatchItem{{Method: method, Params: req.GetParams()}, {Method: "ping"}},
			})
		case 2:
			_, _ = srv.FilterTools(ctx, &mcpv1.FilterToolsRequest{Request: req, Result: jsonStruct(result)})
		case 3:
			_, _ = srv.CheckResult(ctx, &mcpv1.CheckResultRequest{Request: req, Result: jsonStruct(result)})
		}
	})
}

// mcpCorpus returns the native requests of testdata/mcp.
func mcpCorpus(f testing.TB) []*mcpv1.CheckRequest {
	f.Helper()
	files, _ := filepath.Glob("../../../testdata/mcp/*.yaml")
	var out []*mcpv1.CheckRequest
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		var doc struct {
			Cases []struct {
				Check map[string]any `json:"check"`
			} `json:"cases"`
		}
		if err := yaml.Unmarshal(raw, &doc); err != nil {
			f.Fatal(err)
		}
		for _, c := range doc.Cases {
			if c.Check == nil {
				continue
			}
			js, _ := json.Marshal(c.Check)
			var req mcpv1.CheckRequest
			if protojson.Unmarshal(js, &req) == nil {
				out = append(out, &req)
			}
		}
	}
	if len(out) == 0 {
		f.Fatal("no MCP corpus requests")
	}
	return out
}
