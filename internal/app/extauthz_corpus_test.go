package app_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"sigs.k8s.io/yaml"

	"github.com/verdictpdp/verdict/internal/bundle/bundletest"
	"github.com/verdictpdp/verdict/internal/config"
)

// corpusFile is one testdata/extauthz/*.yaml file: a policy, the options
// the service runs with, and requests with the responses Envoy must get.
type corpusFile struct {
	Description string         `json:"description"`
	Policy      string         `json:"policy"`
	Data        map[string]any `json:"data"`
	Options     corpusOptions  `json:"options"`
	Cases       []corpusCase   `json:"cases"`
}

type corpusOptions struct {
	Path               string `json:"path"`
	DryRun             bool   `json:"dry_run"`
	FailOpen           bool   `json:"fail_open"`
	SkipBodyParse      bool   `json:"skip_body_parse"`
	MaxBodyBytes       int    `json:"max_body_bytes"`
	AllowDuplicateKeys bool   `json:"allow_duplicate_keys"`
}

type corpusCase struct {
	Name     string         `json:"name"`
	Request  map[string]any `json:"request"`
	Response map[string]any `json:"response"`
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// TestExtAuthzCorpus runs every corpus file against a real pdp on loopback,
// called through a real gRPC client.
func TestExtAuthzCorpus(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("../../testdata/extauthz/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus files: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".yaml"), func(t *testing.T) {
			t.Parallel()
			runCorpusFile(t, file)
		})
	}
}

func loadCorpusFile(t *testing.T, file string) corpusFile {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var cf corpusFile
	if err := yaml.UnmarshalStrict(raw, &cf); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if cf.Policy == "" || len(cf.Cases) == 0 {
		t.Fatalf("%s: a corpus file needs a policy and cases", file)
	}
	return cf
}

func runCorpusFile(t *testing.T, file string) {
	t.Helper()
	cf := loadCorpusFile(t, file)
	dir := bundletest.WriteDir(t, t.TempDir(), bundletest.Spec{
		Revision: "corpus-" + filepath.Base(file),
		Modules:  map[string]string{"policy.rego": cf.Policy},
		Data:     cf.Data,
	})
	cfg := config.Default()
	cfg.Bundles = []config.Bundle{{Name: "corpus", Source: dir}}
	if cf.Options.Path != "" {
		cfg.ExtAuthz.Path = cf.Options.Path
	}
	cfg.ExtAuthz.DryRun = cf.Options.DryRun
	cfg.ExtAuthz.SkipRequestBodyParse = cf.Options.SkipBodyParse
	cfg.ExtAuthz.MaxBodyBytes = cf.Options.MaxBodyBytes
	cfg.ExtAuthz.AllowDuplicateKeys = cf.Options.AllowDuplicateKeys
	cfg.Decision.FailOpen = cf.Options.FailOpen
	for _, mode := range cacheModes {
		t.Run(mode.name, func(t *testing.T) {
			p := startPDP(t, mode.apply(cfg))
			client := authv3.NewAuthorizationClient(p.dial(t))
			seen := map[string]string{}
			for pass := range mode.passes {
				if pass > 0 {
					settleCache(t, p)
				}
				runCorpusPass(t, client, cf, seen)
			}
		})
	}
}

func runCorpusPass(t *testing.T, client authv3.AuthorizationClient, cf corpusFile, seen map[string]string) {
	t.Helper()
	for _, c := range cf.Cases {
		t.Run(c.Name, func(t *testing.T) {
			req := &authv3.CheckRequest{}
			mustProtoJSON(t, c.Request, req)

			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			got, err := client.Check(ctx, req)
			if err != nil {
				t.Fatalf("Check returned a gRPC error (Envoy would apply failure_mode_allow): %v", err)
			}

			id := got.GetDynamicMetadata().GetFields()["decision_id"].GetStringValue()
			if !uuidRE.MatchString(id) {
				t.Fatalf("dynamic_metadata.decision_id = %q, want a UUID v4", id)
			}
			if other, dup := seen[id]; dup {
				t.Fatalf("decision_id %s reused (also in case %q)", id, other)
			}
			seen[id] = c.Name
			delete(got.DynamicMetadata.Fields, "decision_id")
			if len(got.DynamicMetadata.Fields) == 0 {
				got.DynamicMetadata = nil
			}

			want := &authv3.CheckResponse{}
			mustProtoJSON(t, c.Response, want)
			if d := want.GetDeniedResponse(); d != nil {
				d.Body = strings.ReplaceAll(d.Body, "$DECISION_ID", id)
			}
			if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
				t.Errorf("CheckResponse mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// mustProtoJSON decodes a YAML-decoded value into msg through protojson,
// so corpus files use the same field names as Envoy's JSON.
func mustProtoJSON(t *testing.T, v map[string]any, msg proto.Message) {
	t.Helper()
	raw, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	js, err := yaml.YAMLToJSON(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := protojson.Unmarshal(js, msg); err != nil {
		t.Fatalf("corpus message: %v\n%s", err, js)
	}
}
