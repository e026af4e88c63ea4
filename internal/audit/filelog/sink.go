package filelog

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/verdictpdp/verdict/internal/audit"
)

// Defaults for Options fields left zero.
const (
	DefaultMaxBytes           = 64 << 20
	DefaultMaxAge             = 24 * time.Hour
	DefaultCheckpointEvery    = 10_000
	DefaultCheckpointInterval = time.Minute
	DefaultRetentionCheck     = time.Hour
)

// ErrClosed is returned by Write after Close.
var ErrClosed = errors.New("filelog: sink is closed")

// Options configure a Sink. Zero values take the defaults.
type Options struct {
	// Path names the log; segments are written next to it (see the package
	// comment).
	Path string
	// MaxBytes and MaxAge bound a segment before it is sealed and the next
	// one started.
	MaxBytes int64
	MaxAge   time.Duration
	// CheckpointEvery and CheckpointInterval say when a periodic checkpoint
	// is written: after that many records, or that long after the last
	// checkpoint if records were written since.
	CheckpointEvery    int
	CheckpointInterval time.Duration
	// RetentionCheck is how often expired segments are looked for, besides
	// at Open and at every rotation.
	RetentionCheck time.Duration
	// SigningKey, when set, signs every checkpoint.
	SigningKey ed25519.PrivateKey
	// Sync makes every batch durable (fsync) before Write returns. Sealing
	// a segment and recording a retention run always sync.
	Sync bool
	// TrustRecords skips the full check of each record's JSON (valid, an
	// object, no top-level type or chain member) for records that
	// audit.Recorder wrote, which guarantees all three: only the braces
	// and the absence of newlines are checked.
	TrustRecords bool
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Logger receives rotation, retention, recovery and failure messages;
	// they are dropped when nil.
	Logger *slog.Logger

	// wrapFile, set by tests, wraps every segment file the sink writes.
	wrapFile func(*os.File) segmentFile
}

// segmentFile is what the sink needs of the active segment's file.
type segmentFile interface {
	io.Writer
	Truncate(size int64) error
	Sync() error
	Close() error
}

// segStats sums up the records of a segment, for its checkpoints.
type segStats struct {
	records     int64
	first, last time.Time
	expires     time.Time
	// sinceCheckpoint counts the records after the last checkpoint.
	sinceCheckpoint int64
}

func (st *segStats) add(t, exp time.Time) {
	st.records++
	st.sinceCheckpoint++
	if !t.IsZero() {
		t = t.UTC()
		if st.first.IsZero() || t.Before(st.first) {
			st.first = t
		}
		if t.After(st.last) {
			st.last = t
		}
	}
	if exp.After(st.expires) {
		st.expires = exp
	}
}

// segInfo is what retention needs of a sealed segment.
type segInfo struct {
	num       int64
	path      string
	firstPrev digest
	lastHash  digest
	records   int64
	expires   time.Time
}

// Sink writes records to a log of segment files; see the package comment.
// Write, Close and Status are safe for concurrent use.
type Sink struct {
	opts  Options
	log   *slog.Logger
	keyID string

	mu sync.Mutex
	// The active segment; f is nil between a sealed segment and the next
	// one when starting it failed.
	f         segmentFile
	fpath     string
	seg       int64
	seq       int64  // of the next line
	prev      digest // hash of the last line written to the log
	firstPrev digest // prev of the active segment's first line
	size      int64  // bytes of complete lines in f
	dirty     bool   // f may hold a failed write past size
	created   time.Time
	stats     segStats
	lastCheck time.Time // last checkpoint, or segment start
	// Retention state.
	sealed        []segInfo // oldest first
	gaps          []gap
	leftovers     []string // deleted by retention, but removing failed
	lastRetention time.Time
	closed        bool

	buf     []byte
	scratch bytes.Buffer

	stop chan struct{}
	done chan struct{}

	written, dropped atomic.Uint64
	stMu             sync.Mutex
	healthy          bool
	lastErr          string
	lastErrAt        time.Time
}

var _ audit.Sink = (*Sink)(nil)

