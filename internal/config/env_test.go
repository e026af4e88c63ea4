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

func TestEnv(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "verdict.yaml")
	if err := os.WriteFile(file, []byte("grpc:\n  addr: 127.0.0.1:1000\nlog:\n  level: warn\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	type want struct {
		GRPCAddr  string
		LogLevel  string
		Audiences []string
		Bundles   []string
		Cache     bool
	}
	cases := []struct {
		name         string
		args         []string
		env          []string
		want         want
		wantErr      string
		wantWarnings []string
	}{
		{
			name: "defaults without env",
			want: want{GRPCAddr: config.DefaultGRPCAddr, LogLevel: "info", Cache: true},
		},
		{
			name: "env over defaults",
			env:  []string{"VERDICT_GRPC_ADDR=0.0.0.0:9191", "VERDICT_CACHE=false", "HOME=/root"},
			want: want{GRPCAddr: "0.0.0.0:9191", LogLevel: "info"},
		},
		{
			name: "env over the config file, file over defaults",
			args: []string{"--config", file},
			env:  []string{"VERDICT_GRPC_ADDR=0.0.0.0:2000"},
			want: want{GRPCAddr: "0.0.0.0:2000", LogLevel: "warn", Cache: true},
		},
		{
			name: "config file named by env",
			env:  []string{"VERDICT_CONFIG=" + file},
			want: want{GRPCAddr: "127.0.0.1:1000", LogLevel: "warn", Cache: true},
		},
		{
			name: "command line over env",
			args: []string{"--grpc-addr", "127.0.0.1:3000", "--jwt-audience", "https://cli"},
			env:  []string{"VERDICT_GRPC_ADDR=0.0.0.0:2000", "VERDICT_JWT_AUDIENCE=https://env", "VERDICT_JWKS=jwks.json", "VERDICT_JWT_ISSUER=https://idp"},
			want: want{GRPCAddr: "127.0.0.1:3000", LogLevel: "info", Audiences: []string{"https://cli"}, Cache: true},
		},
		{
			name: "repeatable flags take comma-separated values",
			env: []string{
				"VERDICT_JWT_AUDIENCE=https://a, https://b",
				"VERDICT_JWKS=jwks.json", "VERDICT_JWT_ISSUER=https://idp",
				"VERDICT_BUNDLE=one=" + dir + ",two=" + dir,
			},
			want: want{GRPCAddr: config.DefaultGRPCAddr, LogLevel: "info", Audiences: []string{"https://a", "https://b"}, Bundles: []string{"one", "two"}, Cache: true},
		},
		{
			name: "empty variable is unset",
			env:  []string{"VERDICT_GRPC_ADDR=", "VERDICT_CACHE="},
			want: want{GRPCAddr: config.DefaultGRPCAddr, LogLevel: "info", Cache: true},
		},
		{
			name:    "bool that does not parse names the variable",
			env:     []string{"VERDICT_CACHE=maybe"},
			wantErr: `VERDICT_CACHE="maybe": --cache wants true or false`,
		},
		{
			name:    "duration that does not parse names the variable",
			env:     []string{"VERDICT_CACHE_TTL=5"},
			wantErr: `VERDICT_CACHE_TTL="5": --cache-ttl: `,
		},
		{
			name:         "unknown variable warns with the closest flag",
			env:          []string{"VERDICT_GRCP_ADDR=0.0.0.0:1", "VERDICT_ZZZZZZZZZZZZZZZZ=1"},
			want:         want{GRPCAddr: config.DefaultGRPCAddr, LogLevel: "info", Cache: true},
			wantWarnings: []string{"VERDICT_GRCP_ADDR names no flag of this command; did you mean VERDICT_GRPC_ADDR?", "VERDICT_ZZZZZZZZZZZZZZZZ names no flag of this command"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			f := config.BindFlags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			warnings, err := config.ApplyEnv(fs, tc.env)
			if diff := cmp.Diff(tc.wantWarnings, warnings); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := f.Resolve()
			if err != nil {
				t.Fatal(err)
			}
			got := want{GRPCAddr: cfg.GRPC.Addr, LogLevel: cfg.Log.Level, Audiences: cfg.Identity.JWT.Audiences, Cache: cfg.Cache.On()}
			for _, b := range cfg.Bundles {
				got.Bundles = append(got.Bundles, b.Name)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEnvName(t *testing.T) {
	t.Parallel()
	for flagName, want := range map[string]string{
		"grpc-addr":    "VERDICT_GRPC_ADDR",
		"jwt-audience": "VERDICT_JWT_AUDIENCE",
		"config":       "VERDICT_CONFIG",
	} {
		if got := config.EnvName(flagName); got != want {
			t.Errorf("EnvName(%q) = %q, want %q", flagName, got, want)
		}
	}
}
