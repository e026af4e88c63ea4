package app_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/verdictpdp/verdict/internal/config"
)

// TestGrpcurlThroughReflection calls the service with grpcurl, an
// independent client that learns the API from server reflection, exactly as
// the README shows. CI installs grpcurl; elsewhere the test is skipped when
// it is missing.
func TestGrpcurlThroughReflection(t *testing.T) {
	t.Parallel()
	bin := grpcurlBin(t)
	p := startPDP(t, config.Default()) // the built-in bundle

	run := func(t *testing.T, args ...string) []byte {
		t.Helper()
		var out, errb bytes.Buffer
		cmd := exec.Command(bin, append([]string{"-plaintext"}, args...)...)
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("grpcurl %s: %v\n%s", strings.Join(args, " "), err, errb.String())
		}
		return out.Bytes()
	}

	t.Run("list services", func(t *testing.T) {
		t.Parallel()
		out := string(run(t, p.grpcAddr, "list"))
		for _, svc := range []string{"envoy.service.auth.v3.Authorization", "verdict.mcp.v1.MCPPolicy", "grpc.health.v1.Health"} {
			if !strings.Contains(out, svc) {
				t.Errorf("grpcurl list does not show %s:\n%s", svc, out)
			}
		}
	})
	t.Run("health", func(t *testing.T) {
		t.Parallel()
		var resp struct{ Status string }
		if err := json.Unmarshal(run(t, p.grpcAddr, "grpc.health.v1.Health/Check"), &resp); err != nil {
			t.Fatal(err)
		}
		if resp.Status != "SERVING" {
			t.Fatalf("health = %q, want SERVING", resp.Status)
		}
	})
	check := func(t *testing.T, method, path string) map[string]any {
		t.Helper()
		req := `{"attributes":{"request":{"http":{"method":"` + method + `","path":"` + path + `"}}}}`
		var resp map[string]any
		if err := json.Unmarshal(run(t, "-d", req, p.grpcAddr, "envoy.service.auth.v3.Authorization/Check"), &resp); err != nil {
			t.Fatal(err)
		}
		return resp
	}
	t.Run("check allowed by the default policy", func(t *testing.T) {
		t.Parallel()
		resp := check(t, "GET", "/healthz")
		if _, ok := resp["okResponse"]; !ok {
			t.Fatalf("GET /healthz: %v, want okResponse", resp)
		}
	})
	t.Run("check denied by the default policy", func(t *testing.T) {
		t.Parallel()
		resp := check(t, "GET", "/admin")
		denied, ok := resp["deniedResponse"].(map[string]any)
		if !ok || !strings.Contains(denied["body"].(string), "no rule of the default policy allows this request") {
			t.Fatalf("GET /admin: %v, want the default policy's deny", resp)
		}
	})
}

// TestGrpcurlMCPExamples runs the README's MCP examples (docs/examples) with
// grpcurl against `pdp serve --bundle bundles/mcp-example`.
func TestGrpcurlMCPExamples(t *testing.T) {
	t.Parallel()
	bin := grpcurlBin(t)
	cfg := config.Default()
	cfg.Bundles = []config.Bundle{{Name: "mcp-example", Source: filepath.Join("..", "..", "bundles", "mcp-example")}}
	p := startPDP(t, cfg)

	cases := []struct {
		method, file string
		check        func(t *testing.T, resp map[string]any)
	}{
		{"Check", "mcp-check.json", func(t *testing.T, resp map[string]any) {
			t.Helper()
			e, _ := resp["jsonrpcError"].(map[string]any)
			if resp["decision"] != "DECISION_DENY" || e["code"] != float64(-32001) {
				t.Errorf("Check: %v, want DECISION_DENY with JSON-RPC error -32001", resp)
			}
		}},
		{"FilterTools", "mcp-filter-tools.json", func(t *testing.T, resp map[string]any) {
			t.Helper()
			tools, _ := resp["result"].(map[string]any)["tools"].([]any)
			removed, _ := resp["removed"].([]any)
			if len(tools) != 1 || len(removed) != 2 {
				t.Errorf("FilterTools: %v, want 1 tool kept and 2 removed", resp)
			}
		}},
		{"CheckResult", "mcp-check-result.json", func(t *testing.T, resp map[string]any) {
			t.Helper()
			js, _ := json.Marshal(resp["result"])
			if resp["action"] != "RESULT_ACTION_REDACT" || strings.Contains(string(js), "jane@example.com") || strings.Contains(string(js), "1234567") {
				t.Errorf("CheckResult: %v, want a redacted copy", resp)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.method, func(t *testing.T) {
			t.Parallel()
			req, err := os.ReadFile(filepath.Join("..", "..", "docs", "examples", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			var out, errb bytes.Buffer
			cmd := exec.Command(bin, "-plaintext", "-d", "@", p.grpcAddr, "verdict.mcp.v1.MCPPolicy/"+tc.method)
			cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(req), &out, &errb
			if err := cmd.Run(); err != nil {
				t.Fatalf("grpcurl %s: %v\n%s", tc.method, err, errb.String())
			}
			var resp map[string]any
			if err := json.Unmarshal(out.Bytes(), &resp); err != nil {
				t.Fatal(err)
			}
			tc.check(t, resp)
		})
	}
}

// grpcurlBin finds grpcurl: required in CI, skipped elsewhere when missing.
func grpcurlBin(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("grpcurl")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("grpcurl is not installed; .ci/run installs it")
		}
		t.Skip("grpcurl not installed (go install github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.4)")
	}
	return bin
}
