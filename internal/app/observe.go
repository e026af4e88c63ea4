package app

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/verdictpdp/verdict/internal/session"

	"github.com/google/uuid"

	"github.com/verdictpdp/verdict/internal/audit"
	"github.com/verdictpdp/verdict/internal/audit/filelog"
	"github.com/verdictpdp/verdict/internal/audit/httpsink"
	"github.com/verdictpdp/verdict/internal/cache"
	"github.com/verdictpdp/verdict/internal/config"
	"github.com/verdictpdp/verdict/internal/engine"
	"github.com/verdictpdp/verdict/internal/metrics"
	"github.com/verdictpdp/verdict/internal/status"
	"github.com/verdictpdp/verdict/internal/tracing"
)

// observability is the decision log, metrics and tracing of one run.
type observability struct {
	audit   *audit.Recorder
	metrics *metrics.Metrics
	tracer  *tracing.Tracer
	// controls are reported once they are open.
	controls atomic.Pointer[runtimeControls]
	// sessions are reported once they are open.
	sessions atomic.Pointer[session.Store]
}

// newObservability opens the configured audit sinks and starts the
// recorder, registers the metrics and starts tracing. close undoes it.
func newObservability(ctx context.Context, cfg config.Config, eng *engine.Engine, decisions *cache.Cache, reg *status.Registry, logger *slog.Logger) (*observability, error) {
	o := &observability{}
	var rec *audit.Recorder
	o.metrics = metrics.New(metrics.Sources{
		Cache: func() (cache.Stats, bool) {
			if decisions == nil {
				return cache.Stats{}, false
			}
			return decisions.Stats(), true
		},
		Bundles: reg.Sources,
		Audit: func() metrics.AuditStats {
			st := rec.Stats()
			return metrics.AuditStats{
				QueueDepth: st.QueueDepth, QueueCapacity: st.QueueCapacity, Sinks: rec.Sinks(),
				QueueFull: st.QueueFull, PolicyDropped: st.PolicyDropped, MaskErrors: st.MaskErrors,
			}
		},
		Entrypoints: func() map[string]bool {
			snap := eng.Snapshot()
			if snap == nil {
				return nil
			}
			out := map[string]bool{}
			for _, ep := range eng.Entrypoints() {
				out[ep] = !slices.Contains(snap.Undefined, ep)
			}
			return out
		},
		Controls: func() (metrics.ControlStats, bool) {
			rc := o.controls.Load()
			if rc == nil {
				return metrics.ControlStats{}, false
			}
			return rc.stats(), true
		},
		Sessions: func() (metrics.SessionStats, bool) {
			st := o.sessions.Load()
			if st == nil {
				return metrics.SessionStats{}, false
			}
			s := st.Stats()
			return metrics.SessionStats{Sessions: int64(s.Sessions), Evicted: s.Evicted, Folded: s.Folded, Expired: s.Expired}, true
		},
		Log: logger,
	})
	reg.Observe(o.metrics.ObserveBundleActivation)

	sinks, err := auditSinks(cfg, logger)
	if err != nil {
		return nil, err
	}
	labels := map[string]string{"id": uuid.NewString(), "version": Version}
	for k, v := range cfg.Audit.Labels {
		labels[k] = v
	}
	m := o.metrics
	rec, err = audit.New(audit.Options{
		Sinks:     sinks,
		QueueSize: cfg.Audit.QueueSize,
		MaxBlock:  time.Duration(cfg.Audit.MaxBlock),
		Labels:    labels,
		Retention: audit.Retention{DefaultDays: cfg.Audit.RetentionDays, ByClassification: cfg.Audit.RetentionByClassification},
		Snapshot:  eng.Snapshot,
		Observe: func(e *audit.Entry) {
			if e.Kind == audit.KindControl {
				return // a lifecycle step, not a decision (verdict_control_events_total counts it)
			}
			result := e.Decision
			if e.Err != nil {
				result = metrics.ResultError
			}
			m.ObserveDecision(e.Path, result, e.Cached, e.EvalTook, e.Took)
			if e.Decision == audit.RequireApproval {
				m.ObserveApprovalRequired(e.Path)
			}
		},
		Logger: logger,
	})
	if err != nil {
		closeSinks(sinks)
		return nil, err
	}
	o.audit = rec

	ratio := 1.0
	if r := cfg.Tracing.SampleRatio; r != nil {
		ratio = *r
	}
	o.tracer, err = tracing.New(ctx, tracing.Options{Endpoint: cfg.Tracing.Endpoint, Insecure: cfg.Tracing.Insecure, SampleRatio: ratio, Version: Version})
	if err != nil {
		_ = rec.Close(ctx)
		return nil, err
	}
	return o, nil
}

