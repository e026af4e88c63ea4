package app

import (
	"context"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

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
	client *redis.Client
}

// newSessions returns the session state policy reads as input.session,
// or nil when sessions.enabled is false. With state.redis configured the
// state is kept there, so that a read through one replica counts on all.
func newSessions(ctx context.Context, cfg config.Config, obs *observability, logger *slog.Logger) (*sessionState, error) {
	if !cfg.Sessions.On() {
		return nil, nil
	}
	opts := session.Options{
		Scope:         cfg.Sessions.Scope,
		TTL:           time.Duration(cfg.Sessions.TTL),
		MaxSessions:   cfg.Sessions.MaxSessions,
		MaxPerSubject: cfg.Sessions.MaxPerSubject,
	}
	if r := cfg.State.Redis; r.Enabled() {
		client, err := newRedisClient(r)
		if err != nil {
			return nil, err
		}
		redisLogOnce.Do(func() { redis.SetLogger(redisLogger{logger}) })
		health := &redisHealth{logger: logger, addr: client.Options().Addr, what: "session state"}
		health.down.Store(!pingRedis(ctx, client, logger))
		st, err := session.NewRedis(client, opts, session.RedisOptions{
			Prefix: r.KeyPrefix, Timeout: time.Duration(r.Timeout),
			Observe: func(d time.Duration, err error) {
				obs.metrics.ObserveRedis("sessions", d, err) // nil-safe
				health.observe(err)
			},
		})
		if err != nil {
			_ = client.Close()
			return nil, err
		}
		obs.sessionsShared.Store(true)
		return &sessionState{state: st, shared: st, client: client}, nil
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

// close closes the Redis client.
func (s *sessionState) close() {
	if s != nil && s.client != nil {
		_ = s.client.Close()
	}
}
