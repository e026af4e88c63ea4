package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"go/build"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/verdictpdp/verdict/internal/app"
)

// opaCLI is the opa binary `make tools` installs. Under CI it must exist;
// elsewhere the comparison is skipped without it.
func opaCLI(t *testing.T) string {
	t.Helper()
	for _, p := range []string{filepath.Join(build.Default.GOPATH, "bin", "opa"), "opa"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("opa CLI not found: run make tools")
	}
	t.Skip("opa CLI not found (make tools installs it)")
	return ""
}

// testOutcome is a test result of the json format of opa test, less what
// varies between runs.
type testOutcome struct {
	Package string `json:"package"`
	Name    string `json:"name"`
	Fail    bool   `json:"fail,omitempty"`
	Error   any    `json:"error,omitempty"`
	Skip    bool   `json:"skip,omitempty"`
}

func outcomes(t *testing.T, raw []byte) []testOutcome {
	t.Helper()
	var out []testOutcome
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("not the json test format: %v\n%s", err, raw)
	}
	slices.SortFunc(out, func(a, b testOutcome) int {
		if c := strings.Compare(a.Package, b.Package); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out
}

// TestPDPTestMatchesOPATest runs pdp test and opa test on the same paths
// and compares what they found: the same tests, the same failures, the same
// exit code and, in the pretty format, the same failure report.
func TestPDPTestMatchesOPATest(t *testing.T) {
	t.Parallel()
	opa := opaCLI(t)
	root := filepath.Join("..", "..")
	cases := []struct {
		name     string
		path     string
		wantCode int
		wantFail int
	}{
		{"the shipped policies", "policies", 0, 0},
		{"one passing and one failing test", filepath.Join("testdata", "regotest", "failing"), 2, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(root, tc.path)
			for _, format := range []string{"json", "pretty"} {
				var stdout, stderr bytes.Buffer
				code := app.Main(context.Background(), []string{"test", "--format", format, path}, &stdout, &stderr)
				cmd := exec.Command(opa, "test", "--v1-compatible", "--format", format, path)
				var opaOut bytes.Buffer
				cmd.Stdout = &opaOut
				opaCode := 0
				if err := cmd.Run(); err != nil {
					ee, ok := errors.AsType[*exec.ExitError](err)
					if !ok {
						t.Fatal(err)
					}
					opaCode = ee.ExitCode()
				}
				if code != tc.wantCode || opaCode != tc.wantCode {
					t.Fatalf("%s: pdp test exit %d, opa test exit %d, want %d; stderr: %s", format, code, opaCode, tc.wantCode, stderr.String())
				}
				if format == "pretty" {
					// Durations differ: compare the summary and failure lines.
					if d := cmp.Diff(prettySummary(opaOut.String()), prettySummary(stdout.String())); d != "" {
						t.Errorf("pretty output differs (-opa +pdp):\n%s", d)
					}
					continue
				}
				pdp, want := outcomes(t, stdout.Bytes()), outcomes(t, opaOut.Bytes())
				if d := cmp.Diff(want, pdp); d != "" {
					t.Errorf("results differ (-opa +pdp):\n%s", d)
				}
				fails := 0
				for _, o := range pdp {
					if o.Fail || o.Error != nil {
						fails++
					}
				}
				if len(pdp) == 0 || fails != tc.wantFail {
					t.Errorf("%d tests, %d failing; want some tests, %d failing", len(pdp), fails, tc.wantFail)
				}
			}
		})
	}
}

// prettySummary is the pretty format without durations.
func prettySummary(s string) []string {
	var out []string
	for _, l := range bytes.Split([]byte(s), []byte("\n")) {
		if i := bytes.LastIndex(l, []byte(" (")); i > 0 && bytes.HasSuffix(l, []byte(")")) {
			l = l[:i]
		}
		out = append(out, string(l))
	}
	return out
}
