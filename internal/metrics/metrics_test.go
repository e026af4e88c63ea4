package metrics

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/verdictpdp/verdict/internal/audit"
	"github.com/verdictpdp/verdict/internal/cache"
	"github.com/verdictpdp/verdict/internal/status"
)

// bounds are the histograms' bucket upper bounds, as the package doc states
// them: doubling from 25µs to 819.2ms.
var bounds = []float64{
	25e-6, 50e-6, 100e-6, 200e-6, 400e-6, 800e-6, 1.6e-3, 3.2e-3,
	6.4e-3, 12.8e-3, 25.6e-3, 51.2e-3, 102.4e-3, 204.8e-3, 409.6e-3, 819.2e-3,
}

// histogram returns the exposition lines of one histogram series holding
// samples; labels are the series' labels without le.
func histogram(name, labels string, samples ...time.Duration) string {
	var b strings.Builder
	var sum float64
	for _, s := range samples {
		sum += s.Seconds()
	}
	for _, bound := range bounds {
		n := 0
		for _, s := range samples {
			if s.Seconds() <= bound {
				n++
			}
		}
		fmt.Fprintf(&b, "%s_bucket{%s,le=\"%v\"} %d\n", name, labels, bound, n)
	}
	fmt.Fprintf(&b, "%s_bucket{%s,le=\"+Inf\"} %d\n", name, labels, len(samples))
	fmt.Fprintf(&b, "%s_sum{%s} %v\n", name, labels, sum)
	fmt.Fprintf(&b, "%s_count{%s} %d\n", name, labels, len(samples))
	return b.String()
}

var typeLine = regexp.MustCompile(`(?m)^# TYPE (\S+) `)

// compare checks every verdict_* family the registry gathers against want,
// in the text exposition format: a family missing from either side fails.
func compare(t *testing.T, m *Metrics, want string) {
	t.Helper()
	names := gatheredNames(t, m)
	for _, match := range typeLine.FindAllStringSubmatch(want, -1) {
		if !slices.Contains(names, match[1]) {
			names = append(names, match[1])
		}
	}
	if len(names) == 0 {
		return // nothing gathered, nothing wanted
	}
	if err := testutil.GatherAndCompare(m.reg, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
}

// gatheredNames returns the names of the verdict_* families gathered.
func gatheredNames(t *testing.T, m *Metrics) []string {
	t.Helper()
	mfs, err := m.reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var names []string
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "verdict_") {
			names = append(names, mf.GetName())
		}
	}
	return names
}

const (
	decisionsHead = `# HELP verdict_decisions_total Decisions made, by entrypoint, result and whether the cache answered.
# TYPE verdict_decisions_total counter
`
	durationHead = `# HELP verdict_decision_duration_seconds Time to answer a decision, cache lookup and evaluation included.
# TYPE verdict_decision_duration_seconds histogram
`
	evalHead = `# HELP verdict_decision_eval_duration_seconds Time spent evaluating the policy, for decisions not served from the cache.
# TYPE verdict_decision_eval_duration_seconds histogram
`
)

