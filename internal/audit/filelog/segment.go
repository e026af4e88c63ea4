package filelog

import (
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// startSegment creates the next segment and writes its segment_start line.
func (s *Sink) startSegment(now time.Time) error {
	n := s.seg + 1
	path := segmentPath(s.opts.Path, n)
	osf, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("filelog: start segment: %w", err)
	}
	var f segmentFile = osf
	if s.opts.wrapFile != nil {
		f = s.opts.wrapFile(osf)
	}
	line := startLine{
		Type:    typeStart,
		Version: formatVersion,
		Segment: n,
		Created: now,
		Gaps:    s.gaps,
		Chain:   chainRef{Seg: n, Seq: 0, Prev: s.prev},
	}
	if n > 1 {
		line.PrevSegment = n - 1
	}
	b, h := marshalLine(&line)
	b = append(b, '\n')
	written, err := f.Write(b)
	if err == nil && written != len(b) {
		err = io.ErrShortWrite
	}
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		// The file holds no record; leave no half-started segment behind.
		_ = f.Close()
		_ = os.Remove(path)
		return fmt.Errorf("filelog: start segment %s: %w", filepath.Base(path), err)
	}
	s.syncDir()
	s.f, s.fpath, s.seg, s.seq, s.size, s.dirty = f, path, n, 1, int64(len(b)), false
	s.created, s.lastCheck, s.stats = now, now, segStats{}
	s.firstPrev, s.prev = s.prev, h
	s.log.Info("audit log segment started", "path", path)
	return nil
}

// syncDir makes a new segment's directory entry durable.
func (s *Sink) syncDir() {
	d, err := os.Open(filepath.Dir(s.opts.Path))
	if err != nil {
		return
	}
	if err := d.Sync(); err != nil {
		s.log.Warn("audit log directory sync failed", "path", s.opts.Path, "error", err)
	}
	_ = d.Close()
}

// writeOut appends b, one or more whole lines, to the active segment with one
// write. On failure it truncates the segment back to its last complete line,
// so that nothing of b stays, and returns the error; the caller keeps its
// chain state unchanged.
func (s *Sink) writeOut(b []byte, sync bool) error {
	if s.dirty {
		if err := s.f.Truncate(s.size); err != nil {
			return fmt.Errorf("filelog: cut a failed write from %s: %w", filepath.Base(s.fpath), err)
		}
		s.dirty = false
	}
	n, err := s.f.Write(b)
	if err == nil && n != len(b) {
		err = io.ErrShortWrite
	}
	if err == nil && sync {
		err = s.f.Sync()
	}
	if err != nil {
		if terr := s.f.Truncate(s.size); terr != nil {
			s.dirty = true
		}
		return fmt.Errorf("filelog: write to %s: %w", filepath.Base(s.fpath), err)
	}
	s.size += int64(n)
	return nil
}

// checkpointLine builds a checkpoint of the active segment.
func (s *Sink) checkpointLine(now time.Time, st *segStats, seq int64, prev digest, final bool, truncated *int64) ([]byte, digest) {
	return newCheckpoint(now, st, chainRef{Seg: s.seg, Seq: seq, Prev: prev}, final, truncated, s.opts.SigningKey, s.keyID)
}

// newCheckpoint builds a checkpoint line, signed when key is set.
func newCheckpoint(now time.Time, st *segStats, chain chainRef, final bool, truncated *int64, key ed25519.PrivateKey, keyID string) ([]byte, digest) {
	c := checkpointLine{Type: typeCheckpoint, Time: now, Records: st.records, Final: final, Chain: chain}
	if st.records > 0 {
		c.First, c.Last, c.Expires = st.first, st.last, st.expires
	}
	if truncated != nil {
		c.Recovered, c.TruncatedBytes = true, truncated
	}
	if key != nil {
		c.KeyID = keyID
		c.Sig = base64.StdEncoding.EncodeToString(ed25519.Sign(key, signedMessage(&c)))
	}
	return marshalLine(&c)
}

// checkpoint writes a periodic checkpoint.
func (s *Sink) checkpoint(now time.Time) error {
	line, h := s.checkpointLine(now, &s.stats, s.seq, s.prev, false, nil)
	if err := s.writeOut(append(line, '\n'), s.opts.Sync); err != nil {
		return err
	}
	s.seq, s.prev, s.lastCheck = s.seq+1, h, now
	s.stats.sinceCheckpoint = 0
	return nil
}

// seal writes the active segment's final checkpoint, syncs and closes it.
// When the checkpoint cannot be written the segment stays active.
func (s *Sink) seal(now time.Time) error {
	line, h := s.checkpointLine(now, &s.stats, s.seq, s.prev, true, nil)
	if err := s.writeOut(append(line, '\n'), true); err != nil {
		return err
	}
	if err := s.f.Close(); err != nil {
		s.log.Warn("audit log segment close failed after sync", "path", s.fpath, "error", err)
	}
	s.sealed = append(s.sealed, segInfo{
		num:       s.seg,
		path:      s.fpath,
		firstPrev: s.firstPrev,
		lastHash:  h,
		records:   s.stats.records,
		expires:   s.stats.expires,
	})
	s.f, s.seq, s.prev = nil, s.seq+1, h
	s.log.Info("audit log segment sealed", "path", s.fpath, "records", s.stats.records)
	return nil
}

// rotate seals the active segment, starts the next one and applies
// retention. A failure leaves the sink writing to the old segment (sealing
// failed) or with no segment until the next Write or tick starts one.
func (s *Sink) rotate(now time.Time) {
	if err := s.seal(now); err != nil {
		s.fail(now, err)
		return
	}
	if err := s.startSegment(now); err != nil {
		s.fail(now, err)
		return
	}
	s.retain(now)
}
