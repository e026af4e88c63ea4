package authzen_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/verdictpdp/verdict/internal/adapter/authzen"
	"github.com/verdictpdp/verdict/internal/audit"
	"github.com/verdictpdp/verdict/internal/bundle"
	"github.com/verdictpdp/verdict/internal/bundle/bundletest"
	"github.com/verdictpdp/verdict/internal/cache"
	"github.com/verdictpdp/verdict/internal/engine"
	"github.com/verdictpdp/verdict/internal/pipeline"
)

// todoBundle is the AuthZEN Todo interop bundle of this repository.
const todoBundle = "../../../bundles/authzen-todo"

// Subject ids of the Todo bundle's users.
const (
	rick  = "CiRmZDA2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"
	morty = "CiRmZDE2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"
	beth  = "CiRmZDM2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"
)

// readTodo reads the Todo bundle.
func readTodo(tb testing.TB) *bundle.Bundle {
	tb.Helper()
	b, err := bundle.NewReader(bundle.Limits{}, nil).ReadPath("authzen-todo", todoBundle)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// policyBundle is a bundle of one Rego module with data.
func policyBundle(tb testing.TB, revision, policy string, data map[string]any) *bundle.Bundle {
	tb.Helper()
	raw := bundletest.Archive(tb, bundletest.Spec{Revision: revision, Modules: map[string]string{"p.rego": policy}, Data: data})
	b, err := bundle.NewReader(bundle.Limits{}, nil).ReadArchive("p", raw)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// newEngine returns an engine prepared as the service prepares it: the
// AuthZEN entrypoints are optional, next to an unrelated required one.
// With b nil no bundle is ever active.
func newEngine(tb testing.TB, b *bundle.Bundle, cacheOn bool) *engine.Engine {
	tb.Helper()
	var c *cache.Cache
	if cacheOn {
		var err error
		if c, err = cache.New(cache.Limits{}); err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(c.Close)
	}
	e, err := engine.New(engine.Deps{
		Entrypoints: []string{"envoy/authz/allow"},
		Optional:    append([]string{authzen.DefaultPath}, authzen.SearchPaths(authzen.DefaultPath)...),
		Cache:       c,
	})
	if err != nil {
		tb.Fatal(err)
	}
	if b != nil {
		activate(tb, e, b)
	}
	return e
}

func activate(tb testing.TB, e *engine.Engine, b *bundle.Bundle) {
	tb.Helper()
	if _, err := e.Activate(context.Background(), map[string]*bundle.Bundle{"authzen": b}); err != nil {
		tb.Fatal(err)
	}
}

// event is what a test reads of an audit entry.
type event struct {
	Decision string `json:"decision"`
	Path     string `json:"path"`
	Subject  string `json:"subject,omitempty"`
	Status   int    `json:"status,omitempty"`
	Error    string `json:"error,omitempty"`
	Action   string `json:"action,omitempty"`
	Resource string `json:"resource,omitempty"`
	Cached   bool   `json:"-"`
}

// events collects the audit entries the pipeline records, on the request
// path.
type events struct {
	mu  sync.Mutex
	all []event
}

func (ev *events) observe(e *audit.Entry) {
	x := event{Decision: e.Decision, Path: e.Path, Subject: e.Subject, Status: e.HTTPStatus, Cached: e.Cached}
	if e.Err != nil {
		x.Error = e.Err.Code
	}
	if r := e.Request; r != nil {
		x.Action, x.Resource = r.Method, r.Resource
	}
	ev.mu.Lock()
	ev.all = append(ev.all, x)
	ev.mu.Unlock()
}

// since returns the events recorded after the first n.
func (ev *events) since(n int) []event {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	return append([]event(nil), ev.all[n:]...)
}

func (ev *events) len() int {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	return len(ev.all)
}

// testServer is the API on a real HTTP server over loopback.
type testServer struct {
	url    string
	events *events
}

func newTestServer(tb testing.TB, e *engine.Engine, opts authzen.Options) *testServer {
	tb.Helper()
	ev := &events{}
	rec, err := audit.New(audit.Options{Observe: ev.observe})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = rec.Close(context.Background()) })
	if opts.Defines == nil {
		opts.Defines = func(path string) bool {
			snap := e.Snapshot()
			return snap != nil && snap.Defines(path)
		}
	}
	srv := authzen.NewServer(pipeline.New(e, pipeline.Options{Audit: rec}), opts)
	hs := httptest.NewServer(srv.Handler())
	tb.Cleanup(hs.Close)
	return &testServer{url: hs.URL, events: ev}
}

// response is an answer of the API.
type response struct {
	status int
	header http.Header
	body   []byte
}

// post sends body (marshalled unless it is []byte) as application/json.
func (s *testServer) post(tb testing.TB, path string, body any) response {
	tb.Helper()
	raw, ok := body.([]byte)
	if !ok {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			tb.Fatal(err)
		}
	}
	req, err := http.NewRequest(http.MethodPost, s.url+path, bytes.NewReader(raw))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	return do(tb, req)
}

func do(tb testing.TB, req *http.Request) response {
	tb.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: body}
}

// object decodes the response body as a JSON object.
func (r response) object(tb testing.TB) map[string]any {
	tb.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		tb.Fatalf("body %q: %v", r.body, err)
	}
	return m
}
