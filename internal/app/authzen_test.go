package app_test

import (
	"bytes"
	"crypto/rsa"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/verdictpdp/verdict/internal/config"
)

// authzenInterop is the AuthZEN working group's Todo interop data (see
// testdata/authzen/README.md).
type authzenInterop struct {
	Evaluation []struct {
		Request  json.RawMessage `json:"request"`
		Expected bool            `json:"expected"`
	} `json:"evaluation"`
	Evaluations []struct {
		Request  json.RawMessage `json:"request"`
		Expected json.RawMessage `json:"expected"`
	} `json:"evaluations"`
}

// todoConfig serves the AuthZEN Todo bundle next to the built-in ones.
func todoConfig() config.Config {
	cfg := config.Default()
	cfg.Bundles = []config.Bundle{{Name: "authzen-todo", Source: "../../bundles/authzen-todo"}}
	return cfg
}

// postJSON posts body to url with the given headers.
func postJSON(t *testing.T, url string, body []byte, header map[string]string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return doHTTP(t, req)
}

func doHTTP(t *testing.T, req *http.Request) (int, http.Header, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, raw
}

// TestAuthZENInterop runs every decision of the AuthZEN Todo interop
// scenario (40 evaluation and 3 evaluations cases) against a real pdp
// serving bundles/authzen-todo, over HTTP, and compares as the interop
// runner does, strictly: an evaluation's body is exactly {"decision":
// expected}, an evaluations body's array equals the expected one as JSON.
// With the cache on the data is sent three times.
func TestAuthZENInterop(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../../testdata/authzen/decisions-authorization-api-1_0-02.json")
	if err != nil {
		t.Fatal(err)
	}
	var data authzenInterop
	if err := json.Unmarshal(raw, &data); err != nil {
		t.Fatal(err)
	}
	if len(data.Evaluation) != 40 || len(data.Evaluations) != 3 {
		t.Fatalf("interop data has %d evaluation and %d evaluations cases, want 40 and 3", len(data.Evaluation), len(data.Evaluations))
	}
	total := len(data.Evaluation) + len(data.Evaluations)
	for _, m := range cacheModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			p := startPDP(t, m.apply(todoConfig()))
			base := "http://" + p.httpAddr
			for pass := range m.passes {
				passed := 0
				for i, c := range data.Evaluation {
					status, _, body := postJSON(t, base+"/access/v1/evaluation", c.Request, nil)
					want := map[string]any{"decision": c.Expected}
					var got any
					_ = json.Unmarshal(body, &got)
					if d := cmp.Diff(want, got); status != http.StatusOK || d != "" {
						t.Errorf("pass %d, evaluation %d: %d %s, want 200 {\"decision\": %v}", pass, i, status, body, c.Expected)
						continue
					}
					passed++
				}
				for i, c := range data.Evaluations {
					status, _, body := postJSON(t, base+"/access/v1/evaluations", c.Request, nil)
					var got struct {
						Evaluations json.RawMessage `json:"evaluations"`
					}
					_ = json.Unmarshal(body, &got)
					var want, have any
					_ = json.Unmarshal(c.Expected, &want)
					_ = json.Unmarshal(got.Evaluations, &have)
					if d := cmp.Diff(want, have); status != http.StatusOK || d != "" {
						t.Errorf("pass %d, evaluations %d: %d %s, want 200 with evaluations %s", pass, i, status, body, c.Expected)
						continue
					}
					passed++
				}
				t.Logf("pass %d: AuthZEN Todo interop %d/%d", pass, passed, total)
			}
		})
	}
}

