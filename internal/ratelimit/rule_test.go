package ratelimit

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestRuleValidate(t *testing.T) {
	ok := Rule{Key: "alice:crm/export_contacts", Limit: 10, Period: time.Minute, Burst: 10}
	with := func(f func(*Rule)) Rule {
		r := ok
		f(&r)
		return r
	}
	tests := []struct {
		name string
		rule Rule
		want string // substring of the error; "" for valid
	}{
		{"valid", ok, ""},
		{"burst zero means limit", with(func(r *Rule) { r.Burst = 0 }), ""},
		{"burst one", with(func(r *Rule) { r.Burst = 1 }), ""},
		{"burst above limit", with(func(r *Rule) { r.Burst = 1000 }), ""},
		{"key of max length", with(func(r *Rule) { r.Key = strings.Repeat("k", MaxKeyLen) }), ""},
		{"min period", with(func(r *Rule) { r.Period = MinPeriod }), ""},
		{"max period", with(func(r *Rule) { r.Period = MaxPeriod }), ""},
		{"max limit", with(func(r *Rule) { r.Limit, r.Period, r.Burst = MaxLimit, MaxPeriod, 0 }), ""},
		{"max burst", with(func(r *Rule) { r.Limit, r.Period, r.Burst = MaxLimit, MaxPeriod, MaxBurst }), ""},
		{"one per microsecond", with(func(r *Rule) { r.Limit, r.Period = 1_000_000, time.Second }), ""},
		{"refill of exactly MaxRefill", with(func(r *Rule) { r.Limit, r.Period, r.Burst = 1, MaxPeriod, 10 }), ""},

		{"empty key", with(func(r *Rule) { r.Key = "" }), "key is empty"},
		{"long key", with(func(r *Rule) { r.Key = strings.Repeat("k", MaxKeyLen+1) }), "key is 513 bytes, more than 512"},
		{"zero limit", with(func(r *Rule) { r.Limit = 0 }), "limit 0 must be positive"},
		{"negative limit", with(func(r *Rule) { r.Limit = -1 }), "limit -1 must be positive"},
		{"huge limit", with(func(r *Rule) { r.Limit, r.Period = MaxLimit+1, MaxPeriod }), "limit 1000000001 is more than 1000000000"},
		{"zero period", with(func(r *Rule) { r.Period = 0 }), "period 0s is shorter than 1s"},
		{"negative period", with(func(r *Rule) { r.Period = -time.Minute }), "period -1m0s is shorter than 1s"},
		{"sub-second period", with(func(r *Rule) { r.Period = 999 * time.Millisecond }), "period 999ms is shorter than 1s"},
		{"period over a year", with(func(r *Rule) { r.Period = MaxPeriod + 1 }), "period 8784h0m0.000000001s is longer than 8784h0m0s"},
		{"negative burst", with(func(r *Rule) { r.Burst = -1 }), "burst -1 must not be negative"},
		{"huge burst", with(func(r *Rule) { r.Burst = MaxBurst + 1 }), "burst 1000000001 is more than 1000000000"},
		{"faster than a microsecond", with(func(r *Rule) { r.Limit, r.Period = 1_000_001, time.Second }), "limit 1000001 per 1s is faster than one request per 1µs"},
		{"slow refill", with(func(r *Rule) { r.Limit, r.Period, r.Burst = 1, MaxPeriod, 11 }), "burst 11 at 1 per 8784h0m0s takes more than 87840h0m0s to refill"},
		{"slow refill with max burst", with(func(r *Rule) { r.Limit, r.Period, r.Burst = 1, time.Second, MaxBurst }), "takes more than"},
		{"slow refill of default burst", with(func(r *Rule) { r.Limit, r.Period, r.Burst = MaxLimit, MaxPeriod, 0 }), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.rule.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want an error containing %q", tt.want)
			}
			if !errors.Is(err, ErrInvalidRule) {
				t.Errorf("Validate() = %v, does not wrap ErrInvalidRule", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate() = %q, want it to contain %q", err, tt.want)
			}
			if strings.Contains(err.Error(), tt.rule.Key) && tt.rule.Key != "" {
				t.Errorf("Validate() = %q quotes the key", err)
			}
		})
	}
}

func TestRuleParams(t *testing.T) {
	tests := []struct {
		rule                Rule
		interval, tolerance time.Duration
	}{
		{Rule{Limit: 10, Period: time.Minute, Burst: 10}, 6 * time.Second, 54 * time.Second},
		{Rule{Limit: 10, Period: time.Minute}, 6 * time.Second, 54 * time.Second},
		{Rule{Limit: 10, Period: time.Minute, Burst: 1}, 6 * time.Second, 0},
		{Rule{Limit: 1000, Period: time.Second}, time.Millisecond, 999 * time.Millisecond},
		// Rounded up: 3 per second is one per 333,333,333.3ns.
		{Rule{Limit: 3, Period: time.Second}, 333_333_334, 666_666_668},
		{Rule{Limit: 1, Period: MaxPeriod, Burst: 10}, MaxPeriod, 9 * MaxPeriod},
	}
	for _, tt := range tests {
		p := tt.rule.params()
		if p.interval != int64(tt.interval) || p.tolerance != int64(tt.tolerance) || p.limit != tt.rule.Limit {
			t.Errorf("%+v: params() = %+v, want interval %d, tolerance %d", tt.rule, p, tt.interval, tt.tolerance)
		}
	}
}
