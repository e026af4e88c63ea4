package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/verdictpdp/verdict/internal/app"
)

func TestCLI(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	req := func(path string) string {
		p := filepath.Join(dir, strings.ReplaceAll(strings.Trim(path, "/"), "/", "_")+".json")
		body := `{"attributes":{"request":{"http":{"method":"GET","path":"` + path + `"}}}}`
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	mcpReq := func(name string, limit int) string {
		p := filepath.Join(dir, name+".json")
		body := fmt.Sprintf(`{"subject":{"id":"alice","roles":["sales"],"tenant":"acme","clearance":"confidential"},
			"server":"crm","method":"tools/call","context":{"purpose":"support","region":"eu"},
			"params":{"name":"search_contacts","arguments":{"tenant":"acme","query":"smith","limit":%d}}}`, limit)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	other := filepath.Join(dir, "other.json")
	if err := os.WriteFile(other, []byte(`{"hello":"world"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	example := "--bundle=" + filepath.Join("..", "..", "bundles", "mcp-example")
	cases := []struct {
		name        string
		args        []string
		wantCode    int
		wantAllowed *bool
		wantStderr  string
		// notStderr must not appear on stderr (flags of other commands).
		notStderr string
	}{
		{"eval an allowed MCP request", []string{"eval", example, "--request", mcpReq("mcp-ok", 10)}, 0, new(true), "", ""},
		{"eval a denied MCP request", []string{"eval", example, "--request", mcpReq("mcp-over", 500), "--show-input"}, 0, new(false), "", ""},
		{"eval a request of neither kind", []string{"eval", "--request", other}, 1, nil, "neither an Envoy CheckRequest", ""},
		{"eval allowed by the built-in policy", []string{"eval", "--request", req("/healthz")}, 0, new(true), "", ""},
		{"eval denied by the built-in policy", []string{"eval", "--request", req("/admin"), "--show-input"}, 0, new(false), "", ""},
		{"eval without a request", []string{"eval"}, 2, nil, "--request FILE is required", ""},
		{"eval with a missing request file", []string{"eval", "--request", filepath.Join("testdata", "missing.json")}, 1, nil, "missing.json", ""},
		{"unknown command", []string{"frobnicate"}, 2, nil, "unknown command", ""},
		{"version", []string{"version"}, 0, nil, "", ""},

		// --fail-on-deny: 0 allowed, 1 denied, 2 no decision.
		{"fail-on-deny with an allowed MCP request", []string{"eval", "--fail-on-deny", example, "--request", mcpReq("mcp-ok-fod", 10)}, 0, new(true), "", ""},
		{"fail-on-deny with a denied MCP request", []string{"eval", "--fail-on-deny", example, "--request", mcpReq("mcp-over-fod", 500)}, 1, new(false), "pdp eval: deny", ""},
		{"fail-on-deny with an allowed Envoy request", []string{"eval", "--fail-on-deny", "--request", req("/healthz")}, 0, new(true), "", ""},
		{"fail-on-deny with a denied Envoy request", []string{"eval", "--fail-on-deny", "--request", req("/admin")}, 1, new(false), "pdp eval: denied", ""},
		{"fail-on-deny with an undefined decision", []string{"eval", "--fail-on-deny", "--extauthz-path=acme/authz/allow",
			"--bundle=" + filepath.Join("..", "..", "testdata", "check", "undefined-entrypoint", "bundle"), "--request", mcpReq("mcp-undefined", 10)}, 2, new(false), "no decision: undefined_decision", ""},
		{"fail-on-deny with a missing request file", []string{"eval", "--fail-on-deny", "--request", filepath.Join("testdata", "missing.json")}, 2, nil, "missing.json", ""},
		{"fail-on-deny with a bundle that does not compile", []string{"eval", "--fail-on-deny",
			"--bundle=" + filepath.Join("..", "..", "testdata", "check", "bad-rego", "bundle"), "--request", req("/x")}, 2, nil, "rego_parse_error", ""},

		// Each command shows its own flags.
		{"eval -h", []string{"eval", "-h"}, 2, nil, "-fail-on-deny", "-grpc-addr"},
		{"serve -h", []string{"serve", "-h"}, 2, nil, "-grpc-addr", "-fail-on-deny"},
		{"check -h", []string{"check", "-h"}, 2, nil, "-mcp-path", "-request"},
		{"test -h", []string{"test", "-h"}, 2, nil, "-threshold", "-bundle PATH"},
		{"test without paths", []string{"test"}, 2, nil, "specify at least one file", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			code := app.Main(context.Background(), tc.args, &stdout, &stderr)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tc.wantCode, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.wantStderr) {
				t.Fatalf("stderr %q does not mention %q", stderr.String(), tc.wantStderr)
			}
			if tc.notStderr != "" && strings.Contains(stderr.String(), tc.notStderr) {
				t.Fatalf("stderr %q mentions %q", stderr.String(), tc.notStderr)
			}
			if tc.wantAllowed == nil {
				return
			}
			var out app.EvalOutput
			if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
				t.Fatalf("eval output is not JSON: %v\n%s", err, stdout.String())
			}
			if out.Allowed != *tc.wantAllowed || out.DecisionID == "" || len(out.Response) == 0 {
				t.Fatalf("eval output %+v, want allowed=%v with a decision id and response", out, *tc.wantAllowed)
			}
		})
	}
}
