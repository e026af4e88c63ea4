package extauthz_test

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"sync"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/open-policy-agent/opa/v1/ast"
	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"

	"github.com/verdictpdp/verdict/internal/adapter/extauthz"
	"github.com/verdictpdp/verdict/internal/engine"
	"github.com/verdictpdp/verdict/internal/mcp"
	"github.com/verdictpdp/verdict/internal/pipeline"
)

const routeMCPPath = "verdict/mcp/decision"

// recordingEval stands in for the decision core: it records which
// entrypoints were asked with which input, denies at the ext_authz
// entrypoint and allows at the MCP one, so an answer shows who gave it.
type recordingEval struct {
	mu     sync.Mutex
	asked  []string
	inputs []any
}

func (*recordingEval) Revision() string { return "test" }

func (e *recordingEval) Decide(_ context.Context, entrypoint string, in engine.Input, derive engine.Derive) (engine.Decision, error) {
	v, err := in.Value()
	if err != nil {
		return engine.Decision{}, err
	}
	js, err := ast.JSON(v)
	if err != nil {
		return engine.Decision{}, err
	}
	e.mu.Lock()
	e.asked = append(e.asked, entrypoint)
	e.inputs = append(e.inputs, js)
	e.mu.Unlock()
	var value any = false
	if entrypoint == routeMCPPath {
		value = map[string]any{"allow": true, "reasons": []any{}, "obligations": map[string]any{}}
	}
	r := engine.Result{Value: value, Revision: "r1"}
	d, err := derive(r)
	return engine.Decision{Result: r, Derived: d}, err
}

// routeFile is testdata/routes.yaml.
type routeFile struct {
	Routes []extauthz.MCPRoute `json:"-"`
	Raw    []struct {
		Host       string `json:"host"`
		PathPrefix string `json:"path_prefix"`
		Server     string `json:"server"`
	} `json:"routes"`
	Cases []routeCase `json:"cases"`
}

type routeCase struct {
	Name    string `json:"name"`
	Request struct {
		Method     string            `json:"method"`
		Host       string            `json:"host"`
		Path       string            `json:"path"`
		Headers    map[string]string `json:"headers"`
		Body       string            `json:"body"`
		Extensions map[string]string `json:"extensions"`
	} `json:"request"`
	Want struct {
		DecidedBy   string `json:"decided_by"`
		Server      string `json:"server"`
		JSONRPCCode int    `json:"jsonrpc_code"`
		Code        string `json:"code"`
	} `json:"want"`
}

func loadRoutes(t testing.TB) routeFile {
	t.Helper()
	raw, err := os.ReadFile("testdata/routes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var rf routeFile
	if err := yaml.UnmarshalStrict(raw, &rf); err != nil {
		t.Fatal(err)
	}
	for _, r := range rf.Raw {
		rf.Routes = append(rf.Routes, extauthz.MCPRoute{Host: r.Host, PathPrefix: r.PathPrefix, Server: r.Server})
	}
	if len(rf.Cases) == 0 || len(rf.Routes) == 0 {
		t.Fatal("testdata/routes.yaml needs routes and cases")
	}
	return rf
}

func (c routeCase) checkRequest() *authv3.CheckRequest {
	r := c.Request
	h := map[string]string{}
	for k, v := range r.Headers {
		h[k] = v
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		ContextExtensions: r.Extensions,
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: r.Method, Host: r.Host, Path: r.Path, Headers: h, Body: r.Body,
		}},
	}}
}

// routeServers returns a server with MCP over Envoy on (with routes) and
// one with it off, both deciding with ev.
func routeServers(ev *recordingEval, routes []extauthz.MCPRoute) (on, off *extauthz.Server) {
	opts := extauthz.Options{Path: extauthz.DefaultPath}
	p := pipeline.New(ev, pipeline.Options{})
	off = extauthz.NewServer(p, opts)
	opts.MCP = &extauthz.MCPOptions{Decider: mcp.NewDecider(p, routeMCPPath, false), Routes: routes, MaxDepth: 64}
	on = extauthz.NewServer(p, opts)
	return on, off
}

