package metrics

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/verdictpdp/verdict/internal/audit"
	"github.com/verdictpdp/verdict/internal/cache"
	"github.com/verdictpdp/verdict/internal/status"
)

// Values of ObserveDecision's result. The label takes no other value: a
// caller must map anything else to one of these rather than pass it on, as
// every distinct string becomes a new series.
const (
	ResultAllow           = "allow"
	ResultDeny            = "deny"
	ResultRequireApproval = "require_approval"
	ResultError           = "error"
)

// durationBuckets double from 25µs to 819.2ms: a cached decision takes tens
// of microseconds, an evaluation up to a few milliseconds, and anything near
// a second is already past the proxies' timeouts.
var durationBuckets = prometheus.ExponentialBuckets(25e-6, 2, 16)

// Sources are read each time the metrics are scraped. A nil function is not
// reported. They must be safe to call concurrently with the request path.
type Sources struct {
	// Cache returns the decision cache's counters, and false while the
	// cache is off.
	Cache func() (cache.Stats, bool)
	// Bundles returns the state of every bundle source. Names must be
	// unique: a repeated name is reported once and the scrape logs an error.
	Bundles func() []status.Source
	// Audit returns the audit pipeline's counters. Sink names must be
	// unique, as bundle names.
	Audit func() AuditStats
	// Entrypoints returns, for each configured entrypoint, whether the
	// active policy defines it; nil or empty before the first activation.
	Entrypoints func() map[string]bool
	// Controls returns what the runtime controls hold, and false while
	// they are off.
	Controls func() (ControlStats, bool)
	// Sessions returns the session state's counters, and false while it
	// is off.
	Sessions func() (SessionStats, bool)
	// Log receives the errors met while serving a scrape; nil discards them.
	Log *slog.Logger
}

// ControlStats are the runtime controls' gauges and the approval
// webhook's counters.
type ControlStats struct {
	PendingApprovals, ActiveGrants, ActiveQuarantines, Records int64
	WebhookDelivered, WebhookFailed, WebhookDropped            uint64
}

// AuditStats are the audit pipeline's gauges and cumulative counters.
type AuditStats struct {
	// QueueDepth is the number of events waiting for the audit worker.
	QueueDepth    int64
	QueueCapacity int
	Sinks         []audit.SinkStatus
	// QueueFull counts events dropped because the queue stayed full.
	QueueFull uint64
	// PolicyDropped counts events dropped by data.system.log.drop.
	PolicyDropped uint64
	// MaskErrors counts errors met while masking events.
	MaskErrors uint64
}

// Metrics is safe for concurrent use. A nil *Metrics records nothing and
// serves 404.
type Metrics struct {
	reg     *prometheus.Registry
	handler http.Handler

	decisions   labelCache[decisionKey, *decisionSeries]
	activations labelCache[activationKey, prometheus.Counter]
	rateLimited labelCache[string, prometheus.Counter]
	redis       labelCache[redisKey, prometheus.Observer]
	approvals   labelCache[string, prometheus.Counter]
	// controlEvents counts lifecycle steps by event.
	controlEvents labelCache[string, prometheus.Counter]
	// containment counts quarantines set by automated containment.
	containment labelCache[containmentKey, prometheus.Counter]
	// gateway counts the messages `pdp gateway` handled.
	gateway labelCache[gatewayKey, prometheus.Counter]
}

type gatewayKey struct{ direction, method, action string }

type containmentKey struct{ rule, signal string }

type redisKey struct {
	op string
	ok bool
}

type decisionKey struct {
	entrypoint, result string
	cached             bool
}

// decisionSeries are the series one ObserveDecision call updates.
type decisionSeries struct {
	count prometheus.Counter
	total prometheus.Observer
	eval  prometheus.Observer // nil for cached decisions
}

type activationKey struct {
	bundle string
	ok     bool
}

