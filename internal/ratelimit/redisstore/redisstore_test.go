package redisstore_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/verdictpdp/verdict/internal/enforce"
	"github.com/verdictpdp/verdict/internal/ratelimit"
	"github.com/verdictpdp/verdict/internal/ratelimit/redisstore"
	"github.com/verdictpdp/verdict/internal/redistest"
)

// newStore starts a redis-server and returns a store on it.
func newStore(t testing.TB) (*redisstore.Store, *redis.Client, *redistest.Server) {
	t.Helper()
	srv := redistest.Start(t)
	c := newClient(t, srv)
	return redisstore.New(c, redisstore.Options{Timeout: time.Second}), c, srv
}

func newClient(t testing.TB, srv *redistest.Server) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: srv.Addr(), ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

var t0 = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)

func same(t *testing.T, i int, got, want ratelimit.Result) {
	t.Helper()
	if got != want {
		t.Fatalf("step %d: redis %+v, memory %+v", i, got, want)
	}
}

// TestDifferential runs the same steps against Memory and Redis: with whole
// microseconds the results are equal.
func TestDifferential(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := context.Background()
	type step struct {
		rule ratelimit.Rule
		at   time.Duration // after t0
	}
	r3 := ratelimit.Rule{Key: "alice", Limit: 4, Period: time.Second}
	r3b := ratelimit.Rule{Key: "bob", Limit: 10, Period: time.Minute, Burst: 2}
	r3c := ratelimit.Rule{Key: "bob", Limit: 1, Period: time.Hour} // rule change: the cap applies
	tests := []struct {
		name  string
		steps []step
	}{
		{"burst then refill", []step{{r3, 0}, {r3, 0}, {r3, 0}, {r3, 0}, {r3, 0}, {r3, 100 * time.Millisecond}, {r3, 250 * time.Millisecond}, {r3, 251 * time.Millisecond}, {r3, 2 * time.Second}}},
		{"burst smaller than limit", []step{{r3b, 0}, {r3b, time.Millisecond}, {r3b, 2 * time.Millisecond}, {r3b, 6 * time.Second}, {r3b, 6*time.Second + time.Microsecond}}},
		{"rule change and clock back", []step{{r3c, 0}, {r3c, time.Second}, {r3b, 2 * time.Second}, {r3b, 3 * time.Second}, {r3c, -time.Hour}, {r3c, 3 * time.Hour}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := ratelimit.NewMemory(ratelimit.MemoryOptions{})
			prefix := tt.name + "/"
			for i, st := range tt.steps {
				r := st.rule
				r.Key = prefix + r.Key
				want, err := m.Take(ctx, r, t0.Add(st.at))
				if err != nil {
					t.Fatal(err)
				}
				got, err := s.Take(ctx, r, t0.Add(st.at))
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				same(t, i, got, want)
			}
		})
	}
}

// TestDifferentialRandom draws rules whose interval is a whole number of
// microseconds and times in microseconds.
func TestDifferentialRandom(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(19, 2026))
	m := ratelimit.NewMemory(ratelimit.MemoryOptions{})
	var rules []ratelimit.Rule
	for i := range 8 {
		limit := 1 + rng.Int64N(50)
		minT := (int64(time.Second/time.Microsecond) + limit - 1) / limit
		tUS := minT + rng.Int64N(2_000_000)
		rules = append(rules, ratelimit.Rule{
			Key:    "k" + string(rune('a'+i%4)), // rules share keys: rule changes too
			Limit:  limit,
			Period: time.Duration(tUS*limit) * time.Microsecond,
			Burst:  rng.Int64N(10),
		})
	}
	now := t0
	allowed := 0
	for i := range 3000 {
		now = now.Add(time.Duration(rng.Int64N(400_000)) * time.Microsecond)
		if rng.IntN(50) == 0 {
			now = now.Add(-time.Duration(rng.Int64N(5_000_000)) * time.Microsecond) // the clock goes back
		}
		r := rules[rng.IntN(len(rules))]
		want, err := m.Take(ctx, r, now)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.Take(ctx, r, now)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		same(t, i, got, want)
		if got.Allowed {
			allowed++
		}
	}
	if allowed < 300 || allowed > 2700 {
		t.Fatalf("%d of 3000 allowed: the sequence does not exercise both answers", allowed)
	}
}

