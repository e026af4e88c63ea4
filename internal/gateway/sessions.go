package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/verdictpdp/verdict/internal/mcp"
	mcpv1 "github.com/verdictpdp/verdict/proto/verdict/mcp/v1"
)

// Defaults of the session table.
const (
	DefaultMaxSessions = 10000
	DefaultSessionTTL  = time.Hour
	// DefaultMaxSessionsPerOwner bounds one subject's sessions (and at
	// most a quarter of the table): past it, the subject's own least
	// recently used session is forgotten, never another subject's.
	DefaultMaxSessionsPerOwner = 64
)

// session is an upstream MCP session the gateway saw created: whose it is
// and its connection state.
type session struct {
	owner string
	conn  *Conn
}

// sessions binds upstream session ids to the subject that created them.
// The upstream never sees the caller's token (MCP forbids passing it
// through), so it cannot tell callers apart: the gateway refuses a session
// id presented by anyone but its creator, and one it did not see created.
type sessions struct {
	mu       sync.Mutex
	max      int
	perOwner int
	ttl      time.Duration
	m        map[string]*session
	owned    map[string]int // sessions per owner
}

func newSessions(limit int, ttl time.Duration) *sessions {
	if limit <= 0 {
		limit = DefaultMaxSessions
	}
	if ttl <= 0 {
		ttl = DefaultSessionTTL
	}
	return &sessions{
		max: limit, perOwner: max(1, min(DefaultMaxSessionsPerOwner, limit/4)), ttl: ttl,
		m: map[string]*session{}, owned: map[string]int{},
	}
}

// ownerKey names a subject for session binding: its tenant and id, each
// length-prefixed so that no two pairs run together.
func ownerKey(s *mcpv1.Subject) string {
	if s.GetId() == "" {
		return ""
	}
	h := sha256.New()
	for _, part := range []string{s.GetTenant(), s.GetId()} {
		_, _ = fmt.Fprintf(h, "%d:%s", len(part), part)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// validSessionID reports whether id may be used as MCP says: visible
// ASCII, bounded.
func validSessionID(id string) bool {
	return id != "" && len(id) <= mcp.MaxSessionIDBytes &&
		strings.IndexFunc(id, func(c rune) bool { return c < 0x21 || c > 0x7e }) < 0
}

// get returns the session id's connection when owner created it.
func (t *sessions) get(id, owner string) (*Conn, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.m[id]
	if !ok || s.owner != owner {
		return nil, false
	}
	return s.conn, true
}

// add binds a new session id to owner. An owner past its bound forgets
// its own least recently used session; a full table forgets idle sessions,
// then the least recently used one.
func (t *sessions) add(id, owner string, conn *Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	if t.owned[owner] >= t.perOwner {
		t.evictLocked(now, owner)
	}
	if len(t.m) >= t.max {
		t.evictLocked(now, "")
	}
	if old, ok := t.m[id]; ok {
		t.owned[old.owner]--
	}
	t.m[id] = &session{owner: owner, conn: conn}
	t.owned[owner]++
}

// evictLocked forgets the least recently used session of owner (any
// owner's when empty), and every idle one it passes.
func (t *sessions) evictLocked(now time.Time, owner string) {
	var oldest string
	var oldestAt time.Time
	for id, s := range t.m {
		if owner != "" && s.owner != owner {
			continue
		}
		if s.conn.idle(now, t.ttl) {
			t.deleteLocked(id)
			continue
		}
		s.conn.mu.Lock()
		at := s.conn.lastUsed
		s.conn.mu.Unlock()
		if oldest == "" || at.Before(oldestAt) {
			oldest, oldestAt = id, at
		}
	}
	full := len(t.m) >= t.max
	if owner != "" {
		full = t.owned[owner] >= t.perOwner
	}
	if full && oldest != "" {
		t.deleteLocked(oldest)
	}
}

func (t *sessions) deleteLocked(id string) {
	if s, ok := t.m[id]; ok {
		delete(t.m, id)
		if t.owned[s.owner]--; t.owned[s.owner] <= 0 {
			delete(t.owned, s.owner)
		}
	}
}

func (t *sessions) remove(id string) {
	t.mu.Lock()
	t.deleteLocked(id)
	t.mu.Unlock()
}

// sweep forgets sessions idle for longer than the TTL.
func (t *sessions) sweep(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, s := range t.m {
		if s.conn.idle(now, t.ttl) {
			t.deleteLocked(id)
		}
	}
}

// len is how many sessions are held.
func (t *sessions) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}
