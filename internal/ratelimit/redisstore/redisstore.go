// Package redisstore is a ratelimit.Store on Redis, so that replicas of the
// decision point share their rate limits (issue 19).
//
// Each Take is one round trip: a Lua script (EVALSHA, falling back to EVAL
// when Redis does not have it cached) reads the key's theoretical arrival
// time (TAT), applies GCRA exactly as ratelimit.Memory does (the same
// virtual-scheduling form, the same cap at now+τ+T, a refused request not
// counted) and writes the new TAT with a PX expiry at the moment the key is
// idle again, so idle keys vanish from Redis by themselves.
//
// Resolution. Lua numbers are doubles, exact for integers up to 2^53, and
// Unix nanoseconds exceed that. The script therefore works in whole
// microseconds since 2000-01-01 UTC: now is truncated to the microsecond and
// the emission interval T (Period/Limit, rounded up to the nanosecond as in
// Memory) is rounded up to the microsecond, so Redis never allows more than
// Limit per Period. When T is a whole number of microseconds and times are
// too, the results equal Memory's exactly; otherwise Redis is stricter by
// less than a microsecond per request. Times before 2000 or after 2250 are
// refused with an error.
//
// Clock. The script uses the caller's now, not Redis TIME: tests with a
// fixed clock work, and replicas agree as far as their clocks do. A replica
// whose clock runs ahead by d sees keys refill d early (it may allow a
// request up to d before the others would); one whose clock lags sees them
// refill late. Keep replicas on NTP; skew below a few milliseconds is
// negligible against periods of a second or more.
//
// Keys. A rule key comes from request data; it is stored as Prefix +
// "ratelimit:" + the hex SHA-256 of the key, so stored keys are bounded,
// cannot collide with one another or with other data under the prefix, and
// cannot inject anything.
//
// Failure. Every call is bounded by Options.Timeout. A Redis error, a
// timeout or a reply the store does not expect (such as a key holding
// something other than a TAT) returns an error, never an allow: the limiter
// then refuses the request as state.unavailable. Nothing is cached, so
// the store recovers as soon as Redis answers again.
package redisstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/verdictpdp/verdict/internal/ratelimit"
)

// Defaults for Options fields left zero.
const (
	DefaultPrefix  = "verdict:"
	DefaultTimeout = 50 * time.Millisecond
)

// epoch is the origin of the script's microseconds.
var epoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// Bounds on now: from the epoch to 2250. At 2250 plus ratelimit.MaxRefill
// the script's microseconds are below 2^53.
var (
	minTime = epoch
	maxTime = time.Date(2250, 1, 1, 0, 0, 0, 0, time.UTC)
)

// ErrReply is wrapped by the error of a Take whose reply from Redis is not
// what the script returns.
var ErrReply = errors.New("redisstore: unexpected reply from redis")

// script is GCRA on one key. KEYS[1] is the key; ARGV are now, T and τ in
// microseconds since the epoch. It returns {allowed, remaining, retry after
// µs, reset µs}. A stored value that is not a whole number within ±2^53
// (text, a fraction, NaN, an infinity) is an error.
var script = redis.NewScript(`
local now = tonumber(ARGV[1])
local t = tonumber(ARGV[2])
local tol = tonumber(ARGV[3])
local tat = now
local v = redis.call('GET', KEYS[1])
if v then
  local s = tonumber(v)
  if s == nil or s ~= math.floor(s) or s > 9007199254740992 or s < -9007199254740992 then
    return redis.error_reply('ERR verdict: rate limit state is not a number')
  end
  if s > tat then tat = s end
end
if tat > now + tol + t then tat = now + tol + t end
local owed = tat - now
if owed > tol then
  redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.ceil(owed / 1000))
  return {0, 0, owed - tol, owed}
end
local nxt = tat + t
local a = tol - owed
local rem = math.floor(a / t)
if rem * t > a then rem = rem - 1 end
if (rem + 1) * t <= a then rem = rem + 1 end
redis.call('SET', KEYS[1], string.format('%.0f', nxt), 'PX', math.ceil((nxt - now) / 1000))
return {1, rem, 0, nxt - now}
`)

