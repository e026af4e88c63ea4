package app_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/verdictpdp/verdict/internal/app"
)

// TestPrintConfig runs `pdp serve --print-config` with a flag and an
// environment variable (so it cannot run in parallel) and reads the YAML.
func TestPrintConfig(t *testing.T) {
	t.Setenv("VERDICT_HTTP_ADDR", "127.0.0.1:18181")
	t.Setenv("VERDICT_GRPC_ADDR", "127.0.0.1:1") // the flag wins
	cases := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout []string
		notStdout  []string
		wantStderr string
	}{
		{
			name:     "effective configuration, secrets masked",
			args:     []string{"serve", "--print-config", "--grpc-addr", "127.0.0.1:19191", "--audit-url", "https://ops:hunter2@collector.example.com/logs?key=k3y"},
			wantCode: 0,
			wantStdout: []string{
				"addr: 127.0.0.1:19191", "addr: 127.0.0.1:18181",
				"url: https://****@collector.example.com/logs?key=****",
				"level: info",
			},
			notStdout: []string{"hunter2", "k3y", "127.0.0.1:1\n"},
		},
		{
			name:       "invalid configuration is not printed",
			args:       []string{"serve", "--print-config", "--log-level", "loud"},
			wantCode:   1,
			wantStderr: `log.level: "loud" is not one of`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := app.Main(context.Background(), tc.args, &stdout, &stderr)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tc.wantCode, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.wantStderr) {
				t.Errorf("stderr %q does not mention %q", stderr.String(), tc.wantStderr)
			}
			for _, s := range tc.wantStdout {
				if !strings.Contains(stdout.String(), s) {
					t.Errorf("stdout lacks %q:\n%s", s, stdout.String())
				}
			}
			for _, s := range tc.notStdout {
				if strings.Contains(stdout.String(), s) {
					t.Errorf("stdout shows %q:\n%s", s, stdout.String())
				}
			}
		})
	}
}
