package app

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/verdictpdp/verdict/internal/config"
	"github.com/verdictpdp/verdict/internal/containment"
	"github.com/verdictpdp/verdict/internal/engine"
)

// containmentComponent is the engine component holding the compiled
// data.mcp.containment of each snapshot.
const containmentComponent = "containment"

// eventContained is the webhook event of a quarantine containment set.
const eventContained = "containment.triggered"

// addContainment compiles data.mcp.containment at every activation: rules
// that do not validate fail the activation. Rules in a bundle served with
// approvals off do nothing, and say so.
func addContainment(cfg config.Config, eng *engine.Engine, logger *slog.Logger) {
	on := cfg.Approvals.On()
	eng.AddComponent(containmentComponent, func(ctx context.Context, data engine.DataReader) (any, error) {
		r, err := containment.Compile(ctx, data)
		if err != nil {
			return nil, err
		}
		if !r.Empty() && !on {
			logger.Warn("data.mcp.containment has rules, but approvals are off: nothing is contained; set approvals.enabled",
				"rules", len(r.Rules))
		}
		return r, nil
	})
}

// newContainment returns the monitor quarantining callers that cross the
// active snapshot's rules, or nil when the runtime controls are off.
func newContainment(eng *engine.Engine, rc *runtimeControls, obs *observability, logger *slog.Logger) *containment.Monitor {
	if rc == nil {
		return nil
	}
	return containment.New(containment.Options{
		Rules: func() *containment.Rules {
			r, _ := eng.Snapshot().Component(containmentComponent).(*containment.Rules)
			return r
		},
		Controls: rc.Controls,
		Contained: func(c containment.Contained) {
			obs.metrics.ObserveContainment(c.Rule.ID, string(c.Rule.Signal))
			if rc.hook != nil {
				notifyContained(rc, c)
			}
		},
		Logger: logger,
	})
}

// notifyContained sends the webhook of a quarantine containment set: the
// rule, what was measured, and the quarantine as the API shows it.
func notifyContained(rc *runtimeControls, c containment.Contained) {
	rule := map[string]any{
		"id": c.Rule.ID, "signal": string(c.Rule.Signal), "scope": string(c.Rule.Scope),
		"window_seconds": int64(c.Rule.Window / time.Second), "threshold": c.Rule.Threshold,
	}
	measured := map[string]any{"value": c.Value}
	if c.Rule.Signal == containment.DenyRate {
		rule["min_calls"] = c.Rule.MinCalls
		measured["calls"] = c.Calls
	}
	if len(c.Rule.Detectors) > 0 {
		rule["detectors"] = c.Rule.Detectors
	}
	body, err := json.Marshal(map[string]any{
		"event":      eventContained,
		"rule":       rule,
		"measured":   measured,
		"tenant":     c.Tenant,
		"subject":    c.Subject,
		"session":    c.Session,
		"quarantine": c.Quarantine,
	})
	if err != nil {
		return
	}
	rc.hook.Notify(eventContained, c.Quarantine.ID, body)
}
