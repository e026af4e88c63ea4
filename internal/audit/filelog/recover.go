package filelog

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
)

// ErrBrokenChain is wrapped by the error Open returns when the newest
// segment holds a complete line that does not parse or does not link to the
// line before it: a change a crash cannot make.
var ErrBrokenChain = errors.New("broken hash chain")

// recoverLog reads the existing segments: it seals the newest one if a crash
// left it open, continues the chain and the retention state from it, and
// gathers what retention needs to know of the others.
func (s *Sink) recoverLog() error {
	segs, err := listSegments(s.opts.Path)
	if err != nil {
		return err
	}
	for len(segs) > 0 {
		removed, err := s.removeUnstarted(segs[len(segs)-1].path)
		if err != nil {
			return err
		}
		if !removed {
			break
		}
		segs = segs[:len(segs)-1]
	}
	if len(segs) == 0 {
		return nil
	}
	newest := segs[len(segs)-1]
	st, err := readNewest(newest.path, newest.n)
	if err != nil {
		return err
	}
	if !st.sealed {
		if err := s.sealRecovered(newest.path, newest.n, &st); err != nil {
			return err
		}
	}
	s.seg, s.prev, s.gaps = newest.n, st.lastHash, st.gaps
	for _, seg := range segs[:len(segs)-1] {
		if inGaps(s.gaps, seg.n) {
			// Retention recorded it but could not remove it.
			s.remove(seg.path)
			continue
		}
		info, err := readEnds(seg.path, seg.n)
		if err != nil {
			s.log.Warn("audit log segment is not sealed; retention keeps it", "path", seg.path, "error", err)
			continue
		}
		s.sealed = append(s.sealed, info)
	}
	s.sealed = append(s.sealed, segInfo{
		num:       newest.n,
		path:      newest.path,
		firstPrev: st.firstPrev,
		lastHash:  st.lastHash,
		records:   st.stats.records,
		expires:   st.stats.expires,
	})
	return nil
}

// removeUnstarted removes the newest segment file when it holds nothing but
// the beginning of its segment_start line (or nothing, or the zeros a crash
// can leave in a file's last block): a crash while the segment was being
// created. It reports whether it did.
func (s *Sink) removeUnstarted(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, fmt.Errorf("filelog: recover: %w", err)
	}
	head, err := io.ReadAll(io.LimitReader(f, 64<<10))
	_ = f.Close()
	if err != nil {
		return false, fmt.Errorf("filelog: recover: %w", err)
	}
	if bytes.IndexByte(head, '\n') >= 0 {
		return false, nil
	}
	start := []byte(`{"type":"` + typeStart + `"`)
	zeros := len(bytes.Trim(head, "\x00")) == 0
	if len(head) == 64<<10 || !zeros && !bytes.HasPrefix(start, head) && !bytes.HasPrefix(head, start) {
		return false, fmt.Errorf("filelog: %s line 1: no complete line and not the start of a segment: %w", path, ErrBrokenChain)
	}
	if err := os.Remove(path); err != nil {
		return false, fmt.Errorf("filelog: recover: %w", err)
	}
	s.log.Warn("audit log segment removed: a crash interrupted its creation", "path", path, "bytes", len(head))
	return true, nil
}

// newestState is what reading the newest segment found.
type newestState struct {
	good      int64 // bytes of the complete lines
	truncated int64 // bytes of an incomplete line after them
	lines     int
	lastHash  digest
	lastSeq   int64
	firstPrev digest
	sealed    bool
	stats     segStats
	gaps      []gap
}

// readNewest reads the newest segment, checking its chain line by line.
func readNewest(path string, n int64) (newestState, error) {
	var st newestState
	err := scanLines(path, func(b []byte, complete bool) error {
		if !complete {
			if st.sealed {
				return brokenAt(path, st.lines+1, "bytes after the final checkpoint")
			}
			st.truncated = int64(len(b))
			return nil
		}
		li := parseLine(b)
		if why := st.follow(&li, n); why != "" {
			return brokenAt(path, st.lines+1, why)
		}
		st.good += int64(len(b)) + 1
		return nil
	})
	if err != nil && !errors.Is(err, ErrBrokenChain) {
		err = fmt.Errorf("filelog: recover: %w", err)
	}
	return st, err
}