// TestAuthZENCallerToken: with authzen.require_token, a PEP without a
// valid bearer token gets 401 with a challenge, one without the required
// scope 403; one with both gets decisions, recorded as requested by the
// token's subject. The metadata stays public.
func TestAuthZENCallerToken(t *testing.T) {
	t.Parallel()
	keys := newTokenKeys(t)
	dir := t.TempDir()
	jwks := filepath.Join(dir, "jwks.json")
	writeJWKS(t, jwks, map[string]*rsa.PrivateKey{"k1": keys.k1})
	cfg := todoConfig()
	cfg.Identity.JWT = config.JWT{JWKS: jwks, Issuer: testIssuer, Audiences: []string{testAudience}}
	cfg.Identity.ResourceMetadata = testResourceMetadata
	cfg.AuthZEN.RequireToken = true
	cfg.AuthZEN.RequiredScope = "authzen:evaluate"
	logPath := filepath.Join(dir, "audit.jsonl")
	cfg.Audit.File.Path = logPath
	p := startPDP(t, cfg)
	url := "http://" + p.httpAddr + "/access/v1/evaluation"
	body := []byte(`{"subject":{"type":"user","id":"CiRmZDM2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"},` +
		`"action":{"name":"can_read_todos"},"resource":{"type":"todo","id":"t1"}}`)
	now := time.Now()
	scoped := signRS256(t, "k1", keys.k1, claimsAt(now, "pep-1", "scope", "authzen:evaluate"))
	unscoped := signRS256(t, "k1", keys.k1, claimsAt(now, "pep-2"))
	expired := signRS256(t, "k1", keys.k1, claimsAt(now.Add(-2*time.Hour), "pep-1", "scope", "authzen:evaluate"))
	foreign := signRS256(t, "k1", keys.k2, claimsAt(now, "pep-1", "scope", "authzen:evaluate"))
	tests := []struct {
		name          string
		authorization string
		status        int
		code          string
		// challenge are the parts the WWW-Authenticate header must hold.
		challenge []string
	}{
		{name: "no token", status: 401, code: "token_missing",
			challenge: []string{"Bearer", `resource_metadata="` + testResourceMetadata + `"`}},
		{name: "not a bearer token", authorization: "Basic cGVwOnNlY3JldA==", status: 401, code: "token_malformed",
			challenge: []string{`error="invalid_token"`}},
		{name: "an expired token", authorization: "Bearer " + expired, status: 401, code: "token_expired",
			challenge: []string{`error="invalid_token"`, `error_description="token_expired"`}},
		{name: "a token signed by another key", authorization: "Bearer " + foreign, status: 401, code: "invalid_signature",
			challenge: []string{`error="invalid_token"`}},
		{name: "a token without the scope", authorization: "Bearer " + unscoped, status: 403, code: "insufficient_scope",
			challenge: []string{`error="insufficient_scope"`, `scope="authzen:evaluate"`}},
		{name: "a token with the scope", authorization: "Bearer " + scoped, status: 200},
	}
	for _, tc := range tests {
		h := map[string]string{}
		if tc.authorization != "" {
			h["Authorization"] = tc.authorization
		}
		status, header, raw := postJSON(t, url, body, h)
		if status != tc.status {
			t.Errorf("%s: status %d, want %d: %s", tc.name, status, tc.status, raw)
			continue
		}
		if tc.status == 200 {
			if string(raw) != "{\"decision\":true}\n" {
				t.Errorf("%s: body %s", tc.name, raw)
			}
			continue
		}
		var e map[string]string
		if err := json.Unmarshal(raw, &e); err != nil || e["code"] != tc.code || e["error"] == "" {
			t.Errorf("%s: body %s, want code %s", tc.name, raw, tc.code)
		}
		wa := header.Get("WWW-Authenticate")
		for _, part := range tc.challenge {
			if !strings.Contains(wa, part) {
				t.Errorf("%s: WWW-Authenticate %q lacks %s", tc.name, wa, part)
			}
		}
		if strings.Contains(string(raw), "eyJ") || strings.Contains(wa, "eyJ") {
			t.Errorf("%s: the answer quotes the token", tc.name)
		}
	}
	status, _, raw := doHTTP(t, mustRequest(t, http.MethodGet, "http://"+p.httpAddr+"/.well-known/authzen-configuration"))
	if status != http.StatusOK || !strings.Contains(string(raw), "access_evaluation_endpoint") {
		t.Errorf("metadata without a token: %d %s, want it served", status, raw)
	}

	p.stop()
	var events []map[string]any
	for _, ev := range readLog(t, logPath) {
		if ev["path"] == "authzen/decision" {
			events = append(events, ev)
		}
	}
	if len(events) != 1 {
		t.Fatalf("%d AuthZEN events, want 1 (refused callers get none): %v", len(events), events)
	}
	ev := events[0]
	if ev["requested_by"] != "pep-1" || ev["decision"] != "allow" ||
		ev["subject"] != "CiRmZDM2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs" {
		t.Errorf("event %v, want an allow about Beth requested by pep-1", ev)
	}
	if in, _ := ev["input"].(map[string]any); in["action"] == nil || in["subject"] == nil || in["resource"] == nil {
		t.Errorf("event input %v, want the evaluation request", ev["input"])
	}
}

