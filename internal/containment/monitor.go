// Package containment watches final MCP decisions for signs that a caller
// misbehaves — a storm of denied calls, secrets flowing out of results,
// poisoned tool lists, a burst of destructive calls — and quarantines the
// caller (or its MCP session) through the kill switch when a threshold of
// data.mcp.containment is reached.
//
// Counting is linear in the number of rules and bounded: each (rule,
// caller) pair is a ring of at most 30 buckets, and at most MaxKeys pairs
// are tracked, the least recently seen evicted first. Observe never
// blocks: quarantines are written by one worker (Run).
package containment

import (
	"container/list"
	"context"
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/verdictpdp/verdict/internal/control"
	"github.com/verdictpdp/verdict/internal/mcp"
	"github.com/verdictpdp/verdict/internal/pipeline"
)

// SystemApprover is who quarantines set by containment are created by.
const SystemApprover = "verdict:containment"

// maxSessionBytes is the longest session id counted per session (a
// quarantine names at most 256 bytes): a session-scope rule counts a
// longer one against its subject, and quarantines the subject.
const maxSessionBytes = 256

const shards = 16

// Quarantiner is the kill switch (*control.Controls).
type Quarantiner interface {
	Contain(ctx context.Context, by string, r control.QuarantineRequest) (control.Quarantine, bool, error)
	// Quarantined errs while the controls cannot be read (a stale view of
	// a shared store): the observation is then not known quarantined.
	Quarantined(subject, server, tool, session string) (*control.Quarantine, error)
}

// Options configure a Monitor. Zero members take the defaults.
type Options struct {
	// Rules returns the active rules (the snapshot's component); nil or
	// empty rules watch nothing.
	Rules func() *Rules
	// Controls sets the quarantines. Required.
	Controls Quarantiner
	// Contained is told of every quarantine containment set (the alert:
	// metric, webhook). It runs on the worker.
	Contained func(Contained)
	// MaxKeys bounds the (rule, caller) pairs tracked (default 100000).
	MaxKeys int
	// QueueSize bounds the quarantines waiting to be written (default
	// 256).
	QueueSize int
	Logger    *slog.Logger
	// Now is the clock (tests).
	Now func() time.Time
}

// Contained is a quarantine containment set, and why.
type Contained struct {
	Rule                     Rule
	Tenant, Subject, Session string
	// Value is what was measured: the deny rate, or the count.
	Value float64
	// Calls is the number of calls a deny rate was measured over.
	Calls      uint64
	Quarantine control.Quarantine
}

// Monitor counts the signals and quarantines callers that cross a rule.
type Monitor struct {
	opts   Options
	seed   maphash.Seed
	shards [shards]shard
	queue  chan job
	// warned is when a full queue was last logged (Unix seconds).
	warned atomic.Int64
}

type shard struct {
	mu  sync.Mutex
	max int
	m   map[uint64]*list.Element
	lru list.List // of *entry, most recently seen first
}

type entry struct {
	key  uint64
	ring ring
	// pending is set while the worker quarantines for it.
	pending bool
}

// job is a quarantine to set.
type job struct {
	shard *shard
	key   uint64
	c     Contained
	dur   time.Duration
}