// Options configure a Store.
type Options struct {
	// Prefix starts every key the store writes (default DefaultPrefix).
	Prefix string
	// Timeout bounds each call to Redis (default DefaultTimeout).
	Timeout time.Duration
	// Observe, when set, is called after each call to Redis with its
	// latency and error (metrics).
	Observe func(d time.Duration, err error)
}

// Store is a ratelimit.Store on Redis. It is safe for concurrent use.
type Store struct {
	client  redis.Scripter
	prefix  string
	timeout time.Duration
	observe func(time.Duration, error)
}

var _ ratelimit.Store = (*Store)(nil)

// New returns a store over client. The client should have
// ContextTimeoutEnabled set, so that the deadline bounds its network reads.
func New(client redis.Scripter, opts Options) *Store {
	s := &Store{client: client, prefix: opts.Prefix, timeout: opts.Timeout, observe: opts.Observe}
	if s.prefix == "" {
		s.prefix = DefaultPrefix
	}
	if s.timeout <= 0 {
		s.timeout = DefaultTimeout
	}
	return s
}

// Key returns the Redis key the store uses for a rule key.
func (s *Store) Key(ruleKey string) string {
	sum := sha256.Sum256([]byte(ruleKey))
	return s.prefix + "ratelimit:" + hex.EncodeToString(sum[:])
}

// Take counts one request at now against r in one round trip. See the
// package documentation for its resolution and failures.
func (s *Store) Take(ctx context.Context, r ratelimit.Rule, now time.Time) (ratelimit.Result, error) {
	if err := r.Validate(); err != nil {
		return ratelimit.Result{}, err
	}
	if now.Before(minTime) || !now.Before(maxTime) {
		return ratelimit.Result{}, fmt.Errorf("redisstore: time %v is out of range", now)
	}
	t, tol := interval(r)
	nowUS := now.Sub(epoch).Microseconds()
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	start := time.Now()
	reply, err := script.Run(ctx, s.client, []string{s.Key(r.Key)},
		strconv.FormatInt(nowUS, 10), strconv.FormatInt(t, 10), strconv.FormatInt(tol, 10)).Int64Slice()
	if s.observe != nil {
		s.observe(time.Since(start), err)
	}
	if err != nil {
		return ratelimit.Result{}, fmt.Errorf("redisstore: %w", err)
	}
	return parse(reply, r.Limit, t, tol)
}

// interval returns a valid rule's T and τ in microseconds: Period/Limit
// rounded up to the nanosecond, as in ratelimit.Memory, then up to the
// microsecond.
func interval(r ratelimit.Rule) (t, tol int64) {
	period := int64(r.Period)
	ns := period / r.Limit
	if period%r.Limit != 0 {
		ns++
	}
	t = (ns + 999) / 1000
	burst := r.Burst
	if burst == 0 {
		burst = r.Limit
	}
	return t, t * (burst - 1)
}

// parse checks the script's reply against what GCRA can return and makes
// it a Result.
func parse(reply []int64, limit, t, tol int64) (ratelimit.Result, error) {
	if len(reply) != 4 {
		return ratelimit.Result{}, fmt.Errorf("%w: %d values", ErrReply, len(reply))
	}
	allowed, rem, retry, reset := reply[0], reply[1], reply[2], reply[3]
	res := ratelimit.Result{Limit: limit, Remaining: rem,
		RetryAfter: time.Duration(retry) * time.Microsecond, Reset: time.Duration(reset) * time.Microsecond}
	switch {
	case allowed == 1 && rem >= 0 && rem*t <= tol && retry == 0 && reset >= t && reset <= tol+t:
		res.Allowed = true
	case allowed == 0 && rem == 0 && retry > 0 && retry <= t && reset > tol && reset <= tol+t:
	default:
		return ratelimit.Result{}, fmt.Errorf("%w: %v", ErrReply, reply)
	}
	return res, nil
}