// Open opens the log at opts.Path: it recovers or seals its newest segment,
// starts a new segment, applies retention, and starts the goroutine that
// writes periodic checkpoints, rotates old segments and applies retention
// until Close. See the package comment for when it refuses to start.
func Open(opts Options) (*Sink, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Sink{opts: o, log: o.Logger, healthy: true, stop: make(chan struct{}), done: make(chan struct{})}
	if o.SigningKey != nil {
		s.keyID = keyID(o.SigningKey.Public().(ed25519.PublicKey))
	}
	if err := os.MkdirAll(filepath.Dir(o.Path), 0o700); err != nil {
		return nil, fmt.Errorf("filelog: create log directory: %w", err)
	}
	if err := s.recoverLog(); err != nil {
		return nil, err
	}
	now := s.now()
	if err := s.startSegment(now); err != nil {
		return nil, err
	}
	s.retain(now)
	go s.loop(tickPeriod(o))
	return s, nil
}

func (o Options) withDefaults() (Options, error) {
	if o.Path == "" {
		return o, errors.New("filelog: Options.Path is empty")
	}
	if o.MaxBytes < 0 || o.MaxAge < 0 || o.CheckpointEvery < 0 || o.CheckpointInterval < 0 || o.RetentionCheck < 0 {
		return o, errors.New("filelog: negative limit in Options")
	}
	if o.SigningKey != nil && len(o.SigningKey) != ed25519.PrivateKeySize {
		return o, errors.New("filelog: SigningKey is not an Ed25519 private key")
	}
	o.Path = filepath.Clean(o.Path)
	if o.MaxBytes == 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.MaxAge == 0 {
		o.MaxAge = DefaultMaxAge
	}
	if o.CheckpointEvery == 0 {
		o.CheckpointEvery = DefaultCheckpointEvery
	}
	if o.CheckpointInterval == 0 {
		o.CheckpointInterval = DefaultCheckpointInterval
	}
	if o.RetentionCheck == 0 {
		o.RetentionCheck = DefaultRetentionCheck
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

// tickPeriod is how often the background goroutine looks at the clock.
func tickPeriod(o Options) time.Duration {
	return max(min(o.CheckpointInterval, o.RetentionCheck, o.MaxAge)/2, time.Millisecond)
}

func (s *Sink) now() time.Time { return s.opts.Now().UTC() }

// Name implements audit.Sink.
func (s *Sink) Name() string { return "file" }

// Write implements audit.Sink: it appends the batch's events, and a
// checkpoint when one is due, to the active segment in one write. When the
// write fails the segment is truncated back to where it was, so the chain
// stays intact, and the whole batch is counted as dropped. Records that are
// not JSON objects are dropped alone.
func (s *Sink) Write(_ context.Context, batch []audit.Record) error {
	if len(batch) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		s.drop(len(batch))
		return ErrClosed
	}
	now := s.now()
	if s.f != nil && s.stats.records > 0 && now.Sub(s.created) >= s.opts.MaxAge {
		s.rotate(now)
	}
	if s.f == nil {
		if err := s.startSegment(now); err != nil {
			s.drop(len(batch))
			s.fail(now, err)
			return err
		}
	}

	buf := s.buf[:0]
	seq, prev, stats := s.seq, s.prev, s.stats
	var rejected int
	var rejectErr error
	for i := range batch {
		var body []byte
		var err error
		if s.opts.TrustRecords {
			body, err = trustedBody(batch[i].JSON)
		} else {
			body, err = eventBody(batch[i].JSON, &s.scratch)
		}
		if err != nil {
			rejected++
			if rejectErr == nil {
				rejectErr = fmt.Errorf("filelog: record %d of a batch of %d refused: %w", i, len(batch), err)
			}
			continue
		}
		exp := expiry(batch[i].Expires)
		start := len(buf)
		buf = appendEvent(buf, body, s.seg, seq, prev, exp)
		prev = sha256.Sum256(buf[start : len(buf)-1])
		seq++
		stats.add(batch[i].Time, exp)
	}
	checkpoint := seq > s.seq && stats.sinceCheckpoint >= int64(s.opts.CheckpointEvery)
	if checkpoint {
		line, h := s.checkpointLine(now, &stats, seq, prev, false, nil)
		buf = append(append(buf, line...), '\n')
		seq, prev = seq+1, h
		stats.sinceCheckpoint = 0
	}
	if len(buf) > 0 {
		if err := s.writeOut(buf, s.opts.Sync); err != nil {
			s.keepBuf(buf)
			s.drop(len(batch))
			s.fail(now, err)
			return err
		}
		s.seq, s.prev, s.stats = seq, prev, stats
		if checkpoint {
			s.lastCheck = now
		}
		s.written.Add(uint64(len(batch) - rejected)) //nolint:gosec // rejected <= len(batch)
		s.succeed()
	}
	s.keepBuf(buf)
	if s.size >= s.opts.MaxBytes {
		s.rotate(now)
	}
	if rejected > 0 {
		s.drop(rejected)
		s.noteError(now, rejectErr)
		return rejectErr
	}
	return nil
}

// keepBuf keeps buf for the next batch, unless a huge batch grew it.
func (s *Sink) keepBuf(buf []byte) {
	if cap(buf) > 8<<20 {
		buf = nil
	}
	s.buf = buf[:0]
}

// Close implements audit.Sink: it stops the background goroutine and seals
// the active segment with a final checkpoint. When ctx ends first, the
// segment is left open and the next Open recovers it.
func (s *Sink) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	select {
	case <-s.done:
	case <-ctx.Done():
		return fmt.Errorf("filelog: close: %w", ctx.Err())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	now := s.now()
	if err := s.seal(now); err != nil {
		_ = s.f.Close()
		s.f = nil
		s.fail(now, err)
		return err
	}
	return nil
}

// Status implements audit.Sink.
func (s *Sink) Status() audit.SinkStatus {
	s.stMu.Lock()
	defer s.stMu.Unlock()
	return audit.SinkStatus{
		Name:        s.Name(),
		Target:      s.opts.Path,
		Healthy:     s.healthy,
		Written:     s.written.Load(),
		Dropped:     s.dropped.Load(),
		LastError:   s.lastErr,
		LastErrorAt: s.lastErrAt,
	}
}

func (s *Sink) drop(n int) {
	s.dropped.Add(uint64(n)) //nolint:gosec // a count of records, never negative
}

// fail records a failure to write and marks the sink unhealthy.
func (s *Sink) fail(now time.Time, err error) {
	s.log.Error("audit log write failed", "path", s.opts.Path, "error", err)
	s.stMu.Lock()
	defer s.stMu.Unlock()
	s.healthy = false
	s.lastErr, s.lastErrAt = err.Error(), now
}

// noteError records an error that does not make the sink unhealthy.
func (s *Sink) noteError(now time.Time, err error) {
	s.log.Warn("audit record refused", "path", s.opts.Path, "error", err)
	s.stMu.Lock()
	defer s.stMu.Unlock()
	s.lastErr, s.lastErrAt = err.Error(), now
}

func (s *Sink) succeed() {
	s.stMu.Lock()
	defer s.stMu.Unlock()
	s.healthy = true
}

// loop runs maintain every period until Close.
func (s *Sink) loop(period time.Duration) {
	defer close(s.done)
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.maintain()
		}
	}
}

// maintain does what is due by the clock: a periodic checkpoint, rotating
// an old segment, retention.
func (s *Sink) maintain() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	now := s.now()
	if s.f == nil {
		if err := s.startSegment(now); err != nil {
			s.fail(now, err)
			return
		}
	}
	if s.stats.sinceCheckpoint > 0 && now.Sub(s.lastCheck) >= s.opts.CheckpointInterval {
		if err := s.checkpoint(now); err != nil {
			s.fail(now, err)
		}
	}
	switch {
	case s.stats.records > 0 && now.Sub(s.created) >= s.opts.MaxAge:
		s.rotate(now)
	case now.Sub(s.lastRetention) >= s.opts.RetentionCheck:
		s.retain(now)
	}
}
