// Package session keeps what each MCP session has done, so that policy can
// judge a call by what came before it: the most sensitive classification
// of data the session read and where, the data categories it read, the
// tools it called with counts, and the data-loss findings in the results
// it received. Policy reads it as input.session (see docs/policies.md).
//
// A session is keyed by tenant, subject and MCP session id; a caller
// without a session id has one session per tenant and subject. Keys are
// hashed, so one caller's state can never be read under another's key.
// State lives in go-memdb with an idle TTL and bounded size: at most
// MaxPerSubject sessions per subject (the least recently used one beyond
// it is folded into the subject's overflow record, whose reads every
// session of the subject then carries: evicting a session never forgets
// what it read) and MaxSessions in all (beyond it, the least recently
// used sessions are forgotten early and counted).
//
// Store keeps that state in one process's memory and never fails. Redis
// keeps it on Redis with the same semantics for what policy reads, so that
// replicas share it; its reads and records can fail, and the MCP decider
// then refuses the call (see Redis and pipeline.SessionRecorder).
package session

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	memdb "github.com/hashicorp/go-memdb"

	"github.com/verdictpdp/verdict/internal/mcp"
	"github.com/verdictpdp/verdict/internal/pipeline"
)

// Defaults and bounds.
const (
	DefaultTTL           = 30 * time.Minute
	DefaultMaxSessions   = 20_000
	DefaultMaxPerSubject = 64
	// MaxTools, MaxCategories and MaxFindings bound one session's maps:
	// names beyond them are not recorded (their calls still count).
	MaxTools      = 256
	MaxCategories = 64
	MaxFindings   = 64
	// MaxNameBytes bounds a recorded tool, category or detector name.
	MaxNameBytes = 256
)

// Levels orders the library's classifications; an unknown one counts as
// restricted, as the library treats it.
var Levels = map[string]int{"public": 0, "internal": 1, "confidential": 2, "restricted": 3}

func level(c string) int {
	if l, ok := Levels[c]; ok {
		return l
	}
	return Levels["restricted"]
}

// Scopes: what one state is kept for.
const (
	// ScopeSession keeps one state per MCP session (and one for a
	// subject's calls without a session id).
	ScopeSession = "session"
	// ScopeSubject keeps one state per tenant and subject, whatever the
	// session: a read in one session counts in all of the caller's
	// sessions (MCP over Envoy with one route per server, where each
	// server gives the client a session id of its own).
	ScopeSubject = "subject"
)

// Options configure a Store.
type Options struct {
	// Scope is ScopeSession (default) or ScopeSubject.
	Scope string
	// TTL is how long a session is kept after its last recorded call.
	TTL           time.Duration
	MaxSessions   int
	MaxPerSubject int
	Now           func() time.Time
}

// Stats are counters for metrics.
type Stats struct {
	Sessions int    `json:"sessions"`
	Evicted  uint64 `json:"evicted"` // forgotten early because the table was full
	Folded   uint64 `json:"folded"`  // folded into a subject's overflow record
	Expired  uint64 `json:"expired"`
}

// record is one session's state. What policy reads of it (the reads and
// findings) is immutable once inserted: a change inserts a copy. The
// call counters change on every call and live in activity, shared by the
// copies, so that a call that reads nothing new writes no transaction.
type record struct {
	Key     string // hash of tenant, subject and session id
	Subject string // hash of tenant and subject
	// Overflow marks the subject's overflow record.
	Overflow bool

	Classification string
	Source         string // the first target read at Classification
	Categories     map[string]string
	Findings       map[string]int
	Started        time.Time
	// Seen indexes the record by age for expiry and eviction; it is
	// refreshed when it lags the last call by more than refreshAfter
	// (activity.last is exact).
	Seen int64

	act *activity
}

// activity is a session's call counters.
type activity struct {
	mu    sync.Mutex
	calls int
	tools map[string]int
	last  atomic.Int64 // unix nanoseconds of the last update
}

func newActivity(now int64) *activity {
	a := &activity{}
	a.last.Store(now)
	return a
}

func (r *record) clone() *record {
	c := *r
	c.Categories = maps.Clone(r.Categories)
	c.Findings = maps.Clone(r.Findings)
	return &c
}

func (r *record) tainted() bool {
	return r.Classification != "" || len(r.Categories) > 0 || len(r.Findings) > 0
}

