package app

import (
	"context"
	"time"

	"github.com/verdictpdp/verdict/internal/config"
	"github.com/verdictpdp/verdict/internal/mcp"
	"github.com/verdictpdp/verdict/internal/session"
)

// sessionSweep is how often idle sessions are removed.
const sessionSweep = time.Minute

// sessionState is the session state policy reads as input.session: in
// memory (memory set) or in Redis, shared by the replicas (shared set).
type sessionState struct {
	state  mcp.Observer
	memory *session.Store
	shared *session.Redis
}

// newSessions returns the session state policy reads as input.session,
// or nil when sessions.enabled is false. With state.redis configured the
// state is kept there (on the client rate limits share), so that a read
// through one replica counts on all.
func newSessions(cfg config.Config, rds *sharedRedis, obs *observability) (*sessionState, error) {
	if !cfg.Sessions.On() {
		return nil, nil
	}
	opts := session.Options{
		Scope:         cfg.Sessions.Scope,
		TTL:           time.Duration(cfg.Sessions.TTL),
		MaxSessions:   cfg.Sessions.MaxSessions,
		MaxPerSubject: cfg.Sessions.MaxPerSubject,
	}
	if rds != nil {
		r := cfg.State.Redis
		st, err := session.NewRedis(rds.client, opts, session.RedisOptions{
			Prefix: r.KeyPrefix, Timeout: time.Duration(r.Timeout), Observe: rds.observer("sessions"),
		})
		if err != nil {
			return nil, err
		}
		return &sessionState{state: st, shared: st}, nil
	}
	st, err := session.New(opts)
	if err != nil {
		return nil, err
	}
	obs.sessions.Store(st)
	return &sessionState{state: st, memory: st}, nil
}

// run sweeps idle in-memory sessions until ctx ends (Redis expires its
// own).
func (s *sessionState) run(ctx context.Context) {
	if s.memory != nil {
		s.memory.Run(ctx, sessionSweep)
	}
}
