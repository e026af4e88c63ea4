// Package admin serves the operator's HTTP endpoints: liveness (/healthz),
// readiness (/readyz), the bundle, cache, audit and runtime controls'
// status (/v1/status),
// Prometheus metrics (/metrics), and the
// flush of one subject's cached decisions (/v1/cache/flush). Flushing is the
// only change it makes to the service's state.
package admin

import (
	"encoding/json"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/verdictpdp/verdict/internal/audit"
	"github.com/verdictpdp/verdict/internal/cache"
	"github.com/verdictpdp/verdict/internal/control"
	"github.com/verdictpdp/verdict/internal/engine"
	"github.com/verdictpdp/verdict/internal/identity"
	"github.com/verdictpdp/verdict/internal/ratelimit"
	"github.com/verdictpdp/verdict/internal/session"
	"github.com/verdictpdp/verdict/internal/status"
)

// Deps are what the endpoints report on.
type Deps struct {
	Engine  *engine.Engine
	Sources *status.Registry
	// Cache is the decision cache; nil when it is off.
	Cache *cache.Cache
	// Audit is the decision log; its sinks are reported.
	Audit *audit.Recorder
	// Metrics serves /metrics when set.
	Metrics http.Handler
	Version string
	// ShuttingDown, when set, makes /readyz fail so load balancers drain.
	ShuttingDown *atomic.Bool
	// RateLimits is the in-memory rate limit store; nil when limits are
	// off or kept in Redis (RateLimitsShared).
	RateLimits       *ratelimit.Memory
	RateLimitsShared bool
	// Redis reports on state.redis; nil when it is not configured.
	Redis func() *RedisStatus
	// Verifier verifies bearer tokens; nil when identity.jwt is off.
	Verifier *identity.Verifier
	// Controls are the approvals, grants and quarantines; nil when off.
	Controls *control.Controls
	// Sessions is the in-memory session state flow rules read; nil when
	// off or kept in Redis.
	Sessions *session.Store
	// SessionsShared is set when the session state is kept in Redis,
	// shared by the replicas: it has no local count.
	SessionsShared bool
}

// Handler returns the admin mux.
func Handler(d Deps) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		ready, why := isReady(d)
		code := http.StatusOK
		if !ready {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, map[string]any{"ready": ready, "reason": why})
	})
	if d.Metrics != nil {
		mux.Handle("GET /metrics", d.Metrics)
	}
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, statusOf(d))
	})
	mux.HandleFunc("POST /v1/cache/flush", func(w http.ResponseWriter, r *http.Request) {
		subject := r.URL.Query().Get("subject")
		if subject == "" {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "the subject query parameter is required"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]int{"flushed": d.Cache.InvalidateSubject(subject)})
	})
	return mux
}

func isReady(d Deps) (bool, string) {
	if d.ShuttingDown != nil && d.ShuttingDown.Load() {
		return false, "shutting down"
	}
	if d.Engine.Snapshot() == nil {
		return false, "no bundle activated yet"
	}
	return true, ""
}

// Status is the /v1/status document.
type Status struct {
	Version string          `json:"version"`
	Ready   bool            `json:"ready"`
	Active  *ActiveBundle   `json:"active"`
	Sources []status.Source `json:"sources"`
	Cache   CacheStatus     `json:"cache"`
	Audit   AuditStatus     `json:"audit"`
	// RateLimit and Identity are absent when the feature is off.
	RateLimit *RateLimitStatus `json:"rate_limit,omitempty"`
	Identity  *IdentityStatus  `json:"identity,omitempty"`
	// Controls counts approvals, grants and quarantines; absent when off.
	Controls *control.Stats `json:"controls,omitempty"`
	// Sessions says where the session state is kept and, in memory,
	// counts it; absent when off.
	Sessions *SessionStatus `json:"sessions,omitempty"`
	// State reports on shared state (state.redis); absent when none is
	// configured.
	State *StateStatus `json:"state,omitempty"`
}

// SessionStatus is where the session state is kept ("memory" or "redis")
// and, in memory, its counts. In Redis the state is the replicas'
// together: this replica has nothing of its own to count.
type SessionStatus struct {
	Store string `json:"store"`
	*session.Stats
}

// RateLimitStatus is where rate limits are kept ("memory" or "redis") and,
// in memory, the store's size and churn.
type RateLimitStatus struct {
	Store   string `json:"store"`
	Keys    int    `json:"keys,omitempty"`
	Evicted uint64 `json:"evicted,omitempty"`
	Expired uint64 `json:"expired,omitempty"`
}

// StateStatus is the shared state's health.
type StateStatus struct {
	Redis *RedisStatus `json:"redis,omitempty"`
}

// RedisStatus is whether Redis answered the last call, since when it has
// not, and how many calls were made and failed. Addr is host:port, never
// the URL (which may hold a password).
type RedisStatus struct {
	Addr      string     `json:"addr"`
	Reachable bool       `json:"reachable"`
	DownSince *time.Time `json:"down_since,omitempty"`
	Calls     int64      `json:"calls"`
	Failures  int64      `json:"failures"`
}

