package ratelimit

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"
)

// t0 is the fake clock's start.
var t0 = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

// step is one request at t0+at and the result it must get.
type step struct {
	at   time.Duration
	want Result
}

func allowed(limit, remaining int64, reset time.Duration) Result {
	return Result{Allowed: true, Limit: limit, Remaining: remaining, Reset: reset}
}

func refused(limit int64, retryAfter, reset time.Duration) Result {
	return Result{Limit: limit, RetryAfter: retryAfter, Reset: reset}
}

// burstAt returns n allowed steps at one instant, from a full burst of b
// with interval t.
func burstAt(at time.Duration, n, b, limit int64, t time.Duration) []step {
	steps := make([]step, 0, n)
	for i := int64(1); i <= n; i++ {
		steps = append(steps, step{at, allowed(limit, b-i, time.Duration(i)*t)})
	}
	return steps
}

func TestGCRA(t *testing.T) {
	const ms = time.Millisecond
	tests := []struct {
		name  string
		rule  Rule
		steps []step
	}{
		{
			name: "10 per minute, burst 10",
			rule: Rule{Limit: 10, Period: time.Minute, Burst: 10},
			steps: append(burstAt(0, 10, 10, 10, 6*time.Second),
				step{0, refused(10, 6*time.Second, time.Minute)},
				step{0, refused(10, 6*time.Second, time.Minute)},
				step{5999 * ms, refused(10, time.Millisecond, time.Minute-5999*ms)},
				step{6 * time.Second, allowed(10, 0, time.Minute)},
				step{6 * time.Second, refused(10, 6*time.Second, time.Minute)},
				step{11 * time.Second, refused(10, time.Second, 55*time.Second)},
				step{12 * time.Second, allowed(10, 0, time.Minute)},
				// Half the period later, half the burst is back.
				step{42 * time.Second, allowed(10, 4, 36*time.Second)},
				// Long idle: a full burst again.
				step{time.Hour, allowed(10, 9, 6*time.Second)},
			),
		},
		{
			name: "burst 0 means limit",
			rule: Rule{Limit: 10, Period: time.Minute},
			steps: append(burstAt(0, 10, 10, 10, 6*time.Second),
				step{0, refused(10, 6*time.Second, time.Minute)},
			),
		},
		{
			name: "burst 1 is strictly spaced",
			rule: Rule{Limit: 2, Period: 10 * time.Second, Burst: 1},
			steps: []step{
				{0, allowed(2, 0, 5*time.Second)},
				{0, refused(2, 5*time.Second, 5*time.Second)},
				{4999 * ms, refused(2, ms, ms)},
				{5 * time.Second, allowed(2, 0, 5*time.Second)},
				{7 * time.Second, refused(2, 3*time.Second, 3*time.Second)},
				{10 * time.Second, allowed(2, 0, 5*time.Second)},
				{16 * time.Second, allowed(2, 0, 5*time.Second)},
				{20 * time.Second, refused(2, time.Second, time.Second)},
			},
		},
		{
			name: "burst above limit",
			rule: Rule{Limit: 1, Period: time.Second, Burst: 5},
			steps: append(burstAt(0, 5, 5, 1, time.Second),
				step{0, refused(1, time.Second, 5*time.Second)},
				step{time.Second, allowed(1, 0, 5*time.Second)},
				step{2500 * ms, allowed(1, 0, 4500*ms)},
				step{2500 * ms, refused(1, 500*ms, 4500*ms)},
				step{3 * time.Second, allowed(1, 0, 5*time.Second)},
			),
		},
		{
			name: "burst below limit",
			rule: Rule{Limit: 10, Period: 10 * time.Second, Burst: 2},
			steps: []step{
				{0, allowed(10, 1, time.Second)},
				{0, allowed(10, 0, 2*time.Second)},
				{0, refused(10, time.Second, 2*time.Second)},
				{500 * ms, refused(10, 500*ms, 1500*ms)},
				{time.Second, allowed(10, 0, 2*time.Second)},
				{3 * time.Second, allowed(10, 1, time.Second)},
			},
		},
		{
			name: "1000 per second: 1ms interval",
			rule: Rule{Limit: 1000, Period: time.Second},
			steps: append(burstAt(0, 1000, 1000, 1000, ms),
				step{0, refused(1000, ms, time.Second)},
				step{ms - 1, refused(1000, 1, time.Second-ms+1)},
				step{ms, allowed(1000, 0, time.Second)},
				step{ms + 500*time.Microsecond, refused(1000, 500*time.Microsecond, time.Second-500*time.Microsecond)},
				step{3 * ms, allowed(1000, 1, time.Second-ms)},
			),
		},
		{
			name: "3000 per second: sub-millisecond interval, rounded up",
			rule: Rule{Limit: 3000, Period: time.Second, Burst: 2},
			steps: []step{
				{0, allowed(3000, 1, 333334)},
				{0, allowed(3000, 0, 666668)},
				{0, refused(3000, 333334, 666668)},
				{333334, allowed(3000, 0, 666668)},
			},
		},
		{
			name: "one per microsecond",
			rule: Rule{Limit: 1_000_000, Period: time.Second, Burst: 1},
			steps: []step{
				{0, allowed(1_000_000, 0, time.Microsecond)},
				{0, refused(1_000_000, time.Microsecond, time.Microsecond)},
				{time.Microsecond, allowed(1_000_000, 0, time.Microsecond)},
			},
		},
		{
			name: "1 per max period, burst 10: longest refill",
			rule: Rule{Limit: 1, Period: MaxPeriod, Burst: 10},
			steps: append(burstAt(0, 10, 10, 1, MaxPeriod),
				step{0, refused(1, MaxPeriod, MaxRefill)},
				step{MaxPeriod, allowed(1, 0, MaxRefill)},
			),
		},
		{
			name: "max limit per max period with max burst",
			rule: Rule{Limit: MaxLimit, Period: MaxPeriod, Burst: MaxBurst},
			steps: []step{
				{0, allowed(MaxLimit, MaxBurst-1, 31622400)},
				{0, allowed(MaxLimit, MaxBurst-2, 2*31622400)},
				{MaxPeriod, allowed(MaxLimit, MaxBurst-1, 31622400)},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewMemory(MemoryOptions{})
			r := tt.rule
			r.Key = "k"
			for i, s := range tt.steps {
				got, err := m.Take(context.Background(), r, t0.Add(s.at))
				if err != nil {
					t.Fatalf("step %d: Take: %v", i, err)
				}
				if got != s.want {
					t.Fatalf("step %d at +%v: Take = %+v, want %+v", i, s.at, got, s.want)
				}
			}
		})
	}
}