// TestRouteCorpus runs testdata/routes.yaml: which policy decides each
// request, and what the MCP entrypoint's input is.
func TestRouteCorpus(t *testing.T) {
	t.Parallel()
	rf := loadRoutes(t)
	for _, tc := range rf.Cases {
		t.Run(tc.Name, func(t *testing.T) {
			t.Parallel()
			ev := &recordingEval{}
			on, _ := routeServers(ev, rf.Routes)
			req := tc.checkRequest()
			out := on.Decide(context.Background(), req)
			denied := out.Response.GetDeniedResponse()
			switch tc.Want.DecidedBy {
			case "ext_authz":
				if len(ev.asked) != 1 || ev.asked[0] != extauthz.DefaultPath || len(out.MCP) != 0 {
					t.Fatalf("asked %v (MCP outcomes %d), want the ext_authz policy only", ev.asked, len(out.MCP))
				}
				if _, ok := ev.inputs[0].(map[string]any)["mcp"]; ok {
					t.Error("the ext_authz input has an mcp member")
				}
			case "mcp":
				if len(ev.asked) != 1 || ev.asked[0] != routeMCPPath || out.Response.GetStatus().GetCode() != int32(code.Code_OK) {
					t.Fatalf("asked %v, response %v; want an MCP allow", ev.asked, out.Response)
				}
				in := ev.inputs[0].(map[string]any)
				if got := in["server"].(map[string]any)["name"]; got != tc.Want.Server {
					t.Errorf("input.server.name = %v, want %q", got, tc.Want.Server)
				}
				envoy, _ := in[extauthz.InputEnvoy].(map[string]any)
				if in["kind"] != "mcp" || in["method"] == nil || envoy["attributes"] == nil || in["mcp"] != nil {
					t.Errorf("MCP input is not the MCP document with input.envoy: %v", in)
				}
			case "mcp_refused":
				var body struct {
					Error struct {
						Code int `json:"code"`
					} `json:"error"`
				}
				if len(ev.asked) != 0 || json.Unmarshal([]byte(denied.GetBody()), &body) != nil || body.Error.Code != tc.Want.JSONRPCCode || denied.GetStatus().GetCode() != 400 {
					t.Fatalf("asked %v, answer %v; want a 400 with JSON-RPC error %d and no policy asked", ev.asked, out.Response, tc.Want.JSONRPCCode)
				}
			case "refused":
				var body struct {
					Code string `json:"code"`
				}
				if len(ev.asked) != 0 || json.Unmarshal([]byte(denied.GetBody()), &body) != nil || body.Code != tc.Want.Code {
					t.Fatalf("asked %v, answer %v; want a refusal %q and no policy asked", ev.asked, out.Response, tc.Want.Code)
				}
			default:
				t.Fatalf("unknown decided_by %q", tc.Want.DecidedBy)
			}
		})
	}
}

// FuzzRoute checks the classification of ext_authz requests with any
// method, host, path, Mcp-* headers, content type and body: a request on a
// route nobody marked as MCP is decided by the ext_authz policy, always,
// and gets exactly the answer it gets with MCP over Envoy off; on a marked
// route a POST never reaches the ext_authz policy and any other method
// never reaches the MCP policy.
func FuzzRoute(f *testing.F) {
	rf := loadRoutes(f)
	for _, c := range rf.Cases {
		r := c.Request
		f.Add(r.Method, r.Host, r.Path, r.Extensions["mcp_server"], r.Headers["mcp-protocol-version"], r.Headers["mcp-method"], r.Headers["mcp-name"], r.Headers["content-type"], r.Body)
	}
	f.Fuzz(func(t *testing.T, method, host, path, ext, version, mcpMethod, mcpName, ctype, body string) {
		h := map[string]string{}
		for k, v := range map[string]string{"mcp-protocol-version": version, "mcp-method": mcpMethod, "mcp-name": mcpName, "content-type": ctype} {
			if v != "" {
				h[k] = v
			}
		}
		req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
			Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
				Method: method, Host: host, Path: path, Headers: h, Body: body,
			}},
		}}
		if ext != "" {
			req.Attributes.ContextExtensions = map[string]string{"mcp_server": ext}
		}
		ev := &recordingEval{}
		on, off := routeServers(ev, rf.Routes)
		out := on.Decide(context.Background(), req)
		asked := ev.asked
		for i, in := range ev.inputs {
			if asked[i] == extauthz.DefaultPath {
				if _, ok := in.(map[string]any)["mcp"]; ok {
					t.Fatal("the ext_authz input has an mcp member")
				}
			}
		}
		post := strings.EqualFold(method, "POST")
		// Conservative: a host or path that could match a configured route
		// in any spelling counts as possibly marked.
		lh, lp := strings.ToLower(host), strings.ToLower(path)
		unmarked := ext == "" && (!strings.Contains(lh, ".test") || !strings.Contains(lp, "mcp") && !strings.Contains(path, "%"))
		switch {
		case unmarked:
			if len(out.MCP) != 0 || (len(asked) > 0 && (len(asked) != 1 || asked[0] != extauthz.DefaultPath)) {
				t.Fatalf("unmarked request: asked %v, %d MCP outcomes; want the ext_authz policy only", asked, len(out.MCP))
			}
			want := off.Decide(context.Background(), req)
			if !sameAnswer(out, want) {
				t.Fatalf("unmarked request answered\n%v\nwith MCP over Envoy off:\n%v", out.Response, want.Response)
			}
		case ext != "" && post:
			for _, a := range asked {
				if a != routeMCPPath {
					t.Fatalf("a POST on a marked route reached %s", a)
				}
			}
		case !post:
			for _, a := range asked {
				if a != extauthz.DefaultPath {
					t.Fatalf("a %q request reached %s", method, a)
				}
			}
		}
	})
}

// sameAnswer compares two responses without their decision ids.
func sameAnswer(a, b extauthz.Outcome) bool {
	ra, rb := proto.Clone(a.Response).(*authv3.CheckResponse), proto.Clone(b.Response).(*authv3.CheckResponse)
	for _, r := range []*authv3.CheckResponse{ra, rb} {
		delete(r.GetDynamicMetadata().GetFields(), "decision_id")
	}
	if d := rb.GetDeniedResponse(); d != nil {
		d.Body = strings.ReplaceAll(d.Body, b.DecisionID, a.DecisionID)
	}
	return proto.Equal(ra, rb)
}
