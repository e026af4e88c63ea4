package audit_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/verdictpdp/verdict/internal/audit"
	"github.com/verdictpdp/verdict/internal/bundle"
	"github.com/verdictpdp/verdict/internal/bundle/bundletest"
	"github.com/verdictpdp/verdict/internal/engine"
)

// memSink keeps what it is given; the real sinks have their own tests.
type memSink struct {
	mu      sync.Mutex
	records []audit.Record
	block   chan struct{}
}

func (m *memSink) Name() string { return "mem" }
func (m *memSink) Write(_ context.Context, batch []audit.Record) error {
	if m.block != nil {
		<-m.block
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range batch {
		r.JSON = slices.Clone(r.JSON)
		m.records = append(m.records, r)
	}
	return nil
}
func (m *memSink) Close(context.Context) error { return nil }
func (m *memSink) Status() audit.SinkStatus    { return audit.SinkStatus{Name: "mem", Healthy: true} }

func (m *memSink) events(t *testing.T) []map[string]any {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]map[string]any, len(m.records))
	for i, r := range m.records {
		if err := json.Unmarshal(r.JSON, &out[i]); err != nil {
			t.Fatalf("record %d is not JSON: %v\n%s", i, err, r.JSON)
		}
	}
	return out
}

func newRecorder(t *testing.T, snap func() *engine.Snapshot) (*audit.Recorder, *memSink) {
	t.Helper()
	sink := &memSink{}
	r, err := audit.New(audit.Options{
		Sinks:     []audit.Sink{sink},
		Labels:    map[string]string{"id": "test", "version": "dev"},
		Retention: audit.Retention{DefaultDays: 30, ByClassification: map[string]int{"internal": 90}},
		Snapshot:  snap,
	})
	if err != nil {
		t.Fatal(err)
	}
	return r, sink
}

func closeRecorder(t *testing.T, r *audit.Recorder) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

