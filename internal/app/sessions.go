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
	// client is the Redis client the state opened (nil when it uses the
	// guards'); health tracks whether Redis answers.
	client *redis.Client
	health *redisHealth
}

// newSessions returns the session state policy reads as input.session,
// or nil when sessions.enabled is false. With state.redis configured the
// state is kept there, so that a read through one replica counts on all;
// it uses the guards' Redis client when rate limits opened one.
func newSessions(ctx context.Context, cfg config.Config, g *guards, obs *observability, logger *slog.Logger) (*sessionState, error) {
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
		ss := &sessionState{}
		client := g.redis
		if client != nil {
			ss.health = g.redisHealth
			ss.health.what = "rate limits and session state"
		} else {
			var err error
			if client, err = newRedisClient(r); err != nil {
				return nil, err
			}
			ss.client = client
			redisLogOnce.Do(func() { redis.SetLogger(redisLogger{logger}) })
			ss.health = &redisHealth{logger: logger, addr: client.Options().Addr, what: "session state"}
			ss.health.start(pingRedis(ctx, client, logger))
		}
		st, err := session.NewRedis(client, opts, session.RedisOptions{
			Prefix: r.KeyPrefix, Timeout: time.Duration(r.Timeout),
			Observe: func(d time.Duration, err error) {
				obs.metrics.ObserveRedis("sessions", d, err) // nil-safe
				ss.health.observe(err)
			},
		})
		if err != nil {
			ss.close()
			return nil, err
		}
		ss.state, ss.shared = st, st
		return ss, nil
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

// close closes the Redis client the state opened.
func (s *sessionState) close() {
	if s != nil && s.client != nil {
		_ = s.client.Close()
	}
}
