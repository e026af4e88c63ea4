package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/verdictpdp/verdict/internal/audit"
	"github.com/verdictpdp/verdict/internal/cache"
)

// stat is one metric read from a field of a status struct.
type stat[T any] struct {
	desc  *prometheus.Desc
	typ   prometheus.ValueType
	value func(*T) float64
}

func counter[T any](name, help string, labels []string, value func(*T) float64) stat[T] {
	return stat[T]{prometheus.NewDesc(name, help, labels, nil), prometheus.CounterValue, value}
}

func gauge[T any](name, help string, labels []string, value func(*T) float64) stat[T] {
	return stat[T]{prometheus.NewDesc(name, help, labels, nil), prometheus.GaugeValue, value}
}

var cacheStats = []stat[cache.Stats]{
	counter("verdict_cache_hits_total", "Decision cache lookups that found a decision.", nil,
		func(s *cache.Stats) float64 { return float64(s.Hits) }),
	counter("verdict_cache_misses_total", "Decision cache lookups that found none.", nil,
		func(s *cache.Stats) float64 { return float64(s.Misses) }),
	counter("verdict_cache_inserts_total", "Decisions inserted into the cache.", nil,
		func(s *cache.Stats) float64 { return float64(s.Inserts) }),
	counter("verdict_cache_evictions_total", "Cache entries removed to stay within the cache's limits.", nil,
		func(s *cache.Stats) float64 { return float64(s.Evictions) }),
	counter("verdict_cache_expirations_total", "Cache entries removed when their TTL ended.", nil,
		func(s *cache.Stats) float64 { return float64(s.Expirations) }),
	counter("verdict_cache_invalidations_total", "Cache entries removed because their bundle was replaced or their subject flushed.", nil,
		func(s *cache.Stats) float64 { return float64(s.Invalidated) }),
	gauge("verdict_cache_entries", "Decisions in the cache.", nil,
		func(s *cache.Stats) float64 { return float64(s.Entries) }),
	gauge("verdict_cache_bytes", "Estimated memory held by the cache's entries.", nil,
		func(s *cache.Stats) float64 { return float64(s.Bytes) }),
	gauge("verdict_cache_max_entries", "Most decisions the cache holds.", nil,
		func(s *cache.Stats) float64 { return float64(s.MaxEntries) }),
	gauge("verdict_cache_max_bytes", "Most memory the cache's entries may hold.", nil,
		func(s *cache.Stats) float64 { return float64(s.MaxBytes) }),
}

var sinkLabels = []string{"sink"}

var sinkStats = []stat[audit.SinkStatus]{
	counter("verdict_audit_records_written_total", "Audit records stored (file, console) or delivered (http).", sinkLabels,
		func(s *audit.SinkStatus) float64 { return float64(s.Written) }),
	counter("verdict_audit_records_spooled_total", "Audit records written to the sink's on-disk spool.", sinkLabels,
		func(s *audit.SinkStatus) float64 { return float64(s.Spooled) }),
	counter("verdict_audit_records_dropped_total", "Audit records the sink lost.", sinkLabels,
		func(s *audit.SinkStatus) float64 { return float64(s.Dropped) }),
	gauge("verdict_audit_sink_healthy", "1 while the sink's last write succeeded, else 0.", sinkLabels,
		func(s *audit.SinkStatus) float64 { return boolValue(s.Healthy) }),
	gauge("verdict_audit_sink_queue_depth", "Audit records accepted by the sink but not yet stored or delivered.", sinkLabels,
		func(s *audit.SinkStatus) float64 { return float64(s.QueueDepth) }),
	gauge("verdict_audit_spool_bytes", "Size of the sink's on-disk spool.", sinkLabels,
		func(s *audit.SinkStatus) float64 { return float64(s.SpoolBytes) }),
}

var (
	bundleLastSuccess = prometheus.NewDesc("verdict_bundle_last_success_timestamp_seconds",
		"Unix time of the bundle's last successful activation, 0 until the first.", []string{"bundle"}, nil)
	bundleFailures = prometheus.NewDesc("verdict_bundle_failures_total",
		"Bundle downloads, verifications or activations that failed.", []string{"bundle"}, nil)
	bundleInfo = prometheus.NewDesc("verdict_bundle_info",
		"The bundle's active revision, always 1.", []string{"bundle", "revision"}, nil)

	entrypointUndefined = prometheus.NewDesc("verdict_entrypoint_undefined",
		"1 when nothing in the active policy defines the configured entrypoint (every decision there is denied), else 0.", []string{"entrypoint"}, nil)

	auditQueueDepth = prometheus.NewDesc("verdict_audit_queue_depth",
		"Audit events waiting for the audit worker.", nil, nil)
	auditQueueCapacity = prometheus.NewDesc("verdict_audit_queue_capacity",
		"Most audit events the queue holds.", nil, nil)
	auditEventsDropped = prometheus.NewDesc("verdict_audit_events_dropped_total",
		"Audit events dropped before reaching a sink, by reason (queue_full, policy_drop).", []string{"reason"}, nil)
	controlPending = prometheus.NewDesc("verdict_approvals_pending",
		"Approvals waiting for a person.", nil, nil)
	controlGrants = prometheus.NewDesc("verdict_grants_active",
		"Just-in-time grants in force.", nil, nil)
	controlQuarantines = prometheus.NewDesc("verdict_quarantines_active",
		"Quarantines in force (the kill switch).", nil, nil)
	controlRecords = prometheus.NewDesc("verdict_control_records",
		"Approvals, grants and quarantines held, final ones until their retention ends.", nil, nil)
	webhookDeliveries = prometheus.NewDesc("verdict_approval_webhook_deliveries_total",
		"Approval webhook notifications by result: delivered, failed (gave up) or dropped (queue full).", []string{"result"}, nil)
	auditMaskErrors = prometheus.NewDesc("verdict_audit_mask_errors_total",
		"Errors met while masking audit events.", nil, nil)
)

