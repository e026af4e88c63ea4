package extmcp

import (
	"slices"
	"sync"
	"time"

	"github.com/verdictpdp/verdict/internal/mcp"
)

// Defaults of the pending-request store.
const (
	DefaultPendingEntries = 10_000
	DefaultPendingBytes   = 64 << 20
	DefaultPendingTTL     = 15 * time.Minute
)

// pendingRequest is an allowed request whose response the gateway may
// send to CheckResponse: agentgateway's McpResponse carries the result
// alone, so the request (subject, tool name, arguments) is remembered under
// the decision id CheckRequest returned in its metadata.
type pendingRequest struct {
	req      mcp.Request
	services []string
	size     int
	expires  time.Time
}

// pending holds the remembered requests in memory, bounded by count, by an
// estimate of their size and by age; the oldest go first. It runs no
// goroutine: expired entries are dropped as new ones come in.
type pending struct {
	mu      sync.Mutex
	entries map[string]*pendingRequest
	// order holds decision ids from order[head], oldest first; ids already
	// taken stay until they reach the front or the slice is compacted.
	order    []string
	head     int
	bytes    int
	maxCount int
	maxBytes int
	ttl      time.Duration
	now      func() time.Time
}

func newPending(maxCount, maxBytes int, ttl time.Duration, now func() time.Time) *pending {
	if maxCount <= 0 {
		maxCount = DefaultPendingEntries
	}
	if maxBytes <= 0 {
		maxBytes = DefaultPendingBytes
	}
	if ttl <= 0 {
		ttl = DefaultPendingTTL
	}
	return &pending{entries: map[string]*pendingRequest{}, maxCount: maxCount, maxBytes: maxBytes, ttl: ttl, now: now}
}

// put remembers r for the services under id; size is an estimate of what it
// holds in bytes. A request larger than the whole store is not remembered:
// its response will be refused.
func (p *pending) put(id string, r mcp.Request, services []string, size int) {
	if size > p.maxBytes {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	p.dropFront(func(e *pendingRequest) bool {
		return !now.Before(e.expires) || len(p.entries) >= p.maxCount || p.bytes+size > p.maxBytes
	})
	if old, ok := p.entries[id]; ok {
		p.bytes -= old.size // decision ids are unique: cannot happen
	}
	p.entries[id] = &pendingRequest{req: r, services: slices.Clone(services), size: size, expires: now.Add(p.ttl)}
	p.order = append(p.order, id)
	p.bytes += size
	p.compact()
}

// take returns and forgets the request remembered under id, if it has not
// expired: a response is checked once.
func (p *pending) take(id string) (*pendingRequest, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e, ok := p.entries[id]
	if !ok {
		return nil, false
	}
	delete(p.entries, id)
	p.bytes -= e.size
	if !p.now().Before(e.expires) {
		return nil, false
	}
	return e, true
}

// dropFront removes entries from the front of the order while evict says
// so, skipping ids already taken.
func (p *pending) dropFront(evict func(*pendingRequest) bool) {
	for ; p.head < len(p.order); p.head++ {
		id := p.order[p.head]
		e, ok := p.entries[id]
		if ok && !evict(e) {
			break
		}
		if ok {
			delete(p.entries, id)
			p.bytes -= e.size
		}
		p.order[p.head] = ""
	}
}

// compact keeps the order slice within a small multiple of the live
// entries: the ids before head are gone, and ids taken out of order are
// dropped once they outnumber the live ones.
func (p *pending) compact() {
	live := len(p.order) - p.head
	if p.head < max(1024, live) && live <= 2*len(p.entries)+1024 {
		return
	}
	out := make([]string, 0, len(p.entries)+len(p.entries)/2)
	for _, id := range p.order[p.head:] {
		if _, ok := p.entries[id]; ok {
			out = append(out, id)
		}
	}
	p.order, p.head = out, 0
}
