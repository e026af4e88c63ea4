package extmcp

import (
	"strconv"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/internal/mcp"
)

// TestPendingBounds: the store keeps at most its count and bytes, forgets
// the oldest first and expired entries always, answers each id once, and
// its bookkeeping stays in proportion to what it holds whatever the order
// entries are taken in.
func TestPendingBounds(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	req := mcp.Request{Method: "tools/call", Server: "crm"}

	t.Run("count", func(t *testing.T) {
		t.Parallel()
		p := newPending(100, 1<<30, time.Hour, clock)
		for i := range 10_000 {
			p.put(strconv.Itoa(i), req, []string{"crm"}, 10)
			if i%3 == 0 {
				p.take(strconv.Itoa(i)) // out of order
			}
		}
		if n := len(p.entries); n > 100 {
			t.Fatalf("%d entries, limit 100", n)
		}
		if live := len(p.order) - p.head; live > 2*len(p.entries)+1024 {
			t.Fatalf("order holds %d ids for %d entries", live, len(p.entries))
		}
		if p.bytes != 10*len(p.entries) {
			t.Fatalf("bytes %d for %d entries of 10", p.bytes, len(p.entries))
		}
		if _, ok := p.take("9998"); !ok {
			t.Fatal("the newest entry is gone")
		}
		if _, ok := p.take("9998"); ok {
			t.Fatal("an entry answered twice")
		}
		if _, ok := p.take("5"); ok {
			t.Fatal("an old entry survived")
		}
	})
	t.Run("bytes", func(t *testing.T) {
		t.Parallel()
		p := newPending(1000, 100, time.Hour, clock)
		for i := range 10 {
			p.put(strconv.Itoa(i), req, nil, 30)
		}
		if p.bytes > 100 || len(p.entries) != 3 {
			t.Fatalf("%d entries of %d bytes, want the 3 newest within 100", len(p.entries), p.bytes)
		}
		p.put("huge", req, nil, 101)
		if _, ok := p.take("huge"); ok {
			t.Fatal("an entry larger than the store was kept")
		}
	})
	t.Run("age", func(t *testing.T) {
		t.Parallel()
		at := now
		p := newPending(1000, 1<<30, time.Minute, func() time.Time { return at })
		p.put("old", req, nil, 1)
		at = at.Add(2 * time.Minute)
		if _, ok := p.take("old"); ok {
			t.Fatal("an expired entry answered")
		}
		p.put("a", req, nil, 1)
		at = at.Add(2 * time.Minute)
		p.put("b", req, nil, 1)
		if _, ok := p.entries["a"]; ok {
			t.Fatal("an expired entry is still held after a put")
		}
	})
}
