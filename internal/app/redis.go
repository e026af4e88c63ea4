package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/verdictpdp/verdict/internal/admin"
	"github.com/verdictpdp/verdict/internal/config"
	"github.com/verdictpdp/verdict/internal/metrics"
)

// sharedRedis is the client of state.redis that rate limits and session
// state use, and whether Redis answers them. (The controls' store opens a
// client of its own: it closes it, and holds a subscription.)
type sharedRedis struct {
	client *redis.Client
	health *redisHealth
	m      *metrics.Metrics
}

// openRedis opens state.redis, or returns nil when it is not configured.
// An unreachable Redis does not stop the start (see pingRedis).
func openRedis(ctx context.Context, cfg config.Config, m *metrics.Metrics, logger *slog.Logger) (*sharedRedis, error) {
	r := cfg.State.Redis
	if !r.Enabled() {
		return nil, nil
	}
	client, err := newRedisClient(r)
	if err != nil {
		return nil, err
	}
	redisLogOnce.Do(func() { redis.SetLogger(redisLogger{logger}) })
	health := &redisHealth{logger: logger, addr: client.Options().Addr}
	health.start(pingRedis(ctx, client, logger))
	return &sharedRedis{client: client, health: health, m: m}, nil
}

// observer is the callback a store calls after each call of op: the
// latency metric and the health log.
func (s *sharedRedis) observer(op string) func(time.Duration, error) {
	return func(d time.Duration, err error) {
		s.m.ObserveRedis(op, d, err) // nil-safe
		s.health.observe(err)
	}
}

func (s *sharedRedis) close() {
	if s != nil {
		_ = s.client.Close()
	}
}

// newRedisClient builds the client of state.redis. Its errors never quote
// the URL or the password.
func newRedisClient(r config.Redis) (*redis.Client, error) {
	opts, err := redis.ParseURL(r.URL)
	if err != nil {
		msg := err.Error()
		if u, perr := url.Parse(r.URL); perr == nil && u.User != nil {
			if pw, ok := u.User.Password(); ok && pw != "" {
				msg = strings.ReplaceAll(msg, pw, config.Masked)
			}
		}
		return nil, fmt.Errorf("state.redis.url: %s", msg)
	}
	if r.PasswordFile != "" {
		raw, err := os.ReadFile(r.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("state.redis.password_file: %w", err)
		}
		opts.Password = strings.TrimRight(string(raw), "\r\n")
		if opts.Password == "" {
			return nil, fmt.Errorf("state.redis.password_file %s: is empty", r.PasswordFile)
		}
	}
	if t := r.TLS; t != (config.RedisTLS{}) {
		if opts.TLSConfig == nil {
			return nil, errors.New("state.redis.tls: needs a rediss:// url")
		}
		if t.CAFile != "" {
			pem, err := os.ReadFile(t.CAFile)
			if err != nil {
				return nil, fmt.Errorf("state.redis.tls.ca_file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("state.redis.tls.ca_file %s: no PEM certificate", t.CAFile)
			}
			opts.TLSConfig.RootCAs = pool
		}
		if t.ServerName != "" {
			opts.TLSConfig.ServerName = t.ServerName
		}
	}
	if opts.TLSConfig != nil {
		opts.TLSConfig.MinVersion = tls.VersionTLS12
	}
	// Let each call's deadline (state.redis.timeout) bound its reads.
	opts.ContextTimeoutEnabled = true
	return redis.NewClient(opts), nil
}

// pingRedis checks Redis at start and reports whether it answered. An
// unreachable Redis does not stop the start: rate limits refuse requests
// (state.unavailable) until it answers, and recover by themselves. The
// log names the address, never the URL or the password.
func pingRedis(ctx context.Context, client *redis.Client, logger *slog.Logger) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		logger.Warn("redis unreachable at start: the state kept there refuses requests until it answers",
			"addr", client.Options().Addr, "err", err)
		return false
	}
	logger.Info("redis reachable", "addr", client.Options().Addr)
	return true
}

// redisHealth logs when calls to Redis start failing and when they succeed
// again: once per change, not once per request.
type redisHealth struct {
	logger *slog.Logger
	addr   string
	down   atomic.Bool
	// downSince is when calls started failing (unix nanoseconds, 0 when
	// answering); calls and failures count every call.
	downSince, calls, failures atomic.Int64
}

func (h *redisHealth) start(reachable bool) {
	if !reachable {
		h.down.Store(true)
		h.downSince.Store(time.Now().UnixNano())
	}
}

func (h *redisHealth) observe(err error) {
	h.calls.Add(1)
	if err != nil {
		h.failures.Add(1)
		if !h.down.Swap(true) {
			h.downSince.Store(time.Now().UnixNano())
			h.logger.Warn("redis calls failing: rate limits and session state refuse requests until it answers", "addr", h.addr, "err", err)
		}
		return
	}
	if h.down.Swap(false) {
		h.downSince.Store(0)
		h.logger.Info("redis answering again: rate limits and session state kept there", "addr", h.addr)
	}
}

// status is /v1/status.state.redis: whether the last call answered, since
// when it has not, and the counts.
func (h *redisHealth) status() *admin.RedisStatus {
	if h == nil {
		return nil
	}
	st := &admin.RedisStatus{Addr: h.addr, Reachable: !h.down.Load(), Calls: h.calls.Load(), Failures: h.failures.Load()}
	if ns := h.downSince.Load(); ns != 0 && !st.Reachable {
		t := time.Unix(0, ns).UTC()
		st.DownSince = &t
	}
	return st
}

// redisLogOnce routes go-redis's own log (connection pool retries) to the
// first server's logger at debug level, instead of stderr: the health log
// above says what operators need once.
var redisLogOnce sync.Once

type redisLogger struct{ logger *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.logger.DebugContext(ctx, "redis: "+fmt.Sprintf(format, v...))
}
