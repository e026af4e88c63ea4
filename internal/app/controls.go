package app

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/verdictpdp/verdict/internal/audit"
	"github.com/verdictpdp/verdict/internal/config"
	"github.com/verdictpdp/verdict/internal/control"
	"github.com/verdictpdp/verdict/internal/control/boltstore"
	controlredis "github.com/verdictpdp/verdict/internal/control/redisstore"
	"github.com/verdictpdp/verdict/internal/control/webhook"
	"github.com/verdictpdp/verdict/internal/engine"
	"github.com/verdictpdp/verdict/internal/metrics"
	"github.com/verdictpdp/verdict/internal/pipeline"
)

// controlPath is the path lifecycle events are logged under.
const controlPath = "verdict/control"

// approvalsPath is approvals.path in canonical form ("" when off).
func approvalsPath(cfg config.Config) string {
	if !cfg.Approvals.On() {
		return ""
	}
	p := cfg.Approvals.Path
	if p == "" {
		p = config.DefaultApprovalsPath
	}
	path, err := engine.NormalizeEntrypoint(p)
	if err != nil {
		return p // engine.New refuses it, naming it
	}
	return path
}

// runtimeControls are the approvals, grants and quarantines with what
// feeds them; close stops the webhook and closes the store.
type runtimeControls struct {
	*control.Controls
	// baseURL is the approvals page's URL, known once the admin listener
	// is bound.
	baseURL atomic.Pointer[string]
	hook    *webhook.Notifier
	logger  *slog.Logger
}

// stats are the controls' gauges and the webhook's counters.
func (rc *runtimeControls) stats() metrics.ControlStats {
	st := rc.Stats()
	out := metrics.ControlStats{
		PendingApprovals: st.Pending, ActiveGrants: st.ActiveGrants,
		ActiveQuarantines: st.ActiveQuarantines, Records: st.Records,
	}
	if rc.hook != nil {
		h := rc.hook.Stats()
		out.WebhookDelivered, out.WebhookFailed, out.WebhookDropped = h.Delivered, h.Failed, h.Dropped
	}
	return out
}

func (rc *runtimeControls) close(ctx context.Context) {
	if rc == nil {
		return
	}
	if rc.hook != nil {
		_ = rc.hook.Close(ctx)
	}
	_ = rc.Close()
}

// setAddr derives the approvals page's URL from the admin listener's
// address unless approvals.url names it.
func (rc *runtimeControls) setAddr(cfg config.Config, addr string) {
	if rc == nil {
		return
	}
	u := strings.TrimSuffix(cfg.Approvals.URL, "/")
	if u == "" {
		u = "http://" + addr + "/approvals"
		if host, _, err := net.SplitHostPort(addr); err == nil {
			if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
				rc.logger.Warn("approval links name an unspecified address; set approvals.url to the address approvers reach", "url", u)
			}
		}
	}
	rc.baseURL.Store(&u)
}

// newControls opens the runtime controls, or returns nil when they are
// off.
func newControls(ctx context.Context, cfg config.Config, eng *engine.Engine, obs *observability, logger *slog.Logger) (*runtimeControls, error) {
	if !cfg.Approvals.On() {
		return nil, nil
	}
	a := cfg.Approvals
	var store control.Store
	switch r := cfg.State.Redis; {
	case r.Enabled():
		s, err := newControlsRedis(ctx, r, obs.metrics, logger)
		if err != nil {
			return nil, err
		}
		store = s
	case a.Dir != "":
		s, err := boltstore.Open(a.Dir)
		if err != nil {
			return nil, err
		}
		store = s
	default:
		logger.Warn("approvals, grants and quarantines are kept in memory only: a restart loses them; set approvals.dir to keep them")
		store = control.NewMemoryStore()
	}
	rc := &runtimeControls{logger: logger}
	if a.Webhook.URL != "" {
		secret, err := os.ReadFile(a.Webhook.SecretFile)
		if err != nil {
			_ = store.Close()
			return nil, fmt.Errorf("approvals.webhook.secret_file: %w", err)
		}
		rc.hook, err = webhook.New(webhook.Config{
			URL: a.Webhook.URL, Secret: []byte(strings.TrimSpace(string(secret))),
			Timeout: time.Duration(a.Webhook.Timeout), MaxAttempts: a.Webhook.MaxAttempts, Logger: logger,
		})
		if err != nil {
			_ = store.Close()
			return nil, fmt.Errorf("approvals.webhook: %w", err)
		}
	}
	opts := control.Options{
		TTL: time.Duration(a.TTL), MaxTTL: time.Duration(a.MaxTTL), Retention: time.Duration(a.Retention),
		MaxPendingPerSubject: a.MaxPendingPerSubject, MaxRecords: a.MaxRecords,
		MaxGrantDuration: time.Duration(a.MaxGrantDuration),
		URL: func(id string) string {
			if u := rc.baseURL.Load(); u != nil {
				return *u + "/" + id
			}
			return ""
		},
		Authorizer: policyAuthorizer{eng: eng, path: approvalsPath(cfg)},
		Events: func(ev control.Event) {
			obs.metrics.ObserveControlEvent(string(ev.Type))
			recordControl(obs.audit, ev)
		},
		Logger:   logger,
		FailOpen: cfg.State.Redis.Enabled() && cfg.State.Redis.FailsOpen(config.FailOpenControls),
	}
	if rc.hook != nil {
		opts.Requested = func(ap *control.Approval) { notifyRequested(rc, ap) }
	}
	c, err := control.New(ctx, store, opts)
	if err != nil {
		_ = store.Close()
		return nil, err
	}
	rc.Controls = c
	obs.controls.Store(rc)
	return rc, nil
}

