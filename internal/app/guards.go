package app

import (
	"context"
	"log/slog"
	"time"

	"github.com/verdictpdp/verdict/internal/adapter/extauthz"
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
	// shared is set when limits are kept on state.redis.
	shared bool
	// limiter applies rate_limit obligations (nil when limits are off).
	limiter *enforce.Limiter
}

// newGuards builds the guards the configuration asks for. A JWKS file that
// cannot be read, or an invalid peer allow-list, stops the start.
func newGuards(ctx context.Context, cfg config.Config, rds *sharedRedis, m *metrics.Metrics, logger *slog.Logger) (*guards, error) {
	g := &guards{}
	v, err := newVerifier(ctx, cfg, logger)
	if err != nil {
		return nil, err
	}
	g.verifier = v
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
		if rds != nil {
			g.shared = true
			store = redisstore.New(rds.client, redisstore.Options{
				Prefix: cfg.State.Redis.KeyPrefix, Timeout: time.Duration(cfg.State.Redis.Timeout), Observe: rds.observer("ratelimit"),
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

// newVerifier returns the bearer token verifier of identity.jwt, or nil
// when tokens are not verified.
func newVerifier(ctx context.Context, cfg config.Config, logger *slog.Logger) (*identity.Verifier, error) {
	j := cfg.Identity.JWT
	if !j.Enabled() {
		return nil, nil
	}
	return identity.New(ctx, identity.Config{
		JWKS:               j.JWKS,
		Issuer:             j.Issuer,
		Audiences:          j.Audiences,
		Algorithms:         j.Algorithms,
		Leeway:             time.Duration(j.Leeway),
		MaxTokenBytes:      j.MaxTokenBytes,
		RefreshInterval:    time.Duration(j.RefreshInterval),
		MinRefreshInterval: time.Duration(j.MinRefreshInterval),
	}, logger)
}

// close stops the JWKS refresher.
func (g *guards) close() {
	if g != nil && g.verifier != nil {
		g.verifier.Close()
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