func TestObserve(t *testing.T) {
	t.Parallel()
	const us = time.Microsecond
	tests := []struct {
		name    string
		observe func(m *Metrics)
		want    string
	}{
		{
			name:    "nothing observed",
			observe: func(*Metrics) {},
		},
		{
			name: "evaluated decision",
			observe: func(m *Metrics) {
				m.ObserveDecision("envoy/authz", ResultAllow, false, 150*us, 300*us)
			},
			want: decisionsHead +
				`verdict_decisions_total{cached="false",entrypoint="envoy/authz",result="allow"} 1
` + durationHead + histogram("verdict_decision_duration_seconds", `entrypoint="envoy/authz"`, 300*us) +
				evalHead + histogram("verdict_decision_eval_duration_seconds", `entrypoint="envoy/authz"`, 150*us),
		},
		{
			name: "cached decision is not an evaluation",
			observe: func(m *Metrics) {
				m.ObserveDecision("envoy/authz", ResultDeny, true, 10*us, 30*us)
			},
			want: decisionsHead +
				`verdict_decisions_total{cached="true",entrypoint="envoy/authz",result="deny"} 1
` + durationHead + histogram("verdict_decision_duration_seconds", `entrypoint="envoy/authz"`, 30*us),
		},
		{
			name: "error before evaluation",
			observe: func(m *Metrics) {
				m.ObserveDecision("mcp/tools", ResultError, false, 0, 2*time.Second)
			},
			want: decisionsHead +
				`verdict_decisions_total{cached="false",entrypoint="mcp/tools",result="error"} 1
` + durationHead + histogram("verdict_decision_duration_seconds", `entrypoint="mcp/tools"`, 2*time.Second) +
				evalHead + histogram("verdict_decision_eval_duration_seconds", `entrypoint="mcp/tools"`),
		},
		{
			name: "series by entrypoint, result and cached",
			observe: func(m *Metrics) {
				m.ObserveDecision("mcp/tools", ResultAllow, false, 1000*us, 1200*us)
				m.ObserveDecision("mcp/tools", ResultAllow, false, 3000*us, 3100*us)
				m.ObserveDecision("mcp/tools", ResultAllow, true, 0, 40*us)
				m.ObserveDecision("mcp/tools", ResultRequireApproval, false, 700*us, 900*us)
				m.ObserveDecision("envoy/authz", ResultDeny, false, 20*us, 60*us)
			},
			want: decisionsHead + `verdict_decisions_total{cached="false",entrypoint="envoy/authz",result="deny"} 1
verdict_decisions_total{cached="false",entrypoint="mcp/tools",result="allow"} 2
verdict_decisions_total{cached="true",entrypoint="mcp/tools",result="allow"} 1
verdict_decisions_total{cached="false",entrypoint="mcp/tools",result="require_approval"} 1
` + durationHead +
				histogram("verdict_decision_duration_seconds", `entrypoint="envoy/authz"`, 60*us) +
				histogram("verdict_decision_duration_seconds", `entrypoint="mcp/tools"`, 1200*us, 3100*us, 40*us, 900*us) +
				evalHead +
				histogram("verdict_decision_eval_duration_seconds", `entrypoint="envoy/authz"`, 20*us) +
				histogram("verdict_decision_eval_duration_seconds", `entrypoint="mcp/tools"`, 1000*us, 3000*us, 700*us),
		},
		{
			name: "bundle activations",
			observe: func(m *Metrics) {
				m.ObserveBundleActivation("main", true)
				m.ObserveBundleActivation("main", true)
				m.ObserveBundleActivation("main", false)
				m.ObserveBundleActivation("extra", false)
			},
			want: `# HELP verdict_bundle_activations_total Bundle activations, by bundle and result (success or failure).
# TYPE verdict_bundle_activations_total counter
verdict_bundle_activations_total{bundle="extra",result="failure"} 1
verdict_bundle_activations_total{bundle="main",result="failure"} 1
verdict_bundle_activations_total{bundle="main",result="success"} 2
`,
		},
		{
			name: "rate limits and approvals",
			observe: func(m *Metrics) {
				m.ObserveRateLimited("mcp/tools")
				m.ObserveRateLimited("mcp/tools")
				m.ObserveRateLimited("envoy/authz")
				m.ObserveApprovalRequired("mcp/tools")
			},
			want: `# HELP verdict_rate_limited_total Requests refused by the rate limiter.
# TYPE verdict_rate_limited_total counter
verdict_rate_limited_total{entrypoint="envoy/authz"} 1
verdict_rate_limited_total{entrypoint="mcp/tools"} 2
# HELP verdict_approvals_required_total Decisions that asked for a human approval.
# TYPE verdict_approvals_required_total counter
verdict_approvals_required_total{entrypoint="mcp/tools"} 1
`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := New(Sources{})
			tt.observe(m)
			compare(t, m, tt.want)
		})
	}
}

