package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// verdict is a decision as the load loops observe it.
type verdict uint8

const (
	verdictUnknown verdict = iota
	verdictAllow
	verdictDeny
	verdictApproval
)

func (v verdict) String() string {
	switch v {
	case verdictAllow:
		return "allow"
	case verdictDeny:
		return "deny"
	case verdictApproval:
		return "require_approval"
	default:
		return "unknown"
	}
}

// arena holds many pre-marshaled messages in one pointer-free buffer, so a
// large corpus costs the client's garbage collector nothing to scan.
type arena struct {
	data []byte
	ends []int
}

func (a *arena) add(b []byte) {
	a.data = append(a.data, b...)
	a.ends = append(a.ends, len(a.data))
}

func (a *arena) len() int { return len(a.ends) }

func (a *arena) at(i int) []byte {
	start := 0
	if i > 0 {
		start = a.ends[i-1]
	}
	return a.data[start:a.ends[i]]
}

// corpus is a request mix, marshaled before the clock starts, with the
// decision each request must get.
type corpus struct {
	reqs arena
	want []verdict
	// cases is the number of distinct decision cases; request i is case
	// i % cases.
	cases int
	// timed, when not zero, is how many requests (the first) the timed
	// loops cycle through; the others are for verification only.
	timed int
	// verify lists the requests verification sends (default: one per
	// case, the first cases requests).
	verify []int
}

// timedLen is the number of requests the timed loops cycle through.
func (c *corpus) timedLen() int {
	if c.timed > 0 {
		return c.timed
	}
	return c.reqs.len()
}

// verifyIdx returns the requests verification sends.
func (c *corpus) verifyIdx() []int {
	if c.verify != nil {
		return c.verify
	}
	idx := make([]int, c.cases)
	for i := range idx {
		idx[i] = i
	}
	return idx
}

// benchTime is the fixed clock of the MCP mix (a Tuesday, 11:30 in Berlin),
// so that pdp and opa evaluate time-dependent rules on identical input.
var benchTime = time.Date(2026, time.March, 10, 10, 30, 0, 0, time.UTC)

// --- ext_authz --------------------------------------------------------------

// extAuthzCase is one (role, method, path) combination of the RBAC mix.
type extAuthzCase struct {
	roles, method, path string
	allow               bool
}

// extAuthzCases is the RBAC mix: 16 allowed, 4 denied.
var extAuthzCases = []extAuthzCase{
	{"reader", "GET", "/api/v1/items?limit=20", true},
	{"reader", "GET", "/api/v1/items/8812", true},
	{"reader", "GET", "/api/v2/items", true},
	{"reader,support", "GET", "/api/v1/tickets/311", true},
	{"writer", "POST", "/api/v1/items", true},
	{"writer", "PUT", "/api/v1/items/8812", true},
	{"writer", "GET", "/api/v2/items/77?fields=name,price", true},
	{"support", "GET", "/api/v1/tickets?status=open", true},
	{"support", "POST", "/api/v1/tickets", true},
	{"billing", "GET", "/billing/invoices?month=2026-03", true},
	{"billing", "GET", "/billing/invoices/INV-2026-0042", true},
	{"admin", "GET", "/admin/users/42/sessions", true},
	{"admin", "DELETE", "/api/v1/items/8812", true},
	{"auditor", "GET", "/audit/events?since=2026-03-01", true},
	{"reader,billing", "GET", "/billing/invoices", true},
	{"admin", "POST", "/admin/feature-flags", true},
	{"reader", "DELETE", "/api/v1/items/8812", false},
	{"billing", "GET", "/admin/users", false},
	{"support", "POST", "/billing/invoices", false},
	{"guest", "GET", "/api/v1/items", false},
}

