package app_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	"github.com/verdictpdp/verdict/internal/bundle/bundletest"
	"github.com/verdictpdp/verdict/internal/config"
)

// hostileFile is one testdata/hostile/*.yaml file: requests that must be
// refused by the input guards, whatever the policy says.
type hostileFile struct {
	Description string        `json:"description"`
	Kind        string        `json:"kind"`
	Cases       []hostileCase `json:"cases"`
}

type hostileCase struct {
	Name    string         `json:"name"`
	Request map[string]any `json:"request"`
	// Body, Path and Headers generate inputs too large to write out.
	Body    *repeated `json:"body"`
	Path    *repeated `json:"path"`
	Headers *struct {
		Count int `json:"count"`
	} `json:"headers"`
	Want struct {
		HTTPStatus     int    `json:"http_status"`
		Code           string `json:"code"`
		JSONRPCCode    int    `json:"jsonrpc_code"`
		ReasonContains string `json:"reason_contains"`
	} `json:"want"`
}

// repeated is prefix + repeat×times + suffix.
type repeated struct {
	Prefix string `json:"prefix"`
	Repeat string `json:"repeat"`
	Times  int    `json:"times"`
	Suffix string `json:"suffix"`
}

func (r *repeated) String() string { return r.Prefix + strings.Repeat(r.Repeat, r.Times) + r.Suffix }

// allowAll is the policy behind the hostile corpus: anything the guards let
// through is allowed, so a missing refusal shows up as an allow.
var allowAll = map[string]string{
	"envoy.rego": "package envoy.authz\n\nallow := true\n",
	"mcp.rego":   "package verdict.mcp\n\ndecision := {\"allow\": true, \"reasons\": [], \"obligations\": {}}\n",
}

// TestHostileCorpus sends every request of testdata/hostile/ to a real pdp
// over gRPC: each is refused with the documented status and code, none is
// allowed, and none breaks the service (a panic would be a gRPC error).
func TestHostileCorpus(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("../../testdata/hostile/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no hostile corpus: %v", err)
	}
	dir := bundletest.WriteDir(t, t.TempDir(), bundletest.Spec{Revision: "allow-all", Modules: allowAll})
	cfg := config.Default()
	cfg.Bundles = []config.Bundle{{Name: "allow-all", Source: dir}}
	lib := false
	cfg.Library = &lib
	// A path limit below the default: a fast path that checks the default
	// instead of the configured limit lets a long path through.
	cfg.Limits.MaxPathBytes = 4096
	// An MCP route marked in the configuration, as under Istio.
	cfg.MCP.Routes = []config.MCPRoute{{Host: "mcp.hostile.test", PathPrefix: "/mcp", Server: "crm"}}
	for _, mode := range cacheModes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			p := startPDP(t, mode.apply(cfg))
			client := authv3.NewAuthorizationClient(p.dial(t))
			// The allow-all policy reads nothing: with the cache on, every
			// input shares one key, primed here with an allow. A request
			// the cache answered before the guards looked at it would be
			// allowed.
			for range 3 {
				resp, err := client.Check(context.Background(), envoyRequest("/healthz", ""))
				if err != nil || resp.GetStatus().GetCode() != int32(code.Code_OK) {
					t.Fatalf("priming: %v %v", resp, err)
				}
				settleCache(t, p)
			}
			if mode.on && getStatus(t, p).Cache.Hits == 0 {
				t.Fatal("the cache answered none of the priming requests: the corpus would not test it")
			}
			t.Run("corpus", func(t *testing.T) { runHostile(t, client, files) })
			// The service still answers normally afterwards.
			resp, err := client.Check(context.Background(), envoyRequest("/healthz", ""))
			if err != nil || resp.GetStatus().GetCode() != int32(code.Code_OK) {
				t.Fatalf("after the corpus: %v %v", resp, err)
			}
		})
	}
}

func runHostile(t *testing.T, client authv3.AuthorizationClient, files []string) {
	t.Helper()
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var hf hostileFile
		if err := yaml.UnmarshalStrict(raw, &hf); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if hf.Kind != "envoy" || len(hf.Cases) == 0 {
			t.Fatalf("%s: kind must be envoy and cases not empty", file)
		}
		for _, tc := range hf.Cases {
			t.Run(strings.TrimSuffix(filepath.Base(file), ".yaml")+"/"+tc.Name, func(t *testing.T) {
				t.Parallel()
				req := hostileRequest(t, tc)
				resp, err := client.Check(context.Background(), req)
				if err != nil {
					t.Fatalf("Check failed instead of answering: %v", err)
				}
				if resp.GetStatus().GetCode() == int32(code.Code_OK) {
					t.Fatalf("hostile request allowed: %v", resp)
				}
				denied := resp.GetDeniedResponse()
				if got := int(denied.GetStatus().GetCode()); got != tc.Want.HTTPStatus {
					t.Errorf("HTTP status %d, want %d (body %s)", got, tc.Want.HTTPStatus, denied.GetBody())
				}
				var body struct {
					Code  string `json:"code"`
					Error json.RawMessage
				}
				if err := json.Unmarshal([]byte(denied.GetBody()), &body); err != nil {
					t.Fatalf("body is not JSON: %q", denied.GetBody())
				}
				if tc.Want.Code != "" && body.Code != tc.Want.Code {
					t.Errorf("code %q, want %q (body %s)", body.Code, tc.Want.Code, denied.GetBody())
				}
				if tc.Want.JSONRPCCode != 0 {
					var rpc struct {
						Code int `json:"code"`
					}
					if err := json.Unmarshal(body.Error, &rpc); err != nil || rpc.Code != tc.Want.JSONRPCCode {
						t.Errorf("JSON-RPC error code %d, want %d (body %s)", rpc.Code, tc.Want.JSONRPCCode, denied.GetBody())
					}
				}
				if !strings.Contains(denied.GetBody(), tc.Want.ReasonContains) {
					t.Errorf("body %s does not say %q", denied.GetBody(), tc.Want.ReasonContains)
				}
				if len(denied.GetBody()) > 4096 {
					t.Errorf("a %d-byte refusal: the reason must not echo the input", len(denied.GetBody()))
				}
			})
		}
	}
}

func hostileRequest(t *testing.T, tc hostileCase) *authv3.CheckRequest {
	t.Helper()
	raw, err := json.Marshal(tc.Request)
	if err != nil {
		t.Fatal(err)
	}
	var req authv3.CheckRequest
	if err := protojson.Unmarshal(raw, &req); err != nil {
		t.Fatalf("request: %v", err)
	}
	h := req.GetAttributes().GetRequest().GetHttp()
	if h == nil {
		t.Fatal("a hostile case needs attributes.request.http")
	}
	if tc.Body != nil {
		h.Body = tc.Body.String()
	}
	if tc.Path != nil {
		h.Path = tc.Path.String()
	}
	if tc.Headers != nil {
		if h.Headers == nil {
			h.Headers = map[string]string{}
		}
		for i := range tc.Headers.Count {
			h.Headers["x-h-"+strconv.Itoa(i)] = "v"
		}
	}
	return &req
}
