package mcp

import "context"

// Observers tells several observers about every final decision, in order
// (the session state, containment, …). Nil members are skipped.
type Observers []Observer

// Observe implements Observer.
func (os Observers) Observe(ctx context.Context, ob *Observation) {
	for _, o := range os {
		if o != nil {
			o.Observe(ctx, ob)
		}
	}
}

// SessionInput implements SessionState: the first member that keeps
// session state answers; nil when none does.
func (os Observers) SessionInput(tenant, subject, session string) map[string]any {
	for _, o := range os {
		if s, ok := o.(SessionState); ok {
			return s.SessionInput(tenant, subject, session)
		}
	}
	return nil
}