func brokenAt(path string, line int, why string) error {
	return fmt.Errorf("filelog: %s line %d: %s; refusing to continue this log, run the verifier and inspect the file: %w",
		path, line, why, ErrBrokenChain)
}

// follow takes the next complete line of the newest segment, or says why it
// does not follow the lines before it.
func (st *newestState) follow(li *lineInfo, n int64) string {
	switch {
	case li.kind == kindBad:
		return li.bad
	case st.sealed:
		return "a line after the final checkpoint"
	case li.seg != n:
		return fmt.Sprintf("the line belongs to segment %d", li.seg)
	case st.lines == 0 && (li.kind != kindStart || li.seq != 0):
		return "the first line is not the segment_start"
	case st.lines > 0 && (li.seq != st.lastSeq+1 || li.prev != st.lastHash):
		return "the line does not link to the line before it"
	case st.lines > 0 && li.kind == kindStart:
		return "a second segment_start"
	}
	switch li.kind {
	case kindStart:
		st.firstPrev, st.gaps = li.prev, li.start.Gaps
	case kindEvent:
		st.stats.add(li.ts, li.exp)
	case kindCheckpoint:
		if li.cp.Records != st.stats.records {
			return fmt.Sprintf("the checkpoint counts %d records, the segment has %d", li.cp.Records, st.stats.records)
		}
		// Checkpoints know the records' times; events after them only
		// their OPA timestamps.
		st.stats.first, st.stats.last = li.cp.First.UTC(), li.cp.Last.UTC()
		st.stats.sinceCheckpoint = 0
		st.sealed = li.cp.Final
	case kindRetention:
		st.gaps = li.ret.Gaps
	default:
	}
	st.lines++
	st.lastHash, st.lastSeq = li.hash, li.seq
	return ""
}

// sealRecovered cuts an incomplete last line from the newest segment and
// seals it with a final checkpoint marked recovered.
func (s *Sink) sealRecovered(path string, n int64, st *newestState) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("filelog: recover: %w", err)
	}
	defer func() { _ = f.Close() }()
	if err := f.Truncate(st.good); err != nil {
		return fmt.Errorf("filelog: recover: %w", err)
	}
	truncated := st.truncated
	line, h := newCheckpoint(s.now(), &st.stats, chainRef{Seg: n, Seq: st.lastSeq + 1, Prev: st.lastHash},
		true, &truncated, s.opts.SigningKey, s.keyID)
	if _, err := f.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("filelog: recover: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("filelog: recover: %w", err)
	}
	st.lastHash, st.lastSeq, st.sealed = h, st.lastSeq+1, true
	s.log.Warn("audit log segment recovered after a crash", "path", path, "records", st.stats.records, "truncated_bytes", truncated)
	return nil
}

// readEnds reads what retention needs of a sealed segment: its first line's
// prev and its final checkpoint.
func readEnds(path string, n int64) (segInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return segInfo{}, err
	}
	defer func() { _ = f.Close() }()
	first, err := bufio.NewReader(f).ReadBytes('\n')
	if err != nil {
		return segInfo{}, errors.New("no complete first line")
	}
	head := parseLine(first[:len(first)-1])
	if head.kind != kindStart || head.seg != n {
		return segInfo{}, errors.New("the first line is not its segment_start")
	}
	fi, err := f.Stat()
	if err != nil {
		return segInfo{}, err
	}
	off := max(fi.Size()-64<<10, 0)
	tail := make([]byte, fi.Size()-off)
	if _, err := f.ReadAt(tail, off); err != nil {
		return segInfo{}, err
	}
	if len(tail) == 0 || tail[len(tail)-1] != '\n' {
		return segInfo{}, errors.New("ends with an incomplete line")
	}
	tail = tail[:len(tail)-1]
	last := parseLine(tail[bytes.LastIndexByte(tail, '\n')+1:])
	if last.kind != kindCheckpoint || !last.cp.Final || last.seg != n {
		return segInfo{}, errors.New("does not end with a final checkpoint")
	}
	return segInfo{
		num:       n,
		path:      path,
		firstPrev: head.prev,
		lastHash:  last.hash,
		records:   last.cp.Records,
		expires:   last.cp.Expires,
	}, nil
}
