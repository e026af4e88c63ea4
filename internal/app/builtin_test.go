package app_test

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/verdictpdp/verdict"
	"github.com/verdictpdp/verdict/internal/admin"
	"github.com/verdictpdp/verdict/internal/bundle/bundletest"
	"github.com/verdictpdp/verdict/internal/config"
	"github.com/verdictpdp/verdict/internal/status"
	mcpv1 "github.com/verdictpdp/verdict/proto/verdict/mcp/v1"
)

// exampleMCPCheck returns docs/examples/mcp-check.json at a fixed time.
func exampleMCPCheck(t *testing.T) *mcpv1.CheckRequest {
	t.Helper()
	raw, err := os.ReadFile("../../docs/examples/mcp-check.json")
	if err != nil {
		t.Fatal(err)
	}
	var req mcpv1.CheckRequest
	if err := protojson.Unmarshal(raw, &req); err != nil {
		t.Fatal(err)
	}
	req.Context.Time = timestamppb.New(time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC))
	return &req
}

func sourceNamed(st admin.Status, name string) status.Source {
	for _, s := range st.Sources {
		if s.Name == name {
			return s
		}
	}
	return status.Source{}
}

// TestBuiltinBundlesGiveWayOneByOne serves user bundles next to the
// built-in ones: a bundle claiming a built-in bundle's roots replaces that
// one only, and /v1/status says which was left out and why.
func TestBuiltinBundlesGiveWayOneByOne(t *testing.T) {
	t.Parallel()
	userEnvoy := bundletest.WriteDir(t, t.TempDir(), bundletest.Spec{
		Revision: "user-envoy-1", Roots: []string{"envoy"},
		Modules: map[string]string{"authz.rego": "package envoy.authz\n\nallow := {\"allowed\": true, \"headers\": {\"x-policy\": \"user\"}}\n"},
	})
	userMCP := bundletest.WriteDir(t, t.TempDir(), bundletest.Spec{
		Revision: "user-mcp-1", Roots: []string{"verdict/mcp"},
		Modules: map[string]string{"mcp.rego": "package verdict.mcp\n\ndecision := {\"allow\": false, \"reasons\": [{\"code\": \"user.deny\", \"message\": \"mine\"}]}\n"},
	})
	cases := []struct {
		name    string
		bundles []config.Bundle
		// leftOut maps each built-in bundle to the left_out reason it must
		// have ("" when it serves).
		leftOut map[string]string
		// envoyAllowed and mcpDecision are the answers to GET /healthz and
		// to the example MCP check.
		envoyAllowed bool
		mcpDecision  mcpv1.Decision
		mcpReason    string
	}{
		{
			name:    "a user Envoy policy keeps the MCP library",
			bundles: []config.Bundle{{Name: "authz", Source: userEnvoy}, {Name: "mcp", Source: "../../bundles/mcp-example"}},
			leftOut: map[string]string{verdict.EnvoyBundle: `bundle "authz" claims its roots envoy`, verdict.MCPBundle: ""},
			// The user policy allows everything; the library decides MCP.
			envoyAllowed: true, mcpDecision: mcpv1.Decision_DECISION_DENY, mcpReason: "access.condition",
		},
		{
			name:    "a user MCP policy keeps the Envoy default",
			bundles: []config.Bundle{{Name: "mine", Source: userMCP}},
			leftOut: map[string]string{verdict.EnvoyBundle: "", verdict.MCPBundle: `bundle "mine" claims its roots verdict/mcp`},
			// The Envoy default allows /healthz from its own data.
			envoyAllowed: true, mcpDecision: mcpv1.Decision_DECISION_DENY, mcpReason: "user.deny",
		},
		{
			name:    "a data bundle keeps both",
			bundles: []config.Bundle{{Name: "mcp", Source: "../../bundles/mcp-example"}},
			leftOut: map[string]string{verdict.EnvoyBundle: "", verdict.MCPBundle: ""},
			// mcp-check.json asks for 500 contacts; the rule allows 100.
			envoyAllowed: true, mcpDecision: mcpv1.Decision_DECISION_DENY, mcpReason: "access.condition",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := config.Default()
			cfg.Bundles = tc.bundles
			p := startPDP(t, cfg)
			conn := p.dial(t)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()

			hz := checkReq()
			hz.Attributes.Request.Http.Path = "/healthz"
			resp, err := authv3.NewAuthorizationClient(conn).Check(ctx, hz)
			if err != nil {
				t.Fatal(err)
			}
			if got := resp.GetStatus().GetCode() == 0; got != tc.envoyAllowed {
				t.Errorf("GET /healthz allowed = %v, want %v: %v", got, tc.envoyAllowed, resp)
			}
			mresp, err := mcpv1.NewMCPPolicyClient(conn).Check(ctx, exampleMCPCheck(t))
			if err != nil {
				t.Fatal(err)
			}
			var codes []string
			for _, r := range mresp.GetReasons() {
				codes = append(codes, r.GetCode())
			}
			if mresp.GetDecision() != tc.mcpDecision || !slices.Contains(codes, tc.mcpReason) {
				t.Errorf("MCP check = %v %v, want %v with %s", mresp.GetDecision(), codes, tc.mcpDecision, tc.mcpReason)
			}

			st := getStatus(t, p)
			for name, want := range tc.leftOut {
				src := sourceNamed(st, name)
				_, active := st.Active.Bundles[name]
				if src.LeftOut != want || active == (want != "") || (want == "") == (src.Revision == "") {
					t.Errorf("built-in %s: %+v, active %v; want left_out %q", name, src, active, want)
				}
			}
			if len(st.Active.UndefinedEntrypoints) > 0 {
				t.Errorf("undefined entrypoints %v, want none", st.Active.UndefinedEntrypoints)
			}
		})
	}
}