func TestCollect(t *testing.T) {
	t.Parallel()
	stats := cache.Stats{
		Enabled: true, Entries: 42, Bytes: 63_000, MaxEntries: 100_000, MaxBytes: 128 << 20,
		Hits: 1000, Misses: 250, Inserts: 200, Evictions: 3, Expirations: 150, Invalidated: 5,
		Dropped: 7, FirstSeen: 50,
	}
	tests := []struct {
		name string
		src  Sources
		want string
	}{
		{
			name: "no sources",
		},
		{
			name: "cache off",
			src:  Sources{Cache: func() (cache.Stats, bool) { return cache.Stats{}, false }},
		},
		{
			name: "cache",
			src:  Sources{Cache: func() (cache.Stats, bool) { return stats, true }},
			want: `# HELP verdict_cache_hits_total Decision cache lookups that found a decision.
# TYPE verdict_cache_hits_total counter
verdict_cache_hits_total 1000
# HELP verdict_cache_misses_total Decision cache lookups that found none.
# TYPE verdict_cache_misses_total counter
verdict_cache_misses_total 250
# HELP verdict_cache_inserts_total Decisions inserted into the cache.
# TYPE verdict_cache_inserts_total counter
verdict_cache_inserts_total 200
# HELP verdict_cache_evictions_total Cache entries removed to stay within the cache's limits.
# TYPE verdict_cache_evictions_total counter
verdict_cache_evictions_total 3
# HELP verdict_cache_expirations_total Cache entries removed when their TTL ended.
# TYPE verdict_cache_expirations_total counter
verdict_cache_expirations_total 150
# HELP verdict_cache_invalidations_total Cache entries removed because their bundle was replaced or their subject flushed.
# TYPE verdict_cache_invalidations_total counter
verdict_cache_invalidations_total 5
# HELP verdict_cache_entries Decisions in the cache.
# TYPE verdict_cache_entries gauge
verdict_cache_entries 42
# HELP verdict_cache_bytes Estimated memory held by the cache's entries.
# TYPE verdict_cache_bytes gauge
verdict_cache_bytes 63000
# HELP verdict_cache_max_entries Most decisions the cache holds.
# TYPE verdict_cache_max_entries gauge
verdict_cache_max_entries 100000
# HELP verdict_cache_max_bytes Most memory the cache's entries may hold.
# TYPE verdict_cache_max_bytes gauge
verdict_cache_max_bytes 1.34217728e+08
`,
		},
		{
			name: "bundles",
			src: Sources{Bundles: func() []status.Source {
				return []status.Source{
					{Name: "main", Revision: "r42", LastSuccess: time.Unix(1_700_000_000, 500_000_000), Failures: 2},
					{Name: "never", LastError: "fetch failed", LastErrorAt: time.Unix(1_700_000_100, 0), Failures: 9},
				}
			}},
			want: `# HELP verdict_bundle_last_success_timestamp_seconds Unix time of the bundle's last successful activation, 0 until the first.
# TYPE verdict_bundle_last_success_timestamp_seconds gauge
verdict_bundle_last_success_timestamp_seconds{bundle="main"} 1.7000000005e+09
verdict_bundle_last_success_timestamp_seconds{bundle="never"} 0
# HELP verdict_bundle_failures_total Bundle downloads, verifications or activations that failed.
# TYPE verdict_bundle_failures_total counter
verdict_bundle_failures_total{bundle="main"} 2
verdict_bundle_failures_total{bundle="never"} 9
# HELP verdict_bundle_info The bundle's active revision, always 1.
# TYPE verdict_bundle_info gauge
verdict_bundle_info{bundle="main",revision="r42"} 1
verdict_bundle_info{bundle="never",revision=""} 1
`,
		},
		{
			name: "entrypoints before the first activation",
			src:  Sources{Entrypoints: func() map[string]bool { return nil }},
		},
		{
			name: "entrypoints",
			src: Sources{Entrypoints: func() map[string]bool {
				return map[string]bool{"envoy/authz/alow": false, "verdict/mcp/decision": true}
			}},
			want: `# HELP verdict_entrypoint_undefined 1 when nothing in the active policy defines the configured entrypoint (every decision there is denied), else 0.
# TYPE verdict_entrypoint_undefined gauge
verdict_entrypoint_undefined{entrypoint="envoy/authz/alow"} 1
verdict_entrypoint_undefined{entrypoint="verdict/mcp/decision"} 0
`,
		},
		{
			name: "audit",
			src: Sources{Audit: func() AuditStats {
				return AuditStats{
					QueueDepth: 17, QueueCapacity: 8192, QueueFull: 4, PolicyDropped: 11, MaskErrors: 1,
					Sinks: []audit.SinkStatus{
						{Name: "file", Target: "/var/log/verdict.log", Healthy: true, QueueDepth: 2, Written: 900, Dropped: 1},
						{Name: "http", Target: "https://collector", Healthy: false, QueueDepth: 30, SpoolBytes: 4096, Written: 800, Spooled: 120, Dropped: 6, LastError: "503"},
					},
				}
			}},
			want: `# HELP verdict_audit_queue_depth Audit events waiting for the audit worker.
# TYPE verdict_audit_queue_depth gauge
verdict_audit_queue_depth 17
# HELP verdict_audit_queue_capacity Most audit events the queue holds.
# TYPE verdict_audit_queue_capacity gauge
verdict_audit_queue_capacity 8192
# HELP verdict_audit_events_dropped_total Audit events dropped before reaching a sink, by reason (queue_full, policy_drop).
# TYPE verdict_audit_events_dropped_total counter
verdict_audit_events_dropped_total{reason="policy_drop"} 11
verdict_audit_events_dropped_total{reason="queue_full"} 4
# HELP verdict_audit_mask_errors_total Errors met while masking audit events.
# TYPE verdict_audit_mask_errors_total counter
verdict_audit_mask_errors_total 1
# HELP verdict_audit_records_written_total Audit records stored (file, console) or delivered (http).
# TYPE verdict_audit_records_written_total counter
verdict_audit_records_written_total{sink="file"} 900
verdict_audit_records_written_total{sink="http"} 800
# HELP verdict_audit_records_spooled_total Audit records written to the sink's on-disk spool.
# TYPE verdict_audit_records_spooled_total counter
verdict_audit_records_spooled_total{sink="file"} 0
verdict_audit_records_spooled_total{sink="http"} 120
# HELP verdict_audit_records_dropped_total Audit records the sink lost.
# TYPE verdict_audit_records_dropped_total counter
verdict_audit_records_dropped_total{sink="file"} 1
verdict_audit_records_dropped_total{sink="http"} 6
# HELP verdict_audit_sink_healthy 1 while the sink's last write succeeded, else 0.
# TYPE verdict_audit_sink_healthy gauge
verdict_audit_sink_healthy{sink="file"} 1
verdict_audit_sink_healthy{sink="http"} 0
# HELP verdict_audit_sink_queue_depth Audit records accepted by the sink but not yet stored or delivered.
# TYPE verdict_audit_sink_queue_depth gauge
verdict_audit_sink_queue_depth{sink="file"} 2
verdict_audit_sink_queue_depth{sink="http"} 30
# HELP verdict_audit_spool_bytes Size of the sink's on-disk spool.
# TYPE verdict_audit_spool_bytes gauge
verdict_audit_spool_bytes{sink="file"} 0
verdict_audit_spool_bytes{sink="http"} 4096
`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			compare(t, New(tt.src), tt.want)
		})
	}
}