// IdentityStatus is the bearer token verifier's counters.
type IdentityStatus struct {
	Verified        uint64            `json:"verified"`
	Refused         map[string]uint64 `json:"refused"`
	CacheHits       uint64            `json:"cache_hits"`
	KeysLoaded      int               `json:"keys_loaded"`
	RefreshesOK     uint64            `json:"jwks_refreshes_ok"`
	RefreshesFailed uint64            `json:"jwks_refreshes_failed"`
	LastRefresh     *time.Time        `json:"jwks_last_refresh,omitempty"`
}

// AuditStatus is the decision log's queue and sinks.
type AuditStatus struct {
	Enabled bool `json:"enabled"`
	audit.Stats
	Sinks []audit.SinkStatus `json:"sinks"`
}

// CacheStatus is the decision cache's counters and, per entrypoint of the
// active bundle, what its decisions are keyed on.
type CacheStatus struct {
	cache.Stats
	Entrypoints map[string]EntrypointCache `json:"entrypoints,omitempty"`
}

// EntrypointCache says whether decisions at an entrypoint are cached, and
// which parts of the input their cache key covers.
type EntrypointCache struct {
	Cacheable bool `json:"cacheable"`
	// Reads are the input paths the decision can depend on.
	Reads []string `json:"reads"`
	// WholeInput says why the key covers the whole input, when it does.
	WholeInput       string   `json:"whole_input,omitempty"`
	Nondeterministic []string `json:"nondeterministic,omitempty"`
}

// ActiveBundle describes the active snapshot.
type ActiveBundle struct {
	Revision    string                       `json:"revision"`
	Generation  uint64                       `json:"generation"`
	ActivatedAt time.Time                    `json:"activated_at"`
	Bundles     map[string]engine.BundleInfo `json:"bundles"`
	Entrypoints []string                     `json:"entrypoints"`
	// UndefinedEntrypoints are configured entrypoints that nothing in the
	// active bundles defines: every decision there is denied (a typo in
	// --extauthz-path, or a bundle that left out the policy).
	UndefinedEntrypoints []string `json:"undefined_entrypoints,omitempty"`
	// Evaluators say, per entrypoint, whether decisions run natively (the
	// MCP library compiled to Go) or in Rego, and why not natively.
	Evaluators map[string]engine.Evaluator `json:"evaluators"`
}

func statusOf(d Deps) Status {
	ready, _ := isReady(d)
	st := Status{Version: d.Version, Ready: ready, Sources: d.Sources.Sources()}
	if snap := d.Engine.Snapshot(); snap != nil {
		st.Active = &ActiveBundle{
			Revision:    snap.Revision,
			Generation:  snap.Generation,
			ActivatedAt: snap.ActivatedAt,
			Bundles:     snap.Bundles,
			Entrypoints: d.Engine.Entrypoints(),

			UndefinedEntrypoints: snap.Undefined,
			Evaluators:           snap.Evaluators(),
		}
	}
	st.Cache.Stats = d.Cache.Stats()
	switch {
	case d.RateLimits != nil:
		rs := d.RateLimits.Stats()
		st.RateLimit = &RateLimitStatus{Store: "memory", Keys: rs.Keys, Evicted: rs.Evicted, Expired: rs.Expired}
	case d.RateLimitsShared:
		st.RateLimit = &RateLimitStatus{Store: "redis"}
	}
	if d.Redis != nil {
		if rs := d.Redis(); rs != nil {
			st.State = &StateStatus{Redis: rs}
		}
	}
	if d.Verifier != nil {
		vs := d.Verifier.Stats()
		st.Identity = &IdentityStatus{
			Verified: vs.Verified, Refused: vs.Refused, CacheHits: vs.CacheHits, KeysLoaded: vs.KeysLoaded,
			RefreshesOK: vs.RefreshesOK, RefreshesFailed: vs.RefreshesFailed,
		}
		if !vs.LastRefresh.IsZero() {
			t := vs.LastRefresh
			st.Identity.LastRefresh = &t
		}
	}
	if d.Controls != nil {
		cs := d.Controls.Stats()
		st.Controls = &cs
	}
	switch {
	case d.SessionsShared:
		st.Sessions = &SessionStatus{Store: "redis"}
	case d.Sessions != nil:
		ss := d.Sessions.Stats()
		st.Sessions = &SessionStatus{Store: "memory", Stats: &ss}
	}
	sinks := d.Audit.Sinks()
	st.Audit = AuditStatus{Enabled: len(sinks) > 0, Stats: d.Audit.Stats(), Sinks: sinks}
	if st.Audit.Sinks == nil {
		st.Audit.Sinks = []audit.SinkStatus{}
	}
	if snap := d.Engine.Snapshot(); snap != nil {
		st.Cache.Entrypoints = map[string]EntrypointCache{}
		for _, ep := range d.Engine.Entrypoints() {
			p := snap.Projection(ep)
			if p == nil {
				continue
			}
			st.Cache.Entrypoints[ep] = EntrypointCache{
				Cacheable:        p.Cacheable(),
				Reads:            p.Strings(),
				WholeInput:       p.Reason,
				Nondeterministic: p.Nondeterministic,
			}
		}
	}
	return st
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client went away; nothing to do
}
