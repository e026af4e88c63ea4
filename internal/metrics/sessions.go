package metrics

import "github.com/prometheus/client_golang/prometheus"

// SessionStats are the session state's gauge and counters.
type SessionStats struct {
	Sessions                 int64
	Evicted, Folded, Expired uint64
}

var (
	sessionsActive = prometheus.NewDesc("verdict_sessions",
		"MCP sessions whose state (reads, categories, tools, findings) is kept for flow rules.", nil, nil)
	sessionsRemoved = prometheus.NewDesc("verdict_sessions_removed_total",
		"Session records removed, by reason: expired (idle past sessions.ttl), folded (beyond max_per_subject, kept in the subject's overflow record), evicted (the table was full: forgotten early).", []string{"reason"}, nil)
)

func collectSessions(ch chan<- prometheus.Metric, s SessionStats) {
	ch <- prometheus.MustNewConstMetric(sessionsActive, prometheus.GaugeValue, float64(s.Sessions))
	ch <- prometheus.MustNewConstMetric(sessionsRemoved, prometheus.CounterValue, float64(s.Expired), "expired")
	ch <- prometheus.MustNewConstMetric(sessionsRemoved, prometheus.CounterValue, float64(s.Folded), "folded")
	ch <- prometheus.MustNewConstMetric(sessionsRemoved, prometheus.CounterValue, float64(s.Evicted), "evicted")
}
