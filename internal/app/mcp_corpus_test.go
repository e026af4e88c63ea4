package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"

	"github.com/verdictpdp/verdict/internal/config"
	"github.com/verdictpdp/verdict/internal/engine"
	"github.com/verdictpdp/verdict/internal/mcpnative"
	mcpv1 "github.com/verdictpdp/verdict/proto/verdict/mcp/v1"
)

// mcpCorpusFile is one testdata/mcp/*.yaml file: requests to the native MCP
// API or to ext_authz, each with the parts of the answer that must match.
type mcpCorpusFile struct {
	Description string `json:"description"`
	// Bundle is a bundle directory relative to the repository root
	// (default bundles/mcp-example); the built-in library serves with it.
	Bundle string `json:"bundle"`
	// Definitions hold YAML anchors (subjects, contexts) the cases reuse.
	Definitions map[string]any  `json:"definitions"`
	Options     corpusOptions   `json:"options"`
	Cases       []mcpCorpusCase `json:"cases"`
}

type mcpCorpusCase struct {
	Name string `json:"name"`
	// Exactly one request kind.
	Check       map[string]any `json:"check"`
	Batch       map[string]any `json:"batch"`
	Filter      map[string]any `json:"filter"`
	CheckResult map[string]any `json:"check_result"`
	Envoy       map[string]any `json:"envoy"`
	// Want is matched against the response's proto3 JSON: every key given
	// must be present with an equal value (lists must match element by
	// element); "$DECISION_ID" matches the answer's decision id, "$ANY" any
	// value. For envoy cases a denied body is parsed as JSON first.
	Want any `json:"want"`
	// WantCode is the gRPC status code name when the call must fail.
	WantCode string `json:"want_code"`
}

// TestMCPCorpus runs every testdata/mcp file against a real pdp on loopback
// through real gRPC clients of both APIs.
func TestMCPCorpus(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("../../testdata/mcp/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus files: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".yaml"), func(t *testing.T) {
			t.Parallel()
			runMCPCorpusFile(t, file)
		})
	}
}

func runMCPCorpusFile(t *testing.T, file string) {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var cf mcpCorpusFile
	if err := yaml.UnmarshalStrict(raw, &cf); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if len(cf.Cases) == 0 {
		t.Fatalf("%s: no cases", file)
	}
	if cf.Bundle == "" {
		cf.Bundle = "bundles/mcp-example"
	}
	cfg := config.Default()
	cfg.Bundles = []config.Bundle{{Name: "data", Source: filepath.Join("../..", cf.Bundle)}}
	cfg.Decision.FailOpen = cf.Options.FailOpen
	cfg.ExtAuthz.DryRun = cf.Options.DryRun
	for _, mode := range mcpModes {
		t.Run(mode.name, func(t *testing.T) {
			p := startPDP(t, mode.apply(cfg))
			st := getStatus(t, p)
			active := st.Active.Revision
			if ev := st.Active.Evaluators[mcpnative.Entrypoint]; (ev.Kind == engine.EvaluatorNative) == mode.rego {
				t.Fatalf("MCP entrypoint runs %s (%s); want native=%v", ev.Kind, ev.Reason, !mode.rego)
			}
			conn := p.dial(t)
			native := mcpv1.NewMCPPolicyClient(conn)
			envoy := authv3.NewAuthorizationClient(conn)
			for pass := range mode.passes {
				if pass > 0 {
					settleCache(t, p)
				}
				runMCPCorpusPass(t, native, envoy, cf, active)
			}
		})
	}
}

