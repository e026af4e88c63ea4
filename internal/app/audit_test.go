package app_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/verdictpdp/verdict/internal/admin"
	"github.com/verdictpdp/verdict/internal/app"
	"github.com/verdictpdp/verdict/internal/audit"
	"github.com/verdictpdp/verdict/internal/audit/filelog"
	"github.com/verdictpdp/verdict/internal/bundle/bundletest"
	"github.com/verdictpdp/verdict/internal/config"
	mcpv1 "github.com/verdictpdp/verdict/proto/verdict/mcp/v1"
)

// collector is an OPA decision-log service on loopback: it takes gzipped
// JSON arrays of events and keeps them in arrival order. It can answer 503
// or stop listening altogether.
type collector struct {
	mu     sync.Mutex
	events []map[string]any
	posts  int
	fail   bool
	srv    *http.Server
	addr   string
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != "/logs" || r.Header.Get("Content-Encoding") != "gzip" || r.Header.Get("Content-Type") != "application/json" {
		http.Error(w, "not an OPA decision-log upload", http.StatusBadRequest)
		return
	}
	zr, err := gzip.NewReader(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var batch []map[string]any
	if err := json.NewDecoder(zr).Decode(&batch); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c.posts++
	c.events = append(c.events, batch...)
	w.WriteHeader(http.StatusOK)
}

// listen serves on addr ("127.0.0.1:0" for any port).
func (c *collector) listen(t *testing.T, addr string) {
	t.Helper()
	var l net.Listener
	var err error
	for range 50 { // the port was just released; it may take a moment
		if l, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	c.addr = l.Addr().String()
	c.srv = &http.Server{Handler: c, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = c.srv.Serve(l) }()
	t.Cleanup(func() { _ = c.srv.Close() })
}

func (c *collector) setFail(fail bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fail = fail
}

func (c *collector) ids() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, len(c.events))
	for i, e := range c.events {
		out[i], _ = e["decision_id"].(string)
	}
	return out
}

// readLog returns the events of a file log in order, without its
// bookkeeping lines.
func readLog(t *testing.T, path string) []map[string]any {
	t.Helper()
	segs, err := filelog.Segments(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, s := range segs {
		raw, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		text := string(raw)
		if i := strings.LastIndexByte(text, '\n'); i != len(text)-1 {
			text = text[:i+1] // an incomplete last line: the process was killed mid-write
		}
		for line := range strings.SplitSeq(strings.TrimSuffix(text, "\n"), "\n") {
			if line == "" {
				continue
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("%s: %v: %q", s, err, line)
			}
			if _, ok := m["type"]; !ok {
				out = append(out, m)
			}
		}
	}
	return out
}

func eventIDs(evs []map[string]any) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i], _ = e["decision_id"].(string)
	}
	return out
}

// logPolicy is a decision-log policy as OPA users write it.
const logPolicy = `package system.log

mask contains "/input/attributes/request/http/headers/x-secret"

mask contains {"op": "upsert", "path": "/input/attributes/request/http/headers/x-tenant", "value": "tenant-redacted"}

drop if input.input.attributes.request.http.path == "/healthz"
`

func auditConfig(t *testing.T) config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.Bundles = []config.Bundle{
		{Name: "mcp", Source: "../../bundles/mcp-example"},
		{Name: "log", Source: bundletest.WriteDir(t, t.TempDir(), bundletest.Spec{
			Revision: "log-1", Roots: []string{"system"}, Modules: map[string]string{"log.rego": logPolicy},
		})},
	}
	return cfg
}

func mcpExample[T any, P interface {
	*T
	proto.Message
}](t *testing.T, file string) P {
	t.Helper()
	raw, err := os.ReadFile("../../docs/examples/" + file)
	if err != nil {
		t.Fatal(err)
	}
	var m T
	if err := protojson.Unmarshal(raw, P(&m)); err != nil {
		t.Fatal(err)
	}
	return &m
}

