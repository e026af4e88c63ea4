package app_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/internal/config"
	"github.com/verdictpdp/verdict/internal/redistest"
	mcpv1 "github.com/verdictpdp/verdict/proto/verdict/mcp/v1"
)

// redisLimitConfig is TestRateLimitNativeMCP's setup (limit 3 a minute per
// subject and tool) with rate limits on the Redis at url.
func redisLimitConfig(t *testing.T, url string) (config.Config, tokenKeys) {
	t.Helper()
	cfg, keys := limitConfig(t)
	cfg.State.Redis = config.Redis{URL: url, Timeout: config.Duration(time.Second)}
	return cfg, keys
}

// TestRateLimitRedisReplicas runs two servers on one Redis: calls alternate
// between them and the fourth in the minute is refused.
func TestRateLimitRedisReplicas(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	cfg, keys := redisLimitConfig(t, srv.URL())
	a, b := startPDP(t, cfg), startPDP(t, cfg)
	clients := []mcpv1.MCPPolicyClient{mcpv1.NewMCPPolicyClient(a.dial(t)), mcpv1.NewMCPPolicyClient(b.dial(t))}
	alice := signRS256(t, "k1", keys.k1, claimsAt(time.Now(), "alice"))
	ctx := context.Background()
	for i := range 3 {
		resp, err := clients[i%2].Check(ctx, mcpCall("search", alice, nil))
		if err != nil || resp.GetDecision() != mcpv1.Decision_DECISION_ALLOW || resp.GetRateLimitStatus().GetRemaining() != int64(2-i) {
			t.Fatalf("call %d: %v %v", i+1, resp, err)
		}
	}
	resp, err := clients[1].Check(ctx, mcpCall("search", alice, nil))
	if err != nil || resp.GetDecision() != mcpv1.Decision_DECISION_DENY || resp.GetReasons()[0].GetCode() != "rate_limited" {
		t.Fatalf("fourth call, on the second server: %v %v", resp, err)
	}
	if m := scrape(t, b); !strings.Contains(m, `verdict_redis_duration_seconds_count{op="ratelimit",result="ok"} 2`) {
		t.Error("the second server's Redis calls are not in verdict_redis_duration_seconds")
	}
}

// TestRateLimitRedisDown starts a server while Redis is down: it starts,
// refuses limited calls as state.unavailable, and recovers when Redis
// comes up.
func TestRateLimitRedisDown(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	srv.Kill()
	cfg, keys := redisLimitConfig(t, srv.URL())
	cfg.State.Redis.Timeout = config.Duration(100 * time.Millisecond)
	p := startPDP(t, cfg)
	client := mcpv1.NewMCPPolicyClient(p.dial(t))
	alice := signRS256(t, "k1", keys.k1, claimsAt(time.Now(), "alice"))
	ctx := context.Background()
	resp, err := client.Check(ctx, mcpCall("search", alice, nil))
	if err != nil || resp.GetDecision() != mcpv1.Decision_DECISION_DENY || resp.GetReasons()[0].GetCode() != "state.unavailable" {
		t.Fatalf("Redis down: %v %v", resp, err)
	}
	st := getStatus(t, p)
	if st.RateLimit == nil || st.RateLimit.Store != "redis" || st.State == nil || st.State.Redis == nil ||
		st.State.Redis.Reachable || st.State.Redis.DownSince == nil || st.State.Redis.Failures == 0 || st.State.Redis.Addr != srv.Addr() {
		t.Fatalf("/v1/status with Redis down: rate_limit %+v state %+v", st.RateLimit, st.State)
	}
	srv.Restart()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := client.Check(ctx, mcpCall("search", alice, nil))
		if err == nil && resp.GetDecision() == mcpv1.Decision_DECISION_ALLOW {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery after Redis came up: %v %v", resp, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st := getStatus(t, p); !st.State.Redis.Reachable || st.State.Redis.DownSince != nil {
		t.Fatalf("/v1/status after recovery: %+v", st.State.Redis)
	}
}

// TestRateLimitRedisFailOpen is the operator's choice of
// state.redis.fail_open: [rate_limits]: with Redis down, limited calls go
// ahead uncounted instead of being refused.
func TestRateLimitRedisFailOpen(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	srv.Kill()
	cfg, keys := redisLimitConfig(t, srv.URL())
	cfg.State.Redis.Timeout = config.Duration(100 * time.Millisecond)
	// Session state and the runtime controls (both on by default) are on
	// Redis too and fail closed on their own: this test is about limits,
	// so they fail open as well.
	cfg.State.Redis.FailOpen = []string{config.FailOpenRateLimits, config.FailOpenSessions, config.FailOpenControls}
	p := startPDP(t, cfg)
	client := mcpv1.NewMCPPolicyClient(p.dial(t))
	alice := signRS256(t, "k1", keys.k1, claimsAt(time.Now(), "alice"))
	for i := range 5 { // more than the limit of 3: none is counted
		resp, err := client.Check(context.Background(), mcpCall("search", alice, nil))
		if err != nil || resp.GetDecision() != mcpv1.Decision_DECISION_ALLOW || resp.GetRateLimitStatus() != nil {
			t.Fatalf("call %d with Redis down and rate limits failing open: %v %v", i+1, resp, err)
		}
	}
}

// TestRateLimitRedisTLS keeps limits on a Redis that speaks only TLS and
// requires a password, read from password_file: the limit holds, and a
// server that trusts another CA refuses limited calls instead of allowing
// them.
func TestRateLimitRedisTLS(t *testing.T) {
	t.Parallel()
	srv := redistest.StartWith(t, redistest.Options{TLS: true, Password: "s3cret-pw"})
	cfg, keys := redisLimitConfig(t, srv.URL())
	pw := filepath.Join(t.TempDir(), "redis-password")
	if err := os.WriteFile(pw, []byte("s3cret-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.State.Redis.PasswordFile = pw
	cfg.State.Redis.TLS = config.RedisTLS{CAFile: srv.CAFile}
	p := startPDP(t, cfg)
	client := mcpv1.NewMCPPolicyClient(p.dial(t))
	alice := signRS256(t, "k1", keys.k1, claimsAt(time.Now(), "alice"))
	ctx := context.Background()
	for i := range 3 {
		resp, err := client.Check(ctx, mcpCall("search", alice, nil))
		if err != nil || resp.GetDecision() != mcpv1.Decision_DECISION_ALLOW || resp.GetRateLimitStatus().GetRemaining() != int64(2-i) {
			t.Fatalf("call %d over TLS: %v %v", i+1, resp, err)
		}
	}
	if resp, err := client.Check(ctx, mcpCall("search", alice, nil)); err != nil || resp.GetReasons()[0].GetCode() != "rate_limited" {
		t.Fatalf("fourth call over TLS: %v %v", resp, err)
	}

	// The system CAs do not trust the test CA: the handshake fails, and
	// limited calls are refused.
	untrusting := cfg
	untrusting.State.Redis.TLS = config.RedisTLS{}
	q := startPDP(t, untrusting)
	resp, err := mcpv1.NewMCPPolicyClient(q.dial(t)).Check(ctx, mcpCall("search", alice, nil))
	if err != nil || resp.GetDecision() != mcpv1.Decision_DECISION_DENY || resp.GetReasons()[0].GetCode() != "state.unavailable" {
		t.Fatalf("with an untrusted certificate: %v %v, want state.unavailable", resp, err)
	}
}
