// Package enforce runs the stateful checks that follow a decision on every
// request, cached or not: today the rate limits policies ask for through
// the rate_limit obligation. A cached decision says "alice may call
// export_contacts, at most 10 a minute"; only this step knows whether this
// is the eleventh.
//
// It takes the obligation's plain fields, so both adapters (ext_authz and
// the native MCP API) use it without importing each other's types, and it
// fails closed: a limit that cannot be checked refuses the request.
package enforce

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/verdictpdp/verdict/internal/ratelimit"
)

// Reason codes of refusals made here.
const (
	ReasonRateLimited      = "rate_limited"
	ReasonRateLimitInvalid = "rate_limit.invalid"
	// ReasonStateDown refuses a request whose shared state (a rate limit,
	// an approval, a quarantine, session state) cannot be read or written
	// right now: Redis unreachable, slow or answering garbage.
	ReasonStateDown = "state.unavailable"
)

// RateLimit is the obligation as the policy wrote it.
type RateLimit struct {
	Key           string
	Limit         int64
	PeriodSeconds int64
	Burst         int64
}

// Status is where one request stands against its limit.
type Status struct {
	Key        string
	Limit      int64
	Remaining  int64
	RetryAfter time.Duration
	Reset      time.Duration
	// Refused is set when the request must not go ahead; Code and Message
	// then say why (rate_limited, or a limit that could not be checked).
	Refused bool
	Code    string
	Message string
}

// Limiter applies rate limits against a store.
type Limiter struct {
	store ratelimit.Store
	now   func() time.Time
	// OnLimited, when set, is called for every refusal (metrics).
	onLimited func(entrypoint string)
	// failOpen lets a request through when its limit cannot be checked.
	failOpen bool
}

// NewLimiter returns a limiter over store. A nil store turns rate limits off
// (Take then always allows and reports nothing).
func NewLimiter(store ratelimit.Store, onLimited func(entrypoint string)) *Limiter {
	return &Limiter{store: store, now: time.Now, onLimited: onLimited}
}

// FailOpen makes a limit that cannot be checked (the store fails) let the
// request through instead of refusing it as state.unavailable: an
// operator's choice (state.redis.fail_open), never the default.
func (l *Limiter) FailOpen() *Limiter {
	l.failOpen = true
	return l
}

// Enabled reports whether limits are enforced.
func (l *Limiter) Enabled() bool { return l != nil && l.store != nil }

// Take counts one request against rl. ok is false when no limit applies
// (the limiter is off or rl is nil).
func (l *Limiter) Take(ctx context.Context, entrypoint string, rl *RateLimit) (Status, bool) {
	if !l.Enabled() || rl == nil {
		return Status{}, false
	}
	st := Status{Key: rl.Key, Limit: rl.Limit}
	rule := ratelimit.Rule{Key: rl.Key, Limit: rl.Limit, Burst: rl.Burst}
	if rl.PeriodSeconds > 0 && rl.PeriodSeconds <= math.MaxInt64/int64(time.Second) {
		rule.Period = time.Duration(rl.PeriodSeconds) * time.Second
	}
	if err := rule.Validate(); err != nil {
		st.Refused, st.Code = true, ReasonRateLimitInvalid
		st.Message = "the policy's rate_limit obligation is invalid: " + err.Error()
		l.limited(entrypoint)
		return st, true
	}
	res, err := l.store.Take(ctx, rule, l.now())
	if err != nil {
		if l.failOpen {
			return Status{}, false
		}
		st.Refused, st.Code, st.Message = true, ReasonStateDown, "the rate limit cannot be checked right now"
		l.limited(entrypoint)
		return st, true
	}
	st.Remaining, st.Reset = res.Remaining, res.Reset
	if !res.Allowed {
		st.Refused, st.Code, st.RetryAfter = true, ReasonRateLimited, res.RetryAfter
		st.Message = fmt.Sprintf("rate limit of %d per %s exceeded; retry after %ds",
			rl.Limit, periodText(rl.PeriodSeconds), Seconds(res.RetryAfter))
		l.limited(entrypoint)
	}
	return st, true
}

func (l *Limiter) limited(entrypoint string) {
	if l.onLimited != nil {
		l.onLimited(entrypoint)
	}
}

// Seconds rounds d up to whole seconds, at least 1 for a positive d: what a
// Retry-After header carries.
func Seconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}

func periodText(s int64) string {
	if s == 1 {
		return "second"
	}
	return strconv.FormatInt(s, 10) + "s"
}

// Headers are the HTTP response headers describing st: x-ratelimit-limit,
// x-ratelimit-remaining and x-ratelimit-reset (seconds), plus retry-after
// when the request was refused.
func (st Status) Headers() [][2]string {
	h := make([][2]string, 0, 4)
	if st.Code != ReasonRateLimitInvalid && st.Code != ReasonStateDown {
		h = append(h,
			[2]string{"x-ratelimit-limit", strconv.FormatInt(st.Limit, 10)},
			[2]string{"x-ratelimit-remaining", strconv.FormatInt(st.Remaining, 10)},
			[2]string{"x-ratelimit-reset", strconv.FormatInt(Seconds(st.Reset), 10)})
	}
	if st.Refused && st.RetryAfter > 0 {
		h = append(h, [2]string{"retry-after", strconv.FormatInt(Seconds(st.RetryAfter), 10)})
	}
	return h
}