// collector reports Sources as constant metrics, read afresh at each scrape.
type collector struct {
	src Sources
}

var _ prometheus.Collector = (*collector)(nil)

// Describe sends every metric the collector may report, whether or not its
// source is set, so the registry checks what Collect sends.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for i := range cacheStats {
		ch <- cacheStats[i].desc
	}
	ch <- bundleLastSuccess
	ch <- bundleFailures
	ch <- bundleInfo
	ch <- entrypointUndefined
	ch <- auditQueueDepth
	ch <- auditQueueCapacity
	ch <- auditEventsDropped
	ch <- auditMaskErrors
	ch <- controlPending
	ch <- sessionsActive
	ch <- sessionsRemoved
	ch <- controlGrants
	ch <- controlQuarantines
	ch <- controlRecords
	ch <- webhookDeliveries
	for i := range sinkStats {
		ch <- sinkStats[i].desc
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	if c.src.Cache != nil {
		if s, ok := c.src.Cache(); ok {
			for i := range cacheStats {
				st := &cacheStats[i]
				ch <- prometheus.MustNewConstMetric(st.desc, st.typ, st.value(&s))
			}
		}
	}
	if c.src.Bundles != nil {
		for _, b := range c.src.Bundles() {
			var last float64
			if !b.LastSuccess.IsZero() {
				last = float64(b.LastSuccess.UnixNano()) / 1e9
			}
			ch <- prometheus.MustNewConstMetric(bundleLastSuccess, prometheus.GaugeValue, last, b.Name)
			ch <- prometheus.MustNewConstMetric(bundleFailures, prometheus.CounterValue, float64(b.Failures), b.Name)
			ch <- prometheus.MustNewConstMetric(bundleInfo, prometheus.GaugeValue, 1, b.Name, b.Revision)
		}
	}
	if c.src.Entrypoints != nil {
		for ep, defined := range c.src.Entrypoints() {
			ch <- prometheus.MustNewConstMetric(entrypointUndefined, prometheus.GaugeValue, boolValue(!defined), ep)
		}
	}
	if c.src.Controls != nil {
		if cs, ok := c.src.Controls(); ok {
			ch <- prometheus.MustNewConstMetric(controlPending, prometheus.GaugeValue, float64(cs.PendingApprovals))
			ch <- prometheus.MustNewConstMetric(controlGrants, prometheus.GaugeValue, float64(cs.ActiveGrants))
			ch <- prometheus.MustNewConstMetric(controlQuarantines, prometheus.GaugeValue, float64(cs.ActiveQuarantines))
			ch <- prometheus.MustNewConstMetric(controlRecords, prometheus.GaugeValue, float64(cs.Records))
			ch <- prometheus.MustNewConstMetric(webhookDeliveries, prometheus.CounterValue, float64(cs.WebhookDelivered), "delivered")
			ch <- prometheus.MustNewConstMetric(webhookDeliveries, prometheus.CounterValue, float64(cs.WebhookFailed), "failed")
			ch <- prometheus.MustNewConstMetric(webhookDeliveries, prometheus.CounterValue, float64(cs.WebhookDropped), "dropped")
		}
	}
	if c.src.Sessions != nil {
		if ss, ok := c.src.Sessions(); ok {
			collectSessions(ch, ss)
		}
	}
	if c.src.Audit != nil {
		a := c.src.Audit()
		ch <- prometheus.MustNewConstMetric(auditQueueDepth, prometheus.GaugeValue, float64(a.QueueDepth))
		ch <- prometheus.MustNewConstMetric(auditQueueCapacity, prometheus.GaugeValue, float64(a.QueueCapacity))
		ch <- prometheus.MustNewConstMetric(auditEventsDropped, prometheus.CounterValue, float64(a.QueueFull), "queue_full")
		ch <- prometheus.MustNewConstMetric(auditEventsDropped, prometheus.CounterValue, float64(a.PolicyDropped), "policy_drop")
		ch <- prometheus.MustNewConstMetric(auditMaskErrors, prometheus.CounterValue, float64(a.MaskErrors))
		for i := range a.Sinks {
			s := &a.Sinks[i]
			for j := range sinkStats {
				st := &sinkStats[j]
				ch <- prometheus.MustNewConstMetric(st.desc, st.typ, st.value(s), s.Name)
			}
		}
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
