package controlapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/verdictpdp/verdict/internal/adapter/controlapi"
	"github.com/verdictpdp/verdict/internal/control"
)

// fixedApprover stands in for token verification (tested in
// internal/identity): every request is the same approver.
type fixedApprover struct{ a control.Approver }

func (f fixedApprover) Approver(context.Context, string) (control.Approver, *control.Error) {
	return f.a, nil
}

// allowAll is an approvals policy that lets anyone do anything: the API's
// own refusals are what these tests see.
type allowAll struct{}

func (allowAll) Authorize(context.Context, map[string]any) (bool, []control.Reason, error) {
	return true, nil, nil
}

func newAPI(t testing.TB) (*httptest.Server, *control.Controls) {
	t.Helper()
	c, err := control.New(context.Background(), control.NewMemoryStore(), control.Options{Authorizer: allowAll{}})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	(&controlapi.API{Controls: c, Auth: fixedApprover{control.Approver{ID: "dana", Roles: []string{"crm_lead"}}}}).Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, c
}

func post(t testing.TB, srv *httptest.Server, path, contentType, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("%s: answer is not JSON: %v", path, err)
	}
	return resp.StatusCode, out
}

func code(out map[string]any) string {
	e, _ := out["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

// TestBodies: each malformed body is refused with a reason a caller can
// act on, and nothing is created.
func TestBodies(t *testing.T) {
	srv, c := newAPI(t)
	for _, tc := range []struct {
		name, path, contentType, body string
		status                        int
		code, message                 string
	}{
		{"not JSON", "/v1/grants", "application/json", `{"subject":`, 400, "request.invalid", "syntax error"},
		{"wrong type", "/v1/grants", "application/json", `{"subject":"carl","tools":"crm/*","duration":"1h"}`, 400, "request.invalid", "member tools must be []string"},
		{"unknown member", "/v1/grants", "application/json", `{"subject":"carl","tools":["crm/*"],"duration":"1h","admin":true}`, 400, "request.invalid", `unknown member "admin"`},
		{"two values", "/v1/grants", "application/json", `{"subject":"carl","tools":["crm/*"],"duration":"1h"} {}`, 400, "request.invalid", "more than one JSON value"},
		{"empty body", "/v1/grants", "application/json", ``, 400, "request.invalid", "a JSON object is required"},
		{"form body", "/v1/grants", "application/x-www-form-urlencoded", `subject=carl`, 415, "request.invalid", "application/json"},
		{"bad duration", "/v1/grants", "application/json", `{"subject":"carl","tools":["crm/*"],"duration":"forever"}`, 400, "grant.invalid", "duration"},
		{"zero duration", "/v1/grants", "application/json", `{"subject":"carl","tools":["crm/*"],"duration":"0s"}`, 400, "grant.invalid", "positive"},
		{"bad expires_at", "/v1/grants", "application/json", `{"subject":"carl","tools":["crm/*"],"expires_at":"tomorrow"}`, 400, "grant.invalid", "RFC 3339"},
		{"huge body", "/v1/quarantines", "application/json", `{"kind":"server","server":"` + strings.Repeat("x", 70<<10) + `"}`, 413, "request.too_large", "64 KiB"},
		{"bad quarantine duration", "/v1/quarantines", "application/json", `{"kind":"server","server":"crm","duration":"-1h"}`, 400, "quarantine.invalid", "positive"},
		{"note with bidi override", "/v1/approvals/apr_aaaaaaaaaaaaaaaaaaaaaaaaaa/approve", "application/json", `{"note":"ok \u202e"}`, 400, "note.invalid", "invisible"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, out := post(t, srv, tc.path, tc.contentType, tc.body)
			e, _ := out["error"].(map[string]any)
			msg, _ := e["message"].(string)
			if st != tc.status || code(out) != tc.code || !strings.Contains(msg, tc.message) {
				t.Errorf("got %d %v, want %d %s containing %q", st, out, tc.status, tc.code, tc.message)
			}
		})
	}
	if s := c.Stats(); s.Records != 0 {
		t.Errorf("%d records after refused bodies, want none", s.Records)
	}
}

// TestPageHeaders: the page is static, framed by nobody, and runs only its
// own script.
func TestPageHeaders(t *testing.T) {
	srv, _ := newAPI(t)
	for _, path := range []string{"/approvals", "/approvals/apr_aaaaaaaaaaaaaaaaaaaaaaaaaa", "/approvals/assets/app.js", "/approvals/assets/app.css"} {
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		csp := resp.Header.Get("Content-Security-Policy")
		if resp.StatusCode != 200 || !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") ||
			strings.Contains(csp, "unsafe-inline") || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: %d CSP %q", path, resp.StatusCode, csp)
		}
	}
}

// FuzzAPI posts arbitrary bodies to every write endpoint: the API never
// panics, answers JSON with a status from its documented set, and an
// approval is never approved by a body that is not a JSON object.
func FuzzAPI(f *testing.F) {
	for _, s := range []string{
		`{"note":"ok"}`, `{"subject":"carl","tools":["crm/*"],"duration":"1h"}`, `{"kind":"tool","server":"crm","tool":"x"}`,
		`{"subject":"carl","tools":["crm/[*"],"duration":"1h","conditions":[{"path":"a","op":"eq","value":1}]}`,
		`null`, `[]`, `"x"`, `{"note":null}`, `{"tools":[null]}`, `{"duration":"9999999h"}`, "{\"note\":\"\xff\"}",
	} {
		f.Add(0, s)
		f.Add(1, s)
		f.Add(2, s)
	}
	srv, c := newAPI(f)
	paths := []string{"/v1/grants", "/v1/quarantines", "/v1/approvals/apr_aaaaaaaaaaaaaaaaaaaaaaaaaa/approve"}
	allowed := map[int]bool{200: true, 201: true, 400: true, 403: true, 404: true, 409: true, 413: true, 415: true, 429: true}
	f.Fuzz(func(t *testing.T, which int, body string) {
		path := paths[(which%len(paths)+len(paths))%len(paths)]
		st, out := post(t, srv, path, "application/json", body)
		if !allowed[st] {
			t.Fatalf("%s %q: status %d %v", path, body, st, out)
		}
		if st >= 400 && code(out) == "" {
			t.Fatalf("%s %q: refusal without a code: %v", path, body, out)
		}
		if st := c.Stats(); st.Records > 2000 {
			t.Skip("enough records for one run")
		}
	})
}