// TestUndefinedEntrypointIsReported starts with a typo in the ext_authz
// path: the service still starts and fails closed, and says so in
// /v1/status and /metrics.
func TestUndefinedEntrypointIsReported(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		path      string
		library   bool
		undefined []string
	}{
		{name: "the defaults", path: config.DefaultExtAuthzPath, library: true},
		{name: "a typo in --extauthz-path", path: "envoy/authz/alow", library: true, undefined: []string{"envoy/authz/alow"}},
		{name: "a data bundle without the library", path: config.DefaultExtAuthzPath, undefined: []string{"envoy/authz/allow", "verdict/mcp/decision"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := config.Default()
			cfg.ExtAuthz.Path = tc.path
			if !tc.library {
				cfg.Library = new(false)
				cfg.Bundles = []config.Bundle{{Name: "mcp", Source: "../../bundles/mcp-example"}}
			}
			p := startPDP(t, cfg)
			st := getStatus(t, p)
			if st.Active == nil || !slices.Equal(st.Active.UndefinedEntrypoints, tc.undefined) {
				t.Fatalf("active = %+v, want undefined entrypoints %v", st.Active, tc.undefined)
			}
			metrics := scrape(t, p)
			for _, ep := range st.Active.Entrypoints {
				want := `verdict_entrypoint_undefined{entrypoint="` + ep + `"} 0`
				if slices.Contains(tc.undefined, ep) {
					want = `verdict_entrypoint_undefined{entrypoint="` + ep + `"} 1`
				}
				if !strings.Contains(metrics, want+"\n") {
					t.Errorf("/metrics lacks %s", want)
				}
			}
			if !slices.Contains(tc.undefined, st.Active.Entrypoints[0]) {
				return
			}
			// Undefined is loud, not fatal: requests are still denied.
			resp, err := authv3.NewAuthorizationClient(p.dial(t)).Check(context.Background(), checkReq())
			if err != nil {
				t.Fatal(err)
			}
			if resp.GetStatus().GetCode() == 0 || !strings.Contains(resp.GetDeniedResponse().GetBody(), `"code":"undefined_decision"`) {
				t.Fatalf("Check on an undefined entrypoint = %v, want a deny that says undefined", resp)
			}
		})
	}
}
