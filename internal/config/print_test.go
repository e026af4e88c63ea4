package config_test

import (
	"bytes"
	"flag"
	"io"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/verdictpdp/verdict/internal/config"
)

func TestWriteYAML(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f := config.BindFlags(fs)
	args := []string{
		"--bundle", "remote=https://user:s3cret@bundles.example.com/b.tar.gz?token=abc123",
		"--bundle", "local=" + dir,
		"--jwks", "https://idp.example.com/jwks?key=k3y", "--jwt-issuer", "https://idp.example.com", "--jwt-audience", "https://pdp",
		"--audit-url", "https://collector.example.com/logs",
		"--tls-cert", "cert.pem", "--tls-key", "key.pem",
	}
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	if _, err := config.ApplyEnv(fs, []string{"VERDICT_GRPC_ADDR=0.0.0.0:9000"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := f.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := config.WriteYAML(&out, cfg); err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"s3cret", "abc123", "k3y", "user:"} {
		if strings.Contains(out.String(), secret) {
			t.Errorf("printed configuration shows %q:\n%s", secret, out.String())
		}
	}
	for _, shown := range []string{
		"addr: 0.0.0.0:9000",
		"source: https://****@bundles.example.com/b.tar.gz?token=****",
		"jwks: https://idp.example.com/jwks?key=****",
		"url: https://collector.example.com/logs",
		"key_file: key.pem",
		"name: local",
		"library: true",
		"reflection: true",
		"approvals:\n  approver_scope: \"\"\n  dir: \"\"\n  enabled: true\n  grpc: true",
	} {
		if !strings.Contains(out.String(), shown) {
			t.Errorf("printed configuration lacks %q:\n%s", shown, out.String())
		}
	}
	// The output reads back as a config file.
	var back config.Config
	if err := yaml.UnmarshalStrict(out.Bytes(), &back); err != nil {
		t.Fatalf("printed configuration does not load: %v\n%s", err, out.String())
	}
	if back.GRPC.Addr != "0.0.0.0:9000" || back.Identity.JWT.Issuer != "https://idp.example.com" {
		t.Errorf("read back: %+v", back)
	}
}
