package httpsink

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

const (
	segmentPrefix = "spool-"
	segmentSuffix = ".jsonl"
	cursorName    = "cursor.json"
	cursorTemp    = "cursor.json.tmp"
)

// scanChunk is how much the spool is read at a time when scanning it.
const scanChunk = 256 << 10

// segment is one spool file.
type segment struct {
	seq uint64
	// size is the length of the segment's whole lines: the uploader reads
	// no further. A partial line past it (a crash mid-write) is never sent.
	size int64
}

// position is a byte in the spool: the offset in segment seg.
type position struct {
	seg uint64
	off int64
}

func (p position) before(q position) bool {
	return p.seg < q.seg || (p.seg == q.seg && p.off < q.off)
}

// cursorFile is cursor.json.
type cursorFile struct {
	Segment uint64 `json:"segment"`
	Offset  int64  `json:"offset"`
}

func segmentPath(dir string, seq uint64) string {
	return filepath.Join(dir, fmt.Sprintf("%s%020d%s", segmentPrefix, seq, segmentSuffix))
}

func parseSegmentName(name string) (uint64, bool) {
	digits, ok := strings.CutPrefix(name, segmentPrefix)
	if !ok {
		return 0, false
	}
	if digits, ok = strings.CutSuffix(digits, segmentSuffix); !ok {
		return 0, false
	}
	seq, err := strconv.ParseUint(digits, 10, 64)
	return seq, err == nil
}

// appendSpool appends p to the active segment, starting a new one first when
// p would take it past the segment size.
func (s *Sink) appendSpool(p []byte) error {
	if s.rotate || (s.activeSize > 0 && s.activeSize+int64(len(p)) > s.segBytes) {
		if err := s.rotateSegment(); err != nil {
			return err
		}
	}
	n, err := s.active.Write(p)
	if err != nil {
		// Keep only whole lines: cut a partial append off. Should that fail
		// too, the uploader still reads no further than activeSize, and the
		// next append goes to a new segment.
		if n > 0 {
			_ = s.active.Truncate(s.activeSize)
		}
		s.rotate = true
		return err
	}
	s.activeSize += int64(n)
	return nil
}

// rotateSegment closes the active segment and creates the next one.
func (s *Sink) rotateSegment() error {
	seq := s.activeSeq + 1
	f, err := os.OpenFile(segmentPath(s.dir, seq), os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	if s.active != nil {
		if err := s.active.Close(); err != nil {
			s.log.Warn("closing spool segment", "error", err)
		}
	}
	s.active, s.activeSeq, s.activeSize, s.rotate = f, seq, 0, false
	s.mu.Lock()
	s.segs = append(s.segs, segment{seq: seq})
	s.mu.Unlock()
	// The uploader moves past a finished segment only once it is not the
	// last one.
	s.notify()
	return nil
}

// recover loads the spool left by an earlier Sink: it deletes the segments
// the cursor has passed, leaves out partial last lines (counting them as
// dropped), and counts what is left to send. New then starts a segment of
// its own, after every existing one.
func (s *Sink) recover() error {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("httpsink: spool: %w", err)
	}
	var seqs []uint64
	for _, e := range entries {
		if seq, ok := parseSegmentName(e.Name()); ok && e.Type().IsRegular() {
			seqs = append(seqs, seq)
		}
	}
	slices.Sort(seqs)

	cur, err := s.loadCursor()
	if err != nil {
		// Resending the whole spool beats losing it.
		s.log.Warn("spool cursor unreadable; sending the spool from its start", "error", err)
		cur = position{}
	}
	s.activeSeq = cur.seg
	for _, seq := range seqs {
		s.activeSeq = max(s.activeSeq, seq)
		path := segmentPath(s.dir, seq)
		if seq < cur.seg {
			if err := os.Remove(path); err != nil {
				return fmt.Errorf("httpsink: spool: %w", err)
			}
			continue
		}
		size, partial, err := wholeLines(path)
		if err != nil {
			return fmt.Errorf("httpsink: spool: %w", err)
		}
		if partial {
			s.dropped++
			s.lastErr, s.lastErrAt = "partial record in the spool", time.Now()
			s.log.Warn("spool segment ends in a partial record; dropped it", "segment", filepath.Base(path))
		}
		s.segs = append(s.segs, segment{seq: seq, size: size})
	}

	s.cursor = cur
	if len(s.segs) > 0 && s.segs[0].seq == cur.seg {
		s.cursor.off = min(max(cur.off, 0), s.segs[0].size)
	}
	for i, seg := range s.segs {
		start := int64(0)
		if i == 0 && seg.seq == s.cursor.seg {
			start = s.cursor.off
		}
		n, err := countLines(segmentPath(s.dir, seg.seq), start, seg.size)
		if err != nil {
			return fmt.Errorf("httpsink: spool: %w", err)
		}
		s.pendingRecords += n
		s.pendingBytes += seg.size - start
	}
	if s.pendingRecords > 0 {
		s.log.Info("resuming the upload of spooled records", "records", s.pendingRecords, "bytes", s.pendingBytes)
	}
	return nil
}

// normalizeCursor puts the cursor in segs[0] once segs holds the segment New
// created: a cursor whose segment is gone moves to the start of the next.
func (s *Sink) normalizeCursor() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.segs[0].seq != s.cursor.seg {
		s.cursor = position{seg: s.segs[0].seq}
	}
}

// wholeLines returns the length of the file's whole lines, and whether a
// partial line follows them.
func wholeLines(path string) (int64, bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false, err
	}
	defer func() { _ = f.Close() }() // read-only
	fi, err := f.Stat()
	if err != nil {
		return 0, false, err
	}
	end := fi.Size()
	buf := make([]byte, min(end, scanChunk))
	for end > 0 {
		n := min(end, int64(len(buf)))
		if _, err := f.ReadAt(buf[:n], end-n); err != nil {
			return 0, false, err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			size := end - n + int64(i) + 1
			return size, size != fi.Size(), nil
		}
		end -= n
	}
	return 0, fi.Size() > 0, nil
}