// newControlsRedis is the controls' store on state.redis, with a client of
// its own (its subscription holds a connection). An unreachable Redis does
// not stop the start: the controls refuse what they cannot vouch for
// (state.unavailable) until it answers, and load it then. Logs name the
// address, never the URL or the password.
func newControlsRedis(ctx context.Context, r config.Redis, m *metrics.Metrics, logger *slog.Logger) (*controlredis.Store, error) {
	client, err := newRedisClient(r)
	if err != nil {
		return nil, err
	}
	redisLogOnce.Do(func() { redis.SetLogger(redisLogger{logger}) })
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := client.Ping(pctx).Err(); err != nil {
		logger.Warn("redis unreachable at start: approvals, grants and quarantines refuse requests until it answers",
			"addr", client.Options().Addr, "fail_open", r.FailsOpen(config.FailOpenControls), "err", err)
	}
	return controlredis.New(client, controlredis.Options{
		Prefix: r.KeyPrefix, Timeout: time.Duration(r.Timeout),
		Observe: func(d time.Duration, err error) { m.ObserveRedis("controls", d, err) }, // nil-safe
	}), nil
}

// notifyRequested sends the webhook of a new pending approval: what it is
// for, with the arguments masked as in the audit log, and its page.
func notifyRequested(rc *runtimeControls, a *control.Approval) {
	body, err := json.Marshal(map[string]any{
		"event":    string(control.EventRequested),
		"approval": control.View{Approval: *a, URL: rc.URL(a.ID)},
	})
	if err != nil {
		return
	}
	rc.hook.Notify(string(control.EventRequested), a.ID, body)
}

// recordControl writes a lifecycle step to the audit log, linked to the
// decision the approval was asked by.
func recordControl(rec *audit.Recorder, ev control.Event) {
	if !rec.Enabled() {
		return
	}
	e := &audit.Entry{
		DecisionID: pipeline.NewDecisionID(),
		Time:       ev.Time,
		Kind:       audit.KindControl,
		Path:       controlPath,
		Decision:   audit.Control,
		Subject:    ev.Subject,
		Control: &audit.ControlEvent{
			Event: string(ev.Type), ID: ev.ID, Of: ev.DecisionID, ConsumedBy: ev.Consumer,
			By: ev.By, Note: ev.Note, Code: ev.Code, Detail: ev.Detail,
		},
	}
	if b := ev.Binding; b != nil {
		e.Request = &audit.Request{Method: b.Method, Server: b.Server}
		switch b.Method {
		case "resources/read":
			e.Request.Resource = b.Target
		case "prompts/get":
			e.Request.Prompt = b.Target
		default:
			e.Request.Tool = b.Target
		}
	}
	rec.Record(e)
}

// policyAuthorizer asks the approvals policy who may act.
type policyAuthorizer struct {
	eng  *engine.Engine
	path string
}

func (p policyAuthorizer) Authorize(ctx context.Context, input map[string]any) (bool, []control.Reason, error) {
	if p.path == "" {
		return false, nil, fmt.Errorf("no approvals entrypoint")
	}
	dec, err := p.eng.Decide(ctx, p.path, pipeline.MapInput(input), func(engine.Result) (any, error) { return nil, nil })
	if err != nil {
		return false, nil, err
	}
	return parseApprovalsDecision(dec.Value)
}

// parseApprovalsDecision reads {allow, reasons}; a bare boolean is an
// allow without reasons. Anything else is an error: refused.
func parseApprovalsDecision(v any) (bool, []control.Reason, error) {
	switch d := v.(type) {
	case bool:
		return d, nil, nil
	case map[string]any:
		allow, ok := d["allow"].(bool)
		if !ok {
			return false, nil, fmt.Errorf("approvals decision: \"allow\" must be a boolean")
		}
		var reasons []control.Reason
		if rs, ok := d["reasons"].([]any); ok {
			for _, r := range rs {
				m, _ := r.(map[string]any)
				code, _ := m["code"].(string)
				msg, _ := m["message"].(string)
				if code != "" {
					reasons = append(reasons, control.Reason{Code: code, Message: msg})
				}
			}
		}
		return allow, reasons, nil
	}
	return false, nil, fmt.Errorf("approvals decision must be an object or a boolean, got %T", v)
}
