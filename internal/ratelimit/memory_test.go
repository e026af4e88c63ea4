package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"
)

func TestNewMemoryOptions(t *testing.T) {
	tests := []struct {
		opts             MemoryOptions
		shards, capacity int
	}{
		{MemoryOptions{}, DefaultShards, DefaultMaxKeys / DefaultShards},
		{MemoryOptions{MaxKeys: -1, Shards: -1}, DefaultShards, DefaultMaxKeys / DefaultShards},
		{MemoryOptions{MaxKeys: 1 << 16}, 64, 1 << 10},
		{MemoryOptions{MaxKeys: 1000, Shards: 3}, 4, 250},
		{MemoryOptions{MaxKeys: 1000, Shards: 1}, 1, 1000},
		{MemoryOptions{MaxKeys: 10}, 8, 1},
		{MemoryOptions{MaxKeys: 1}, 1, 1},
		{MemoryOptions{MaxKeys: 1 << 30, Shards: 1 << 30}, maxShards, 1 << 14},
	}
	for _, tt := range tests {
		m := NewMemory(tt.opts)
		if len(m.shards) != tt.shards || m.mask != uint64(tt.shards-1) {
			t.Errorf("%+v: %d shards, mask %#x; want %d", tt.opts, len(m.shards), m.mask, tt.shards)
		}
		for i := range m.shards {
			if m.shards[i].capacity != tt.capacity {
				t.Fatalf("%+v: shard capacity %d, want %d", tt.opts, m.shards[i].capacity, tt.capacity)
			}
		}
	}
}

func TestMemoryKeysIndependent(t *testing.T) {
	ctx := context.Background()
	m := NewMemory(MemoryOptions{})
	a := Rule{Key: "alice:crm/export_contacts", Limit: 3, Period: time.Minute}
	b := Rule{Key: "bob:crm/export_contacts", Limit: 3, Period: time.Minute}
	for range 3 {
		if res, _ := m.Take(ctx, a, t0); !res.Allowed {
			t.Fatal("a refused within its burst")
		}
	}
	if res, _ := m.Take(ctx, a, t0); res.Allowed {
		t.Fatal("a allowed beyond its burst")
	}
	if res, _ := m.Take(ctx, b, t0); !res.Allowed || res.Remaining != 2 {
		t.Fatalf("b after a was exhausted: %+v, want allowed with 2 remaining", res)
	}
	if res, _ := m.Take(ctx, a, t0); res.Allowed {
		t.Fatal("a allowed after b's request")
	}
}

func TestMemoryKeyIsCloned(t *testing.T) {
	m := NewMemory(MemoryOptions{})
	buf := []byte("alice:crm/export_contacts")
	r := Rule{Key: string(buf), Limit: 1, Period: time.Minute}
	if _, err := m.Take(context.Background(), r, t0); err != nil {
		t.Fatal(err)
	}
	for k := range m.shards[m.shardIndex(r.Key)].tats {
		if k == r.Key && unsafeSameData(k, r.Key) {
			t.Fatal("stored key shares the request's bytes")
		}
	}
}

func TestMemoryInvalid(t *testing.T) {
	m := NewMemory(MemoryOptions{})
	_, err := m.Take(context.Background(), Rule{Key: "k", Limit: 0, Period: time.Minute}, t0)
	if !errors.Is(err, ErrInvalidRule) {
		t.Fatalf("Take with limit 0: %v, want ErrInvalidRule", err)
	}
	if _, err := m.Take(context.Background(), Rule{Key: "k", Limit: 1, Period: time.Minute}, time.Time{}); err == nil || errors.Is(err, ErrInvalidRule) {
		t.Fatalf("Take at the zero time: %v, want an out of range error", err)
	}
	if st := m.Stats(); st.Keys != 0 {
		t.Fatalf("failed Takes stored %d keys", st.Keys)
	}
	if n := m.Sweep(time.Time{}); n != 0 {
		t.Fatalf("Sweep at the zero time dropped %d", n)
	}
}

