package authzen_test

import (
	"encoding/base64"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/internal/adapter/authzen"
	"github.com/verdictpdp/verdict/internal/engine"
)

// pagedPolicy proposes u0 … u6 and allows the even ones to read doc-1.
const pagedPolicy = `package authzen

default decision := false

decision if {
	input.action.name == "read"
	input.resource.id == "doc-1"
	input.subject.id in {"u0", "u2", "u4", "u6"}
}

search.subject := [{"type": "user", "id": sprintf("u%d", [i])} | some i in numbers.range(0, 6)]
`

func subjectSearch(resource string, page map[string]any) map[string]any {
	body := map[string]any{
		"subject":  map[string]any{"type": "user"},
		"action":   map[string]any{"name": "read"},
		"resource": map[string]any{"type": "doc", "id": resource},
	}
	if page != nil {
		body["page"] = page
	}
	return body
}

// page is one answer of a search, read.
type page struct {
	ids  []string
	next string
}

func readPage(t *testing.T, r response) page {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	m := r.object(t)
	var p page
	results, _ := m["results"].([]any)
	for _, x := range results {
		e, _ := x.(map[string]any)
		id, _ := e["id"].(string)
		p.ids = append(p.ids, id)
	}
	pg, ok := m["page"].(map[string]any)
	if !ok {
		t.Fatalf("no page in %s", r.body)
	}
	p.next, _ = pg["next_token"].(string)
	return p
}

// TestSearchPagination walks a search page by page: every allowed
// candidate comes back once, in the policy's order, in pages of at most
// the limit, and the last page has no next token.
func TestSearchPagination(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		maxPageSize   int
		maxCandidates int
		limit         any // nil: no limit
		// pages are the ids of each page.
		pages [][]string
	}{
		{name: "no limit: the service's page size", maxPageSize: 100, pages: [][]string{{"u0", "u2", "u4", "u6"}}},
		{name: "limit 2", maxPageSize: 100, limit: 2, pages: [][]string{{"u0", "u2"}, {"u4", "u6"}}},
		{name: "limit 3", maxPageSize: 100, limit: 3, pages: [][]string{{"u0", "u2", "u4"}, {"u6"}}},
		{name: "limit over the maximum is clamped", maxPageSize: 3, limit: 50, pages: [][]string{{"u0", "u2", "u4"}, {"u6"}}},
		{name: "limit 1", maxPageSize: 100, limit: 1, pages: [][]string{{"u0"}, {"u2"}, {"u4"}, {"u6"}}},
		{
			// Each request evaluates two candidates at most: pages can
			// hold fewer results than the limit, even none, and still
			// have a next token.
			name: "candidates bounded per request", maxPageSize: 100, maxCandidates: 2, limit: 10,
			pages: [][]string{{"u0"}, {"u2"}, {"u4"}, {"u6"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := newTestServer(t, newEngine(t, policyBundle(t, "r1", pagedPolicy, nil), true), authzen.Options{
				MaxPageSize: tc.maxPageSize, MaxCandidates: tc.maxCandidates,
			})
			var got [][]string
			token := ""
			for range 10 {
				pg := map[string]any{}
				if tc.limit != nil {
					pg["limit"] = tc.limit
				}
				if token != "" {
					pg["token"] = token
				}
				p := readPage(t, srv.post(t, authzen.PathSearchSubject, subjectSearch("doc-1", pg)))
				got = append(got, p.ids)
				if token = p.next; token == "" {
					break
				}
			}
			if token != "" {
				t.Fatalf("no last page after 10 pages: %v", got)
			}
			if !slices.EqualFunc(got, tc.pages, slices.Equal) {
				t.Fatalf("pages %v, want %v", got, tc.pages)
			}
		})
	}
}