// New returns metrics registered in a registry of their own, with the Go
// runtime and process collectors and a collector reading src at scrape
// time.
func New(src Sources) *Metrics {
	decisions := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "verdict_decisions_total",
		Help: "Decisions made, by entrypoint, result and whether the cache answered.",
	}, []string{"entrypoint", "result", "cached"})
	total := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "verdict_decision_duration_seconds",
		Help:    "Time to answer a decision, cache lookup and evaluation included.",
		Buckets: durationBuckets,
	}, []string{"entrypoint"})
	eval := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "verdict_decision_eval_duration_seconds",
		Help:    "Time spent evaluating the policy, for decisions not served from the cache.",
		Buckets: durationBuckets,
	}, []string{"entrypoint"})
	activations := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "verdict_bundle_activations_total",
		Help: "Bundle activations, by bundle and result (success or failure).",
	}, []string{"bundle", "result"})
	rateLimited := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "verdict_rate_limited_total",
		Help: "Requests refused by the rate limiter.",
	}, []string{"entrypoint"})
	approvals := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "verdict_approvals_required_total",
		Help: "Decisions that asked for a human approval.",
	}, []string{"entrypoint"})
	controlEvents := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "verdict_control_events_total",
		Help: "Lifecycle steps of approvals, grants and quarantines (approval.requested, approval.approved, approval.consumed, quarantine.created, control.refused, ...).",
	}, []string{"event"})
	containment := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "verdict_containment_triggered_total",
		Help: "Quarantines set by automated containment, by the data.mcp.containment rule and its signal.",
	}, []string{"rule", "signal"})
	redisDuration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "verdict_redis_duration_seconds",
		Help:    "Latency of calls to Redis (shared state), by operation and result (ok or error).",
		Buckets: durationBuckets,
	}, []string{"op", "result"})

	gateway := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "verdict_gateway_messages_total",
		Help: "MCP messages pdp gateway handled, by direction (client or server), method (MCP's own methods; other for the rest) and action (forwarded, denied, filtered, redacted, blocked, dropped, failed).",
	}, []string{"direction", "method", "action"})

	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		decisions, total, eval, activations, rateLimited, approvals, controlEvents, containment, redisDuration, gateway,
		&collector{src: src},
	)

	opts := promhttp.HandlerOpts{
		// Serve what could be gathered; the error goes to the log and to
		// promhttp_metric_handler_errors_total, not to the scraper.
		ErrorHandling: promhttp.ContinueOnError,
		Registry:      reg,
	}
	if src.Log != nil {
		opts.ErrorLog = errorLog{src.Log}
	}

	m := &Metrics{reg: reg, handler: promhttp.HandlerFor(reg, opts)}
	m.decisions.resolve = func(k decisionKey) *decisionSeries {
		s := &decisionSeries{
			count: decisions.WithLabelValues(k.entrypoint, k.result, boolLabel(k.cached)),
			total: total.WithLabelValues(k.entrypoint),
		}
		if !k.cached {
			// An entrypoint only ever answered from the cache has no
			// evaluation series.
			s.eval = eval.WithLabelValues(k.entrypoint)
		}
		return s
	}
	m.activations.resolve = func(k activationKey) prometheus.Counter {
		result := "failure"
		if k.ok {
			result = "success"
		}
		return activations.WithLabelValues(k.bundle, result)
	}
	m.rateLimited.resolve = func(entrypoint string) prometheus.Counter {
		return rateLimited.WithLabelValues(entrypoint)
	}
	m.approvals.resolve = func(entrypoint string) prometheus.Counter {
		return approvals.WithLabelValues(entrypoint)
	}
	m.controlEvents.resolve = func(event string) prometheus.Counter {
		return controlEvents.WithLabelValues(event)
	}
	m.containment.resolve = func(k containmentKey) prometheus.Counter {
		return containment.WithLabelValues(k.rule, k.signal)
	}
	m.gateway.resolve = func(k gatewayKey) prometheus.Counter {
		return gateway.WithLabelValues(k.direction, k.method, k.action)
	}
	m.redis.resolve = func(k redisKey) prometheus.Observer {
		result := "error"
		if k.ok {
			result = "ok"
		}
		return redisDuration.WithLabelValues(k.op, result)
	}
	return m
}

// Handler serves the registry in the Prometheus text format (or protobuf,
// when the scraper asks for it).
func (m *Metrics) Handler() http.Handler {
	if m == nil {
		return http.NotFoundHandler()
	}
	return m.handler
}

// ObserveDecision records one decision: total is the time to answer it, eval
// the part spent evaluating the policy (zero when the cache answered).
// entrypoint must come from the configured entrypoints and result must be
// one of the Result constants, never a string from the request: each
// distinct value is a new series.
func (m *Metrics) ObserveDecision(entrypoint, result string, cached bool, eval, total time.Duration) {
	if m == nil {
		return
	}
	s := m.decisions.get(decisionKey{entrypoint: entrypoint, result: result, cached: cached})
	s.count.Inc()
	s.total.Observe(total.Seconds())
	if !cached && eval > 0 {
		s.eval.Observe(eval.Seconds())
	}
}

// ObserveBundleActivation records an attempt to activate a bundle.
func (m *Metrics) ObserveBundleActivation(bundle string, ok bool) {
	if m == nil {
		return
	}
	m.activations.get(activationKey{bundle: bundle, ok: ok}).Inc()
}

// ObserveRateLimited records a request refused by the rate limiter.
func (m *Metrics) ObserveRateLimited(entrypoint string) {
	if m == nil {
		return
	}
	m.rateLimited.get(entrypoint).Inc()
}