func TestMemoryTakeDoesNotAllocate(t *testing.T) {
	ctx := context.Background()
	m := NewMemory(MemoryOptions{})
	r := Rule{Key: "alice:crm/export_contacts", Limit: 100, Period: time.Second}
	if _, err := m.Take(ctx, r, t0); err != nil {
		t.Fatal(err)
	}
	now := t0
	// Allowed and refused, on a held key.
	for _, step := range []time.Duration{10 * time.Millisecond, 0} {
		if n := testing.AllocsPerRun(1000, func() {
			now = now.Add(step)
			if _, err := m.Take(ctx, r, now); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("Take every %v: %v allocations, want 0", step, n)
		}
	}
}

// TestMemoryConcurrentOneKey hammers one key from many goroutines at one
// instant: exactly the burst is allowed.
func TestMemoryConcurrentOneKey(t *testing.T) {
	ctx := context.Background()
	m := NewMemory(MemoryOptions{})
	r := Rule{Key: "hot", Limit: 10, Period: time.Minute, Burst: 137}
	const goroutines, each = 8, 500
	var n atomic.Int64
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for range each {
				res, err := m.Take(ctx, r, t0)
				if err != nil {
					t.Error(err)
					return
				}
				if res.Allowed {
					n.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if n.Load() != r.Burst {
		t.Fatalf("%d allowed, want the burst %d", n.Load(), r.Burst)
	}
}

// TestMemoryConcurrentKeys runs goroutines over a shared key and their own
// new keys, with a clock moving on, sweeping and reading stats, in a store
// small enough to evict (for -race): new keys are always allowed, the store
// stays within MaxKeys.
func TestMemoryConcurrentKeys(t *testing.T) {
	ctx := context.Background()
	m := NewMemory(MemoryOptions{MaxKeys: 256, Shards: 4})
	const goroutines, each = 4, 2000
	var shared atomic.Int64
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				now := t0.Add(time.Duration(i) * time.Microsecond)
				if res, _ := m.Take(ctx, Rule{Key: "shared", Limit: 1, Period: time.Hour, Burst: 50}, now); res.Allowed {
					shared.Add(1)
				}
				own := Rule{Key: fmt.Sprintf("g%d-%d", g, i), Limit: 1, Period: time.Hour}
				if res, err := m.Take(ctx, own, now); err != nil || !res.Allowed {
					t.Errorf("new key %s: %+v, %v", own.Key, res, err)
					return
				}
				if i%500 == 0 {
					m.Sweep(now)
					m.Stats()
				}
			}
		})
	}
	wg.Wait()
	// "shared" may have been evicted (and forgiven) among the flood of own
	// keys, so it got at least its burst.
	st := m.Stats()
	if shared.Load() < 50 || st.Keys > 256 || st.Evicted == 0 {
		t.Fatalf("shared allowed %d times, stats %+v", shared.Load(), st)
	}
}

// TestMemoryBounded takes a million distinct keys into a store of 65536:
// it holds at most that many, counts the evictions, and its heap stays
// within what the keys it holds cost. It takes about 1s, but 3.5s with
// -race, so -short takes a quarter of the keys (still four times MaxKeys).
func TestMemoryBounded(t *testing.T) {
	const maxKeys = 1 << 16
	total := 1_000_000
	if testing.Short() {
		total = 250_000
	}
	ctx := context.Background()
	before := heapInUse()
	m := NewMemory(MemoryOptions{MaxKeys: maxKeys})
	r := Rule{Limit: 60, Period: time.Hour}
	buf := make([]byte, 0, 64)
	for i := range total {
		buf = strconv.AppendInt(append(buf[:0], "user-"...), int64(i), 10)
		buf = append(buf, ":crm/export_contacts"...)
		r.Key = string(buf)
		// All within a second: every key stays live.
		if res, err := m.Take(ctx, r, t0.Add(time.Duration(i)*time.Microsecond)); err != nil || !res.Allowed {
			t.Fatalf("key %d: %+v, %v", i, res, err)
		}
	}
	st := m.Stats()
	after := heapInUse()
	runtime.KeepAlive(m)
	if st.Keys > maxKeys || st.Keys < maxKeys*9/10 {
		t.Errorf("Keys = %d, want at most %d and near it", st.Keys, maxKeys)
	}
	if st.Evicted == 0 || st.Evicted+uint64(st.Keys) != uint64(total) || st.Expired != 0 {
		t.Errorf("stats %+v: want %d evicted and none expired", st, total-st.Keys)
	}
	// Keys of 26-32 bytes: about 65 bytes each (see TestMemoryBytesPerKey);
	// allow twice that for the map's growth steps.
	used := after - before
	t.Logf("%d keys: heap %d bytes, %d bytes/key", st.Keys, used, used/int64(st.Keys))
	if limit := int64(maxKeys * 128); used > limit {
		t.Errorf("heap grew %d bytes, more than %d", used, limit)
	}
}

