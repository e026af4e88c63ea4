package authzen_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"sigs.k8s.io/yaml"

	"github.com/verdictpdp/verdict/internal/adapter/authzen"
	"github.com/verdictpdp/verdict/internal/bundle"
	"github.com/verdictpdp/verdict/internal/guard"
)

// corpusFile is one testdata/authzen/http/*.yaml file: the policy the API
// decides with, its options, and requests with the answers a PEP must get.
type corpusFile struct {
	Description string `json:"description"`
	// Bundle is "todo" (bundles/authzen-todo, the default without a
	// policy), "policy" (Policy and Data, the default with one) or "none"
	// (no bundle ever active).
	Bundle  string         `json:"bundle"`
	Policy  string         `json:"policy"`
	Data    map[string]any `json:"data"`
	Options corpusOptions  `json:"options"`
	Cases   []corpusCase   `json:"cases"`
}

type corpusOptions struct {
	BaseURL        string `json:"base_url"`
	MaxBodyBytes   int    `json:"max_body_bytes"`
	JSONMaxDepth   int    `json:"json_max_depth"`
	MaxEvaluations int    `json:"max_evaluations"`
	MaxPageSize    int    `json:"max_page_size"`
	MaxCandidates  int    `json:"max_candidates"`
}

// corpusCase is one request and what must come back. Cases run in order on
// one server.
type corpusCase struct {
	Name   string `json:"name"`
	Method string `json:"method"` // default POST
	Path   string `json:"path"`
	Host   string `json:"host"`
	// ContentType defaults to application/json for a POST; "-" sends none.
	ContentType string            `json:"content_type"`
	Headers     map[string]string `json:"headers"`
	// Body is sent as JSON; RawBody as it is.
	Body    json.RawMessage `json:"body"`
	RawBody *string         `json:"raw_body"`

	Status int `json:"status"`
	// Response is the whole body, compared as JSON; Code, for an error,
	// is its code (the message must be there, its words are not checked).
	Response        json.RawMessage   `json:"response"`
	Code            string            `json:"code"`
	ResponseHeaders map[string]string `json:"response_headers"`
	// Audit are the events the request recorded, in order (absent: not
	// checked; [] : none).
	Audit *[]event `json:"audit"`
}

// TestHTTPCorpus runs every corpus file against the API on a real HTTP
// server, with the decision cache on and off: the cache never changes an
// answer.
func TestHTTPCorpus(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("../../../testdata/authzen/http/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus files: %v", err)
	}
	for _, file := range files {
		cf := loadCorpusFile(t, file)
		for _, cacheOn := range []bool{false, true} {
			name := strings.TrimSuffix(filepath.Base(file), ".yaml") + map[bool]string{false: "/cache=off", true: "/cache=on"}[cacheOn]
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				runCorpusFile(t, cf, cacheOn)
			})
		}
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
	if len(cf.Cases) == 0 {
		t.Fatalf("%s: no cases", file)
	}
	return cf
}

func runCorpusFile(t *testing.T, cf corpusFile, cacheOn bool) {
	t.Helper()
	var b *bundle.Bundle
	kind := cf.Bundle
	if kind == "" && cf.Policy != "" {
		kind = "policy"
	}
	switch kind {
	case "", "todo":
		b = readTodo(t)
	case "policy":
		b = policyBundle(t, "corpus-1", cf.Policy, cf.Data)
	case "none":
	default:
		t.Fatalf("bundle %q is not todo, policy or none", cf.Bundle)
	}
	o := cf.Options
	srv := newTestServer(t, newEngine(t, b, cacheOn), authzen.Options{
		BaseURL: o.BaseURL, JSON: guard.JSONLimits{MaxBytes: o.MaxBodyBytes, MaxDepth: o.JSONMaxDepth},
		MaxEvaluations: o.MaxEvaluations, MaxPageSize: o.MaxPageSize, MaxCandidates: o.MaxCandidates,
	})
	for _, tc := range cf.Cases {
		n := srv.events.len()
		resp := send(t, srv, &tc)
		if resp.status != tc.Status {
			t.Errorf("%s: status %d, want %d; body %s", tc.Name, resp.status, tc.Status, resp.body)
			continue
		}
		if ct := resp.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: Content-Type %q, want application/json", tc.Name, ct)
		}
		var got any
		if err := json.Unmarshal(resp.body, &got); err != nil {
			t.Errorf("%s: body %q is not JSON: %v", tc.Name, resp.body, err)
			continue
		}
		if tc.Response != nil {
			var want any
			if err := json.Unmarshal(tc.Response, &want); err != nil {
				t.Fatalf("%s: response: %v", tc.Name, err)
			}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("%s: body (-want +got):\n%s", tc.Name, d)
			}
		}
		if tc.Status >= 400 {
			m, _ := got.(map[string]any)
			if msg, _ := m["error"].(string); msg == "" || m["code"] != tc.Code {
				t.Errorf("%s: error body %s, want code %q and a message", tc.Name, resp.body, tc.Code)
			}
		}
		for k, v := range tc.ResponseHeaders {
			if g := resp.header.Get(k); g != v {
				t.Errorf("%s: header %s = %q, want %q", tc.Name, k, g, v)
			}
		}
		if tc.Audit != nil {
			if d := cmp.Diff(*tc.Audit, srv.events.since(n), cmpopts.EquateEmpty(), cmpopts.IgnoreFields(event{}, "Cached")); d != "" {
				t.Errorf("%s: audit events (-want +got):\n%s", tc.Name, d)
			}
		}
	}
}

func send(t *testing.T, srv *testServer, tc *corpusCase) response {
	t.Helper()
	method := tc.Method
	if method == "" {
		method = http.MethodPost
	}
	var body []byte
	switch {
	case tc.RawBody != nil:
		body = []byte(*tc.RawBody)
	case tc.Body != nil:
		body = tc.Body
	}
	req, err := http.NewRequest(method, srv.url+tc.Path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case tc.ContentType == "-":
	case tc.ContentType != "":
		req.Header.Set("Content-Type", tc.ContentType)
	case method == http.MethodPost:
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range tc.Headers {
		req.Header.Set(k, v)
	}
	if tc.Host != "" {
		req.Host = tc.Host
	}
	return do(t, req)
}