// ObserveApprovalRequired records a decision that asked for a human
// approval.
func (m *Metrics) ObserveApprovalRequired(entrypoint string) {
	if m == nil {
		return
	}
	m.approvals.get(entrypoint).Inc()
}

// ObserveControlEvent records a lifecycle step of an approval, grant or
// quarantine; event comes from the closed set control.EventType names.
func (m *Metrics) ObserveControlEvent(event string) {
	if m == nil {
		return
	}
	m.controlEvents.get(event).Inc()
}

// ObserveContainment records a quarantine automated containment set:
// rule is a validated data.mcp.containment rule id (at most 64 rules per
// bundle), signal one of the closed set of signals.
func (m *Metrics) ObserveContainment(rule, signal string) {
	if m == nil {
		return
	}
	m.containment.get(containmentKey{rule: rule, signal: signal}).Inc()
}

// ObserveRedis records one call to Redis: op names it from a closed set
// (ratelimit, controls), d is its latency and err its outcome.
func (m *Metrics) ObserveRedis(op string, d time.Duration, err error) {
	if m == nil {
		return
	}
	m.redis.get(redisKey{op: op, ok: err == nil}).Observe(d.Seconds())
}

// ObserveGatewayMessage records one message pdp gateway handled.
// direction and action come from closed sets; a method that is not one of
// MCP's is counted as "other".
func (m *Metrics) ObserveGatewayMessage(direction, method, action string) {
	if m == nil {
		return
	}
	if !mcpMethods[method] {
		method = "other"
	}
	m.gateway.get(gatewayKey{direction: direction, method: method, action: action}).Inc()
}

// mcpMethods are the methods MCP defines, the label values of
// verdict_gateway_messages_total.
var mcpMethods = map[string]bool{
	"initialize": true, "ping": true, "server/discover": true,
	"tools/list": true, "tools/call": true,
	"resources/list": true, "resources/templates/list": true, "resources/read": true,
	"resources/subscribe": true, "resources/unsubscribe": true,
	"prompts/list": true, "prompts/get": true, "completion/complete": true, "logging/setLevel": true,
	"sampling/createMessage": true, "elicitation/create": true, "roots/list": true,
	"tasks/get": true, "tasks/list": true, "tasks/cancel": true, "tasks/result": true,
	"notifications/initialized": true, "notifications/cancelled": true, "notifications/progress": true,
	"notifications/message": true, "notifications/roots/list_changed": true,
	"notifications/tools/list_changed": true, "notifications/prompts/list_changed": true,
	"notifications/resources/list_changed": true, "notifications/resources/updated": true,
	"notifications/elicitation/complete": true, "notifications/tasks/status": true,
}

func boolLabel(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// labelCache maps label values to the series they select, so the request
// path neither allocates nor hashes label strings into a vector's own
// lookup. Reads take one atomic load and one map lookup; a new combination
// copies the map, which happens once per combination over the process's
// life (label values come from small closed sets).
type labelCache[K comparable, V any] struct {
	m       atomic.Pointer[map[K]V]
	mu      sync.Mutex // serializes copies
	resolve func(K) V
}

func (c *labelCache[K, V]) get(k K) V {
	if m := c.m.Load(); m != nil {
		if v, ok := (*m)[k]; ok {
			return v
		}
	}
	return c.add(k)
}

func (c *labelCache[K, V]) add(k K) V {
	c.mu.Lock()
	defer c.mu.Unlock()
	var next map[K]V
	if old := c.m.Load(); old != nil {
		if v, ok := (*old)[k]; ok {
			return v
		}
		next = make(map[K]V, len(*old)+1)
		maps.Copy(next, *old)
	} else {
		next = make(map[K]V, 1)
	}
	v := c.resolve(k)
	next[k] = v
	c.m.Store(&next)
	return v
}

// errorLog hands promhttp's errors to slog, one record per error: a
// gathering error is often a prometheus.MultiError holding one error per
// failed collector.
type errorLog struct{ log *slog.Logger }

func (l errorLog) Println(v ...any) {
	var (
		what []string
		errs []error
	)
	for _, x := range v {
		err, ok := x.(error)
		if !ok {
			what = append(what, strings.TrimSuffix(fmt.Sprint(x), ":"))
			continue
		}
		if multi := (prometheus.MultiError)(nil); errors.As(err, &multi) {
			errs = append(errs, multi...)
		} else {
			errs = append(errs, err)
		}
	}
	msg := "metrics: " + strings.Join(what, " ")
	for _, err := range errs {
		l.log.Error(msg, slog.Any("error", err))
	}
	if len(errs) == 0 {
		l.log.Error(msg)
	}
}
