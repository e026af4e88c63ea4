// Package metrics owns the service's Prometheus metrics: a registry of its
// own (never the global default), the counters and histograms updated on the
// request path, a collector that reads the decision cache, the bundle sources
// and the audit pipeline when scraped, and the HTTP handler that serves them.
//
// It reads other packages' status types (cache.Stats, status.Source,
// audit.SinkStatus) and nothing else of theirs: it must not import the engine,
// OPA or any adapter (Envoy, MCP, gRPC). Callers hand it plain strings and
// durations.
//
// # Metrics
//
// Updated on the request path (Metrics.Observe*):
//
//	verdict_decisions_total                 counter    entrypoint, result, cached
//	    Decisions made. result is one of allow, deny, require_approval,
//	    error; cached is "true" when the decision came from the cache.
//	verdict_decision_duration_seconds       histogram  entrypoint
//	    Time to answer a decision, cache lookup and evaluation included.
//	verdict_decision_eval_duration_seconds  histogram  entrypoint
//	    Time spent evaluating the policy, for decisions not served from the
//	    cache.
//	verdict_bundle_activations_total        counter    bundle, result
//	    Bundle activations; result is success or failure.
//	verdict_rate_limited_total              counter    entrypoint
//	    Requests refused by the rate limiter.
//	verdict_approvals_required_total        counter    entrypoint
//	    Decisions that asked for a human approval.
//	verdict_control_events_total            counter    event
//	    Lifecycle steps of approvals, grants and quarantines.
//	verdict_approvals_pending               gauge
//	verdict_grants_active                   gauge
//	verdict_quarantines_active              gauge
//	verdict_control_records                 gauge
//	    What the runtime controls hold (when approvals are on).
//	verdict_approval_webhook_deliveries_total counter  result
//	    Approval webhook notifications: delivered, failed, dropped.
//	verdict_containment_triggered_total     counter    rule, signal
//	    Quarantines set by automated containment (data.mcp.containment).
//	verdict_sessions                        gauge
//	verdict_sessions_removed_total          counter    reason
//	    MCP session state for flow rules: held, and removed (expired,
//	    folded, evicted).
//	verdict_gateway_messages_total          counter    direction, method, action
//	    MCP messages pdp gateway handled: direction client or server,
//	    method one of MCP's (other for the rest), action forwarded, denied,
//	    filtered, redacted, blocked, dropped or failed.
//	verdict_redis_duration_seconds          histogram  op, result
//	    Latency of calls to Redis (state.redis): op is ratelimit, result
//	    ok or error (an error or a timeout, state.redis.timeout).
//
// The histograms have buckets doubling from 25µs to 819.2ms (16 buckets);
// slower ones land in +Inf only.
//
// Read when scraped, from the decision cache (absent while the cache is off):
//
//	verdict_cache_hits_total                counter
//	verdict_cache_misses_total              counter
//	verdict_cache_inserts_total             counter
//	verdict_cache_evictions_total           counter    entries removed to stay within the limits
//	verdict_cache_expirations_total         counter    entries removed when their TTL ended
//	verdict_cache_invalidations_total       counter    entries removed because their bundle was replaced or their subject flushed
//	verdict_cache_entries                   gauge
//	verdict_cache_bytes                     gauge      estimated memory held by the entries
//	verdict_cache_max_entries               gauge
//	verdict_cache_max_bytes                 gauge
//
// From the bundle sources, one series per source:
//
//	verdict_bundle_last_success_timestamp_seconds  gauge    bundle
//	    Unix time of the last successful activation; 0 until the first.
//	verdict_bundle_failures_total                  counter  bundle
//	    Downloads, verifications or activations that failed.
//	verdict_bundle_info                            gauge    bundle, revision
//	    Always 1; revision is the active revision ("" before the first).
//
// From the active policy, one series per configured entrypoint (absent
// before the first activation):
//
//	verdict_entrypoint_undefined                   gauge    entrypoint
//	    1 when no rule and no data of the active bundles defines the
//	    entrypoint, so every decision there is denied; else 0.
//
// From the audit pipeline:
//
//	verdict_audit_queue_depth                 gauge
//	    Events waiting between the request path and the audit worker.
//	verdict_audit_queue_capacity              gauge
//	verdict_audit_events_dropped_total        counter  reason
//	    Events dropped before reaching a sink: reason is queue_full (the
//	    queue stayed full) or policy_drop (data.system.log.drop said so).
//	verdict_audit_mask_errors_total           counter
//	    Errors met while masking events.
//	verdict_audit_records_written_total       counter  sink
//	    Records stored (file, console) or delivered (http).
//	verdict_audit_records_spooled_total       counter  sink
//	    Records written to the sink's on-disk spool.
//	verdict_audit_records_dropped_total       counter  sink
//	    Records the sink lost (a full disk, a full spool).
//	verdict_audit_sink_healthy                gauge    sink
//	    1 while the sink's last write succeeded, else 0.
//	verdict_audit_sink_queue_depth            gauge    sink
//	    Records accepted by the sink but not yet stored or delivered.
//	verdict_audit_spool_bytes                 gauge    sink
//	    Size of the sink's on-disk spool.
//
// The registry also holds the Go runtime (go_*) and process (process_*)
// collectors, and promhttp_metric_handler_errors_total{cause}, which counts
// scrapes that met an error (logged, never sent to the scraper).
package metrics
