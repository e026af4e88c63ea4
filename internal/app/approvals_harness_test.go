package app_test

import (
	"bytes"
	"crypto/rsa"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/internal/config"
	mcpv1 "github.com/verdictpdp/verdict/proto/verdict/mcp/v1"

	"google.golang.org/protobuf/types/known/structpb"
)

// approvalsEnv is a pdp deciding with the MCP example bundle, its
// approvals kept in dir, approver tokens verified against keys.
type approvalsEnv struct {
	cfg  config.Config
	keys tokenKeys
}

// newApprovalsEnv configures (but does not start) a pdp with approvals on
// disk in a fresh directory, the example bundle and bearer tokens
// verified against a JWKS file of fresh keys.
func newApprovalsEnv(t *testing.T) *approvalsEnv {
	t.Helper()
	keys := newTokenKeys(t)
	dir := t.TempDir()
	jwks := filepath.Join(dir, "jwks.json")
	writeJWKS(t, jwks, map[string]*rsa.PrivateKey{"k1": keys.k1})
	cfg := config.Default()
	cfg.Bundles = []config.Bundle{{Name: "data", Source: filepath.Join("../..", "bundles/mcp-example")}}
	cfg.Identity.JWT = config.JWT{JWKS: jwks, Issuer: testIssuer, Audiences: []string{testAudience}}
	cfg.Approvals.Dir = filepath.Join(dir, "approvals")
	return &approvalsEnv{cfg: cfg, keys: keys}
}

// token signs a token for sub with extra claims ("roles", []string{...}).
// It carries the approver scope and tenant acme unless extra sets them.
func (e *approvalsEnv) token(t *testing.T, sub string, extra ...any) string {
	t.Helper()
	extra = append([]any{"scope", "tools:read verdict:approve", "tenant", "acme"}, extra...)
	return signRS256(t, "k1", e.keys.k1, claimsAt(time.Now(), sub, extra...))
}

// carlDeletes is the example's destructive call: carl (crm_admin) deletes
// a contact; the example's approvers are crm_lead holders.
func carlDeletes(id string) *mcpv1.CheckRequest {
	params, _ := structpb.NewStruct(map[string]any{"name": "delete_contact", "arguments": map[string]any{"tenant": "acme", "id": id}})
	return &mcpv1.CheckRequest{
		Subject: &mcpv1.Subject{Id: "carl", Roles: []string{"crm_admin"}, Tenant: "acme", Clearance: "confidential"},
		Server:  "crm", Method: "tools/call", Params: params,
		Context: &mcpv1.RequestContext{Purpose: "support", Region: "eu", SourceIp: "10.1.2.3"},
	}
}

// adminCall sends an admin API request with an approver's token and
// decodes the JSON answer.
func adminCall(t *testing.T, p *pdp, method, path, token string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, "http://"+p.httpAddr+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("%s %s: answer is not JSON: %v", method, path, err)
	}
	return resp.StatusCode, out
}

// errorCode is the code of an admin API error answer.
func errorCode(out map[string]any) string {
	e, _ := out["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}
