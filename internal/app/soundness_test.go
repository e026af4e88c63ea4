package app_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/genproto/googleapis/rpc/code"
	"sigs.k8s.io/yaml"

	"github.com/verdictpdp/verdict/internal/bundle/bundletest"
	"github.com/verdictpdp/verdict/internal/config"
)

// adapterSoundnessCase is a testdata/cache-soundness file with envoy
// requests: attacks on the ext_authz adapter (its fast cache key, MCP
// routing, input parsing) rather than on the policy analysis alone.
type adapterSoundnessCase struct {
	Class     string         `json:"class"`
	Policy    string         `json:"policy"`
	MCPPolicy string         `json:"mcp_policy"`
	Data      map[string]any `json:"data"`
	Limits    struct {
		MaxPathBytes int `json:"max_path_bytes"`
	} `json:"limits"`
	Envoy []adapterRequest `json:"envoy"`
}

type adapterRequest struct {
	Name    string         `json:"name"`
	Request map[string]any `json:"request"`
	// Path replaces the request's path with prefix + repeat×times.
	Path       *repeated `json:"path"`
	Allowed    bool      `json:"allowed"`
	HTTPStatus int       `json:"http_status"`
	Code       string    `json:"code"`
}

// TestCacheSoundnessAdapters sends the envoy requests of
// testdata/cache-soundness, in order, to a real pdp without the cache and to
// one with it (three passes): every answer must be the case's.
func TestCacheSoundnessAdapters(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("../../testdata/cache-soundness/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no cases: %v", err)
	}
	ran := 0
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var c adapterSoundnessCase
		if err := yaml.Unmarshal(raw, &c); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if len(c.Envoy) == 0 {
			continue
		}
		ran++
		t.Run(strings.TrimSuffix(filepath.Base(file), ".yaml"), func(t *testing.T) {
			t.Parallel()
			runAdapterSoundness(t, c)
		})
	}
	if ran == 0 {
		t.Fatal("no case has envoy requests")
	}
}

func runAdapterSoundness(t *testing.T, c adapterSoundnessCase) {
	t.Helper()
	modules := map[string]string{"envoy.rego": c.Policy}
	if c.MCPPolicy != "" {
		modules["mcp.rego"] = c.MCPPolicy
	}
	dir := bundletest.WriteDir(t, t.TempDir(), bundletest.Spec{Revision: "soundness", Modules: modules, Data: c.Data})
	cfg := config.Default()
	cfg.Bundles = []config.Bundle{{Name: "soundness", Source: dir}}
	lib := false
	cfg.Library = &lib
	cfg.Limits.MaxPathBytes = c.Limits.MaxPathBytes
	for _, mode := range cacheModes {
		t.Run(mode.name, func(t *testing.T) {
			p := startPDP(t, mode.apply(cfg))
			client := authv3.NewAuthorizationClient(p.dial(t))
			for pass := range mode.passes {
				if pass > 0 {
					settleCache(t, p)
				}
				for i, r := range c.Envoy {
					req := &authv3.CheckRequest{}
					mustProtoJSON(t, r.Request, req)
					if r.Path != nil {
						req.GetAttributes().GetRequest().GetHttp().Path = r.Path.String()
					}
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					resp, err := client.Check(ctx, req)
					cancel()
					if err != nil {
						t.Fatalf("%s: request %d (%s): %v", c.Class, i, r.Name, err)
					}
					allowed := resp.GetStatus().GetCode() == int32(code.Code_OK)
					denied := resp.GetDeniedResponse()
					if allowed != r.Allowed {
						t.Errorf("%s: pass %d, request %d (%s): allowed = %v, want %v (%d %s)", c.Class, pass, i, r.Name, allowed, r.Allowed,
							denied.GetStatus().GetCode(), denied.GetBody())
						continue
					}
					if r.HTTPStatus != 0 && int(denied.GetStatus().GetCode()) != r.HTTPStatus {
						t.Errorf("%s: request %d (%s): HTTP %d, want %d (%s)", c.Class, i, r.Name, denied.GetStatus().GetCode(), r.HTTPStatus, denied.GetBody())
					}
					if r.Code != "" {
						var body struct {
							Code  string `json:"code"`
							Error struct {
								Code int `json:"code"`
							} `json:"error"`
						}
						_ = json.Unmarshal([]byte(denied.GetBody()), &body)
						if body.Code != r.Code && !strings.Contains(denied.GetBody(), r.Code) {
							t.Errorf("%s: request %d (%s): body %s, want code %s", c.Class, i, r.Name, denied.GetBody(), r.Code)
						}
					}
				}
			}
			if mode.on && slices.ContainsFunc(c.Envoy, func(r adapterRequest) bool { return r.Allowed }) && getStatus(t, p).Cache.Hits == 0 {
				t.Errorf("%s: the cache answered nothing: the case does not exercise it", c.Class)
			}
		})
	}
}
