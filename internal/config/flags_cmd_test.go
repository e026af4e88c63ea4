package config_test

import (
	"flag"
	"io"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/internal/config"
)

// TestCommandFlagSets checks that each command's flag set takes its flags,
// resolves them over the defaults as serve does, and refuses the flags of
// other commands.
func TestCommandFlagSets(t *testing.T) {
	t.Parallel()
	binders := map[string]func(*flag.FlagSet) *config.Flags{
		"serve": config.BindServeFlags,
		"eval":  config.BindEvalFlags,
		"check": config.BindCheckFlags,
	}
	cases := []struct {
		cmd     string
		args    []string
		refused bool
		check   func(config.Config) bool
	}{
		{"eval", []string{"--bundle", "acme=../../bundles/mcp-example", "--mcp-path", "acme/mcp", "--library=false", "--fail-open"}, false, func(c config.Config) bool {
			return len(c.Bundles) == 1 && c.Bundles[0].Name == "acme" && c.MCP.Path == "acme/mcp" && !c.LibraryEnabled() && c.Decision.FailOpen
		}},
		{"eval", []string{"--eval-timeout", "2s", "--skip-body-parse"}, false, func(c config.Config) bool {
			return c.Decision.EvalTimeout == config.Duration(2*time.Second) && c.ExtAuthz.SkipRequestBodyParse
		}},
		{"eval", []string{"--grpc-addr", ":1"}, true, nil},
		{"eval", []string{"--audit-file", "a.log"}, true, nil},
		{"check", []string{"--extauthz-path", "acme/allow", "--authzen-path", "acme/authzen"}, false, func(c config.Config) bool {
			return c.ExtAuthz.Path == "acme/allow" && c.AuthZEN.Path == "acme/authzen" && c.GRPC.Addr == "127.0.0.1:9191"
		}},
		{"check", []string{"--fail-open"}, true, nil},
		{"check", []string{"--request", "r.json"}, true, nil},
		{"serve", []string{"--grpc-addr", "127.0.0.1:1", "--library=false"}, false, func(c config.Config) bool {
			return c.GRPC.Addr == "127.0.0.1:1" && !c.LibraryEnabled()
		}},
	}
	for _, tc := range cases {
		t.Run(tc.cmd+" "+tc.args[0], func(t *testing.T) {
			t.Parallel()
			fs := flag.NewFlagSet(tc.cmd, flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			f := binders[tc.cmd](fs)
			err := fs.Parse(tc.args)
			if tc.refused {
				if err == nil {
					t.Fatalf("pdp %s accepted %v", tc.cmd, tc.args)
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
			if !tc.check(cfg) {
				t.Fatalf("pdp %s %v resolved to %+v", tc.cmd, tc.args, cfg)
			}
		})
	}
}