// TestCollectReadsAtScrape checks that each scrape reads the sources
// afresh rather than a copy taken earlier.
func TestCollectReadsAtScrape(t *testing.T) {
	t.Parallel()
	var (
		mu   sync.Mutex
		hits uint64
		on   = true
	)
	m := New(Sources{Cache: func() (cache.Stats, bool) {
		mu.Lock()
		defer mu.Unlock()
		return cache.Stats{Hits: hits}, on
	}})
	for _, want := range []float64{0, 5, 12} {
		mu.Lock()
		hits = uint64(want)
		mu.Unlock()
		if got := gatherValue(t, m, "verdict_cache_hits_total"); got != want {
			t.Errorf("verdict_cache_hits_total = %v, want %v", got, want)
		}
	}
	mu.Lock()
	on = false
	mu.Unlock()
	if names := gatheredNames(t, m); len(names) != 0 {
		t.Errorf("cache turned off, still reported: %v", names)
	}
}

func gatherValue(t *testing.T, m *Metrics, name string) float64 {
	t.Helper()
	mfs, err := m.reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("%s: not gathered as a single series", name)
	return 0
}

// populated returns metrics with every family holding at least one series.
func populated() *Metrics {
	m := New(Sources{
		Cache: func() (cache.Stats, bool) { return cache.Stats{Enabled: true, Hits: 1}, true },
		Bundles: func() []status.Source {
			return []status.Source{{Name: "main", Revision: "r1", LastSuccess: time.Unix(1_700_000_000, 0)}}
		},
		Audit: func() AuditStats {
			return AuditStats{QueueCapacity: 16, Sinks: []audit.SinkStatus{{Name: "file", Healthy: true}}}
		},
		Entrypoints: func() map[string]bool { return map[string]bool{"envoy/authz": true} },
		Controls:    func() (ControlStats, bool) { return ControlStats{PendingApprovals: 1, WebhookDelivered: 1}, true },
		Sessions:    func() (SessionStats, bool) { return SessionStats{Sessions: 3, Expired: 1}, true },
	})
	m.ObserveControlEvent("approval.requested")
	m.ObserveDecision("envoy/authz", ResultAllow, false, time.Millisecond, 2*time.Millisecond)
	m.ObserveBundleActivation("main", true)
	m.ObserveRateLimited("envoy/authz")
	m.ObserveApprovalRequired("envoy/authz")
	m.ObserveContainment("deny-storm", "deny_rate")
	m.ObserveRedis("ratelimit", time.Millisecond, nil)
	m.ObserveGatewayMessage("client", "tools/call", "forwarded")
	return m
}