// TestMemoryBytesPerKey measures the heap per stored key, for the
// documentation of MaxKeys.
func TestMemoryBytesPerKey(t *testing.T) {
	if testing.Short() {
		t.Skip("measurement")
	}
	for _, keyLen := range []int{25, MaxKeyLen} {
		ctx := context.Background()
		before := heapInUse()
		m := NewMemory(MemoryOptions{})
		r := Rule{Limit: 60, Period: time.Minute}
		pad := make([]byte, keyLen)
		for i := range pad {
			pad[i] = 'k'
		}
		for i := range DefaultMaxKeys {
			b := strconv.AppendInt(pad[:0], int64(i), 10)
			r.Key = string(pad[:max(len(b), keyLen)])
			if _, err := m.Take(ctx, r, t0); err != nil {
				t.Fatal(err)
			}
		}
		st := m.Stats()
		used := heapInUse() - before
		runtime.KeepAlive(m)
		perKey := used / int64(st.Keys)
		t.Logf("keys of %d bytes: %d keys, %.1f MiB, %d bytes/key", keyLen, st.Keys, float64(used)/(1<<20), perKey)
		// Keys spread unevenly: a few shards fill before the others.
		if st.Keys > DefaultMaxKeys || st.Keys < DefaultMaxKeys*98/100 {
			t.Errorf("stats %+v: want about %d keys", st, DefaultMaxKeys)
		}
		if limit := int64(keyLen) + 80; perKey > limit {
			t.Errorf("%d bytes/key, more than %d", perKey, limit)
		}
	}
}

func heapInUse() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// fill takes n distinct keys ("k0", "k1", ...) at now with rule r.
func fill(t *testing.T, m *Memory, r Rule, n int, now time.Time) {
	t.Helper()
	for i := range n {
		r.Key = "k" + strconv.Itoa(i)
		if res, err := m.Take(context.Background(), r, now); err != nil || !res.Allowed {
			t.Fatalf("%s: %+v, %v", r.Key, res, err)
		}
	}
}

// TestMemoryIdleReclaimedByInsert fills a store, lets every key go idle,
// and takes as many new keys: the idle ones make room, nothing live is
// evicted.
func TestMemoryIdleReclaimedByInsert(t *testing.T) {
	const maxKeys = 1024
	m := NewMemory(MemoryOptions{MaxKeys: maxKeys, Shards: 4})
	r := Rule{Limit: 10, Period: time.Minute}
	fill(t, m, r, 4*maxKeys, t0) // full, with evictions
	st := m.Stats()
	if st.Keys != maxKeys || st.Expired != 0 {
		t.Fatalf("after filling: %+v", st)
	}
	evicted := st.Evicted
	// Each key owes one interval, 6s: idle from t0+6s. The first new key
	// in each shard sweeps it, as its last sweep is more than 1s old.
	later := t0.Add(6 * time.Second)
	for i := range maxKeys / 2 {
		r.Key = "new" + strconv.Itoa(i)
		if res, _ := m.Take(context.Background(), r, later); !res.Allowed {
			t.Fatalf("%s refused", r.Key)
		}
	}
	st = m.Stats()
	if st.Evicted != evicted {
		t.Errorf("%d live keys evicted while idle ones were there", st.Evicted-evicted)
	}
	if st.Expired != maxKeys || st.Keys != maxKeys/2 {
		t.Errorf("stats %+v: want all %d idle keys expired, and the %d new ones held", st, maxKeys, maxKeys/2)
	}
}

// TestMemoryPartlyIdle fills a store with half idle, half live keys: new
// keys take the idle keys' room first.
func TestMemoryPartlyIdle(t *testing.T) {
	const maxKeys = 4096
	m := NewMemory(MemoryOptions{MaxKeys: maxKeys, Shards: 1})
	short := Rule{Limit: 10, Period: time.Minute}     // idle after 6s
	long := Rule{Limit: 10, Period: 10 * time.Minute} // idle after 60s
	for i := range maxKeys {
		r := short
		if i%2 == 1 {
			r = long
		}
		r.Key = "k" + strconv.Itoa(i)
		if _, err := m.Take(context.Background(), r, t0); err != nil {
			t.Fatal(err)
		}
	}
	later := t0.Add(10 * time.Second)
	for i := range maxKeys / 2 {
		r := short
		r.Key = "new" + strconv.Itoa(i)
		if _, err := m.Take(context.Background(), r, later); err != nil {
			t.Fatal(err)
		}
	}
	// The first new key sweeps the shard (its last sweep is more than a
	// second old): the idle half makes room for all the new keys.
	if st := m.Stats(); st.Expired != maxKeys/2 || st.Evicted != 0 || st.Keys != maxKeys {
		t.Errorf("stats %+v: want the %d idle keys expired and no evictions", st, maxKeys/2)
	}
}