// rbacData is data.rbac for testdata/bench/rbac.rego.
func rbacData() map[string]any {
	perm := func(method, path string) map[string]any { return map[string]any{"method": method, "path": path} }
	return map[string]any{"permissions": map[string]any{
		"reader": []any{perm("GET", "/api/*/items"), perm("GET", "/api/*/items/*")},
		"writer": []any{
			perm("GET", "/api/*/items"), perm("GET", "/api/*/items/*"),
			perm("POST", "/api/*/items"), perm("PUT", "/api/*/items/*"),
		},
		"support": []any{perm("GET", "/api/*/tickets"), perm("GET", "/api/*/tickets/*"), perm("POST", "/api/*/tickets")},
		"billing": []any{perm("GET", "/billing/invoices"), perm("GET", "/billing/invoices/*")},
		"admin": []any{
			perm("GET", "/admin/**"), perm("POST", "/admin/**"), perm("DELETE", "/admin/**"),
			perm("DELETE", "/api/*/items/*"),
		},
		"auditor": []any{perm("GET", "/audit/events")},
	}}
}

var userAgents = []string{
	"Mozilla/5.0 (X11; Linux x86_64; rv:139.0) Gecko/20100101 Firefox/139.0",
	"okhttp/4.12.0",
	"python-requests/2.32.3",
	"Go-http-client/2.0",
}

// requestIDs generates x-request-id and traceparent values: random-looking,
// reproducible, unique within a run.
type requestIDs struct{ rng *rand.Rand }

func newRequestIDs(seed uint64) *requestIDs {
	return &requestIDs{rng: rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))} //nolint:gosec // identifiers for a benchmark, not secrets
}

func (g *requestIDs) uuid() string {
	hi, lo := g.rng.Uint64(), g.rng.Uint64()
	return fmt.Sprintf("%08x-%04x-4%03x-%04x-%012x", hi>>32, (hi>>16)&0xffff, hi&0xfff, 0x8000|(lo>>48)&0x3fff, lo&0xffffffffffff)
}

func (g *requestIDs) traceparent() string {
	return fmt.Sprintf("00-%016x%016x-%016x-01", g.rng.Uint64(), g.rng.Uint64(), g.rng.Uint64())
}

// envoyCheckRequest builds request seq of case c the way Envoy's ext_authz
// filter sends it: peer socket addresses, the request time, the HTTP
// attributes and the headers, pseudo-headers included.
func envoyCheckRequest(c extAuthzCase, seq int, ids *requestIDs) *authv3.CheckRequest {
	clientIP := fmt.Sprintf("10.%d.%d.%d", 16+seq%64, (seq/64)%256, 1+seq%250)
	headers := map[string]string{
		":authority":                     "api.example.com",
		":method":                        c.method,
		":path":                          c.path,
		":scheme":                        "https",
		"user-agent":                     userAgents[seq%len(userAgents)],
		"accept":                         "application/json",
		"accept-encoding":                "gzip, deflate, br",
		"x-forwarded-for":                clientIP,
		"x-forwarded-proto":              "https",
		"x-request-id":                   ids.uuid(),
		"traceparent":                    ids.traceparent(),
		"x-envoy-expected-rq-timeout-ms": "15000",
		"x-roles":                        c.roles,
	}
	var size int64
	if c.method == "POST" || c.method == "PUT" {
		size = 184
		headers["content-type"] = "application/json"
		headers["content-length"] = strconv.FormatInt(size, 10)
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: socketAddress("10.244.1.17", uint32(32768+seq%28000))},
		Destination: &authv3.AttributeContext_Peer{
			Address: socketAddress("10.244.0.5", 8443),
		},
		Request: &authv3.AttributeContext_Request{
			Time: timestamppb.New(benchTime.Add(time.Duration(seq) * time.Millisecond)),
			Http: &authv3.AttributeContext_HttpRequest{
				Id:       strconv.Itoa(1_000_000_007 + seq),
				Method:   c.method,
				Headers:  headers,
				Path:     c.path,
				Host:     "api.example.com",
				Scheme:   "https",
				Protocol: "HTTP/1.1",
				Size:     size,
			},
		},
	}}
}