var schema = &memdb.DBSchema{Tables: map[string]*memdb.TableSchema{
	"sessions": {
		Name: "sessions",
		Indexes: map[string]*memdb.IndexSchema{
			"id":      {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Key"}},
			"subject": {Name: "subject", Indexer: &memdb.StringFieldIndex{Field: "Subject"}},
			"seen":    {Name: "seen", Indexer: &memdb.IntFieldIndex{Field: "Seen"}},
		},
	},
}}

// Store keeps session state; it is safe for concurrent use.
type Store struct {
	db   *memdb.MemDB
	mu   sync.Mutex // serialises writers
	opts Options

	count                   atomic.Int64
	evicted, folded, expire atomic.Uint64
}

// New returns an empty store.
func New(o Options) (*Store, error) {
	o.TTL = cmp.Or(o.TTL, DefaultTTL)
	o.MaxSessions = cmp.Or(o.MaxSessions, DefaultMaxSessions)
	o.MaxPerSubject = cmp.Or(o.MaxPerSubject, DefaultMaxPerSubject)
	if o.Now == nil {
		o.Now = time.Now
	}
	o.Scope = cmp.Or(o.Scope, ScopeSession)
	if o.Scope != ScopeSession && o.Scope != ScopeSubject {
		return nil, errors.New("session: scope must be session or subject")
	}
	if o.TTL < 0 || o.MaxSessions < 1 || o.MaxPerSubject < 1 {
		return nil, errors.New("session: ttl, max sessions and max per subject must be positive")
	}
	db, err := memdb.NewMemDB(schema)
	if err != nil {
		return nil, err
	}
	return &Store{db: db, opts: o}, nil
}

func hash(parts ...string) string {
	var buf [512]byte
	b := buf[:0]
	for _, p := range parts {
		b = binary.AppendUvarint(b, uint64(len(p)))
		b = append(b, p...)
	}
	sum := sha256.Sum256(b)
	return string(sum[:])
}

func (s *Store) keys(tenant, subject, session string) (key, subj string) {
	if s.opts.Scope == ScopeSubject {
		session = ""
	}
	return keys(tenant, subject, session)
}

func keys(tenant, subject, session string) (key, subj string) {
	subj = hash(tenant, subject)
	return hash(tenant, subject, "s", session), subj
}

func overflowKey(subj string) string { return hash(subj, "overflow") }

func (s *Store) live(r *record, now time.Time) bool {
	return r != nil && now.UnixNano()-r.act.last.Load() < int64(s.opts.TTL)
}

// refreshAfter is how far a record's Seen may lag its last call.
func (s *Store) refreshAfter() int64 { return int64(s.opts.TTL) / 16 }

func (s *Store) get(txn *memdb.Txn, key string) *record {
	v, err := txn.First("sessions", "id", key)
	if err != nil || v == nil {
		return nil
	}
	return v.(*record)
}

// SessionInput implements mcp.SessionState: input.session's members for
// the session, with the subject's overflow record merged in. It never
// fails.
func (s *Store) SessionInput(_ context.Context, tenant, subject, session string) (map[string]any, error) {
	key, subj := s.keys(tenant, subject, session)
	now := s.opts.Now()
	txn := s.db.Txn(false)
	r := s.get(txn, key)
	if !s.live(r, now) {
		r = nil
	}
	if of := s.get(txn, overflowKey(subj)); s.live(of, now) {
		if r == nil {
			r = &record{} // no calls of its own
		} else {
			r = r.clone()
		}
		merge(r, of)
	}
	if r == nil {
		return nil, nil
	}
	calls, tools := 0, map[string]any(nil)
	if a := r.act; a != nil {
		a.mu.Lock()
		calls = a.calls
		if len(a.tools) > 0 {
			tools = make(map[string]any, len(a.tools))
			for k, v := range a.tools {
				tools[k] = v
			}
		}
		a.mu.Unlock()
	}
	return input(r, calls, tools), nil
}

// input is input.session's state members for r.
func input(r *record, calls int, tools map[string]any) map[string]any {
	in := map[string]any{"calls": calls}
	if tools != nil {
		in["tools"] = tools
	}
	if r.Classification != "" {
		in["classification"] = r.Classification
		in["classification_source"] = r.Source
	}
	if len(r.Categories) > 0 {
		m := make(map[string]any, len(r.Categories))
		for k, v := range r.Categories {
			m[k] = v
		}
		in["categories"] = m
	}
	if len(r.Findings) > 0 {
		m := make(map[string]any, len(r.Findings))
		for k, v := range r.Findings {
			m[k] = v
		}
		in["findings"] = m
	}
	if !r.Started.IsZero() {
		in["started_at"] = r.Started.UTC().Format(time.RFC3339)
	}
	return in
}

// merge adds what src read to dst (not its calls).
func merge(dst, src *record) {
	if src.Classification != "" && (dst.Classification == "" || level(src.Classification) > level(dst.Classification)) {
		dst.Classification, dst.Source = src.Classification, src.Source
	}
	for k, v := range src.Categories {
		if _, ok := dst.Categories[k]; !ok && len(dst.Categories) < MaxCategories {
			if dst.Categories == nil {
				dst.Categories = map[string]string{}
			}
			dst.Categories[k] = v
		}
	}
	for k, v := range src.Findings {
		if _, ok := dst.Findings[k]; ok || len(dst.Findings) < MaxFindings {
			if dst.Findings == nil {
				dst.Findings = map[string]int{}
			}
			dst.Findings[k] += v
		}
	}
}

// records reports whether ob changes a session's state: an allowed read
// (tools/call, resources/read, prompts/get) or an allowed result with
// findings.
func records(ob *mcp.Observation) bool {
	if ob.Subject == "" || ob.Verdict != pipeline.Allow || ob.Failed || ob.Unverified {
		return false
	}
	switch ob.Stage {
	case mcp.StageCall:
		switch ob.Method {
		case mcp.MethodToolsCall, mcp.MethodResourcesRead, mcp.MethodPromptsGet:
			return ob.Target != ""
		}
	case mcp.StageResult:
		return len(ob.Findings) > 0
	case mcp.StageList:
		// A listing reads definitions, not data.
	}
	return false
}

// Observe implements mcp.Observer: it records allowed reads and the
// findings of delivered results. A call that reads nothing new only
// counts; a new read, finding or session writes one transaction.
func (s *Store) Observe(_ context.Context, ob *mcp.Observation) {
	if !records(ob) {
		return
	}
	key, subj := s.keys(ob.Tenant, ob.Subject, ob.Session)
	now := s.opts.Now()
	nowNS := now.UnixNano()
	var tool string
	if ob.Stage == mcp.StageCall && ob.Method == mcp.MethodToolsCall {
		tool = bounded(ob.Server + "/" + ob.Target)
	}
	if old := s.get(s.db.Txn(false), key); s.live(old, now) && !changes(old, ob) && nowNS-old.Seen < s.refreshAfter() {
		old.act.count(ob, tool, nowNS)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	txn := s.db.Txn(true)
	defer txn.Abort()
	old := s.get(txn, key)
	var r *record
	if s.live(old, now) {
		r = old.clone()
	} else {
		r = &record{Key: key, Subject: subj, Started: now, act: newActivity(nowNS)}
		// A new session carries what the subject's folded sessions read:
		// a folded session used again must not come back clean, and its
		// reads then last as long as it is active.
		if of := s.get(txn, overflowKey(subj)); s.live(of, now) {
			merge(r, of)
		}
	}
	r.Seen = nowNS
	apply(r, ob)
	if old == nil && !s.makeRoom(txn, subj, now) {
		return
	}
	if err := txn.Insert("sessions", r); err != nil {
		return
	}
	if old == nil {
		s.count.Add(1)
	}
	txn.Commit()
	r.act.count(ob, tool, nowNS)
}

// count adds a call (and its tool) to the counters.
func (a *activity) count(ob *mcp.Observation, tool string, now int64) {
	a.last.Store(now)
	if ob.Stage != mcp.StageCall {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls++
	if tool == "" {
		return
	}
	if _, ok := a.tools[tool]; ok || len(a.tools) < MaxTools {
		if a.tools == nil {
			a.tools = map[string]int{}
		}
		a.tools[tool]++
	}
}

// changes reports whether ob changes what policy reads of r: a more
// sensitive class, a new category, or findings.
func changes(r *record, ob *mcp.Observation) bool {
	if ob.Stage == mcp.StageResult {
		return true // records() let only results with findings through
	}
	if c := bounded(ob.Classification); c != "" && (r.Classification == "" || level(c) > level(r.Classification)) {
		return true
	}
	for _, c := range ob.Categories {
		if _, ok := r.Categories[bounded(c)]; !ok && len(r.Categories) < MaxCategories {
			return true
		}
	}
	return false
}

func bounded(name string) string {
	if len(name) > MaxNameBytes {
		return name[:MaxNameBytes]
	}
	return name
}

func apply(r *record, ob *mcp.Observation) {
	if ob.Stage == mcp.StageResult {
		merge(r, &record{Findings: boundedCounts(ob.Findings)})
		return
	}
	src := bounded(ob.Server + "/" + source(ob))
	if ob.Classification != "" {
		merge(r, &record{Classification: bounded(ob.Classification), Source: src})
	}
	for _, c := range ob.Categories {
		merge(r, &record{Categories: map[string]string{bounded(c): src}})
	}
}

// source is how a read is named in input.session (and so in reasons
// callers see): a resource URI without its query and fragment, which may
// carry tokens.
func source(ob *mcp.Observation) string {
	if ob.Method == mcp.MethodResourcesRead {
		if i := strings.IndexAny(ob.Target, "?#"); i >= 0 {
			return ob.Target[:i]
		}
	}
	return ob.Target
}

func boundedCounts(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		if v > 0 {
			out[bounded(k)] = v
		}
	}
	return out
}

// Stats returns the counters.
func (s *Store) Stats() Stats {
	return Stats{Sessions: int(s.count.Load()), Evicted: s.evicted.Load(), Folded: s.folded.Load(), Expired: s.expire.Load()}
}

var (
	_ mcp.Observer     = (*Store)(nil)
	_ mcp.SessionState = (*Store)(nil)
)
