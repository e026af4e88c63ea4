package app_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/verdictpdp/verdict/internal/config"
)

// TestGrpcurlThroughReflection calls the service with grpcurl, an
// independent client that learns the API from server reflection, exactly as
// the README shows. CI installs grpcurl; elsewhere the test is skipped when
// it is missing.
func TestGrpcurlThroughReflection(t *testing.T) {
	t.Parallel()
	bin, err := exec.LookPath("grpcurl")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("grpcurl is not installed; .ci/run installs it")
		}
		t.Skip("grpcurl not installed (go install github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.4)")
	}
	p := startPDP(t, config.Default()) // the built-in bundle

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

	t.Run("list services", func(t *testing.T) {
		t.Parallel()
		out := string(run(t, p.grpcAddr, "list"))
		for _, svc := range []string{"envoy.service.auth.v3.Authorization", "grpc.health.v1.Health"} {
			if !strings.Contains(out, svc) {
				t.Errorf("grpcurl list does not show %s:\n%s", svc, out)
			}
		}
	})
	t.Run("health", func(t *testing.T) {
		t.Parallel()
		var resp struct{ Status string }
		if err := json.Unmarshal(run(t, p.grpcAddr, "grpc.health.v1.Health/Check"), &resp); err != nil {
			t.Fatal(err)
		}
		if resp.Status != "SERVING" {
			t.Fatalf("health = %q, want SERVING", resp.Status)
		}
	})
	check := func(t *testing.T, method, path string) map[string]any {
		t.Helper()
		req := `{"attributes":{"request":{"http":{"method":"` + method + `","path":"` + path + `"}}}}`
		var resp map[string]any
		if err := json.Unmarshal(run(t, "-d", req, p.grpcAddr, "envoy.service.auth.v3.Authorization/Check"), &resp); err != nil {
			t.Fatal(err)
		}
		return resp
	}
	t.Run("check allowed by the default policy", func(t *testing.T) {
		t.Parallel()
		resp := check(t, "GET", "/healthz")
		if _, ok := resp["okResponse"]; !ok {
			t.Fatalf("GET /healthz: %v, want okResponse", resp)
		}
	})
	t.Run("check denied by the default policy", func(t *testing.T) {
		t.Parallel()
		resp := check(t, "GET", "/admin")
		denied, ok := resp["deniedResponse"].(map[string]any)
		if !ok || !strings.Contains(denied["body"].(string), "no rule of the default policy allows this request") {
			t.Fatalf("GET /admin: %v, want the default policy's deny", resp)
		}
	})
}