// TestGCRALatestTime runs the longest refill at the latest time a store
// accepts, where a TAT comes closest to overflowing.
func TestGCRALatestTime(t *testing.T) {
	m := NewMemory(MemoryOptions{})
	r := Rule{Key: "k", Limit: 1, Period: MaxPeriod, Burst: 10}
	now := time.Unix(maxUnixSeconds, 999_999_999)
	for i := int64(1); i <= 10; i++ {
		got, err := m.Take(context.Background(), r, now)
		if err != nil {
			t.Fatal(err)
		}
		if want := allowed(1, 10-i, time.Duration(i)*MaxPeriod); got != want {
			t.Fatalf("request %d: Take = %+v, want %+v", i, got, want)
		}
	}
	got, err := m.Take(context.Background(), r, now)
	if err != nil {
		t.Fatal(err)
	}
	if want := refused(1, MaxPeriod, MaxRefill); got != want {
		t.Fatalf("request 11: Take = %+v, want %+v", got, want)
	}
	if _, err := m.Take(context.Background(), r, now.Add(time.Second)); err == nil {
		t.Errorf("Take after the latest time: no error")
	}
}

func TestTakeTimeRange(t *testing.T) {
	m := NewMemory(MemoryOptions{})
	r := Rule{Key: "k", Limit: 1, Period: time.Second}
	for _, now := range []time.Time{{}, time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2253, 1, 1, 0, 0, 0, 0, time.UTC)} {
		if _, err := m.Take(context.Background(), r, now); err == nil {
			t.Errorf("Take at %v: no error", now)
		}
	}
	for _, now := range []time.Time{time.Date(1700, 1, 1, 0, 0, 0, 0, time.UTC), time.Unix(0, 0), time.Date(2250, 1, 1, 0, 0, 0, 0, time.UTC)} {
		if res, err := m.Take(context.Background(), r, now); err != nil || !res.Allowed {
			t.Errorf("Take at %v = %+v, %v; want allowed", now, res, err)
		}
	}
	if st := m.Stats(); st.Keys != 1 {
		t.Errorf("Stats().Keys = %d, want 1", st.Keys)
	}
}

// randomRule returns a valid rule with a wide spread of scales.
func randomRule(rng *rand.Rand) Rule {
	for {
		r := Rule{
			Key:    "k",
			Limit:  1 + rng.Int64N(pick(rng, 3, 100, 10_000, 1_000_000)),
			Period: time.Duration(1+rng.Int64N(pick(rng, 10, 3600, 366*86400))) * time.Second,
			Burst:  rng.Int64N(pick(rng, 2, 20, 1000)),
		}
		if r.Validate() == nil {
			return r
		}
	}
}

func pick(rng *rand.Rand, v ...int64) int64 { return v[rng.IntN(len(v))] }

