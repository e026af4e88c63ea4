package gateway

import (
	"crypto/sha256"
	"encoding/hex"
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
	mu  sync.Mutex
	max int
	ttl time.Duration
	m   map[string]*session
}

func newSessions(max int, ttl time.Duration) *sessions {
	if max <= 0 {
		max = DefaultMaxSessions
	}
	if ttl <= 0 {
		ttl = DefaultSessionTTL
	}
	return &sessions{max: max, ttl: ttl, m: map[string]*session{}}
}

// ownerKey names a subject for session binding: its tenant and id.
func ownerKey(s *mcpv1.Subject) string {
	if s.GetId() == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(s.GetTenant() + "\x00" + s.GetId()))
	return hex.EncodeToString(sum[:8])
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

// add binds a new session id to owner, forgetting idle sessions (then the
// least recently used) to stay within the limit.
func (t *sessions) add(id, owner string, conn *Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.m) >= t.max {
		t.evictLocked(time.Now())
	}
	t.m[id] = &session{owner: owner, conn: conn}
}

func (t *sessions) evictLocked(now time.Time) {
	var oldest string
	var oldestAt time.Time
	for id, s := range t.m {
		if s.conn.idle(now, t.ttl) {
			delete(t.m, id)
			continue
		}
		s.conn.mu.Lock()
		at := s.conn.lastUsed
		s.conn.mu.Unlock()
		if oldest == "" || at.Before(oldestAt) {
			oldest, oldestAt = id, at
		}
	}
	if len(t.m) >= t.max && oldest != "" {
		delete(t.m, oldest)
	}
}

func (t *sessions) remove(id string) {
	t.mu.Lock()
	delete(t.m, id)
	t.mu.Unlock()
}

// sweep forgets sessions idle for longer than the TTL.
func (t *sessions) sweep(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, s := range t.m {
		if s.conn.idle(now, t.ttl) {
			delete(t.m, id)
		}
	}
}

// len is how many sessions are held.
func (t *sessions) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}
