package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/verdictpdp/verdict/internal/config"
	mcpv1 "github.com/verdictpdp/verdict/proto/verdict/mcp/v1"
)

// toolHiveCorpusFile is one testdata/toolhive/*.yaml file: questions in
// ToolHive's PORC form, each with the same call to the native MCP API.
type toolHiveCorpusFile struct {
	Description string `json:"description"`
	// Bundle is a bundle directory relative to the repository root
	// (default bundles/mcp-example); the built-in library serves with it.
	Bundle  string `json:"bundle"`
	Options struct {
		CallsWithoutArgs string `json:"calls_without_args"`
	} `json:"options"`
	Definitions map[string]any       `json:"definitions"`
	Cases       []toolHiveCorpusCase `json:"cases"`
}

type toolHiveCorpusCase struct {
	Name string `json:"name"`
	// PORC is the body ToolHive POSTs to /decision.
	PORC map[string]any `json:"porc"`
	// Native is the same call to verdict.mcp.v1.MCPPolicy: check (Check)
	// or filter (FilterTools with a one-entry result). Absent for
	// operations without an MCP equivalent.
	Native struct {
		Check  map[string]any `json:"check"`
		Filter map[string]any `json:"filter"`
	} `json:"native"`
	// Want is allow or deny; Reason, when set, must be among the reason
	// codes of ToolHive's answer.
	Want   string `json:"want"`
	Reason string `json:"reason"`
}

// toolHiveAnswer is the 200 body of POST /decision.
type toolHiveAnswer struct {
	Allow      *bool  `json:"allow"`
	DecisionID string `json:"decision_id"`
	Reasons    []struct {
		Code string `json:"code"`
	} `json:"reasons"`
}

// TestToolHiveCorpus runs every testdata/toolhive file against a real pdp
// on loopback: each PORC question over HTTP as ToolHive sends it, and the
// same call over the native gRPC API. The answers must be equal, and equal
// to the case's want.
func TestToolHiveCorpus(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("../../testdata/toolhive/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus files: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".yaml"), func(t *testing.T) {
			t.Parallel()
			runToolHiveCorpusFile(t, file)
		})
	}
}

func runToolHiveCorpusFile(t *testing.T, file string) {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var cf toolHiveCorpusFile
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
	cfg.ToolHive.CallsWithoutArgs = cf.Options.CallsWithoutArgs
	for _, mode := range mcpModes {
		t.Run(mode.name, func(t *testing.T) {
			p := startPDP(t, mode.apply(cfg))
			native := mcpv1.NewMCPPolicyClient(p.dial(t))
			for pass := range mode.passes {
				if pass > 0 {
					settleCache(t, p)
				}
				for _, c := range cf.Cases {
					t.Run(c.Name, func(t *testing.T) {
						runToolHiveCase(t, p, native, c)
					})
				}
			}
		})
	}
}

func runToolHiveCase(t *testing.T, p *pdp, native mcpv1.MCPPolicyClient, c toolHiveCorpusCase) {
	t.Helper()
	if c.Want != "allow" && c.Want != "deny" {
		t.Fatalf("want is %q, not allow or deny", c.Want)
	}
	body, err := json.Marshal(c.PORC)
	if err != nil {
		t.Fatal(err)
	}
	status, respBody := postToolHive(t, p, "/decision", "application/json", body)
	if status != http.StatusOK {
		t.Fatalf("status %d, want 200: %s", status, respBody)
	}
	var a toolHiveAnswer
	if err := json.Unmarshal(respBody, &a); err != nil || a.Allow == nil || a.DecisionID == "" {
		t.Fatalf("answer %s is not {allow, decision_id}: %v", respBody, err)
	}
	codes := make([]string, len(a.Reasons))
	for i, r := range a.Reasons {
		codes[i] = r.Code
	}
	if got := map[bool]string{true: "allow", false: "deny"}[*a.Allow]; got != c.Want {
		t.Errorf("ToolHive answer: %s (reasons %v), want %s", got, codes, c.Want)
	}
	if *a.Allow == (len(a.Reasons) > 0) {
		t.Errorf("answer %s: reasons come with a deny, and only with one", respBody)
	}
	if c.Reason != "" && !slices.Contains(codes, c.Reason) {
		t.Errorf("reasons %v, want one %s", codes, c.Reason)
	}
	nativeAllow, nativeFirst, ok := askNative(t, native, c)
	if !ok {
		return
	}
	if nativeAllow != *a.Allow {
		t.Errorf("ToolHive allow=%v, native API allow=%v for the same call", *a.Allow, nativeAllow)
	}
	if !*a.Allow && len(codes) > 0 && codes[0] != nativeFirst {
		t.Errorf("first reason %s, the native API's %s", codes[0], nativeFirst)
	}
}

// askNative sends the case's native call: whether it allows (Check:
// DECISION_ALLOW; FilterTools: the entry is kept) and its first reason
// code. ok is false for a case without one.
func askNative(t *testing.T, native mcpv1.MCPPolicyClient, c toolHiveCorpusCase) (allow bool, reason string, ok bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	switch {
	case c.Native.Check != nil:
		req := &mcpv1.CheckRequest{}
		mustProtoJSON(t, c.Native.Check, req)
		resp, err := native.Check(ctx, req)
		if err != nil {
			t.Fatalf("native Check: %v", err)
		}
		if rs := resp.GetReasons(); len(rs) > 0 {
			reason = rs[0].GetCode()
		}
		return resp.GetDecision() == mcpv1.Decision_DECISION_ALLOW, reason, true
	case c.Native.Filter != nil:
		req := &mcpv1.FilterToolsRequest{}
		mustProtoJSON(t, c.Native.Filter, req)
		resp, err := native.FilterTools(ctx, req)
		if err != nil {
			t.Fatalf("native FilterTools: %v", err)
		}
		kept := 0
		for _, f := range resp.GetResult().GetFields() {
			kept += len(f.GetListValue().GetValues())
		}
		switch {
		case len(resp.GetRemoved()) > 0:
			reason = resp.GetRemoved()[0].GetReason().GetCode()
		case len(resp.GetReasons()) > 0:
			reason = resp.GetReasons()[0].GetCode()
		}
		return kept == 1, reason, true
	default:
		return false, "", false
	}
}

// postToolHive sends one request to the pdp's HTTP listener as ToolHive
// does and returns the status and body.
func postToolHive(t *testing.T, p *pdp, path, contentType string, body []byte) (int, []byte) {
	t.Helper()
	return requestToolHive(t, p, http.MethodPost, path, contentType, body)
}

func requestToolHive(t *testing.T, p *pdp, method, path, contentType string, body []byte) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://"+p.httpAddr+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out
}
