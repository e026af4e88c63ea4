package app

import (
	"time"

	"github.com/verdictpdp/verdict/internal/config"
	"github.com/verdictpdp/verdict/internal/session"
)

// sessionSweep is how often idle sessions are removed.
const sessionSweep = time.Minute

// newSessions returns the session state policy reads as input.session,
// or nil when sessions.enabled is false.
func newSessions(cfg config.Config, obs *observability) (*session.Store, error) {
	if !cfg.Sessions.On() {
		return nil, nil
	}
	st, err := session.New(session.Options{
		Scope:         cfg.Sessions.Scope,
		TTL:           time.Duration(cfg.Sessions.TTL),
		MaxSessions:   cfg.Sessions.MaxSessions,
		MaxPerSubject: cfg.Sessions.MaxPerSubject,
	})
	if err != nil {
		return nil, err
	}
	obs.sessions.Store(st)
	return st, nil
}