// TestGCRAProperties checks, on random rules and request times, what the
// headers promise: Remaining more requests pass right away and no more; a
// refused request passes after exactly RetryAfter, not a nanosecond
// before; after Reset the key has its full burst again, not a nanosecond
// before.
func TestGCRAProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	rounds := 2000
	if testing.Short() {
		rounds = 200
	}
	for range rounds {
		r := randomRule(rng)
		p, err := r.compile()
		if err != nil {
			t.Fatal(err)
		}
		burst := r.burst()
		now := t0.UnixNano()
		tat := int64(noTAT)
		for range 20 {
			// Jump by up to a few intervals, sometimes not at all.
			now += rng.Int64N(3*p.interval + 1)
			next, res := p.take(tat, now)
			if res.Limit != r.Limit || res.Remaining < 0 || res.Reset < 0 || res.Remaining > burst-1 {
				t.Fatalf("%+v at %d: bad result %+v", r, now, res)
			}
			if !res.Allowed {
				if next != max(tat, now) || res.RetryAfter <= 0 || res.Remaining != 0 {
					t.Fatalf("%+v: refused with %+v, stored %d (was %d)", r, res, next, tat)
				}
				if _, early := p.take(next, now+int64(res.RetryAfter)-1); early.Allowed {
					t.Fatalf("%+v: allowed 1ns before RetryAfter %v", r, res.RetryAfter)
				}
				if _, on := p.take(next, now+int64(res.RetryAfter)); !on.Allowed {
					t.Fatalf("%+v: refused at RetryAfter %v", r, res.RetryAfter)
				}
			} else if res.RetryAfter != 0 {
				t.Fatalf("%+v: allowed with RetryAfter %v", r, res.RetryAfter)
			}
			// Exactly Remaining more pass now (bounded, for huge bursts).
			if res.Remaining <= 1000 {
				s := next
				for i := int64(0); i < res.Remaining; i++ {
					var more Result
					s, more = p.take(s, now)
					if !more.Allowed {
						t.Fatalf("%+v: request %d of Remaining %d refused", r, i+1, res.Remaining)
					}
				}
				if _, more := p.take(s, now); more.Allowed {
					t.Fatalf("%+v: more than Remaining %d allowed", r, res.Remaining)
				}
			}
			// Full burst at Reset, and not before.
			if _, full := p.take(next, now+int64(res.Reset)); !full.Allowed || full.Remaining != burst-1 {
				t.Fatalf("%+v: not full at Reset %v: %+v", r, res.Reset, full)
			}
			if res.Reset > 0 {
				if _, early := p.take(next, now+int64(res.Reset)-1); early.Allowed && early.Remaining == burst-1 {
					t.Fatalf("%+v: full 1ns before Reset %v", r, res.Reset)
				}
			}
			tat = next
		}
	}
}

// TestGCRARate hammers a key as fast as RetryAfter allows over many
// periods: it gets exactly the burst plus one request per interval, and so
// never more than Limit per Period beyond the burst.
func TestGCRARate(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 200 {
		r := randomRule(rng)
		p, _ := r.compile()
		if p.interval < int64(r.Period)/1000 {
			r.Limit = 1000 // keep the run short
			if r.Validate() != nil {
				continue
			}
			p, _ = r.compile()
		}
		horizon := 5 * int64(r.Period)
		now, tat, n := int64(0), int64(noTAT), int64(0)
		for now <= horizon {
			next, res := p.take(tat, now)
			tat = next
			if res.Allowed {
				n++
				continue
			}
			now += int64(res.RetryAfter)
		}
		if want := r.burst() + horizon/p.interval; n != want {
			t.Fatalf("%+v: %d allowed in %v, want %d", r, n, time.Duration(horizon), want)
		}
		if n > r.burst()+5*r.Limit {
			t.Fatalf("%+v: %d allowed in 5 periods, more than burst + 5 limits", r, n)
		}
	}
}

// TestGCRARuleChange checks that a key keeps its TAT across a rule change
// but never owes more than the new rule's full burst.
func TestGCRARuleChange(t *testing.T) {
	ctx := context.Background()
	m := NewMemory(MemoryOptions{})
	loose := Rule{Key: "k", Limit: 1000, Period: time.Hour}
	for range 1000 {
		if res, _ := m.Take(ctx, loose, t0); !res.Allowed {
			t.Fatal("loose rule refused within its burst")
		}
	}
	// Now owes an hour under the loose rule. The tight rule allows 10 per
	// minute: the key owes at most one minute.
	tight := Rule{Key: "k", Limit: 10, Period: time.Minute}
	res, err := m.Take(ctx, tight, t0)
	if err != nil {
		t.Fatal(err)
	}
	if want := refused(10, 6*time.Second, time.Minute); res != want {
		t.Fatalf("tight rule: Take = %+v, want %+v", res, want)
	}
	if res, _ := m.Take(ctx, tight, t0.Add(6*time.Second)); !res.Allowed {
		t.Fatalf("tight rule after RetryAfter: %+v", res)
	}
	// The key now owes a minute (TAT t0+66s). Back under the loose rule,
	// whose window is an hour, it keeps that debt: 982 of its 999 left.
	res, _ = m.Take(ctx, loose, t0.Add(6*time.Second))
	if want := allowed(1000, 982, 63600*time.Millisecond); res != want {
		t.Fatalf("loose rule again: Take = %+v, want %+v", res, want)
	}
	// A faster rule with a short window (1.2s) caps the debt again.
	res, _ = m.Take(ctx, Rule{Key: "k", Limit: 100, Period: time.Minute, Burst: 2}, t0.Add(6*time.Second))
	if want := refused(100, 600*time.Millisecond, 1200*time.Millisecond); res != want {
		t.Fatalf("short-window rule: Take = %+v, want %+v", res, want)
	}
}