// TestSearchPageTokens: a token only continues the search it was issued
// for, under the policy revision it was issued under.
func TestSearchPageTokens(t *testing.T) {
	t.Parallel()
	eng := newEngine(t, policyBundle(t, "r1", pagedPolicy, nil), true)
	srv := newTestServer(t, eng, authzen.Options{})
	first := readPage(t, srv.post(t, authzen.PathSearchSubject, subjectSearch("doc-1", map[string]any{"limit": 1})))
	if first.next == "" {
		t.Fatal("the first page of 1 has no next token")
	}
	raw, err := base64.RawURLEncoding.DecodeString(first.next)
	if err != nil {
		t.Fatalf("token %q is not base64url: %v", first.next, err)
	}
	raw[len(raw)-1] ^= 1
	tampered := base64.RawURLEncoding.EncodeToString(raw)

	tests := []struct {
		name   string
		path   string
		body   map[string]any
		status int
		code   string
		ids    []string
	}{
		{name: "the token continues its search", path: authzen.PathSearchSubject,
			body: subjectSearch("doc-1", map[string]any{"limit": 1, "token": first.next}), status: 200, ids: []string{"u2"}},
		{name: "next_token is read as the token", path: authzen.PathSearchSubject,
			body: subjectSearch("doc-1", map[string]any{"limit": 1, "next_token": first.next}), status: 200, ids: []string{"u2"}},
		{name: "the page size may change between pages", path: authzen.PathSearchSubject,
			body: subjectSearch("doc-1", map[string]any{"limit": 2, "token": first.next}), status: 200, ids: []string{"u2", "u4"}},
		{name: "a token of another query", path: authzen.PathSearchSubject,
			body: subjectSearch("doc-2", map[string]any{"token": first.next}), status: 400, code: authzen.CodeInvalidPageToken},
		{name: "a token of another endpoint", path: authzen.PathSearchResource,
			body: map[string]any{"subject": map[string]any{"type": "user", "id": "u0"}, "action": map[string]any{"name": "read"},
				"resource": map[string]any{"type": "doc"}, "page": map[string]any{"token": first.next}},
			status: 400, code: authzen.CodeInvalidPageToken},
		{name: "a tampered token", path: authzen.PathSearchSubject,
			body: subjectSearch("doc-1", map[string]any{"token": tampered}), status: 400, code: authzen.CodeInvalidPageToken},
		{name: "token and next_token that differ", path: authzen.PathSearchSubject,
			body: subjectSearch("doc-1", map[string]any{"token": first.next, "next_token": tampered}), status: 400, code: authzen.CodeInvalidRequest},
		{name: "a token that is not a string", path: authzen.PathSearchSubject,
			body: subjectSearch("doc-1", map[string]any{"token": 7}), status: 400, code: authzen.CodeInvalidRequest},
	}
	for _, tc := range tests {
		r := srv.post(t, tc.path, tc.body)
		if r.status != tc.status {
			t.Errorf("%s: status %d, want %d: %s", tc.name, r.status, tc.status, r.body)
			continue
		}
		if tc.status != 200 {
			if code := r.object(t)["code"]; code != tc.code {
				t.Errorf("%s: code %v, want %s", tc.name, code, tc.code)
			}
			continue
		}
		if p := readPage(t, r); !slices.Equal(p.ids, tc.ids) {
			t.Errorf("%s: results %v, want %v", tc.name, p.ids, tc.ids)
		}
	}

	// A new revision of the policy may propose other candidates: a token
	// of the old one is refused, and the search starts again.
	activate(t, eng, policyBundle(t, "r2", pagedPolicy, nil))
	r := srv.post(t, authzen.PathSearchSubject, subjectSearch("doc-1", map[string]any{"limit": 1, "token": first.next}))
	if r.status != http.StatusBadRequest || r.object(t)["code"] != authzen.CodeStalePageToken {
		t.Fatalf("a token of revision r1 under r2: %d %s, want 400 %s", r.status, r.body, authzen.CodeStalePageToken)
	}
	if p := readPage(t, srv.post(t, authzen.PathSearchSubject, subjectSearch("doc-1", map[string]any{"limit": 1}))); !slices.Equal(p.ids, []string{"u0"}) {
		t.Fatalf("the search started again: %v, want [u0]", p.ids)
	}
}

// TestDecisionCache: the AuthZEN entrypoints are cached like the others; a
// repeated evaluation is answered by the cache, with the same answer and
// an audit event of its own.
func TestDecisionCache(t *testing.T) {
	t.Parallel()
	eng := newEngine(t, readTodo(t), true)
	if p := eng.Snapshot().Projection(authzen.DefaultPath); p == nil || !p.Cacheable() {
		t.Fatalf("projection of %s: %v, want a cacheable one", authzen.DefaultPath, p)
	}
	srv := newTestServer(t, eng, authzen.Options{})
	body := map[string]any{
		"subject":  map[string]any{"type": "user", "id": beth},
		"action":   map[string]any{"name": "can_read_todos"},
		"resource": map[string]any{"type": "todo", "id": "t1"},
	}
	for i := range 100 {
		n := srv.events.len()
		r := srv.post(t, authzen.PathEvaluation, body)
		if r.status != 200 || string(r.body) != "{\"decision\":true}\n" {
			t.Fatalf("answer %d: %d %q", i, r.status, r.body)
		}
		ev := srv.events.since(n)
		if len(ev) != 1 {
			t.Fatalf("answer %d recorded %d events, want 1", i, len(ev))
		}
		if ev[0].Cached {
			return
		}
		time.Sleep(10 * time.Millisecond) // the cache inserts in the background
	}
	t.Fatal("100 equal evaluations, none answered by the cache")
}

// TestSearchPathsFollowDecisionPath: the search rules are under the
// decision entrypoint's parent.
func TestSearchPathsFollowDecisionPath(t *testing.T) {
	t.Parallel()
	for path, want := range map[string][]string{
		"authzen/decision":      {"authzen/search/subject", "authzen/search/resource", "authzen/search/action"},
		"acme/pdp/authz/answer": {"acme/pdp/authz/search/subject", "acme/pdp/authz/search/resource", "acme/pdp/authz/search/action"},
		"decision":              {"search/subject", "search/resource", "search/action"},
	} {
		if got := authzen.SearchPaths(path); !slices.Equal(got, want) {
			t.Errorf("SearchPaths(%q) = %v, want %v", path, got, want)
		}
		for _, p := range want {
			if _, err := engine.NormalizeEntrypoint(p); err != nil {
				t.Errorf("%s: %v", p, err)
			}
		}
	}
}
