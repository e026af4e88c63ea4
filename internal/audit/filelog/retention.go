package filelog

import (
	"cmp"
	"errors"
	"io/fs"
	"os"
	"slices"
	"time"
)

// retain deletes the sealed segments whose every record has expired, after
// recording them in a retention line of the active segment.
func (s *Sink) retain(now time.Time) {
	s.lastRetention = now
	s.removeLeftovers()
	if s.f == nil {
		return
	}
	var expired, keep []segInfo
	for _, si := range s.sealed {
		if si.expires.Before(now) {
			expired = append(expired, si)
		} else {
			keep = append(keep, si)
		}
	}
	if len(expired) == 0 {
		return
	}
	line := retentionLine{Type: typeRetention, Time: now, Gaps: slices.Clone(s.gaps)}
	for _, si := range expired {
		line.Deleted = append(line.Deleted, deletedSegment{
			Segment:   si.num,
			FirstPrev: si.firstPrev,
			LastHash:  si.lastHash,
			Records:   si.records,
			Expires:   si.expires,
		})
		line.Gaps = addGap(line.Gaps, gap{First: si.num, Last: si.num, FirstPrev: si.firstPrev, LastHash: si.lastHash})
	}
	line.Chain = chainRef{Seg: s.seg, Seq: s.seq, Prev: s.prev}
	b, h := marshalLine(&line)
	if err := s.writeOut(append(b, '\n'), true); err != nil {
		s.fail(now, err)
		return
	}
	s.seq, s.prev, s.gaps, s.sealed = s.seq+1, h, line.Gaps, keep
	for _, si := range expired {
		s.remove(si.path)
		s.log.Info("audit log segment deleted by retention", "path", si.path, "records", si.records, "expires", si.expires)
	}
}

// remove deletes a segment that a retention line lists; one it cannot remove
// is tried again at the next retention run.
func (s *Sink) remove(path string) {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.log.Warn("audit log segment deleted by retention could not be removed", "path", path, "error", err)
		s.leftovers = append(s.leftovers, path)
	}
}

func (s *Sink) removeLeftovers() {
	left := s.leftovers
	s.leftovers = nil
	for _, p := range left {
		s.remove(p)
	}
}

// addGap adds a deleted run to gaps (sorted, not overlapping) and merges
// runs that are adjacent and link.
func addGap(gaps []gap, g gap) []gap {
	i, _ := slices.BinarySearchFunc(gaps, g.First, func(e gap, n int64) int { return cmp.Compare(e.First, n) })
	gaps = slices.Insert(gaps, i, g)
	out := gaps[:1]
	for _, next := range gaps[1:] {
		last := &out[len(out)-1]
		if last.Last+1 == next.First && last.LastHash == next.FirstPrev {
			last.Last, last.LastHash = next.Last, next.LastHash
			continue
		}
		out = append(out, next)
	}
	return out
}

func inGaps(gaps []gap, n int64) bool {
	for _, g := range gaps {
		if g.First <= n && n <= g.Last {
			return true
		}
	}
	return false
}
