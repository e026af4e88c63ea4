package config_test

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/verdictpdp/verdict/internal/config"
)

func resolve(t *testing.T, args ...string) (config.Config, error) {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	f := config.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return f.Resolve()
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := resolve(t)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.GRPC.Addr != "127.0.0.1:9191" || cfg.HTTP.Addr != "127.0.0.1:8181" || cfg.ExtAuthz.Path != "envoy/authz/allow" {
		t.Fatalf("defaults: %+v", cfg)
	}
	if len(cfg.Bundles) != 0 || cfg.Decision.FailOpen || cfg.ExtAuthz.DryRun {
		t.Fatalf("defaults must serve the built-in bundle, fail closed, not dry-run: %+v", cfg)
	}
}

func TestFlagsOverrideFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bdir := filepath.Join(dir, "b")
	if err := os.Mkdir(bdir, 0o700); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "verdict.yaml")
	yaml := "grpc:\n  addr: 127.0.0.1:7000\nhttp:\n  addr: 127.0.0.1:7001\ndecision:\n  eval_timeout: 250ms\nbundles:\n  - source: " + bdir + "\n"
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := resolve(t, "--config", file, "--bundle", bdir, "--bundle", bdir+"/")
	if err == nil {
		t.Fatal("two bundles both named b must be refused")
	}
	cfg, err := resolve(t, "--config", file, "--grpc-addr", "127.0.0.1:7100", "--bundle", "extra="+bdir)
	if err != nil {
		t.Fatal(err)
	}
	want := []config.Bundle{{Name: "extra", Source: bdir}}
	if diff := cmp.Diff(want, cfg.Bundles); diff != "" {
		t.Errorf("bundles (-want +got):\n%s", diff)
	}
	if cfg.GRPC.Addr != "127.0.0.1:7100" || cfg.HTTP.Addr != "127.0.0.1:7001" || time.Duration(cfg.Decision.EvalTimeout) != 250*time.Millisecond {
		t.Errorf("precedence wrong: %+v", cfg)
	}
}

