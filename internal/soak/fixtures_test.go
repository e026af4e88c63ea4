package soak

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/internal/bundle/bundletest"
)

// The policy the suite serves: ext_authz allows a role's "METHOD path"
// pairs, MCP allows the listed tools; both answer with the bundle's
// revision (a header, an obligation label) and a rate limit per subject,
// so that every decision touches the rate limit store. Subjects named
// "tight-..." get 5 a minute, the others 1,000,000 a minute, far more than any run sends.
const envoyPolicy = `package envoy.authz

req := input.attributes.request.http

subject := object.get(req.headers, "x-subject", "anonymous")

default allowed := false

allowed if concat(" ", [req.method, req.path]) in data.soak.envoy[object.get(req.headers, "x-roles", "")]

allow := {
	"allowed": allowed,
	"headers": {"x-soak-rev": data.soak.rev},
	"rate_limit": {"key": concat(":", ["envoy", subject]), "limit": limit, "period_seconds": 60},
}

limit := 5 if {
	startswith(subject, "tight-")
} else := 1000000
`

const mcpPolicy = `package verdict.mcp

default allow := false

allow if input.tool.name in data.soak.tools

reasons := [] if allow

reasons := [{"code": "tool.denied", "message": "not on the list"}] if not allow

limit := 5 if {
	startswith(input.subject.id, "tight-")
} else := 1000000

decision := {
	"allow": allow,
	"reasons": reasons,
	"obligations": {
		"labels": {"rev": data.soak.rev},
		"rate_limit": {"key": concat(":", ["mcp", input.subject.id]), "limit": limit, "period_seconds": 60},
	},
}
`

// The two versions differ on known requests: writers may POST in A only,
// lookup is allowed in A only, export in B only.
var versionData = map[string]map[string]any{
	"A": {"rev": "A",
		"envoy": map[string]any{"reader": []any{"GET /api/v1/items"}, "writer": []any{"GET /api/v1/items", "POST /api/v1/items"}},
		"tools": []any{"search", "lookup"}},
	"B": {"rev": "B",
		"envoy": map[string]any{"reader": []any{"GET /api/v1/items"}, "writer": []any{"GET /api/v1/items"}},
		"tools": []any{"search", "export"}},
}

func versionSpec(rev string) bundletest.Spec {
	return bundletest.Spec{
		Revision: "soak-" + rev,
		Roots:    []string{"envoy", "verdict", "soak"},
		Modules:  map[string]string{"envoy.rego": envoyPolicy, "mcp.rego": mcpPolicy},
		Data:     map[string]any{"soak": versionData[rev]},
	}
}

// signer holds the bundle signing key the replicas trust, and one they do
// not.
type signer struct {
	priv, otherPriv string
	pubFile         string
}

func newSigner(t *testing.T) signer {
	t.Helper()
	priv, pub := bundletest.RSAKeyPair(t)
	other, _ := bundletest.RSAKeyPair(t)
	path := filepath.Join(t.TempDir(), "bundle-signing.pub.pem")
	if err := os.WriteFile(path, []byte(pub), 0o600); err != nil {
		t.Fatal(err)
	}
	return signer{priv: priv, otherPriv: other, pubFile: path}
}

// archive is version rev signed with the trusted key.
func (s signer) archive(t *testing.T, rev string) []byte {
	t.Helper()
	return bundletest.SignedArchive(t, versionSpec(rev), s.priv, "soak")
}

// bundleServer serves the current archive with an ETag, or fails as told.
type bundleServer struct {
	srv  *httptest.Server
	hits atomic.Int64

	mu     sync.Mutex
	body   []byte
	etag   string
	status int // nonzero: answer it instead

	// cur is the revision replicas must serve once a swap has settled:
	// the last good one set with serve.
	cur atomic.Pointer[activeRev]
}

// activeRev is the revision served since at.
type activeRev struct {
	rev string
	at  time.Time
}

