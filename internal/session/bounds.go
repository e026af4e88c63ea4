package session

import (
	"context"
	"time"

	memdb "github.com/hashicorp/go-memdb"
)

// makeRoom keeps the bounds before a new record is inserted: the
// subject's least recently used session beyond MaxPerSubject is folded
// into its overflow record, and beyond MaxSessions the least recently
// used records are forgotten. It reports whether there is room.
func (s *Store) makeRoom(txn *memdb.Txn, subj string, now time.Time) bool {
	var mine []*record
	it, err := txn.Get("sessions", "subject", subj)
	if err != nil {
		return false
	}
	var overflow *record
	for v := it.Next(); v != nil; v = it.Next() {
		r := v.(*record)
		if r.Overflow {
			overflow = r
			continue
		}
		mine = append(mine, r)
	}
	for len(mine) >= s.opts.MaxPerSubject {
		oldest := 0
		for i, r := range mine {
			if r.act.last.Load() < mine[oldest].act.last.Load() {
				oldest = i
			}
		}
		victim := mine[oldest]
		mine = append(mine[:oldest], mine[oldest+1:]...)
		if err := txn.Delete("sessions", victim); err != nil {
			return false
		}
		s.count.Add(-1)
		s.folded.Add(1)
		if !s.live(victim, now) || !victim.tainted() {
			continue
		}
		of := &record{Key: overflowKey(subj), Subject: subj, Overflow: true, Started: now, act: newActivity(0)}
		if overflow != nil {
			of = overflow.clone()
		} else {
			s.count.Add(1)
		}
		merge(of, victim)
		last := max(of.act.last.Load(), victim.act.last.Load())
		of.act.last.Store(last)
		of.Seen = last
		if err := txn.Insert("sessions", of); err != nil {
			return false
		}
		overflow = of
	}
	for s.count.Load() >= int64(s.opts.MaxSessions) {
		victim := s.evictable(txn)
		if victim == nil {
			return false
		}
		if err := txn.Delete("sessions", victim); err != nil {
			return false
		}
		s.count.Add(-1)
		s.evicted.Add(1)
	}
	return true
}

// evictCandidates is how many of the least recently used records a full
// table chooses its victim among.
const evictCandidates = 256

// evictable returns the record a full table forgets: among the least
// recently used, the one whose reads matter least (nothing read, then
// public, internal, … data, then sessions that read data categories or
// had findings), the oldest of those. A session that read restricted
// data goes only when the oldest records all did.
func (s *Store) evictable(txn *memdb.Txn) *record {
	it, err := txn.Get("sessions", "seen")
	if err != nil {
		return nil
	}
	var victim *record
	for i, v := 0, it.Next(); v != nil && i < evictCandidates; i, v = i+1, it.Next() {
		r := v.(*record)
		if victim == nil || weight(r) < weight(victim) {
			victim = r
		}
	}
	return victim
}

// weight ranks what forgetting a record would lose.
func weight(r *record) int {
	w := -1
	if r.Classification != "" {
		w = level(r.Classification)
	}
	if len(r.Categories) > 0 || len(r.Findings) > 0 {
		w += 10
	}
	return w
}

// Sweep deletes the sessions idle for longer than the TTL.
func (s *Store) Sweep() {
	cutoff := s.opts.Now().UnixNano() - int64(s.opts.TTL)
	s.mu.Lock()
	defer s.mu.Unlock()
	txn := s.db.Txn(true)
	defer txn.Abort()
	it, err := txn.LowerBound("sessions", "seen", int64(0))
	if err != nil {
		return
	}
	var dead []any
	for v := it.Next(); v != nil; v = it.Next() {
		r := v.(*record)
		if r.Seen >= cutoff {
			break
		}
		if r.act.last.Load() < cutoff { // Seen lags: the last call decides
			dead = append(dead, v)
		}
	}
	for _, v := range dead {
		if txn.Delete("sessions", v) == nil {
			s.count.Add(-1)
			s.expire.Add(1)
		}
	}
	txn.Commit()
}

// Run sweeps every interval until ctx ends.
func (s *Store) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.Sweep()
		}
	}
}