// countLines counts the newlines in [start, end) of the file.
func countLines(path string, start, end int64) (int64, error) {
	if start >= end {
		return 0, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer func() { _ = f.Close() }() // read-only
	buf := make([]byte, min(end-start, scanChunk))
	var lines int64
	for off := start; off < end; {
		n := min(end-off, int64(len(buf)))
		if _, err := f.ReadAt(buf[:n], off); err != nil {
			return 0, err
		}
		lines += int64(bytes.Count(buf[:n], []byte{'\n'}))
		off += n
	}
	return lines, nil
}

func (s *Sink) loadCursor() (position, error) {
	b, err := os.ReadFile(filepath.Join(s.dir, cursorName))
	if errors.Is(err, fs.ErrNotExist) {
		return position{}, nil
	}
	if err != nil {
		return position{}, err
	}
	var c cursorFile
	if err := json.Unmarshal(b, &c); err != nil {
		return position{}, fmt.Errorf("%s: %w", cursorName, err)
	}
	return position{seg: c.Segment, off: c.Offset}, nil
}

// saveCursor persists p: a temporary file, synced, renamed over the cursor.
func (s *Sink) saveCursor(p position) error {
	b, err := json.Marshal(cursorFile{Segment: p.seg, Offset: p.off})
	if err != nil {
		return err
	}
	tmp := filepath.Join(s.dir, cursorTemp)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(s.dir, cursorName))
}

// span is a run of whole lines read from one segment.
type span struct {
	seq        uint64
	start, end int64
	// records counts the lines; valid the ones that are JSON.
	records, valid int
	// body is the request body before compression: the valid lines,
	// comma-separated, without the brackets.
	body []byte
}

// next reads the oldest unsent lines: as many as fit a request body of limit
// bytes, or the first line alone when it does not fit. It returns ok false
// when everything spooled has been sent. Only the uploader calls it.
func (s *Sink) next(limit int) (span, bool, error) {
	var seg segment
	var cur position
	for {
		s.mu.Lock()
		seg, cur = s.segs[0], s.cursor
		last := len(s.segs) == 1
		s.mu.Unlock()
		if cur.off < seg.size {
			break
		}
		if last {
			return span{}, false, nil
		}
		s.finishSegment(seg.seq)
	}

	f, err := s.reader(seg.seq)
	if err != nil {
		return span{}, false, err
	}
	avail := seg.size - cur.off
	// The body is the lines with their newlines turned to commas, in
	// brackets: one byte longer than the lines.
	want := max(min(avail, int64(limit)-1), 1)
	buf := slices.Grow(s.rbuf[:0], int(want))[:want]
	if _, err := f.ReadAt(buf, cur.off); err != nil {
		return span{}, false, err
	}
	end := bytes.LastIndexByte(buf, '\n') + 1
	for end == 0 {
		// The first line is longer than the limit: read on to its end,
		// which segment.size guarantees is there.
		have := int64(len(buf))
		if have >= avail {
			return span{}, false, fmt.Errorf("segment %d: no line end before offset %d", seg.seq, seg.size)
		}
		more := min(avail-have, max(have, scanChunk))
		buf = slices.Grow(buf, int(more))[:have+more]
		if _, err := f.ReadAt(buf[have:], cur.off+have); err != nil {
			return span{}, false, err
		}
		if i := bytes.IndexByte(buf[have:], '\n'); i >= 0 {
			end = int(have) + i + 1
		}
	}
	s.rbuf = buf

	sp := span{seq: seg.seq, start: cur.off, end: cur.off + int64(end)}
	// Turn the lines into the body in place: each kept line moves left by
	// the lines dropped before it, and its newline becomes the comma before
	// the next.
	out := 0
	for lines := buf[:end]; len(lines) > 0; {
		i := bytes.IndexByte(lines, '\n')
		line := lines[:i]
		lines = lines[i+1:]
		sp.records++
		if !json.Valid(line) {
			continue
		}
		if sp.valid > 0 {
			buf[out] = ','
			out++
		}
		out += copy(buf[out:], line)
		sp.valid++
	}
	sp.body = buf[:out]
	return sp, true, nil
}

// reader returns the open segment seq.
func (s *Sink) reader(seq uint64) (*os.File, error) {
	if s.rf != nil && s.rfSeq == seq {
		return s.rf, nil
	}
	s.closeReader()
	f, err := os.Open(segmentPath(s.dir, seq))
	if err != nil {
		return nil, err
	}
	s.rf, s.rfSeq = f, seq
	return f, nil
}

func (s *Sink) closeReader() {
	if s.rf != nil {
		_ = s.rf.Close() // read-only
		s.rf = nil
	}
}

// finishSegment deletes segment seq, fully sent and no longer written, and
// moves the cursor to the start of the next. The cursor file need not
// follow: on the next start, a cursor whose segment is gone moves on the
// same way.
func (s *Sink) finishSegment(seq uint64) {
	if s.rfSeq == seq {
		s.closeReader()
	}
	if err := os.Remove(segmentPath(s.dir, seq)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		// The next start deletes it, being behind the cursor.
		s.log.Warn("deleting a sent spool segment", "error", err)
	}
	s.mu.Lock()
	s.segs = s.segs[1:]
	s.cursor = position{seg: s.segs[0].seq}
	s.progressLocked()
	s.mu.Unlock()
}

// progressLocked wakes Flush callers. mu is held.
func (s *Sink) progressLocked() {
	close(s.progress)
	s.progress = make(chan struct{})
}