func newBundleServer(t *testing.T) *bundleServer {
	t.Helper()
	b := &bundleServer{}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		b.mu.Lock()
		body, etag, status := b.body, b.etag, b.status
		b.mu.Unlock()
		if status != 0 {
			http.Error(w, "bundle server fault", status)
			return
		}
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", etag)
		w.Header().Set("Content-Type", "application/gzip")
		_, _ = w.Write(body)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *bundleServer) url() string { return b.srv.URL + "/bundles/soak.tar.gz" }

// serve makes rev (signed with the trusted key) the archive served and the
// revision replicas must converge on.
func (b *bundleServer) serve(t *testing.T, s signer, rev string) {
	t.Helper()
	b.serveArchive(rev, s.archive(t, rev))
}

// serveArchive serves archive, of version rev, and makes rev the revision
// replicas must converge on.
func (b *bundleServer) serveArchive(rev string, archive []byte) {
	b.setRaw(archive, `"`+rev+`-`+time.Now().Format("150405.000000000")+`"`, 0)
	b.cur.Store(&activeRev{rev: rev, at: time.Now()})
}

// setRaw serves body (or status) without changing the expected revision:
// the faults.
func (b *bundleServer) setRaw(body []byte, etag string, status int) {
	b.mu.Lock()
	b.body, b.etag, b.status = body, etag, status
	b.mu.Unlock()
}

// collector is an OPA decision-log service on loopback. It can stop
// listening and listen again on the same address.
type collector struct {
	t    *testing.T
	addr string

	mu   sync.Mutex
	srv  *http.Server
	ids  []string // decision ids in the order received (duplicates kept)
	seen map[string]bool
	bad  int // requests that were not a gzip JSON array
}

func newCollector(t *testing.T) *collector {
	t.Helper()
	c := &collector{t: t, addr: freeAddr(t), seen: map[string]bool{}}
	c.start()
	t.Cleanup(c.down)
	return c
}

func (c *collector) url() string { return "http://" + c.addr + "/logs" }

// start listens on the collector's address (again).
func (c *collector) start() {
	c.t.Helper()
	var l net.Listener
	var err error
	for range 100 { // the old socket may take a moment to go
		if l, err = net.Listen("tcp", c.addr); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		c.t.Fatalf("collector: listen again on %s: %v", c.addr, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(c.handle), ReadHeaderTimeout: 10 * time.Second}
	c.mu.Lock()
	c.srv = srv
	c.mu.Unlock()
	go func() { _ = srv.Serve(l) }()
}

// down closes the listener and every connection: the sink meets
// "connection refused".
func (c *collector) down() {
	c.mu.Lock()
	srv := c.srv
	c.srv = nil
	c.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

func (c *collector) handle(w http.ResponseWriter, r *http.Request) {
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			c.reject(w)
			return
		}
		body = zr
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		c.reject(w)
		return
	}
	var events []struct {
		DecisionID string `json:"decision_id"`
	}
	if err := json.NewDecoder(bytes.NewReader(raw)).Decode(&events); err != nil {
		c.reject(w)
		return
	}
	c.mu.Lock()
	for _, e := range events {
		c.ids = append(c.ids, e.DecisionID)
		c.seen[e.DecisionID] = true
	}
	c.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (c *collector) reject(w http.ResponseWriter) {
	c.mu.Lock()
	c.bad++
	c.mu.Unlock()
	http.Error(w, "bad request", http.StatusBadRequest)
}

// rejected is how many uploads were not a (gzip) JSON array of events.
func (c *collector) rejected() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bad
}

// missing is how many of ids were never received.
func (c *collector) missing(ids []string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, id := range ids {
		if !c.seen[id] {
			n++
		}
	}
	return n
}

// received is the decision ids in order of first receipt.
func (c *collector) received() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := make(map[string]bool, len(c.ids))
	out := make([]string, 0, len(c.ids))
	for _, id := range c.ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}