// TestMemorySampleFindsIdle fills a shard half with keys that go idle
// after a second and half with live ones, then takes new keys when no sweep
// is due: the samples alone find idle keys to drop.
func TestMemorySampleFindsIdle(t *testing.T) {
	const maxKeys, added = 4096, 512
	m := NewMemory(MemoryOptions{MaxKeys: maxKeys, Shards: 1})
	for i := range maxKeys {
		r := Rule{Key: "k" + strconv.Itoa(i), Limit: 1, Period: time.Hour}
		if i%2 == 0 {
			r.Period = time.Second
		}
		if _, err := m.Take(context.Background(), r, t0); err != nil {
			t.Fatal(err)
		}
	}
	later := t0.Add(time.Second)
	m.shards[0].lastSweep = later.UnixNano() // no sweep due by time
	for i := range added {
		r := Rule{Key: "new" + strconv.Itoa(i), Limit: 1, Period: time.Hour}
		if _, err := m.Take(context.Background(), r, later); err != nil {
			t.Fatal(err)
		}
	}
	st := m.Stats()
	// A sample of 8 finds no idle key with odds (1/2)^8 at first, about 2%
	// at the end: a few evictions at most.
	if st.Evicted > added/20 || st.Keys > maxKeys || st.Keys < maxKeys-sampleSize || st.Expired < added/2 {
		t.Errorf("stats %+v: want about %d expired and few evictions", st, added)
	}
	t.Logf("stats %+v", st)
}

func TestMemorySweep(t *testing.T) {
	ctx := context.Background()
	m := NewMemory(MemoryOptions{})
	fill(t, m, Rule{Limit: 10, Period: time.Minute}, 100, t0) // idle after 6s
	live := Rule{Key: "live", Limit: 1, Period: time.Hour}
	if res, _ := m.Take(ctx, live, t0); !res.Allowed {
		t.Fatal("live refused")
	}
	if n := m.Sweep(t0.Add(5 * time.Second)); n != 0 {
		t.Fatalf("Sweep before the keys are idle dropped %d", n)
	}
	if n := m.Sweep(t0.Add(6 * time.Second)); n != 100 {
		t.Fatalf("Sweep dropped %d, want 100", n)
	}
	if st := m.Stats(); st.Keys != 1 || st.Expired != 100 || st.Evicted != 0 {
		t.Fatalf("stats after Sweep: %+v", st)
	}
	if res, _ := m.Take(ctx, live, t0.Add(time.Minute)); res.Allowed {
		t.Fatal("Sweep forgot a live key")
	}
}

// TestMemoryEvictsSmallestTAT fills a one-shard store of 8 (the sample
// size, so the sample is the whole shard) with live keys owing different
// amounts: a new key evicts the one that owes least.
func TestMemoryEvictsSmallestTAT(t *testing.T) {
	ctx := context.Background()
	m := NewMemory(MemoryOptions{MaxKeys: sampleSize, Shards: 1})
	r := Rule{Limit: 10, Period: time.Minute}
	order := []int{5, 3, 7, 2, 4, 8, 6, 9} // requests per key
	for i, n := range order {
		r.Key = "k" + strconv.Itoa(i)
		for range n {
			if _, err := m.Take(ctx, r, t0); err != nil {
				t.Fatal(err)
			}
		}
	}
	r.Key = "new"
	if _, err := m.Take(ctx, r, t0); err != nil {
		t.Fatal(err)
	}
	s := &m.shards[0]
	if _, ok := s.tats["k3"]; ok || len(s.tats) != sampleSize {
		t.Fatalf("k3, which owed least, is still there: %v", s.tats)
	}
	if st := m.Stats(); st.Evicted != 1 || st.Expired != 0 {
		t.Fatalf("stats %+v, want one eviction", st)
	}
	// The evicted key is forgiven: it starts from a full burst.
	r.Key = "k3"
	if res, _ := m.Take(ctx, r, t0); !res.Allowed || res.Remaining != 9 {
		t.Fatalf("evicted key: %+v, want a full burst", res)
	}
}

func unsafeSameData(a, b string) bool { return unsafe.StringData(a) == unsafe.StringData(b) }