// TestCoarseInterval checks that an interval that is not a whole number of
// microseconds is rounded up: never more than Limit per Period.
func TestCoarseInterval(t *testing.T) {
	s, _, _ := newStore(t)
	r := ratelimit.Rule{Key: "third", Limit: 3, Period: time.Second} // T = 333333334ns
	n := 0
	for i := range 3000 {
		res, err := s.Take(context.Background(), r, t0.Add(time.Duration(i)*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		if res.Allowed {
			n++
		}
	}
	if n > 3+9 { // burst 3, then 3 a second for 3s
		t.Fatalf("%d allowed in 3s at 3 a second", n)
	}
}

func TestConcurrent(t *testing.T) {
	s, _, _ := newStore(t)
	r := ratelimit.Rule{Key: "shared", Limit: 20, Period: time.Hour}
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for range 4 {
				res, err := s.Take(context.Background(), r, t0)
				if err != nil {
					t.Error(err)
					return
				}
				if res.Allowed {
					allowed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if got := allowed.Load(); got != 20 {
		t.Fatalf("%d of 256 allowed, want the burst, 20", got)
	}
}

// TestReplicas shares one Redis between two stores: the limit holds across
// them.
func TestReplicas(t *testing.T) {
	srv := redistest.Start(t)
	a := redisstore.New(newClient(t, srv), redisstore.Options{Timeout: time.Second})
	b := redisstore.New(newClient(t, srv), redisstore.Options{Timeout: time.Second})
	r := ratelimit.Rule{Key: "alice", Limit: 5, Period: time.Minute}
	for i, s := range []*redisstore.Store{a, b, a, b, a, b, a} {
		res, err := s.Take(context.Background(), r, t0.Add(time.Duration(i)*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		if want := i < 5; res.Allowed != want {
			t.Fatalf("request %d: allowed %v, want %v (%+v)", i+1, res.Allowed, want, res)
		}
	}
}

func TestRedisDownFailsClosed(t *testing.T) {
	srv := redistest.Start(t)
	c := newClient(t, srv)
	var observed, failed atomic.Int64
	s := redisstore.New(c, redisstore.Options{Timeout: 200 * time.Millisecond, Observe: func(_ time.Duration, err error) {
		observed.Add(1)
		if err != nil {
			failed.Add(1)
		}
	}})
	lim := enforce.NewLimiter(s, nil)
	rl := &enforce.RateLimit{Key: "alice", Limit: 100, PeriodSeconds: 60}
	ctx := context.Background()
	if st, _ := lim.Take(ctx, "test", rl); st.Refused {
		t.Fatalf("refused with redis up: %+v", st)
	}
	srv.Kill()
	if _, err := s.Take(ctx, ratelimit.Rule{Key: "alice", Limit: 100, Period: time.Minute}, time.Now()); err == nil {
		t.Fatal("Take with redis down: no error")
	}
	st, _ := lim.Take(ctx, "test", rl)
	if !st.Refused || st.Code != enforce.ReasonStateDown {
		t.Fatalf("with redis down: %+v, want refused as %s", st, enforce.ReasonStateDown)
	}
	srv.Restart()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, _ := lim.Take(ctx, "test", rl)
		if !st.Refused {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery after redis restarted: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if observed.Load() < 4 || failed.Load() < 2 {
		t.Fatalf("observed %d calls, %d failed", observed.Load(), failed.Load())
	}
}

// TestTimeout points the store at a server that accepts and never answers:
// Take gives up at its deadline with an error.
func TestTimeout(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { _ = c.Close() })
		}
	}()
	c := redis.NewClient(&redis.Options{Addr: l.Addr().String(), ContextTimeoutEnabled: true, MaxRetries: -1})
	t.Cleanup(func() { _ = c.Close() })
	s := redisstore.New(c, redisstore.Options{Timeout: 50 * time.Millisecond})
	start := time.Now()
	res, err := s.Take(context.Background(), ratelimit.Rule{Key: "a", Limit: 1, Period: time.Second}, t0)
	if err == nil || res.Allowed {
		t.Fatalf("silent server: %+v, %v; want an error", res, err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Fatalf("Take took %v with a 50ms timeout", d)
	}
}

func TestGarbage(t *testing.T) {
	s, c, _ := newStore(t)
	ctx := context.Background()
	r := ratelimit.Rule{Key: "alice", Limit: 5, Period: time.Minute}
	for _, v := range []string{"garbage", "1.5", "nan", "inf", ""} {
		if err := c.Set(ctx, s.Key(r.Key), v, 0).Err(); err != nil {
			t.Fatal(err)
		}
		res, err := s.Take(ctx, r, t0)
		if err == nil || res.Allowed {
			t.Fatalf("state %q: %+v, %v; want an error", v, res, err)
		}
	}
	// Another type at the key is an error too.
	if err := c.Del(ctx, s.Key(r.Key)).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.LPush(ctx, s.Key(r.Key), "x").Err(); err != nil {
		t.Fatal(err)
	}
	if res, err := s.Take(ctx, r, t0); err == nil || res.Allowed {
		t.Fatalf("list at the key: %+v, %v; want an error", res, err)
	}
}

func TestKeys(t *testing.T) {
	s, c, _ := newStore(t)
	ctx := context.Background()
	huge := strings.Repeat("k", 1<<20)
	k := s.Key(huge)
	if len(k) != len("verdict:ratelimit:")+64 || !strings.HasPrefix(k, "verdict:ratelimit:") {
		t.Fatalf("key %q", k)
	}
	// Rules bound keys to MaxKeyLen: a 1 MiB key is refused as invalid, a
	// key of MaxKeyLen is stored under its bounded hash.
	if _, err := s.Take(ctx, ratelimit.Rule{Key: huge, Limit: 1, Period: time.Second}, t0); !errors.Is(err, ratelimit.ErrInvalidRule) {
		t.Fatalf("1 MiB key: %v, want ErrInvalidRule", err)
	}
	long := strings.Repeat("\r\n*1\r\n$4\r\nPING ", ratelimit.MaxKeyLen)[:ratelimit.MaxKeyLen]
	if _, err := s.Take(ctx, ratelimit.Rule{Key: long, Limit: 1, Period: time.Minute}, t0); err != nil {
		t.Fatal(err)
	}
	keys, err := c.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0] != s.Key(long) {
		t.Fatalf("keys %q", keys)
	}
	ttl, err := c.PTTL(ctx, keys[0]).Result()
	if err != nil || ttl <= 0 || ttl > time.Minute {
		t.Fatalf("PTTL %v, %v: the key must expire when idle", ttl, err)
	}
	if s.Key("a") == s.Key("b") || redisstore.New(c, redisstore.Options{Prefix: "x:"}).Key("a") != "x:ratelimit:"+s.Key("a")[len("verdict:ratelimit:"):] {
		t.Fatal("keys: prefix or hash")
	}
}

func TestTimeRange(t *testing.T) {
	s, _, _ := newStore(t)
	r := ratelimit.Rule{Key: "a", Limit: 1, Period: time.Second}
	for _, now := range []time.Time{{}, time.Date(1999, 12, 31, 0, 0, 0, 0, time.UTC), time.Date(2250, 1, 1, 0, 0, 0, 0, time.UTC)} {
		if _, err := s.Take(context.Background(), r, now); err == nil {
			t.Fatalf("time %v: no error", now)
		}
	}
}

// TestScriptFlushed checks the fallback from EVALSHA to EVAL when Redis no
// longer has the script (a restart, SCRIPT FLUSH).
func TestScriptFlushed(t *testing.T) {
	s, c, _ := newStore(t)
	ctx := context.Background()
	r := ratelimit.Rule{Key: "alice", Limit: 2, Period: time.Minute}
	for i, want := range []bool{true, true, false} {
		if err := c.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		res, err := s.Take(ctx, r, t0)
		if err != nil || res.Allowed != want {
			t.Fatalf("request %d after SCRIPT FLUSH: %+v, %v", i+1, res, err)
		}
	}
}