func runMCPCorpusPass(t *testing.T, native mcpv1.MCPPolicyClient, envoy authv3.AuthorizationClient, cf mcpCorpusFile, active string) {
	t.Helper()
	for _, c := range cf.Cases {
		t.Run(c.Name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			got, id, err := callCorpusCase(ctx, t, native, envoy, c)
			if c.WantCode != "" {
				if st, _ := status.FromError(err); err == nil || st.Code().String() != c.WantCode {
					t.Fatalf("want gRPC code %s, got %v", c.WantCode, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("call failed: %v", err)
			}
			if c.Want == nil {
				t.Fatal("case has no want")
			}
			if diffs := subsetDiff("", c.Want, got, id); len(diffs) > 0 {
				js, _ := json.MarshalIndent(got, "", "  ")
				t.Errorf("response does not match:\n  %s\ngot:\n%s", strings.Join(diffs, "\n  "), js)
			}
			if c.Envoy == nil {
				// Every native answer names the revision that gave it,
				// refusals of malformed requests included.
				for where, rev := range nativeRevisions(got) {
					if rev != active {
						t.Errorf("%s revision = %v, want the active %q", where, rev, active)
					}
				}
			}
		})
	}
}

// callCorpusCase sends the case's request and returns the response as JSON
// values, with the decision id to match "$DECISION_ID" against.
func callCorpusCase(ctx context.Context, t *testing.T, native mcpv1.MCPPolicyClient, envoy authv3.AuthorizationClient, c mcpCorpusCase) (any, string, error) {
	t.Helper()
	var kinds []string
	for k, v := range map[string]map[string]any{"check": c.Check, "batch": c.Batch, "filter": c.Filter, "check_result": c.CheckResult, "envoy": c.Envoy} {
		if v != nil {
			kinds = append(kinds, k)
		}
	}
	if len(kinds) != 1 {
		t.Fatalf("case %q needs exactly one request kind, has %v", c.Name, kinds)
	}
	var resp proto.Message
	var err error
	switch kinds[0] {
	case "check":
		req := &mcpv1.CheckRequest{}
		mustProtoJSON(t, c.Check, req)
		resp, err = unary(ctx, native.Check, req)
	case "batch":
		req := &mcpv1.CheckBatchRequest{}
		mustProtoJSON(t, c.Batch, req)
		resp, err = unary(ctx, native.CheckBatch, req)
	case "filter":
		req := &mcpv1.FilterToolsRequest{}
		mustProtoJSON(t, c.Filter, req)
		resp, err = unary(ctx, native.FilterTools, req)
	case "check_result":
		req := &mcpv1.CheckResultRequest{}
		mustProtoJSON(t, c.CheckResult, req)
		resp, err = unary(ctx, native.CheckResult, req)
	case "envoy":
		req := &authv3.CheckRequest{}
		mustProtoJSON(t, c.Envoy, req)
		var r *authv3.CheckResponse
		r, err = envoy.Check(ctx, req)
		if err != nil {
			return nil, "", err
		}
		id := r.GetDynamicMetadata().GetFields()["decision_id"].GetStringValue()
		out := protoToJSON(t, r)
		if d, ok := out.(map[string]any)["deniedResponse"].(map[string]any); ok {
			var parsed any
			if body, ok := d["body"].(string); ok && json.Unmarshal([]byte(body), &parsed) == nil {
				d["body"] = parsed
			}
		}
		return out, id, nil
	}
	if err != nil {
		return nil, "", err
	}
	out := protoToJSON(t, resp)
	id, _ := out.(map[string]any)["decisionId"].(string)
	return out, id, nil
}

// nativeRevisions returns the revision of a native answer, or of each
// answer of a batch, by where it is in the response.
func nativeRevisions(got any) map[string]any {
	m, _ := got.(map[string]any)
	answers, isBatch := m["answers"].([]any)
	if !isBatch {
		return map[string]any{"response": m["revision"]}
	}
	out := map[string]any{}
	for i, a := range answers {
		resp, _ := a.(map[string]any)["response"].(map[string]any)
		out[fmt.Sprintf("answers[%d]", i)] = resp["revision"]
	}
	return out
}

func unary[Req, Resp proto.Message](ctx context.Context, call func(context.Context, Req, ...grpc.CallOption) (Resp, error), req Req) (proto.Message, error) {
	return call(ctx, req)
}

func protoToJSON(t *testing.T, m proto.Message) any {
	t.Helper()
	js, err := protojson.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(js, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// subsetDiff lists where got does not contain want.
func subsetDiff(path string, want, got any, decisionID string) []string {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: want an object, got %v", path, got)}
		}
		var diffs []string
		for _, k := range slices.Sorted(maps.Keys(w)) {
			gv, present := g[k]
			if w[k] == nil {
				if present && gv != nil {
					diffs = append(diffs, fmt.Sprintf("%s.%s: want absent, got %v", path, k, gv))
				}
				continue
			}
			if !present {
				diffs = append(diffs, fmt.Sprintf("%s.%s: missing", path, k))
				continue
			}
			diffs = append(diffs, subsetDiff(path+"."+k, w[k], gv, decisionID)...)
		}
		return diffs
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return []string{fmt.Sprintf("%s: want %d elements, got %v", path, len(w), got)}
		}
		var diffs []string
		for i := range w {
			diffs = append(diffs, subsetDiff(fmt.Sprintf("%s[%d]", path, i), w[i], g[i], decisionID)...)
		}
		return diffs
	case string:
		switch {
		case w == "$ANY":
			return nil
		case w == "$DECISION_ID" && got == decisionID && decisionID != "":
			return nil
		case got == w:
			return nil
		}
		return []string{fmt.Sprintf("%s: want %q, got %v", path, w, got)}
	default:
		if reflect.DeepEqual(toFloat(want), toFloat(got)) {
			return nil
		}
		return []string{fmt.Sprintf("%s: want %v, got %v", path, want, got)}
	}
}

func toFloat(v any) any {
	switch x := v.(type) {
	case int:
		return float64(x)
	case int64:
		return float64(x)
	case json.Number:
		f, _ := x.Float64()
		return f
	}
	return v
}
