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
	}{
		{"eval an allowed MCP request", []string{"eval", example, "--request", mcpReq("mcp-ok", 10)}, 0, new(true), ""},
		{"eval a denied MCP request", []string{"eval", example, "--request", mcpReq("mcp-over", 500), "--show-input"}, 0, new(false), ""},
		{"eval a request of neither kind", []string{"eval", "--request", other}, 1, nil, "neither an Envoy CheckRequest"},
		{"eval allowed by the built-in policy", []string{"eval", "--request", req("/healthz")}, 0, new(true), ""},
		{"eval denied by the built-in policy", []string{"eval", "--request", req("/admin"), "--show-input"}, 0, new(false), ""},
		{"eval without a request", []string{"eval"}, 2, nil, "--request FILE is required"},
		{"eval with a missing request file", []string{"eval", "--request", filepath.Join("testdata", "missing.json")}, 1, nil, "missing.json"},
		{"unknown command", []string{"frobnicate"}, 2, nil, "unknown command"},
		{"version", []string{"version"}, 0, nil, ""},
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
