package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Bounds on a Rule, checked by Rule.Validate.
const (
	// MaxKeyLen is the longest key, in bytes.
	MaxKeyLen = 512
	// MinPeriod and MaxPeriod bound Rule.Period.
	MinPeriod = time.Second
	MaxPeriod = 366 * 24 * time.Hour
	// MaxLimit bounds Rule.Limit and MaxBurst bounds Rule.Burst.
	MaxLimit = 1_000_000_000
	MaxBurst = 1_000_000_000
	// MinInterval is the shortest emission interval, Period/Limit: one key
	// may not be allowed more than a million requests a second. It keeps
	// the rounding of the interval to whole nanoseconds below 0.1%.
	MinInterval = time.Microsecond
	// MaxRefill is the longest time a key may take to get back its full
	// burst (Burst·Period/Limit): ten of the longest periods. It keeps
	// every time the store computes within int64 nanoseconds.
	MaxRefill = 10 * MaxPeriod
)

// ErrInvalidRule is wrapped by the errors of Rule.Validate, and so of
// Store.Take for an invalid rule.
var ErrInvalidRule = errors.New("ratelimit: invalid rule")

// Rule is one limit as policy gave it: at most Limit requests per Period
// for Key, with up to Burst of them at once.
type Rule struct {
	// Key identifies the bucket the request is counted against, such as
	// "alice:crm/export_contacts". Rules with the same key share a bucket.
	Key string
	// Limit is the number of requests allowed per Period, > 0.
	Limit int64
	// Period is the window Limit applies to, > 0.
	Period time.Duration
	// Burst is the number of requests that may arrive at once; 0 means
	// Limit. It may be larger or smaller than Limit.
	Burst int64
}

// Validate reports whether the rule is within the bounds above. Its errors
// wrap ErrInvalidRule; they do not quote the key, which may be long and
// comes from request data.
func (r Rule) Validate() error {
	_, err := r.compile()
	return err
}

// compile validates r and returns its GCRA parameters.
func (r Rule) compile() (params, error) {
	switch {
	case r.Key == "":
		return params{}, fmt.Errorf("%w: key is empty", ErrInvalidRule)
	case len(r.Key) > MaxKeyLen:
		return params{}, fmt.Errorf("%w: key is %d bytes, more than %d", ErrInvalidRule, len(r.Key), MaxKeyLen)
	case r.Limit <= 0:
		return params{}, fmt.Errorf("%w: limit %d must be positive", ErrInvalidRule, r.Limit)
	case r.Limit > MaxLimit:
		return params{}, fmt.Errorf("%w: limit %d is more than %d", ErrInvalidRule, r.Limit, MaxLimit)
	case r.Period < MinPeriod:
		return params{}, fmt.Errorf("%w: period %v is shorter than %v", ErrInvalidRule, r.Period, MinPeriod)
	case r.Period > MaxPeriod:
		return params{}, fmt.Errorf("%w: period %v is longer than %v", ErrInvalidRule, r.Period, MaxPeriod)
	case r.Burst < 0:
		return params{}, fmt.Errorf("%w: burst %d must not be negative", ErrInvalidRule, r.Burst)
	case r.Burst > MaxBurst:
		return params{}, fmt.Errorf("%w: burst %d is more than %d", ErrInvalidRule, r.Burst, MaxBurst)
	case r.Limit > int64(r.Period/MinInterval):
		return params{}, fmt.Errorf("%w: limit %d per %v is faster than one request per %v", ErrInvalidRule, r.Limit, r.Period, MinInterval)
	}
	p := r.params()
	if burst := r.burst(); burst > int64(MaxRefill)/p.interval {
		return params{}, fmt.Errorf("%w: burst %d at %d per %v takes more than %v to refill", ErrInvalidRule, burst, r.Limit, r.Period, MaxRefill)
	}
	return p, nil
}

// burst is the effective burst: Burst, or Limit when Burst is 0.
func (r Rule) burst() int64 {
	if r.Burst == 0 {
		return r.Limit
	}
	return r.Burst
}

// Result says whether one request may go ahead, with what a response needs
// for the x-ratelimit-* and Retry-After headers.
type Result struct {
	// Allowed reports whether the request may go ahead.
	Allowed bool
	// Limit is the rule's Limit.
	Limit int64
	// Remaining is the number of requests still allowed right now, ≥ 0.
	Remaining int64
	// RetryAfter is, when the request is refused, how long until one
	// request would be allowed (> 0); 0 when it is allowed.
	RetryAfter time.Duration
	// Reset is how long until the key is back to its full burst.
	Reset time.Duration
}

// Store decides and records one request against a rule, atomically: the
// decision and the update of the key's state are one step, as a shared
// store must do them in one round trip. Implementations must be safe for
// concurrent use.
type Store interface {
	// Take counts one request at now against r and reports whether it is
	// allowed. A refused request is not counted. The error is non-nil
	// when r is invalid (wrapping ErrInvalidRule) or the store failed; the
	// Result is then zero.
	Take(ctx context.Context, r Rule, now time.Time) (Result, error)
}