func socketAddress(ip string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

// buildExtAuthzCorpus marshals n CheckRequests cycling through the cases,
// each with its own x-request-id, traceparent, stream id and time.
func buildExtAuthzCorpus(n int) (*corpus, error) {
	c := &corpus{want: make([]verdict, 0, n), cases: len(extAuthzCases)}
	ids := newRequestIDs(1)
	opts := proto.MarshalOptions{Deterministic: true}
	var buf []byte
	for i := range n {
		ec := extAuthzCases[i%len(extAuthzCases)]
		var err error
		if buf, err = opts.MarshalAppend(buf[:0], envoyCheckRequest(ec, i, ids)); err != nil {
			return nil, fmt.Errorf("marshal ext_authz request %d: %w", i, err)
		}
		c.reqs.add(buf)
		c.want = append(c.want, verdictOf(ec.allow))
	}
	return c, nil
}

func verdictOf(allow bool) verdict {
	if allow {
		return verdictAllow
	}
	return verdictDeny
}

// --- bundles ----------------------------------------------------------------

// writeBundle writes a bundle directory: .manifest, the Rego modules and
// data.json.
func writeBundle(dir, revision string, roots []string, modules map[string][]byte, data any) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("bundle dir: %w", err)
	}
	manifest, err := json.Marshal(map[string]any{"revision": revision, "roots": roots})
	if err != nil {
		return fmt.Errorf("bundle manifest: %w", err)
	}
	files := map[string][]byte{".manifest": manifest}
	for name, src := range modules {
		files[name] = src
	}
	if data != nil {
		if files["data.json"], err = json.Marshal(data); err != nil {
			return fmt.Errorf("bundle data: %w", err)
		}
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return fmt.Errorf("bundle file: %w", err)
		}
	}
	return nil
}

// catalogRego reads the bulk data of the memory bundle, so that it is data
// a policy uses rather than dead weight.
const catalogRego = `package catalog

# The number of entries of the bulk catalog in data.catalog.entries.
entry_count := count(data.catalog.entries)
`

// writeMemoryBundle writes the RBAC policy with a data.json of about
// targetBytes: the RBAC table plus a product catalog under its own root.
// It returns the size of data.json.
func writeMemoryBundle(dir string, rbacPolicy []byte, targetBytes int) (int64, error) {
	if err := writeBundle(dir, "bench-mem-1", []string{"envoy", "rbac", "catalog"},
		map[string][]byte{"rbac.rego": rbacPolicy, "catalog.rego": []byte(catalogRego)}, nil); err != nil {
		return 0, err
	}
	rbac, err := json.Marshal(rbacData())
	if err != nil {
		return 0, fmt.Errorf("memory bundle data: %w", err)
	}
	var w bytes.Buffer
	w.Grow(targetBytes + 4096)
	fmt.Fprintf(&w, `{"rbac":%s,"catalog":{"entries":{`, rbac)
	for i := 0; w.Len() < targetBytes; i++ {
		entry, err := json.Marshal(map[string]any{
			"name":        fmt.Sprintf("Product %06d", i),
			"description": fmt.Sprintf("Stock item %06d of the benchmark catalog: a description long enough to look like one, with a little detail.", i),
			"price_cents": 100 + i%9900,
			"tags":        []string{"bench", "tier-" + strconv.Itoa(i%5), "warehouse-" + strconv.Itoa(i%17)},
			"owner":       "team-" + strconv.Itoa(i%40),
		})
		if err != nil {
			return 0, fmt.Errorf("memory bundle data: %w", err)
		}
		if i > 0 {
			w.WriteByte(',')
		}
		fmt.Fprintf(&w, `"sku-%07d":%s`, i, entry)
	}
	w.WriteString("}}}")
	if err := os.WriteFile(filepath.Join(dir, "data.json"), w.Bytes(), 0o600); err != nil {
		return 0, fmt.Errorf("memory bundle data: %w", err)
	}
	return int64(w.Len()), nil
}

// memoryCheckRequest is the i-th distinct request of the memory run: a
// reader listing items of API version i, so each has its own path.
func memoryCheckRequest(i int, ids *requestIDs) *authv3.CheckRequest {
	c := extAuthzCase{roles: "reader", method: "GET", path: "/api/v" + strconv.Itoa(i) + "/items", allow: true}
	return envoyCheckRequest(c, i, ids)
}