func mustRequest(t *testing.T, method, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// TestAuthZENListeners: by default the API is on the HTTP listener next to
// the admin endpoints; with authzen.addr it is on its own listener only,
// without them; with authzen.enabled false it is nowhere.
func TestAuthZENListeners(t *testing.T) {
	t.Parallel()
	body := []byte(`{"subject":{"type":"user","id":"CiRmZDM2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"},` +
		`"action":{"name":"can_create_todo"},"resource":{"type":"todo","id":"t1"}}`)
	own := freeAddr(t)
	off := false
	tests := []struct {
		name string
		set  func(*config.Config)
		// on is where the API answers, "http" or "own"; "" nowhere.
		on string
	}{
		{name: "default", set: func(*config.Config) {}, on: "http"},
		{name: "own listener", set: func(c *config.Config) { c.AuthZEN.Addr = own }, on: "own"},
		{name: "disabled", set: func(c *config.Config) { c.AuthZEN.Enabled = &off }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := todoConfig()
			tc.set(&cfg)
			p := startPDP(t, cfg)
			addrs := map[string]string{"http": p.httpAddr}
			if cfg.AuthZEN.Addr != "" {
				addrs["own"] = cfg.AuthZEN.Addr
			}
			for where, addr := range addrs {
				status, _, raw := postJSON(t, "http://"+addr+"/access/v1/evaluation", body, nil)
				if where == tc.on {
					if status != http.StatusOK || string(raw) != "{\"decision\":false}\n" {
						t.Errorf("%s listener: %d %s, want the decision", where, status, raw)
					}
				} else if status != http.StatusNotFound {
					t.Errorf("%s listener: %d %s, want 404", where, status, raw)
				}
				hs, _, _ := doHTTP(t, mustRequest(t, http.MethodGet, "http://"+addr+"/healthz"))
				if wantAdmin := where == "http"; (hs == http.StatusOK) != wantAdmin {
					t.Errorf("%s listener: /healthz %d, admin endpoints wanted: %v", where, hs, wantAdmin)
				}
			}
		})
	}
}

// TestAuthZENWithoutPolicy: the defaults serve the API, and with no
// AuthZEN policy active it says so (500 no_policy) while the status
// reports no undefined entrypoint: AuthZEN's are prepared only when a
// bundle defines them.
func TestAuthZENWithoutPolicy(t *testing.T) {
	t.Parallel()
	p := startPDP(t, config.Default())
	status, _, raw := postJSON(t, "http://"+p.httpAddr+"/access/v1/evaluation",
		[]byte(`{"subject":{"type":"user","id":"a"},"action":{"name":"read"},"resource":{"type":"doc","id":"1"}}`), nil)
	if status != http.StatusInternalServerError || !strings.Contains(string(raw), `"code":"no_policy"`) {
		t.Errorf("evaluation without an AuthZEN policy: %d %s, want 500 no_policy", status, raw)
	}
	if st := getStatus(t, p); st.Active == nil || len(st.Active.UndefinedEntrypoints) != 0 {
		t.Errorf("status %+v, want no undefined entrypoints", st.Active)
	}
}