func TestInvalidConfigNamesTheProblem(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"missing file", []string{"--config", filepath.Join(dir, "nope.yaml")}, "nope.yaml"},
		{"unknown key", []string{"--config", write("typo.yaml", "grpc:\n  adr: x\n")}, "adr"},
		{"bad duration", []string{"--config", write("dur.yaml", "decision:\n  eval_timeout: soon\n")}, "soon"},
		{"missing bundle path", []string{"--bundle", filepath.Join(dir, "absent")}, "absent"},
		{"bad address", []string{"--grpc-addr", "9191"}, "grpc.addr"},
		{"key without cert", []string{"--tls-key", "k.pem"}, "grpc.tls"},
		{"missing verification key", []string{"--verification-key", filepath.Join(dir, "pub.pem")}, "public_key_file"},
		{"bad log level", []string{"--log-level", "loud"}, "log.level"},
		{"MCP route without a server", []string{"--mcp-route", "crm.internal/mcp="}, "mcp.routes[0]: server"},
		{"MCP route with dot segments", []string{"--mcp-route", "/mcp/../x=crm"}, "mcp.routes[0]: path_prefix"},
		{"MCP route with an escape", []string{"--mcp-route", "/m%63p=crm"}, "path_prefix"},
		{"MCP route with a port", []string{"--config", write("port.yaml", "mcp:\n  routes: [{host: \"crm:8080\", path_prefix: /mcp, server: crm}]\n")}, "mcp.routes[0]: host"},
		{"MCP route with a wildcard inside", []string{"--config", write("star.yaml", "mcp:\n  routes: [{host: \"a.*.b\", path_prefix: /mcp, server: crm}]\n")}, "host"},
		{"MCP route without a path", []string{"--config", write("nopath.yaml", "mcp:\n  routes: [{host: crm, server: crm}]\n")}, "path_prefix"},
		{"ToolHive prefix with a trailing slash", []string{"--config", write("thslash.yaml", "toolhive:\n  path_prefix: /toolhive/\n")}, "toolhive.path_prefix"},
		{"ToolHive prefix without a leading slash", []string{"--config", write("threl.yaml", "toolhive:\n  path_prefix: toolhive\n")}, "toolhive.path_prefix"},
		{"ToolHive rule for calls without arguments", []string{"--config", write("thargs.yaml", "toolhive:\n  calls_without_args: allow\n")}, "toolhive.calls_without_args"},
		{"ToolHive negative body limit", []string{"--config", write("thbytes.yaml", "toolhive:\n  max_body_bytes: -1\n")}, "toolhive.max_body_bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := resolve(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

// TestAllowDuplicateKeys: duplicate JSON members are refused unless the
// file or the flag says otherwise, and the flag wins over the file.
func TestAllowDuplicateKeys(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	on := filepath.Join(dir, "on.yaml")
	if err := os.WriteFile(on, []byte("extauthz:\n  allow_duplicate_keys: true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want bool
	}{
		{"default", nil, false},
		{"file", []string{"--config", on}, true},
		{"flag", []string{"--allow-duplicate-keys"}, true},
		{"flag over file", []string{"--config", on, "--allow-duplicate-keys=false"}, false},
	} {
		cfg, err := resolve(t, tc.args...)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if cfg.ExtAuthz.AllowDuplicateKeys != tc.want {
			t.Errorf("%s: extauthz.allow_duplicate_keys = %v, want %v", tc.name, cfg.ExtAuthz.AllowDuplicateKeys, tc.want)
		}
	}
}

func TestParseBundleArg(t *testing.T) {
	t.Parallel()
	cases := map[string]config.Bundle{
		"./bundles/x":                       {Source: "./bundles/x"},
		"main=./bundles/x":                  {Name: "main", Source: "./bundles/x"},
		"https://h/b.tar.gz?sig=a=b":        {Source: "https://h/b.tar.gz?sig=a=b"},
		"remote=https://h/b.tar.gz?sig=a=b": {Name: "remote", Source: "https://h/b.tar.gz?sig=a=b"},
	}
	for in, want := range cases {
		if got := config.ParseBundleArg(in); got != want {
			t.Errorf("ParseBundleArg(%q) = %+v, want %+v", in, got, want)
		}
	}
}

func TestMCPRoutes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "verdict.yaml")
	yaml := "mcp:\n  routes:\n    - {host: crm.internal, path_prefix: /mcp, server: crm}\n    - {path_prefix: /, server: all}\n"
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := resolve(t, "--config", file)
	if err != nil {
		t.Fatal(err)
	}
	want := []config.MCPRoute{{Host: "crm.internal", PathPrefix: "/mcp", Server: "crm"}, {PathPrefix: "/", Server: "all"}}
	if d := cmp.Diff(want, cfg.MCP.Routes); d != "" {
		t.Errorf("routes from the file (-want +got):\n%s", d)
	}
	// The flag replaces the file's routes.
	cfg, err = resolve(t, "--config", file, "--mcp-route", "*.erp.internal/api/mcp=erp", "--mcp-route", "/mcp=any")
	if err != nil {
		t.Fatal(err)
	}
	want = []config.MCPRoute{{Host: "*.erp.internal", PathPrefix: "/api/mcp", Server: "erp"}, {PathPrefix: "/mcp", Server: "any"}}
	if d := cmp.Diff(want, cfg.MCP.Routes); d != "" {
		t.Errorf("routes from the flag (-want +got):\n%s", d)
	}
	for _, bad := range []string{"crm", "crm=x", "=crm/x"} {
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		config.BindFlags(fs)
		if err := fs.Parse([]string{"--mcp-route", bad}); err == nil {
			t.Errorf("--mcp-route %q accepted", bad)
		}
	}
}
