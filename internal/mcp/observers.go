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
func (os Observers) SessionInput(ctx context.Context, tenant, subject, session string) (map[string]any, error) {
	for _, o := range os {
		if s, ok := o.(SessionState); ok {
			return s.SessionInput(ctx, tenant, subject, session)
		}
	}
	return nil, nil
}

// Record implements SessionRecorder: every member that records through
// Record does, in order; the first error stops it.
func (os Observers) Record(ctx context.Context, ob *Observation) error {
	for _, o := range os {
		if r, ok := o.(SessionRecorder); ok {
			if err := r.Record(ctx, ob); err != nil {
				return err
			}
		}
	}
	return nil
}

// recorder returns the observer's recording part: nil when neither obs
// nor (for Observers) any of its members records through Record.
func recorder(obs Observer) SessionRecorder {
	switch o := obs.(type) {
	case Observers:
		for _, m := range o {
			if _, ok := m.(SessionRecorder); ok {
				return o
			}
		}
		return nil
	case SessionRecorder:
		return o
	}
	return nil
}
