package config_test

import (
	"flag"
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