// TestAuditEveryDecisionOnce drives every kind of decision through a real
// server with the file and HTTP sinks on, then checks that each decision is
// in the file log and at the collector exactly once, in the same order, with
// the policy's masking applied, and that the log verifies.
func TestAuditEveryDecisionOnce(t *testing.T) {
	t.Parallel()
	var coll collector
	coll.listen(t, "127.0.0.1:0")
	dir := t.TempDir()
	logPath := filepath.Join(dir, "audit.jsonl")
	cfg := auditConfig(t)
	cfg.Audit.File.Path = logPath
	cfg.Audit.HTTP.URL = "http://" + coll.addr + "/logs"
	cfg.Audit.HTTP.SpoolDir = filepath.Join(dir, "spool")
	p := startPDP(t, cfg)
	conn := p.dial(t)
	envoy := authv3.NewAuthorizationClient(conn)
	mcpc := mcpv1.NewMCPPolicyClient(conn)
	ctx := context.Background()

	var want []string // decision ids the callers were given
	check := func(req *authv3.CheckRequest) {
		t.Helper()
		resp, err := envoy.Check(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, resp.GetDynamicMetadata().GetFields()["decision_id"].GetStringValue())
	}
	// ext_authz: the same request three times (evaluated, admitted, then a
	// cache hit), credentials and policy-masked headers, a malformed body.
	for i := range 3 {
		if i == 2 {
			// The cache inserts in the background: wait for the entry.
			waitStatus(t, p, "decision cached", func(st admin.Status) bool { return st.Cache.Inserts >= 1 })
		}
		check(envoyCheck(1, "reader", "GET", "/api/v1/items"))
	}
	secret := envoyCheck(2, "reader", "GET", "/api/v1/items?token=abc")
	h := secret.Attributes.Request.Http.Headers
	h["authorization"], h["x-secret"], h["x-tenant"] = "Bearer eyJhbGciOi.secret", "s3cret", "acme"
	check(secret)
	bad := envoyCheck(3, "reader", "POST", "/api/v1/items")
	bad.Attributes.Request.Http.Headers["content-type"] = "application/json"
	bad.Attributes.Request.Http.Body = `{"unterminated": `
	check(bad)
	// Dropped by data.system.log.drop: decided, never logged.
	if _, err := envoy.Check(ctx, envoyCheck(4, "reader", "GET", "/healthz")); err != nil {
		t.Fatal(err)
	}

	// Native MCP API: every RPC.
	req := mcpExample[mcpv1.CheckRequest](t, "mcp-check.json")
	for range 3 {
		resp, err := mcpc.Check(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, resp.GetDecisionId())
	}
	restricted := mcpExample[mcpv1.CheckRequest](t, "mcp-check.json")
	restricted.Server = "ehr"
	restricted.Params.Fields["name"] = stringValue("get_patient_record")
	restricted.Params.Fields["arguments"] = structValue(t, map[string]any{"patient_id": "p-123-45-6789"})
	resp, err := mcpc.Check(ctx, restricted)
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, resp.GetDecisionId())
	restrictedID := resp.GetDecisionId()

	batch, err := mcpc.CheckBatch(ctx, &mcpv1.CheckBatchRequest{
		Subject: req.GetSubject(), Server: req.GetServer(), Context: req.GetContext(),
		Items: []*mcpv1.BatchItem{{Id: stringValue("1"), Method: "tools/call", Params: req.GetParams()}, {Id: stringValue("2"), Method: "tools/list"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range batch.GetAnswers() {
		want = append(want, a.GetResponse().GetDecisionId())
	}
	ft, err := mcpc.FilterTools(ctx, mcpExample[mcpv1.FilterToolsRequest](t, "mcp-filter-tools.json"))
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, ft.GetDecisionId())
	cr, err := mcpc.CheckResult(ctx, mcpExample[mcpv1.CheckResultRequest](t, "mcp-check-result.json"))
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, cr.GetDecisionId())

	// MCP over Envoy: one JSON-RPC message, one decision.
	body := `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"get_patient_record","arguments":{"patient_id":"p-987-65-4321"}}}`
	overEnvoy := envoyCheck(5, "", "POST", "/mcp")
	overEnvoy.Attributes.Request.Http.Headers["content-type"] = "application/json"
	overEnvoy.Attributes.Request.Http.Body = body
	overEnvoy.Attributes.ContextExtensions = map[string]string{"mcp_server": "ehr"}
	check(overEnvoy)

	// Stop: the shutdown flushes the queue, the file and the upload.
	p.stop()

	fileEvents := readLog(t, logPath)
	got := eventIDs(fileEvents)
	if !slices.Equal(got, want) {
		t.Fatalf("file log has decisions\n%v\nwant each decision once, in order\n%v", got, want)
	}
	if atColl := coll.ids(); !slices.Equal(atColl, want) {
		t.Fatalf("collector got\n%v\nwant\n%v", atColl, want)
	}

	byID := map[string]map[string]any{}
	for _, e := range fileEvents {
		byID[e["decision_id"].(string)] = e
		for _, f := range []string{"path", "timestamp", "decision", "metrics", "bundles", "labels"} {
			if _, ok := e[f]; !ok {
				t.Errorf("event %s has no %q", e["decision_id"], f)
			}
		}
	}
	raw, err := os.ReadFile(mustFirst(filelog.Segments(logPath)))
	if err != nil {
		t.Fatal(err)
	}
	for _, leaked := range []string{"eyJhbGciOi.secret", "s3cret", "p-123-45-6789", "p-987-65-4321"} {
		if bytes.Contains(raw, []byte(leaked)) {
			t.Errorf("the log holds %q in clear", leaked)
		}
	}
	masked := byID[want[3]]
	headers := masked["input"].(map[string]any)["attributes"].(map[string]any)["request"].(map[string]any)["http"].(map[string]any)["headers"].(map[string]any)
	if _, ok := headers["x-secret"]; ok || headers["x-tenant"] != "tenant-redacted" || headers["authorization"] != audit.Mask {
		t.Errorf("masked headers: %v", headers)
	}
	if !slices.Contains(anyStrings(masked["erased"]), "/input/attributes/request/http/headers/x-secret") {
		t.Errorf("erased = %v", masked["erased"])
	}
	if e := byID[want[2]]; e["cached"] != true {
		t.Errorf("third identical ext_authz check not logged as cached: %v", e["cached"])
	}
	if e := byID[want[4]]; e["error"] == nil || e["decision"] != "deny" {
		t.Errorf("malformed request event: decision %v error %v", e["decision"], e["error"])
	}
	r := byID[restrictedID]
	if args := r["input"].(map[string]any)["tool"].(map[string]any)["arguments"]; args != audit.Mask {
		t.Errorf("restricted tool arguments logged as %v", args)
	}

	var out bytes.Buffer
	if code := app.Main(ctx, []string{"audit", "verify", logPath}, &out, &out); code != 0 {
		t.Fatalf("pdp audit verify = %d on an untouched log:\n%s", code, out.String())
	}
	// One edited byte is found.
	seg := mustFirst(filelog.Segments(logPath))
	edited := bytes.Replace(raw, []byte(`"decision":"allow"`), []byte(`"decision":"deny!"`), 1)
	if bytes.Equal(edited, raw) {
		t.Fatal("no allowed decision to tamper with")
	}
	if err := os.WriteFile(seg, edited, 0o600); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if code := app.Main(ctx, []string{"audit", "verify", logPath}, &out, &out); code != 1 || !strings.Contains(out.String(), "edited") {
		t.Fatalf("pdp audit verify = %d on an edited log:\n%s", code, out.String())
	}
}

// TestAuditMetricsAndStatus checks /metrics and /v1/status report the
// decisions and the sinks.
func TestAuditMetricsAndStatus(t *testing.T) {
	t.Parallel()
	cfg := auditConfig(t)
	cfg.Audit.File.Path = filepath.Join(t.TempDir(), "audit.jsonl")
	p := startPDP(t, cfg)
	envoy := authv3.NewAuthorizationClient(p.dial(t))
	for i := range 4 {
		if i == 2 {
			// A decision is cached the second time it is made, in the
			// background: wait for it before expecting the hits.
			waitStatus(t, p, "decision cached", func(st admin.Status) bool { return st.Cache.Inserts >= 1 })
		}
		if _, err := envoy.Check(context.Background(), envoyCheck(1, "reader", "GET", "/api/v1/items")); err != nil {
			t.Fatal(err)
		}
	}
	waitStatus(t, p, "4 events written to the file", func(st admin.Status) bool {
		return st.Audit.Enabled && len(st.Audit.Sinks) == 1 && st.Audit.Sinks[0].Written == 4 && st.Audit.Sinks[0].Healthy
	})
	resp, err := http.Get("http://" + p.httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		`verdict_decisions_total{cached="false",entrypoint="envoy/authz/allow",result="deny"} 2`,
		`verdict_decisions_total{cached="true",entrypoint="envoy/authz/allow",result="deny"} 2`,
		`verdict_audit_records_written_total{sink="file"} 4`,
		`verdict_audit_sink_healthy{sink="file"} 1`,
		`verdict_cache_hits_total 2`,
		`verdict_bundle_activations_total{bundle="mcp",result="success"} 1`,
		`verdict_decision_eval_duration_seconds_count{entrypoint="envoy/authz/allow"} 2`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestAuditCollectorDownThenBack: while the collector refuses connections
// and then answers 503, decisions go on and their events wait in the spool;
// when it is back it receives every one, in order, once.
func TestAuditCollectorDownThenBack(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close() // nothing listens: connection refused

	cfg := auditConfig(t)
	cfg.Audit.HTTP.URL = "http://" + addr + "/logs"
	cfg.Audit.HTTP.SpoolDir = t.TempDir()
	p := startPDP(t, cfg)
	envoy := authv3.NewAuthorizationClient(p.dial(t))
	var want []string
	decide := func(n int) {
		for i := range n {
			resp, err := envoy.Check(context.Background(), envoyCheck(i, "reader", "GET", fmt.Sprintf("/api/v1/items/%d", len(want))))
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, resp.GetDynamicMetadata().GetFields()["decision_id"].GetStringValue())
		}
	}
	decide(40)
	waitStatus(t, p, "the HTTP sink reports the collector down, events spooled", func(st admin.Status) bool {
		s := st.Audit.Sinks[0]
		return !s.Healthy && s.QueueDepth == 40 && s.SpoolBytes > 0 && s.LastError != "" && s.Written == 0
	})

	var coll collector
	coll.fail = true
	coll.listen(t, addr)
	decide(20)
	waitStatus(t, p, "the sink sees the 503s", func(st admin.Status) bool {
		s := st.Audit.Sinks[0]
		return !s.Healthy && strings.Contains(s.LastError, "503") && s.QueueDepth == 60
	})
	coll.setFail(false)
	decide(20)
	waitStatus(t, p, "every event delivered", func(st admin.Status) bool {
		s := st.Audit.Sinks[0]
		return s.Healthy && s.Written == 80 && s.QueueDepth == 0 && s.Dropped == 0
	})
	if got := coll.ids(); !slices.Equal(got, want) {
		t.Fatalf("collector got %d events\n%v\nwant %d in order\n%v", len(got), got, len(want), want)
	}
}

func stringValue(s string) *structpb.Value { return structpb.NewStringValue(s) }

func structValue(t *testing.T, m map[string]any) *structpb.Value {
	t.Helper()
	st, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return structpb.NewStructValue(st)
}

func anyStrings(v any) []string {
	arr, _ := v.([]any)
	out := make([]string, 0, len(arr))
	for _, x := range arr {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

func mustFirst(ss []string, err error) string {
	if err != nil || len(ss) == 0 {
		panic(fmt.Sprintf("no segments: %v", err))
	}
	return ss[0]
}

// otlpReceiver is an OTLP/gRPC trace collector on loopback.
type otlpReceiver struct {
	coltracepb.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []*tracepb.Span
}

func (r *otlpReceiver) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			r.spans = append(r.spans, ss.GetSpans()...)
		}
	}
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// TestTracingJoinsCallerAndAudit: with tracing on, a Check whose gRPC
// metadata carries a traceparent gets a span in the caller's trace, exported
// to a real OTLP receiver, and its audit event names that trace and span.
func TestTracingJoinsCallerAndAudit(t *testing.T) {
	t.Parallel()
	recv := &otlpReceiver{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(gs, recv)
	go func() { _ = gs.Serve(l) }()
	t.Cleanup(gs.Stop)

	cfg := auditConfig(t)
	logPath := filepath.Join(t.TempDir(), "audit.jsonl")
	cfg.Audit.File.Path = logPath
	cfg.Tracing.Endpoint, cfg.Tracing.Insecure = l.Addr().String(), true
	p := startPDP(t, cfg)
	envoy := authv3.NewAuthorizationClient(p.dial(t))
	const parent = "4bf92f3577b34da6a3ce929d0e0e4736"
	ctx := metadata.AppendToOutgoingContext(context.Background(), "traceparent", "00-"+parent+"-00f067aa0ba902b7-01")
	resp, err := envoy.Check(ctx, envoyCheck(1, "reader", "GET", "/api/v1/items"))
	if err != nil {
		t.Fatal(err)
	}
	id := resp.GetDynamicMetadata().GetFields()["decision_id"].GetStringValue()
	p.stop() // flushes spans and events

	evs := readLog(t, logPath)
	if len(evs) != 1 || evs[0]["decision_id"] != id || evs[0]["trace_id"] != parent || evs[0]["span_id"] == "" {
		t.Fatalf("event %v: want decision %s in trace %s", evs, id, parent)
	}
	recv.mu.Lock()
	defer recv.mu.Unlock()
	if len(recv.spans) != 1 {
		t.Fatalf("receiver got %d spans, want 1", len(recv.spans))
	}
	s := recv.spans[0]
	if s.GetName() != "verdict.ext_authz.Check" || fmt.Sprintf("%x", s.GetTraceId()) != parent || fmt.Sprintf("%x", s.GetSpanId()) != evs[0]["span_id"] {
		t.Errorf("span %s trace %x span %x; event span %v", s.GetName(), s.GetTraceId(), s.GetSpanId(), evs[0]["span_id"])
	}
	found := false
	for _, kv := range s.GetAttributes() {
		if kv.GetKey() == "verdict.decision_id" && kv.GetValue().GetStringValue() == id {
			found = true
		}
	}
	if !found {
		t.Errorf("span attributes %v lack verdict.decision_id=%s", s.GetAttributes(), id)
	}
}