func mustValue(t *testing.T, js string) ast.Value {
	t.Helper()
	v, err := ast.ValueFromReader(strings.NewReader(js))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

var when = time.Date(2026, 11, 21, 10, 0, 0, 123, time.UTC)

const envoyInput = `{"attributes": {"request": {"http": {"method": "GET", "path": "/a?token=x",
	"headers": {"authorization": "Bearer secret-token", "cookie": "s=1", "x-id": "7"}}}},
	"parsed_path": ["a"]}`

// TestEventFields checks the OPA decision-log fields and Verdict's own on
// an ext_authz event written on the fast path.
func TestEventFields(t *testing.T) {
	r, sink := newRecorder(t, nil)
	r.Record(&audit.Entry{
		DecisionID: "d1", Time: when, Kind: audit.KindEnvoy, Path: "envoy/authz/allow",
		Bundles: map[string]engine.BundleInfo{"main": {Revision: "r1"}},
		Input:   mustValue(t, envoyInput), Result: true, Decision: audit.Allow,
		Subject: "alice", Request: &audit.Request{Method: "GET", Path: "/a"}, HTTPStatus: 200,
		EvalTook: 42 * time.Microsecond, Took: 50 * time.Microsecond, TraceID: "t", SpanID: "s",
	})
	closeRecorder(t, r)
	evs := sink.events(t)
	if len(evs) != 1 {
		t.Fatalf("got %d events, want 1", len(evs))
	}
	got := evs[0]
	want := map[string]any{
		"labels":      map[string]any{"id": "test", "version": "dev"},
		"decision_id": "d1", "trace_id": "t", "span_id": "s", "path": "envoy/authz/allow",
		"input": map[string]any{
			"attributes": map[string]any{"request": map[string]any{"http": map[string]any{
				"method": "GET", "path": "/a?token=x",
				"headers": map[string]any{"authorization": audit.Mask, "cookie": audit.Mask, "x-id": "7"},
			}}},
			"parsed_path": []any{"a"},
		},
		"result":    true,
		"bundles":   map[string]any{"main": map[string]any{"revision": "r1"}},
		"masked":    []any{"/input/attributes/request/http/headers/authorization", "/input/attributes/request/http/headers/cookie"},
		"timestamp": "2026-11-21T10:00:00.000000123Z",
		"metrics":   map[string]any{"timer_rego_query_eval_ns": 42000.0, "timer_server_handler_ns": 50000.0},
		"decision":  "allow", "subject": "alice", "request": map[string]any{"method": "GET", "path": "/a"},
		"http_status": 200.0, "cached": false, "retention_days": 30.0,
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("event (-want +got):\n%s", d)
	}
	if exp := sink.records[0].Expires; !exp.Equal(when.Add(30 * 24 * time.Hour)) {
		t.Errorf("expires %v, want 30 days after the decision", exp)
	}
}

// TestStringEncoding checks the hand-written JSON writer against
// encoding/json on strings that need escaping.
func TestStringEncoding(t *testing.T) {
	for _, s := range []string{"", "plain", `q"uote\back`, "ctl\x00\x01\x1f\n\r\t", "bad\xffutf8\xc3", "sep\u2028\u2029", "é漢字🙂", "<>&"} {
		r, sink := newRecorder(t, nil)
		r.Record(&audit.Entry{DecisionID: s, Time: when, Kind: audit.KindEnvoy, Path: "p", Input: ast.String(s), Decision: audit.Deny})
		closeRecorder(t, r)
		evs := sink.events(t)
		want := strings.ToValidUTF8(s, "\uFFFD")
		if evs[0]["decision_id"] != want || evs[0]["input"] != want {
			t.Errorf("%q: decoded %q / %q, want %q", s, evs[0]["decision_id"], evs[0]["input"], want)
		}
	}
}

func engineWith(t *testing.T, modules map[string]string) *engine.Engine {
	t.Helper()
	e, err := engine.New(engine.Deps{Entrypoints: []string{"envoy/authz/allow"}, Optional: []string{audit.MaskPath, audit.DropPath}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := bundle.NewReader(bundle.Limits{}, nil).ReadArchive("main", bundletest.Archive(t, bundletest.Spec{Revision: "r1", Modules: modules}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Activate(context.Background(), map[string]*bundle.Bundle{"main": b}); err != nil {
		t.Fatal(err)
	}
	return e
}

const allowPolicy = "package envoy.authz\n\ndefault allow := false\n"

// TestPolicyMasking runs data.system.log.mask and drop as OPA does: the
// event is the input, strings erase, upsert operations replace.
func TestPolicyMasking(t *testing.T) {
	eng := engineWith(t, map[string]string{
		"p.rego": allowPolicy,
		"log.rego": `package system.log

mask contains "/input/password"

mask contains "/input/absent"

mask contains {"op": "upsert", "path": "/input/card", "value": "****"}

mask contains {"op": "upsert", "path": "/result/detail", "value": "hidden"} if input.result.detail

drop if input.input.path == "/healthz"
`,
	})
	r, sink := newRecorder(t, eng.Snapshot)
	in := map[string]any{"password": "hunter2", "card": "4111", "path": "/x", "keep": 1}
	r.Record(&audit.Entry{DecisionID: "kept", Time: when, Kind: audit.KindMCP, Path: "p", Input: in,
		Result: map[string]any{"allow": false, "detail": "why"}, Decision: audit.Deny})
	r.Record(&audit.Entry{DecisionID: "health", Time: when, Kind: audit.KindMCP, Path: "p", Input: map[string]any{"path": "/healthz"}, Decision: audit.Allow})
	closeRecorder(t, r)

	evs := sink.events(t)
	if len(evs) != 1 || evs[0]["decision_id"] != "kept" {
		t.Fatalf("want only the kept event, got %v", evs)
	}
	got := evs[0]
	if d := cmp.Diff(map[string]any{"card": "****", "path": "/x", "keep": 1.0}, got["input"]); d != "" {
		t.Errorf("input (-want +got):\n%s", d)
	}
	if d := cmp.Diff(map[string]any{"allow": false, "detail": "hidden"}, got["result"]); d != "" {
		t.Errorf("result (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]any{"/input/password"}, got["erased"]); d != "" {
		t.Errorf("erased (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]any{"/input/card", "/result/detail"}, got["masked"]); d != "" {
		t.Errorf("masked (-want +got):\n%s", d)
	}
	if in["password"] != "hunter2" {
		t.Error("masking changed the caller's input")
	}
	if st := r.Stats(); st.PolicyDropped != 1 || st.Recorded != 2 {
		t.Errorf("stats %+v, want 2 recorded, 1 dropped by policy", st)
	}
}

// TestMaskFailureErases: a mask rule Verdict cannot apply must not let the
// input through.
func TestMaskFailureErases(t *testing.T) {
	eng := engineWith(t, map[string]string{
		"p.rego":   allowPolicy,
		"log.rego": "package system.log\n\nmask contains \"/decision_id\"\n",
	})
	r, sink := newRecorder(t, eng.Snapshot)
	r.Record(&audit.Entry{DecisionID: "d", Time: when, Kind: audit.KindMCP, Path: "p", Input: map[string]any{"secret": "x"}, Result: 1, Decision: audit.Deny})
	closeRecorder(t, r)
	got := sink.events(t)[0]
	if _, ok := got["input"]; ok {
		t.Errorf("input written after a mask failure: %v", got["input"])
	}
	if _, ok := got["result"]; ok {
		t.Errorf("result written after a mask failure: %v", got["result"])
	}
	if r.Stats().MaskErrors != 1 {
		t.Errorf("mask errors %d, want 1", r.Stats().MaskErrors)
	}
}

// TestMCPRedaction applies the decision's redactions to the call, and masks
// restricted tools' arguments whole, on both MCP kinds.
func TestMCPRedaction(t *testing.T) {
	call := func() map[string]any {
		return map[string]any{
			"method": "tools/call", "subject": map[string]any{"id": "bob@example.com"},
			"tool": map[string]any{"name": "lookup", "arguments": map[string]any{"ssn": "123-45-6789", "note": "mail ann@example.com", "n": 1}},
		}
	}
	tests := []struct {
		name           string
		kind           audit.Kind
		redact         []string
		classification string
		wantArgs       any
		wantErased     []any
	}{
		{
			name: "pointer and detector", kind: audit.KindMCP, redact: []string{"/arguments/ssn", "email"},
			wantArgs: map[string]any{"ssn": audit.Mask, "note": "mail [REDACTED:email]", "n": 1.0},
		},
		{
			name: "restricted", kind: audit.KindMCP, classification: "restricted",
			wantArgs: audit.Mask,
		},
		{
			name: "restricted over envoy", kind: audit.KindMCPOverEnvoy, classification: "restricted",
			wantArgs:   audit.Mask,
			wantErased: []any{"/input/envoy/attributes/request/http/body", "/input/envoy/parsed_body", "/input/envoy/attributes/request/http/headers/mcp-param-ssn"},
		},
		{
			name: "nothing to redact", kind: audit.KindMCP, classification: "internal",
			wantArgs: map[string]any{"ssn": "123-45-6789", "note": "mail ann@example.com", "n": 1.0},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := call()
			if tt.kind == audit.KindMCPOverEnvoy {
				in["envoy"] = map[string]any{
					"attributes": map[string]any{"request": map[string]any{"http": map[string]any{
						"body":    `{"params":{"arguments":{"ssn":"123-45-6789"}}}`,
						"headers": map[string]any{"mcp-param-ssn": "123-45-6789", "authorization": "Bearer x"},
					}}},
					"parsed_body": map[string]any{"params": map[string]any{"arguments": map[string]any{"ssn": "123-45-6789"}}},
				}
			}
			r, sink := newRecorder(t, nil)
			r.Record(&audit.Entry{DecisionID: "d", Time: when, Kind: tt.kind, Path: "verdict/mcp/decision", Input: in,
				Decision: audit.Allow, Redact: tt.redact, Classification: tt.classification})
			closeRecorder(t, r)
			got := sink.events(t)[0]
			input := got["input"].(map[string]any)
			if tt.kind == audit.KindMCPOverEnvoy {
				h := input["envoy"].(map[string]any)["attributes"].(map[string]any)["request"].(map[string]any)["http"].(map[string]any)["headers"].(map[string]any)
				if h["authorization"] != audit.Mask {
					t.Errorf("authorization header of input.envoy logged as %v", h["authorization"])
				}
			}
			args := input["tool"].(map[string]any)["arguments"]
			if d := cmp.Diff(tt.wantArgs, args); d != "" {
				t.Errorf("arguments (-want +got):\n%s", d)
			}
			if tt.wantErased != nil {
				if d := cmp.Diff(tt.wantErased, got["erased"]); d != "" {
					t.Errorf("erased (-want +got):\n%s", d)
				}
				if strings.Contains(mustJSON(t, got), "123-45-6789") {
					t.Errorf("the argument is still written in clear: %s", mustJSON(t, got))
				}
			}
			if tt.wantErased == nil && got["erased"] != nil {
				t.Errorf("erased %v, want nothing", got["erased"])
			}
		})
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestRetention chooses each record's retention: the decision's, its
// class's, the default.
func TestRetention(t *testing.T) {
	r := audit.Retention{DefaultDays: 30, ByClassification: map[string]int{"internal": 90}}
	for _, tt := range []struct {
		days  int
		class string
		want  int
	}{{7, "internal", 7}, {0, "internal", 90}, {0, "public", 30}, {0, "", 30}} {
		if got := r.Days(tt.days, tt.class); got != tt.want {
			t.Errorf("Days(%d, %q) = %d, want %d", tt.days, tt.class, got, tt.want)
		}
	}
	if got := (audit.Retention{}).Days(0, ""); got != audit.DefaultRetentionDays {
		t.Errorf("zero retention = %d, want the default %d", got, audit.DefaultRetentionDays)
	}
}

// TestQueueFullIsBounded: with the worker stuck, Record gives up after
// MaxBlock and counts the drop; nothing blocks longer.
func TestQueueFullIsBounded(t *testing.T) {
	sink := &memSink{block: make(chan struct{})}
	r, err := audit.New(audit.Options{Sinks: []audit.Sink{sink}, QueueSize: 2, MaxBlock: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	e := func(id string) *audit.Entry {
		return &audit.Entry{DecisionID: id, Time: when, Kind: audit.KindEnvoy, Path: "p", Decision: audit.Allow}
	}
	// The stuck worker holds what it took; the queue fills behind it.
	accepted := 0
	var took time.Duration
	for i := range 10 {
		time.Sleep(5 * time.Millisecond) // let the worker take what it can
		start := time.Now()
		if r.Record(e(string(rune('a' + i)))) {
			accepted++
			continue
		}
		took = time.Since(start)
		break
	}
	if took == 0 {
		t.Fatal("Record accepted every entry into a queue of 2 behind a stuck worker")
	}
	if took > 500*time.Millisecond || took < 15*time.Millisecond {
		t.Errorf("Record waited %v, want about the 20ms bound", took)
	}
	if st := r.Stats(); st.QueueFull != 1 {
		t.Errorf("queue_full %d, want 1", st.QueueFull)
	}
	close(sink.block)
	closeRecorder(t, r)
	if got := len(sink.events(t)); got != accepted {
		t.Errorf("%d events written, want the %d accepted", got, accepted)
	}
}

// TestCloseDrains: every entry recorded before Close is written.
func TestCloseDrains(t *testing.T) {
	r, sink := newRecorder(t, nil)
	const n = 2000
	for i := range n {
		r.Record(&audit.Entry{DecisionID: string(rune(i)), Time: when, Kind: audit.KindEnvoy, Path: "p", Decision: audit.Allow})
	}
	closeRecorder(t, r)
	if got := len(sink.events(t)); got != n {
		t.Fatalf("%d events after Close, want %d", got, n)
	}
}