// close flushes the decision log and the spans, within ctx.
func (o *observability) close(ctx context.Context) error {
	err := o.audit.Close(ctx)
	if terr := o.tracer.Shutdown(ctx); terr != nil && err == nil {
		err = terr
	}
	return err
}

func closeSinks(sinks []audit.Sink) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for _, s := range sinks {
		_ = s.Close(ctx)
	}
}

// auditSinks opens the configured sinks: file, HTTP, console.
func auditSinks(cfg config.Config, logger *slog.Logger) ([]audit.Sink, error) {
	var sinks []audit.Sink
	a := cfg.Audit
	if a.File.Path != "" {
		var key ed25519.PrivateKey
		if a.File.SigningKeyFile != "" {
			k, err := filelog.LoadPrivateKey(a.File.SigningKeyFile)
			if err != nil {
				return nil, fmt.Errorf("audit.file.signing_key_file: %w", err)
			}
			key = k
		}
		l, err := filelog.Open(filelog.Options{
			Path:               a.File.Path,
			MaxBytes:           a.File.MaxBytes,
			MaxAge:             time.Duration(a.File.MaxAge),
			CheckpointInterval: time.Duration(a.File.CheckpointInterval),
			SigningKey:         key,
			Sync:               a.File.Sync,
			TrustRecords:       true, // audit.Recorder writes every record
			Logger:             logger,
		})
		if err != nil {
			return nil, fmt.Errorf("audit.file: %w", err)
		}
		sinks = append(sinks, l)
	}
	if a.HTTP.URL != "" {
		headers := map[string]string{}
		if a.HTTP.BearerTokenFile != "" {
			tok, err := os.ReadFile(a.HTTP.BearerTokenFile)
			if err != nil {
				closeSinks(sinks)
				return nil, fmt.Errorf("audit.http.bearer_token_file: %w", err)
			}
			headers["Authorization"] = "Bearer " + strings.TrimSpace(string(tok))
		}
		s, err := httpsink.New(httpsink.Options{
			URL:           a.HTTP.URL,
			SpoolDir:      spoolDir(cfg),
			SpoolMaxBytes: a.HTTP.SpoolMaxBytes,
			MaxBatchBytes: a.HTTP.MaxBatchBytes,
			Headers:       headers,
			Logger:        logger,
		})
		if err != nil {
			closeSinks(sinks)
			return nil, fmt.Errorf("audit.http: %w", err)
		}
		sinks = append(sinks, s)
	}
	if a.Console {
		sinks = append(sinks, audit.NewConsole(os.Stdout, "stdout"))
	}
	return sinks, nil
}

// spoolDir is the HTTP sink's spool: configured, else next to the file
// sink's log, else a directory per collector URL under the temporary
// directory.
func spoolDir(cfg config.Config) string {
	a := cfg.Audit
	switch {
	case a.HTTP.SpoolDir != "":
		return a.HTTP.SpoolDir
	case a.File.Path != "":
		return a.File.Path + ".spool"
	default:
		sum := sha256.Sum256([]byte(a.HTTP.URL))
		return filepath.Join(os.TempDir(), "verdict-audit-spool-"+hex.EncodeToString(sum[:6]))
	}
}