func TestLint(t *testing.T) {
	t.Parallel()
	problems, err := testutil.GatherAndLint(populated().reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

// TestDocListsEveryMetric checks the package comment, which operators read,
// against the families the registry serves, both ways.
func TestDocListsEveryMetric(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	documented := regexp.MustCompile(`(?m)^//\s+(verdict_\w+)\s`).FindAllStringSubmatch(string(src), -1)
	var doc []string
	for _, d := range documented {
		doc = append(doc, d[1])
	}
	slices.Sort(doc)
	served := gatheredNames(t, populated())
	slices.Sort(served)
	if diff := cmp.Diff(served, doc); diff != "" {
		t.Errorf("families served (-) and documented (+) differ:\n%s", diff)
	}
	if len(served) != 41 {
		t.Errorf("served %d verdict_* families, want 41", len(served))
	}
}

func TestHandler(t *testing.T) {
	t.Parallel()
	m := New(Sources{Cache: func() (cache.Stats, bool) { return cache.Stats{Hits: 3, Entries: 2}, true }})
	m.ObserveRateLimited("mcp/tools")
	srv := httptest.NewServer(m.Handler())
	t.Cleanup(srv.Close)

	code, header, body := get(t, srv.URL)
	if code != http.StatusOK {
		t.Fatalf("status %d, want 200", code)
	}
	if ct := header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("Content-Type %q, want the text exposition format", ct)
	}
	for _, want := range []string{"\ngo_goroutines ", "\nprocess_start_time_seconds ", "\npromhttp_metric_handler_errors_total{cause=\"gathering\"} 0\n"} {
		if !strings.Contains(body, want) {
			t.Errorf("body lacks %q", want)
		}
	}

	want := `# HELP verdict_cache_hits_total Decision cache lookups that found a decision.
# TYPE verdict_cache_hits_total counter
verdict_cache_hits_total 3
# HELP verdict_cache_entries Decisions in the cache.
# TYPE verdict_cache_entries gauge
verdict_cache_entries 2
# HELP verdict_rate_limited_total Requests refused by the rate limiter.
# TYPE verdict_rate_limited_total counter
verdict_rate_limited_total{entrypoint="mcp/tools"} 1
`
	if err := testutil.ScrapeAndCompare(srv.URL, strings.NewReader(want),
		"verdict_cache_hits_total", "verdict_cache_entries", "verdict_rate_limited_total"); err != nil {
		t.Error(err)
	}
}

// TestHandlerError checks that a collection error (here, two sinks with the
// same name) is logged, counted and kept out of the response, which still
// serves every other series.
func TestHandlerError(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	m := New(Sources{
		Audit: func() AuditStats {
			return AuditStats{Sinks: []audit.SinkStatus{{Name: "file", Written: 1}, {Name: "file", Written: 2}}}
		},
		Log: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	srv := httptest.NewServer(m.Handler())
	t.Cleanup(srv.Close)

	code, _, body := get(t, srv.URL)
	if code != http.StatusOK {
		t.Fatalf("status %d, want 200", code)
	}
	if strings.Contains(body, "collected before") {
		t.Errorf("response carries the error:\n%s", body)
	}
	for _, want := range []string{
		"\nverdict_audit_records_written_total{sink=\"file\"} 1\n",
		"\nverdict_audit_queue_capacity 0\n",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("body lacks %q", want)
		}
	}
	// The error counter is updated after the scrape that met the error.
	if _, _, body := get(t, srv.URL); !strings.Contains(body, "\npromhttp_metric_handler_errors_total{cause=\"gathering\"} 1\n") {
		t.Errorf("the first scrape's error is not counted:\n%s", body)
	}
	if got := logs.String(); !strings.Contains(got, "level=ERROR") || !strings.Contains(got, "collected before with the same name and label values") {
		t.Errorf("error not logged; log:\n%s", got)
	}
}

// get fetches url and returns the response's status, headers and body.
func get(t *testing.T, url string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if cerr := resp.Body.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(body)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestObserveConcurrent adds label combinations from many goroutines at once
// (run with -race) and checks no observation is lost.
func TestObserveConcurrent(t *testing.T) {
	t.Parallel()
	m := New(Sources{})
	const goroutines, perGoroutine = 8, 500
	entrypoints := []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p"}
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range perGoroutine {
				ep := entrypoints[(g+i)%len(entrypoints)]
				m.ObserveDecision(ep, ResultAllow, i%2 == 0, time.Microsecond, time.Microsecond)
				m.ObserveRateLimited(ep)
			}
		})
	}
	wg.Wait()
	mfs, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]float64{}
	series := map[string]int{}
	for _, mf := range mfs {
		for _, s := range mf.GetMetric() {
			counts[mf.GetName()] += s.GetCounter().GetValue() + float64(s.GetHistogram().GetSampleCount())
			series[mf.GetName()]++
		}
	}
	const n = goroutines * perGoroutine
	for name, want := range map[string]float64{
		"verdict_decisions_total":                n,
		"verdict_decision_duration_seconds":      n,
		"verdict_decision_eval_duration_seconds": n / 2,
		"verdict_rate_limited_total":             n,
	} {
		if counts[name] != want {
			t.Errorf("%s counts %v, want %v", name, counts[name], want)
		}
	}
	if got, want := series["verdict_decisions_total"], 2*len(entrypoints); got != want {
		t.Errorf("verdict_decisions_total has %d series, want %d", got, want)
	}
}

func TestNilMetrics(t *testing.T) {
	t.Parallel()
	var m *Metrics
	m.ObserveDecision("envoy/authz", ResultAllow, false, time.Millisecond, time.Millisecond)
	m.ObserveBundleActivation("main", true)
	m.ObserveRateLimited("envoy/authz")
	m.ObserveApprovalRequired("envoy/authz")
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("status %d, want 404", rec.Code)
	}
}
