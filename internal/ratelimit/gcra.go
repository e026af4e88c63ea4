package ratelimit

import (
	"fmt"
	"math"
	"time"
)

// params are a valid rule's GCRA parameters in nanoseconds.
type params struct {
	interval  int64 // T, the emission interval: Period/Limit rounded up
	tolerance int64 // τ = T·(Burst−1)
	limit     int64
}

// params computes r's parameters. r must be valid: the interval is then at
// least MinInterval, and T·Burst at most MaxRefill, so nothing overflows.
func (r Rule) params() params {
	period := int64(r.Period)
	t := period / r.Limit
	if period%r.Limit != 0 {
		t++ // round up: never more than Limit per Period
	}
	return params{interval: t, tolerance: t * (r.burst() - 1), limit: r.Limit}
}

// noTAT is the stored TAT of a key never seen: any now is later.
const noTAT = math.MinInt64

// take applies one request at now (Unix nanoseconds) to a key whose stored
// TAT is tat (noTAT for a new key). It returns the TAT to store and the
// result. This is the virtual-scheduling form of GCRA (ITU-T I.371): with
// tat' = max(tat, now), the request conforms when tat' − now ≤ τ, and
// then the next TAT is tat' + T. A refused request stores tat'.
//
// tat' is also capped at now + τ + T, the most a key can owe under this
// rule. With an unchanged rule and a clock that does not go back the cap
// never applies; after a rule change it keeps a key from owing the debt of
// a rule with a longer window, and after the clock goes back it forgives
// the key that much.
func (p params) take(tat, now int64) (int64, Result) {
	tat = max(tat, now)
	tat = min(tat, addSat(now, p.tolerance+p.interval))
	// Here now ≤ tat ≤ now+τ+T (or MaxInt64), so the difference fits.
	owed := tat - now
	res := Result{Limit: p.limit}
	if owed > p.tolerance {
		res.RetryAfter = time.Duration(owed - p.tolerance)
		res.Reset = time.Duration(owed)
		return tat, res
	}
	next := addSat(tat, p.interval)
	res.Allowed = true
	// floor((now + τ + T − next) / T), where now+τ+T−next = τ − owed ≥ 0.
	res.Remaining = (p.tolerance - owed) / p.interval
	res.Reset = time.Duration(next - now)
	return next, res
}

// addSat returns a+b for b ≥ 0, saturating at math.MaxInt64.
func addSat(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// Bounds on the times a store accepts, in Unix seconds: Unix nanoseconds
// must fit an int64 (from the year 1678), and so must now plus MaxRefill
// (until the year 2252), so that a TAT never saturates.
const (
	minUnixSeconds = math.MinInt64/int64(time.Second) + 1
	maxUnixSeconds = (math.MaxInt64-int64(MaxRefill))/int64(time.Second) - 1
)

// unixNano returns now in Unix nanoseconds, or an error when it is out of
// the range above (such as a zero time.Time).
func unixNano(now time.Time) (int64, error) {
	if s := now.Unix(); s < minUnixSeconds || s > maxUnixSeconds {
		return 0, fmt.Errorf("ratelimit: time %v is out of range", now)
	}
	return now.UnixNano(), nil
}
