package app_test

import (
	"crypto/rsa"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/verdictpdp/verdict/internal/config"
	mcpv1 "github.com/verdictpdp/verdict/proto/verdict/mcp/v1"
)

// TestAuthZENTokenTaintsAnotherSubject: with authzen.require_token and no
// required_scope (the default), any bearer token identity.jwt accepts (an
// end user's) makes its holder a PEP whose evaluations are recorded in
// session state, for whatever subject the body claims. Mallory, holding
// her own user token, asks AuthZEN about reading a contact as "alice"
// (with no session id: alice's per-subject session, or with enough
// session ids, alice's overflow record, which every session of hers
// carries); alice's own egress call over the native API is then denied by
// a flow rule for a read she never made. Only the asker's own subject (or
// an asker holding a PEP scope) should be able to change session state.
func TestAuthZENTokenTaintsAnotherSubject(t *testing.T) {
	t.Parallel()
	keys := newTokenKeys(t)
	dir := t.TempDir()
	jwks := filepath.Join(dir, "jwks.json")
	writeJWKS(t, jwks, map[string]*rsa.PrivateKey{"k1": keys.k1})
	cfg := config.Default()
	cfg.Bundles = []config.Bundle{{Name: "data", Source: filepath.Join("../..", "bundles/mcp-example")}}
	cfg.Identity.JWT = config.JWT{JWKS: jwks, Issuer: testIssuer, Audiences: []string{testAudience}}
	cfg.AuthZEN.RequireToken = true
	p := startPDP(t, cfg)
	mallory := signRS256(t, "k1", keys.k1, claimsAt(time.Now(), "mallory"))

	body, err := json.Marshal(map[string]any{
		"subject":  map[string]any{"type": "user", "id": "alice", "properties": map[string]any{"roles": []any{"sales"}, "tenant": "acme", "clearance": "confidential"}},
		"action":   map[string]any{"name": "tools/call"},
		"resource": map[string]any{"type": "mcp_tool", "id": "get_contact", "properties": map[string]any{"server": "crm"}},
		"context":  map[string]any{"arguments": map[string]any{"tenant": "acme", "id": "42"}, "purpose": "support", "region": "eu", "time": flowTime.Format(time.RFC3339)},
	})
	if err != nil {
		t.Fatal(err)
	}
	status, _, raw := postJSON(t, "http://"+p.httpAddr+"/access/v1/evaluation", body, map[string]string{"Authorization": "Bearer " + mallory})
	if status != 200 || string(raw) != "{\"decision\":true}\n" {
		t.Fatalf("mallory's evaluation: %d %s (the test's premise is an allowed read)", status, raw)
	}

	params, err := structpb.NewStruct(map[string]any{"name": "create_issue", "arguments": map[string]any{"repo": "acme/app", "title": "release notes"}})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := mcpv1.NewMCPPolicyClient(p.dial(t)).Check(t.Context(), &mcpv1.CheckRequest{
		Subject: &mcpv1.Subject{Id: "alice", Roles: []string{"sales"}, Groups: []string{"engineering"},
			Scopes: []string{"github:write"}, Tenant: "acme", Clearance: "confidential"},
		Server: "github", Method: "tools/call", Params: params,
		Context: &mcpv1.RequestContext{Purpose: "support", Region: "eu", Time: timestamppb.New(flowTime)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetDecision() != mcpv1.Decision_DECISION_ALLOW {
		t.Fatalf("alice's own call is %v %v: another token holder tainted her session by asking about her", resp.GetDecision(), resp.GetReasons())
	}
}
