package app_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"go/build"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/verdictpdp/verdict/internal/config"
)

// TestExtMcpThroughGrpcurl calls agentgateway's ExtMcp service with
// grpcurl, which learns the API from server reflection, as an operator
// trying the service out would.
func TestExtMcpThroughGrpcurl(t *testing.T) {
	t.Parallel()
	bin := grpcurlOrSkip(t)
	cfg := config.Default()
	cfg.Bundles = []config.Bundle{{Name: "mcp-example", Source: filepath.Join("..", "..", "bundles", "mcp-example")}}
	p := startPDP(t, cfg)

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
	t.Run("list", func(t *testing.T) {
		t.Parallel()
		if out := string(run(t, p.grpcAddr, "list")); !strings.Contains(out, "agentgateway.dev.ext_mcp.ExtMcp\n") {
			t.Errorf("grpcurl list does not show agentgateway.dev.ext_mcp.ExtMcp:\n%s", out)
		}
		if out := string(run(t, p.grpcAddr, "list", "agentgateway.dev.ext_mcp.ExtMcp")); !strings.Contains(out, "CheckRequest") || !strings.Contains(out, "CheckResponse") {
			t.Errorf("grpcurl list agentgateway.dev.ext_mcp.ExtMcp:\n%s", out)
		}
	})

	// bytes fields are base64 in proto3 JSON.
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	alice := `"jwt": {"sub": "alice", "roles": ["sales"], "tenant": "acme", "clearance": "confidential"}`
	cases := []struct {
		name, req string
		check     func(t *testing.T, resp map[string]any)
	}{
		{"allowed", `{"service_names": ["crm"], "method": "tools/call",
			"mcp_request": "` + b64(`{"name":"search_contacts","arguments":{"tenant":"acme","query":"smith"}}`) + `",
			"metadata_context": {` + alice + `, "purpose": "support", "region": "eu"}}`,
			func(t *testing.T, resp map[string]any) {
				t.Helper()
				md, _ := resp["metadata"].(map[string]any)
				if _, ok := resp["pass"]; !ok || md["decision"] != "allow" || md["decision_id"] == nil || !strings.Contains(md["revision"].(string), "mcp-example") {
					t.Errorf("%v, want pass with the decision id and revision in metadata", resp)
				}
			}},
		{"denied", `{"service_names": ["crm"], "method": "tools/call",
			"mcp_request": "` + b64(`{"name":"export_contacts","arguments":{"tenant":"acme","limit":10}}`) + `",
			"metadata_context": {` + alice + `, "purpose": "support", "region": "eu"}}`,
			func(t *testing.T, resp map[string]any) {
				t.Helper()
				e, _ := resp["error"].(map[string]any)
				if e["code"] != "PERMISSION_DENIED" || !strings.HasPrefix(e["reason"].(string), "Denied by policy") {
					t.Fatalf("%v, want PERMISSION_DENIED", resp)
				}
				raw, err := base64.StdEncoding.DecodeString(e["mcpError"].(string))
				if err != nil {
					t.Fatal(err)
				}
				var rpc struct {
					Code int            `json:"code"`
					Data map[string]any `json:"data"`
				}
				if err := json.Unmarshal(raw, &rpc); err != nil || rpc.Code != -32001 || rpc.Data["decision_id"] != resp["metadata"].(map[string]any)["decision_id"] {
					t.Errorf("mcp_error %s (%v): want the JSON-RPC error -32001 naming the decision", raw, err)
				}
			}},
		{"malformed params", `{"service_names": ["crm"], "method": "tools/call", "mcp_request": "` + b64(`{"name":"a","name":"b"}`) + `"}`,
			func(t *testing.T, resp map[string]any) {
				t.Helper()
				e, _ := resp["error"].(map[string]any)
				if e["code"] != "INVALID" || !strings.Contains(e["reason"].(string), "duplicate_key") {
					t.Errorf("%v, want INVALID naming the duplicate key", resp)
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var resp map[string]any
			if err := json.Unmarshal(run(t, "-d", tc.req, p.grpcAddr, "agentgateway.dev.ext_mcp.ExtMcp/CheckRequest"), &resp); err != nil {
				t.Fatal(err)
			}
			tc.check(t, resp)
		})
	}
}

// grpcurlOrSkip finds grpcurl on PATH or where `make tools` installs it:
// required in CI (CI set), skipped elsewhere when missing.
func grpcurlOrSkip(t *testing.T) string {
	t.Helper()
	if bin, err := exec.LookPath("grpcurl"); err == nil {
		return bin
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		gopath = build.Default.GOPATH
	}
	if bin := filepath.Join(gopath, "bin", "grpcurl"); fileExists(bin) {
		return bin
	}
	if os.Getenv("CI") != "" {
		t.Fatal("grpcurl is not installed (make tools installs it)")
	}
	t.Skip("grpcurl not installed (make tools, or go install github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.4)")
	return ""
}

func fileExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && !st.IsDir()
}
