package app_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/verdictpdp/verdict/internal/app"
)

// checkCase is one testdata/check/*/case.yaml: pdp check on the case's
// bundle/ directory.
type checkCase struct {
	Args []string `json:"args"`
	Code int      `json:"code"`
	Want []struct {
		// At is the file:line:col the line starts with, the file relative
		// to bundle/; empty for findings without a place.
		At      string `json:"at"`
		Message string `json:"message"`
	} `json:"want"`
}

func TestCheckCorpus(t *testing.T) {
	t.Parallel()
	dirs, err := filepath.Glob(filepath.Join("..", "..", "testdata", "check", "*", "case.yaml"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no cases: %v", err)
	}
	for _, file := range dirs {
		dir := filepath.Dir(file)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			t.Parallel()
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var c checkCase
			if err := yaml.UnmarshalStrict(raw, &c); err != nil {
				t.Fatal(err)
			}
			bundle := filepath.Join(dir, "bundle")
			var stdout, stderr bytes.Buffer
			code := app.Main(context.Background(), append([]string{"check", "--bundle", bundle}, c.Args...), &stdout, &stderr)
			if code != c.Code {
				t.Errorf("exit %d, want %d", code, c.Code)
			}
			lines := strings.Split(stdout.String(), "\n")
			for _, w := range c.Want {
				prefix := ""
				if w.At != "" {
					prefix = filepath.Join(bundle, w.At) + ": "
				}
				found := false
				for _, l := range lines {
					if strings.HasPrefix(l, prefix) && strings.Contains(l, w.Message) {
						found = true
						break
					}
				}
				if !found {
					t.Errorf("no line starting %q and containing %q", prefix, w.Message)
				}
			}
			if t.Failed() {
				t.Logf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
			}
		})
	}
}
