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

	"github.com/verdictpdp/verdict/internal/adapter/extauthz"
	"github.com/verdictpdp/verdict/internal/admin"
	"github.com/verdictpdp/verdict/internal/config"
	"github.com/verdictpdp/verdict/internal/enforce"
	"github.com/verdictpdp/verdict/internal/guard"
	"github.com/verdictpdp/verdict/internal/identity"
	"github.com/verdictpdp/verdict/internal/metrics"
	"github.com/verdictpdp/verdict/internal/ratelimit"
	"github.com/verdictpdp/verdict/internal/ratelimit/redisstore"
)

// guards are the checks around every decision: who is asking (bearer
// token, mTLS peer) and the rate limits after it.
type guards struct {
	verifier *identity.Verifier
	peers    *identity.PeerAllowList
	// limits is the in-memory store, nil when limits are off or on Redis.
	limits *ratelimit.Memory
	// redis is the client of state.redis, nil when it is not configured;
	// redisHealth tracks whether it answers.
	redis       *redis.Client
	redisHealth *redisHealth
	// limiter applies rate_limit obligations (nil when limits are off).
	limiter *enforce.Limiter
}

// newGuards builds the guards the configuration asks for. A JWKS file that
// cannot be read, or an invalid peer allow-list, stops the start.
func newGuards(ctx context.Context, cfg config.Config, m *metrics.Metrics, logger *slog.Logger) (*guards, error) {
	g := &guards{}
	if j := cfg.Identity.JWT; j.Enabled() {
		v, err := identity.New(ctx, identity.Config{
			JWKS:               j.JWKS,
			Issuer:             j.Issuer,
			Audiences:          j.Audiences,
			Algorithms:         j.Algorithms,
			Leeway:             time.Duration(j.Leeway),
			MaxTokenBytes:      j.MaxTokenBytes,
			RefreshInterval:    time.Duration(j.RefreshInterval),
			MinRefreshInterval: time.Duration(j.MinRefreshInterval),
		}, logger)
		if err != nil {
			return nil, err
		}
		g.verifier = v
	}
	peers, err := identity.NewPeerAllowList(cfg.Identity.AllowedPeers)
	if err != nil {
		return nil, err
	}
	g.peers = peers.WithLogger(logger)
	if cfg.RateLimit.On() {
		var onLimited func(string)
		if m != nil {
			onLimited = m.ObserveRateLimited
		}
		var store ratelimit.Store
		if r := cfg.State.Redis; r.Enabled() {
			client, err := newRedisClient(r)
			if err != nil {
				g.close()
				return nil, err
			}
			g.redis = client
			redisLogOnce.Do(func() { redis.SetLogger(redisLogger{logger}) })
			health := &redisHealth{logger: logger, addr: client.Options().Addr}
			health.start(pingRedis(ctx, client, logger))
			g.redisHealth = health
			observe := func(d time.Duration, err error) {
				m.ObserveRedis("ratelimit", d, err) // nil-safe
				health.observe(err)
			}
			store = redisstore.New(client, redisstore.Options{
				Prefix: r.KeyPrefix, Timeout: time.Duration(r.Timeout), Observe: observe,
			})
		} else {
			g.limits = ratelimit.NewMemory(ratelimit.MemoryOptions{MaxKeys: cfg.RateLimit.MaxKeys})
			store = g.limits
		}
		g.limiter = enforce.NewLimiter(store, onLimited)
		if r := cfg.State.Redis; r.Enabled() && r.FailsOpen(config.FailOpenRateLimits) {
			g.limiter.FailOpen()
		}
	}
	return g, nil
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
	// what names the state that depends on Redis (default "rate limits").
	what string
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
	what := h.what
	if what == "" {
		what = "rate limits"
	}
	if err != nil {
		h.failures.Add(1)
		if !h.down.Swap(true) {
			h.downSince.Store(time.Now().UnixNano())
			h.logger.Warn("redis calls failing: "+what+" refuse requests until it answers", "addr", h.addr, "err", err)
		}
		return
	}
	if h.down.Swap(false) {
		h.downSince.Store(0)
		h.logger.Info("redis answering again: "+what+" kept", "addr", h.addr)
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

// close stops the JWKS refresher and closes the Redis client.
func (g *guards) close() {
	if g == nil {
		return
	}
	if g.verifier != nil {
		g.verifier.Close()
	}
	if g.redis != nil {
		_ = g.redis.Close()
	}
}

// inputLimits maps the limits section onto the Envoy adapter's input
// options.
func inputLimits(cfg config.Config, in *extauthz.InputOptions) {
	l := cfg.Limits
	in.JSON = guard.JSONLimits{
		MaxBytes:       cfg.ExtAuthz.MaxBodyBytes,
		MaxDepth:       l.JSONMaxDepth,
		MaxElements:    l.JSONMaxElements,
		MaxStringBytes: l.JSONMaxStringBytes,
		MaxMembers:     l.JSONMaxMembers,
	}
	in.Headers = guard.HeaderLimits{MaxHeaders: l.MaxHeaders, MaxValueBytes: l.MaxHeaderValueBytes, MaxTotalBytes: l.MaxHeaderBytes}
	in.Path = guard.PathLimits{MaxBytes: l.MaxPathBytes}
}

// mcpMaxDepth is mcp.max_depth, else limits.json_max_depth.
func mcpMaxDepth(cfg config.Config) int {
	if cfg.MCP.MaxDepth > 0 {
		return cfg.MCP.MaxDepth
	}
	return cfg.Limits.JSONMaxDepth
}
