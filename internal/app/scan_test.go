package app_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/verdictpdp/verdict/internal/app"
	"github.com/verdictpdp/verdict/internal/bundle/bundletest"
	"github.com/verdictpdp/verdict/internal/config"
	mcpv1 "github.com/verdictpdp/verdict/proto/verdict/mcp/v1"
)

// TestMCPResultRedactionAndListPoisoning runs the built-in library on the
// example catalog with data.mcp.dlp over gRPC: a result's IBAN is hashed
// and its e-mail address masked (the confidential defaults), the findings
// are answered and audited as counts, and a poisoned tool is hidden from
// tools/list by the poisoning scanner's findings.
func TestMCPResultRedactionAndListPoisoning(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../../bundles/mcp-example/data.json")
	if err != nil {
		t.Fatal(err)
	}
	var data map[string]any
	if err := json.Unmarshal(raw, &data); err != nil {
		t.Fatal(err)
	}
	data["mcp"].(map[string]any)["dlp"] = map[string]any{
		"modes":  map[string]any{"iban": "hash"},
		"custom": []any{map[string]any{"name": "employee_id", "pattern": "EMP-[0-9]{6}", "validator": "none"}},
	}
	dir := t.TempDir()
	logPath := filepath.Join(dir, "audit.jsonl")
	cfg := config.Default()
	cfg.Bundles = []config.Bundle{{Name: "mcp", Source: bundletest.WriteDir(t, t.TempDir(), bundletest.Spec{
		Revision: "mcp-dlp-1", Roots: []string{"mcp"}, Data: data,
	})}}
	cfg.Audit.File.Path = logPath
	p := startPDP(t, cfg)
	mcpc := mcpv1.NewMCPPolicyClient(p.dial(t))
	ctx := context.Background()

	req := mcpExample[mcpv1.CheckResultRequest](t, "mcp-check-result.json")
	req.Result = structValue(t, map[string]any{
		"content": []any{map[string]any{"type": "text", "text": "Jane Roe <jane@example.com>, IBAN DE89 3704 0044 0532 0130 00"}},
	}).GetStructValue()
	cr, err := mcpc.CheckResult(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if cr.GetAction() != mcpv1.ResultAction_RESULT_ACTION_REDACT {
		t.Fatalf("action %v, reasons %v", cr.GetAction(), cr.GetReasons())
	}
	out, _ := json.Marshal(cr.GetResult().AsMap())
	if !strings.Contains(string(out), "[HASH:iban:") || !strings.Contains(string(out), "[REDACTED:email]") || strings.Contains(string(out), "3704") {
		t.Errorf("redacted result %s, want the IBAN hashed and the e-mail address masked", out)
	}
	found := map[string]int32{}
	for _, f := range cr.GetFindings() {
		found[f.GetDetector()] = f.GetCount()
	}
	if found["iban"] != 1 || found["email"] != 1 {
		t.Errorf("findings %v, want one iban and one email", found)
	}

	ft, err := mcpc.FilterTools(ctx, mcpExample[mcpv1.FilterToolsRequest](t, "mcp-filter-tools.json"))
	if err != nil {
		t.Fatal(err)
	}
	var hidden *mcpv1.RemovedEntry
	for _, r := range ft.GetRemoved() {
		if r.GetName() == "get_contact" {
			hidden = r
		}
	}
	if hidden == nil || hidden.GetReason().GetCode() != "list.suspicious" || !strings.Contains(hidden.GetReason().GetMessage(), "poison.prompt_tags") {
		t.Errorf("get_contact removed as %v, want list.suspicious naming poison.prompt_tags", hidden)
	}
	for _, tool := range ft.GetResult().AsMap()["tools"].([]any) {
		if tool.(map[string]any)["name"] == "get_contact" {
			t.Error("the poisoned get_contact is listed")
		}
	}

	p.stop()
	var audited map[string]any
	for _, e := range readLog(t, logPath) {
		if e["decision_id"] == cr.GetDecisionId() {
			audited = e
		}
	}
	if audited == nil {
		t.Fatal("the result check is not in the audit log")
	}
	if f, _ := json.Marshal(audited["findings"]); string(f) != `{"email":1,"iban":1}` {
		t.Errorf("audited findings %s", f)
	}
	if line, _ := json.Marshal(audited); strings.Contains(string(line), "3704") || strings.Contains(string(line), "jane@example.com") {
		t.Errorf("the audit entry holds a matched value: %s", line)
	}
}

// TestMCPDLPHashKeyFile: with mcp.dlp_hash_key_file, two processes hash a
// value the same; a key too short refuses to start.
func TestMCPDLPHashKeyFile(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../../bundles/mcp-example/data.json")
	if err != nil {
		t.Fatal(err)
	}
	var data map[string]any
	if err := json.Unmarshal(raw, &data); err != nil {
		t.Fatal(err)
	}
	data["mcp"].(map[string]any)["dlp"] = map[string]any{"modes": map[string]any{"iban": "hash"}}
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "dlp.key")
	if err := os.WriteFile(keyFile, []byte("a key of more than sixteen bytes\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Bundles = []config.Bundle{{Name: "mcp", Source: bundletest.WriteDir(t, t.TempDir(), bundletest.Spec{
		Revision: "mcp-dlp-1", Roots: []string{"mcp"}, Data: data,
	})}}
	cfg.MCP.DLPHashKeyFile = keyFile
	hashed := func() string {
		p := startPDP(t, cfg)
		defer p.stop()
		req := mcpExample[mcpv1.CheckResultRequest](t, "mcp-check-result.json")
		req.Result = structValue(t, map[string]any{
			"content": []any{map[string]any{"type": "text", "text": "IBAN GB29 NWBK 6016 1331 9268 19"}},
		}).GetStructValue()
		cr, err := mcpv1.NewMCPPolicyClient(p.dial(t)).CheckResult(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := json.Marshal(cr.GetResult().AsMap())
		if !strings.Contains(string(out), "[HASH:iban:") {
			t.Fatalf("result %s, want the IBAN hashed", out)
		}
		return string(out)
	}
	if a, b := hashed(), hashed(); a != b {
		t.Errorf("two processes with one key hash differently:\n%s\n%s", a, b)
	}

	if err := os.WriteFile(keyFile, []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.GRPC.Addr, cfg.HTTP.Addr = "127.0.0.1:0", "127.0.0.1:0"
	err = app.Serve(context.Background(), cfg, slog.New(slog.DiscardHandler), nil)
	if err == nil || !strings.Contains(err.Error(), "mcp.dlp_hash_key_file") || strings.Contains(err.Error(), "short") {
		t.Errorf("Serve with a short key: %v, want a refusal naming the setting, not the key", err)
	}
}
