package config_test

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/verdictpdp/verdict/internal/config"
)

// TestConfigErrors reads each broken file in testdata/config-errors and
// expects the error in the .want file next to it, with the file named by
// its base name. UPDATE_WANT=1 rewrites the .want files.
func TestConfigErrors(t *testing.T) {
	t.Parallel()
	dir := filepath.Join("..", "..", "testdata", "config-errors")
	files, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, file := range files {
		if strings.HasSuffix(file, ".want") {
			continue
		}
		n++
		t.Run(filepath.Base(file), func(t *testing.T) {
			t.Parallel()
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			f := config.BindFlags(fs)
			if err := fs.Parse([]string{"--config", file}); err != nil {
				t.Fatal(err)
			}
			_, err := f.Resolve()
			if err == nil {
				t.Fatal("no error")
			}
			got := strings.ReplaceAll(err.Error(), file, filepath.Base(file)) + "\n"
			if os.Getenv("UPDATE_WANT") != "" {
				if err := os.WriteFile(file+".want", []byte(got), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(file + ".want")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
	if n == 0 {
		t.Fatal("no cases in " + dir)
	}
}

// TestConfigErrorPositionYieldsToFlags checks that a validation error
// carries the file position only while the file's value is the one in use.
func TestConfigErrorPositionYieldsToFlags(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "verdict.yaml")
	if err := os.WriteFile(file, []byte("grpc:\n  addr: nonsense\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--config", file}, file + `:2:3: grpc.addr: "nonsense" is not host:port`},
		{[]string{"--config", file, "--grpc-addr", "flag"}, `grpc.addr: "flag" is not host:port`},
	} {
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		f := config.BindFlags(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		_, err := f.Resolve()
		if err == nil || err.Error() != tc.want {
			t.Errorf("%v: error %v, want %s", tc.args, err, tc.want)
		}
	}
}

// TestConfigFileAccepted checks that the file checks refuse nothing the
// decoder accepts.
func TestConfigFileAccepted(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"yaml.yaml":  "grpc:\n  addr: 127.0.0.1:9191\ncache:\n  enabled: yes\n  ttl: 30s\n  max_bytes: 1048576\ntracing:\n  sample_ratio: 1\n",
		"case.yaml":  "GRPC:\n  Addr: 127.0.0.1:9191\n",
		"json.json":  `{"grpc": {"addr": "127.0.0.1:9191"}, "audit": {"labels": {"team": "authz"}}, "identity": {"allowed_peers": null}}`,
		"empty.yaml": "",
		"flow.yaml":  "bundles:\n  - source: .\n    polling: {min_delay: 1s, max_delay: 2s}\n",
		"docs.yaml":  docsExample(t),
	}
	dir := t.TempDir()
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			file := filepath.Join(dir, name)
			if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := config.Load(file); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// docsExample is the YAML example of docs/configuration.md.
func docsExample(t *testing.T) string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "configuration.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(doc), "\n## YAML\n\n```yaml\n")
	example, _, ok2 := strings.Cut(after, "```")
	if !ok || !ok2 {
		t.Fatal("docs/configuration.md has no YAML example under ## YAML")
	}
	return example
}