// New returns a monitor; run its worker with Run.
func New(opts Options) *Monitor {
	if opts.MaxKeys <= 0 {
		opts.MaxKeys = 100000
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = 256
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Rules == nil {
		opts.Rules = func() *Rules { return nil }
	}
	if opts.Contained == nil {
		opts.Contained = func(Contained) {}
	}
	m := &Monitor{opts: opts, seed: maphash.MakeSeed(), queue: make(chan job, opts.QueueSize)}
	per := max(1, (opts.MaxKeys+shards-1)/shards)
	for i := range m.shards {
		m.shards[i].max = per
		m.shards[i].m = map[uint64]*list.Element{}
	}
	return m
}

// Tracked returns the number of (rule, caller) pairs counted.
func (m *Monitor) Tracked() int {
	n := 0
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

// Observe implements mcp.Observer: it counts the observation against
// every rule it concerns, and asks the worker to quarantine when one is
// crossed. It never blocks.
func (m *Monitor) Observe(_ context.Context, ob *mcp.Observation) {
	rules := m.opts.Rules()
	if rules.Empty() || ob.Subject == "" || ob.Failed || ob.Question || ob.Unverified {
		// An anonymous caller cannot be quarantined; an error is not the
		// caller's doing; a question that is not a call (ToolHive's
		// list-entry questions), or whose asker is unproven (AuthZEN
		// without a verified PEP), must not quarantine anyone.
		return
	}
	if ob.Verdict == pipeline.Deny && m.quarantined(ob) {
		return // denied by the kill switch: not the caller's behaviour
	}
	now := max(m.opts.Now().Unix(), 0)
	for i := range rules.Rules {
		r := &rules.Rules[i]
		hits, calls, ok := measure(r, ob)
		if !ok {
			continue
		}
		scope, session := r.Scope, ob.Session
		if scope == ScopeSession {
			if session == "" {
				continue
			}
			if len(session) > maxSessionBytes {
				scope, session = ScopeSubject, "" // fail closed: the subject answers for it
			}
		} else {
			session = ""
		}
		key := m.key(r, scope, ob.Tenant, ob.Subject, session)
		c := Contained{Rule: *r, Tenant: ob.Tenant, Subject: ob.Subject, Session: session}
		if scope != r.Scope {
			c.Rule.Scope = scope
		}
		m.shards[key%shards].add(m, key, now, hits, calls, c, rules.QuarantineFor)
	}
}

// quarantined reports whether a quarantine matches the observation.
func (m *Monitor) quarantined(ob *mcp.Observation) bool {
	tool := ""
	if ob.Method == mcp.MethodToolsCall {
		tool = ob.Target
	}
	q, err := m.opts.Controls.Quarantined(ob.Subject, ob.Server, tool, ob.Session)
	return err == nil && q != nil
}

// measure returns what ob counts for r: hits, calls, and whether it
// concerns r at all.
func measure(r *Rule, ob *mcp.Observation) (hits, calls uint32, ok bool) {
	switch r.Signal {
	case DenyRate:
		if ob.Stage != mcp.StageCall {
			return 0, 0, false
		}
		if ob.Verdict == pipeline.Deny {
			hits = 1
		}
		return hits, 1, true
	case Destructive:
		return 1, 0, ob.Stage == mcp.StageCall && ob.Approval
	case Poisoned:
		return clamp(ob.Poisoned), 0, ob.Stage == mcp.StageList && ob.Poisoned > 0
	case Findings:
		if ob.Stage != mcp.StageResult || len(ob.Findings) == 0 {
			return 0, 0, false
		}
		n := 0
		if r.Detectors == nil {
			for _, c := range ob.Findings {
				n += max(c, 0)
			}
		} else {
			for _, d := range r.Detectors {
				n += max(ob.Findings[d], 0)
			}
		}
		return clamp(n), 0, n > 0
	}
	return 0, 0, false
}

func clamp(n int) uint32 {
	if n > maxCount {
		return maxCount
	}
	return uint32(max(n, 0))
}

// key hashes what a rule counts by: the rule (id, signal, window), the
// scope and the caller. A rule whose window changes counts afresh.
func (m *Monitor) key(r *Rule, scope Scope, tenant, subject, session string) uint64 {
	var h maphash.Hash
	h.SetSeed(m.seed)
	var n [8]byte
	for _, s := range [...]string{r.ID, string(r.Signal), string(scope), tenant, subject, session} {
		binary.LittleEndian.PutUint64(n[:], uint64(len(s)))
		_, _ = h.Write(n[:])
		_, _ = h.WriteString(s)
	}
	binary.LittleEndian.PutUint64(n[:], uint64(r.Window)) //nolint:gosec // a validated positive duration
	_, _ = h.Write(n[:])
	return h.Sum64()
}

// add counts for key and queues a quarantine when the rule is crossed.
func (s *shard) add(m *Monitor, key uint64, now int64, hits, calls uint32, c Contained, dur time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var e *entry
	if el, ok := s.m[key]; ok {
		s.lru.MoveToFront(el)
		e = el.Value.(*entry)
	} else {
		if len(s.m) >= s.max {
			oldest := s.lru.Back()
			s.lru.Remove(oldest)
			delete(s.m, oldest.Value.(*entry).key)
		}
		e = &entry{key: key, ring: newRing(c.Rule.Window)}
		s.m[key] = s.lru.PushFront(e)
	}
	if e.pending {
		return // a quarantine is being set for it
	}
	e.ring.add(now, hits, calls)
	h, n := e.ring.sum(now)
	r := &c.Rule
	switch {
	case r.Signal == DenyRate:
		if float64(n) < float64(r.MinCalls) || float64(h) < r.Threshold*float64(n) {
			return
		}
		c.Value, c.Calls = float64(h)/float64(n), n
	case float64(h) >= r.Threshold:
		c.Value = float64(h)
	default:
		return
	}
	select {
	case m.queue <- job{shard: s, key: key, c: c, dur: dur}:
		e.pending = true
		e.ring.reset() // after a release, the caller starts afresh
	default:
		// Counted still: the next observation tries again.
		if last := m.warned.Load(); now-last >= 60 && m.warned.CompareAndSwap(last, now) {
			m.opts.Logger.Warn("containment: quarantine queue full; retrying on the next decision", "rule", r.ID)
		}
	}
}

// done clears key's pending mark.
func (s *shard) done(key uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if el, ok := s.m[key]; ok {
		el.Value.(*entry).pending = false
	}
}

// Run sets the quarantines Observe asks for until ctx ends.
func (m *Monitor) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-m.queue:
			m.contain(ctx, j)
		}
	}
}

func (m *Monitor) contain(ctx context.Context, j job) {
	defer j.shard.done(j.key)
	c := j.c
	r := control.QuarantineRequest{Kind: control.QuarantineSubject, Subject: c.Subject, Rule: c.Rule.ID, Note: Note(c), Duration: j.dur}
	if c.Rule.Scope == ScopeSession {
		r.Kind, r.Session = control.QuarantineSession, c.Session
	}
	q, created, err := m.opts.Controls.Contain(ctx, SystemApprover, r)
	if err != nil {
		m.opts.Logger.Error("containment: the quarantine could not be set", "rule", c.Rule.ID, "kind", string(r.Kind), "err", err)
		return
	}
	if !created {
		return // one is active already: no second alert
	}
	c.Quarantine = q
	m.opts.Logger.Warn("containment: caller quarantined", "rule", c.Rule.ID, "signal", string(c.Rule.Signal),
		"kind", string(q.Kind), "quarantine", q.ID, "value", c.Value)
	m.opts.Contained(c)
}

// Note is the quarantine's note: the rule and what was measured, never a
// request's content.
func Note(c Contained) string {
	r := c.Rule
	win := strconv.FormatInt(int64(r.Window/time.Second), 10) + "s"
	if r.Signal == DenyRate {
		return fmt.Sprintf("containment rule %s: deny_rate %.3g over %d calls in %s reached %g",
			r.ID, c.Value, c.Calls, win, r.Threshold)
	}
	return fmt.Sprintf("containment rule %s: %s %g in %s reached %g", r.ID, r.Signal, c.Value, win, r.Threshold)
}
