package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAuthZEN: the AuthZEN API is on by default at authzen/decision; the
// file and the flags set it, and what cannot work is refused by name.
func TestAuthZEN(t *testing.T) {
	t.Parallel()
	cfg, err := resolve(t)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.AuthZEN.On() || cfg.AuthZEN.Path != "authzen/decision" || cfg.AuthZEN.Addr != "" || cfg.AuthZEN.RequireToken {
		t.Fatalf("defaults: %+v", cfg.AuthZEN)
	}
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	file := write("authzen.yaml", "authzen:\n  addr: 127.0.0.1:8282\n  path: acme/authzen/decision\n  base_url: https://pdp.example.com\n  max_evaluations: 20\n")
	cfg, err = resolve(t, "--config", file, "--authzen-path", "acme/v2/decision")
	if err != nil {
		t.Fatal(err)
	}
	if a := cfg.AuthZEN; a.Addr != "127.0.0.1:8282" || a.Path != "acme/v2/decision" || a.BaseURL != "https://pdp.example.com" || a.MaxEvaluations != 20 {
		t.Fatalf("from the file and flags: %+v", a)
	}
	cfg, err = resolve(t, "--authzen=false")
	if err != nil || cfg.AuthZEN.On() {
		t.Fatalf("--authzen=false: %+v, %v", cfg.AuthZEN, err)
	}

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"empty path", []string{"--authzen-path", " "}, "authzen.path"},
		{"bad address", []string{"--authzen-addr", "8282"}, "authzen.addr"},
		{"base URL with a query", []string{"--config", write("q.yaml", "authzen:\n  base_url: https://pdp.example.com/?x=1\n")}, "authzen.base_url"},
		{"base URL that is not http", []string{"--config", write("s.yaml", "authzen:\n  base_url: ftp://pdp.example.com\n")}, "authzen.base_url"},
		{"token without a verifier", []string{"--config", write("t.yaml", "authzen:\n  require_token: true\n")}, "authzen.require_token"},
		{"scope without a token", []string{"--config", write("sc.yaml", "authzen:\n  required_scope: authzen\n")}, "authzen.required_scope"},
		{"negative limit", []string{"--config", write("n.yaml", "authzen:\n  max_page_size: -1\n")}, "authzen: limits"},
		{"unknown key", []string{"--config", write("u.yaml", "authzen:\n  max_items: 3\n")}, "max_items"},
	} {
		_, err := resolve(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error = %v, want it to mention %q", tc.name, err, tc.want)
		}
	}
	// Off, its settings are not checked.
	if _, err := resolve(t, "--authzen=false", "--authzen-addr", "8282"); err != nil {
		t.Errorf("a disabled API's settings refused: %v", err)
	}
}
