// Package httpsink ships audit records to a decision-log service that speaks
// OPA's decision-log API: a POST of a gzipped JSON array of events.
//
// Write never waits on the network: it appends the batch to an on-disk spool
// with one write and returns. One uploader goroutine reads the spool oldest
// first, POSTs batches of up to Options.MaxBatchBytes, and after each
// delivered batch moves a persisted cursor past it and deletes the spool
// files it has fully sent. A failed POST is retried, with exponential
// backoff, until it succeeds; no later batch overtakes it. A 413 halves the
// batch until the collector takes it.
//
// Records are lost only when the spool is full (Write drops what does not
// fit), when the collector refuses a single record as too large (413), when
// a record is not JSON, or when a crash cuts the spool's last record short
// mid-write; each is counted in Status().Dropped. Write does not sync the
// spool: a killed process loses nothing it wrote, a power failure may lose
// the last writes.
//
// Delivery is at least once, not exactly once: a batch the collector took
// is sent again when the process stops between the POST and the cursor
// write, when Close gives up on a request the collector was answering, or
// when the cursor is unreadable (the whole spool is then sent again).
// Events carry their decision_id for the collector to deduplicate.
//
// The spool directory holds segment files of JSON lines, one record a line,
// named spool-<20-digit sequence>.jsonl and written in sequence order, and
// cursor.json, {"segment":N,"offset":M}: the first byte of segment N not
// yet delivered. One Sink at a time may use a directory.
//
// The package owns the spool and the upload; it must not import the engine,
// the adapters or any protocol types beyond internal/audit's contract.
package httpsink

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/verdictpdp/verdict/internal/audit"
)

// Defaults for Options fields left zero.
const (
	DefaultSpoolMaxBytes = 256 << 20
	DefaultMaxBatchBytes = 1 << 20
	DefaultTimeout       = 10 * time.Second
	DefaultMinRetry      = 200 * time.Millisecond
	DefaultMaxRetry      = 30 * time.Second
)

// defaultSegmentBytes is the size at which Write starts a new spool segment.
// Fully sent segments are deleted whole, so the spool's disk use exceeds its
// undelivered bytes by at most one segment.
const defaultSegmentBytes = 4 << 20

// dropLogEvery bounds how often Write logs dropped records.
const dropLogEvery = 10 * time.Second

// keepWriteBuffer is the largest append buffer Write keeps between calls.
const keepWriteBuffer = 4 << 20

// Errors returned by Write, Flush and Close.
var (
	// ErrSpoolFull reports records dropped because the spool held
	// Options.SpoolMaxBytes of undelivered records.
	ErrSpoolFull = errors.New("httpsink: spool full")
	// ErrInvalidRecord reports records dropped because their JSON was empty
	// or, holding a newline, could not be compacted onto one line.
	ErrInvalidRecord = errors.New("httpsink: invalid record")
	// ErrClosed reports a call after Close.
	ErrClosed = errors.New("httpsink: sink closed")
)

// Options configure a Sink.
type Options struct {
	// URL is the decision-log endpoint ("https://collector.example/logs").
	// Userinfo in it is sent as basic authentication and never shown.
	URL string
	// SpoolDir is the spool's directory, created 0700 if missing. Required.
	SpoolDir string
	// SpoolMaxBytes bounds the undelivered bytes in the spool (default 256
	// MiB). Write drops the records that would exceed it.
	SpoolMaxBytes int64
	// MaxBatchBytes bounds one request's uncompressed body (default 1 MiB).
	// A record larger than that is sent alone.
	MaxBatchBytes int
	// Headers are added to every request (Authorization, for one). They are
	// never logged or reported.
	Headers map[string]string
	// Client sends the requests (default: a client of its own with a 10 s
	// timeout).
	Client *http.Client
	// MinRetry and MaxRetry bound the delay between attempts to deliver a
	// batch (default 200 ms and 30 s).
	MinRetry, MaxRetry time.Duration
	// Logger receives the sink's logs (default: discarded).
	Logger *slog.Logger

	// segmentBytes overrides defaultSegmentBytes in tests.
	segmentBytes int64
}

// Sink ships records to a decision-log service through an on-disk spool.
type Sink struct {
	url       string
	target    string
	header    http.Header
	client    *http.Client
	ownClient bool
	dir       string
	maxSpool  int64
	maxBatch  int
	segBytes  int64
	minRetry  time.Duration
	maxRetry  time.Duration
	log       *slog.Logger

	// writeMu serializes Write and Close; it guards the fields below it.
	writeMu     sync.Mutex
	closed      bool
	active      *os.File // the segment Write appends to
	activeSeq   uint64
	activeSize  int64
	rotate      bool // start a new segment before the next append
	wbuf        []byte
	cbuf        bytes.Buffer
	lastDropLog time.Time

	// Owned by the uploader goroutine.
	rf    *os.File // the segment being read
	rfSeq uint64
	rbuf  []byte
	zbuf  bytes.Buffer
	zw    *gzip.Writer

	// mu guards the fields below it. Nobody holds it across I/O.
	mu sync.Mutex
	// segs are the spool's segments, oldest first; segs[0] holds the
	// cursor and the last one is the segment Write appends to.
	segs           []segment
	cursor         position
	pendingRecords int64
	pendingBytes   int64
	written        uint64
	spooled        uint64
	dropped        uint64
	uploadFailed   bool
	writeFailed    bool
	lastErr        string
	lastErrAt      time.Time
	progress       chan struct{} // closed and replaced when the cursor moves

	wake    chan struct{} // Write tells the uploader about new records
	kick    chan struct{} // Flush and Close ask for a retry now
	closing chan struct{} // closed by Close: upload what is left, then stop
	done    chan struct{} // closed when the uploader has stopped
	cancel  context.CancelFunc
}

var _ audit.Sink = (*Sink)(nil)

// New opens (or creates) the spool in opts.SpoolDir, resumes after the
// persisted cursor, and starts uploading.
func New(opts Options) (*Sink, error) {
	u, err := url.Parse(opts.URL)
	if err != nil {
		// url.Error repeats the URL, credentials and all.
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		return nil, fmt.Errorf("httpsink: invalid URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("httpsink: URL %s: want an http or https URL with a host", redact(u))
	}
	if opts.SpoolDir == "" {
		return nil, errors.New("httpsink: SpoolDir is required")
	}
	if opts.SpoolMaxBytes < 0 || opts.MaxBatchBytes < 0 || opts.MinRetry < 0 || opts.MaxRetry < 0 {
		return nil, errors.New("httpsink: negative SpoolMaxBytes, MaxBatchBytes, MinRetry or MaxRetry")
	}
	s := &Sink{
		url:      u.String(),
		target:   redact(u),
		header:   make(http.Header, len(opts.Headers)),
		client:   opts.Client,
		dir:      opts.SpoolDir,
		maxSpool: cmp.Or(opts.SpoolMaxBytes, DefaultSpoolMaxBytes),
		maxBatch: cmp.Or(opts.MaxBatchBytes, DefaultMaxBatchBytes),
		segBytes: cmp.Or(opts.segmentBytes, defaultSegmentBytes),
		minRetry: cmp.Or(opts.MinRetry, DefaultMinRetry),
		maxRetry: cmp.Or(opts.MaxRetry, DefaultMaxRetry),
		log:      opts.Logger,
		progress: make(chan struct{}),
		wake:     make(chan struct{}, 1),
		kick:     make(chan struct{}, 1),
		closing:  make(chan struct{}),
		done:     make(chan struct{}),
	}
	if s.minRetry > s.maxRetry {
		return nil, fmt.Errorf("httpsink: MinRetry %v exceeds MaxRetry %v", s.minRetry, s.maxRetry)
	}
	for k, v := range opts.Headers {
		if !validHeaderName(k) || !validHeaderValue(v) {
			// The value may be a secret: name the header only.
			return nil, fmt.Errorf("httpsink: header %q: invalid name or value", k)
		}
		s.header.Set(k, v)
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("sink", "http", "target", s.target)
	if s.client == nil {
		t, ok := http.DefaultTransport.(*http.Transport)
		if !ok {
			return nil, errors.New("httpsink: http.DefaultTransport is not an *http.Transport")
		}
		s.client = &http.Client{Transport: t.Clone(), Timeout: DefaultTimeout}
		s.ownClient = true
	}
	s.zw = gzip.NewWriter(&s.zbuf)

	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return nil, fmt.Errorf("httpsink: spool: %w", err)
	}
	if err := s.recover(); err != nil {
		return nil, err
	}
	if err := s.rotateSegment(); err != nil {
		return nil, fmt.Errorf("httpsink: spool: %w", err)
	}
	s.normalizeCursor()

	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go s.run(ctx)
	return s, nil
}

// Name implements audit.Sink.
func (s *Sink) Name() string { return "http" }

// Write appends the batch to the spool with one write, and returns without
// waiting for the upload. Records that would take the spool past
// SpoolMaxBytes are dropped and counted; the others are kept, in order.
func (s *Sink) Write(_ context.Context, batch []audit.Record) error {
	if len(batch) == 0 {
		return nil
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if s.closed {
		s.dropOnWrite(len(batch), "sink closed")
		return fmt.Errorf("%w: %d records dropped", ErrClosed, len(batch))
	}

	s.mu.Lock()
	room := s.maxSpool - s.pendingBytes
	s.mu.Unlock()

	buf := s.wbuf[:0]
	var accepted, full, invalid int
	for i := range batch {
		line := batch[i].JSON
		if bytes.IndexByte(line, '\n') >= 0 {
			// Valid JSON holds a newline only as whitespace between tokens.
			s.cbuf.Reset()
			if err := json.Compact(&s.cbuf, line); err != nil {
				invalid++
				continue
			}
			line = s.cbuf.Bytes()
		}
		if len(line) == 0 {
			invalid++
			continue
		}
		if n := int64(len(line)) + 1; n <= room {
			room -= n
			buf = append(buf, line...)
			buf = append(buf, '\n')
			accepted++
		} else {
			full++
		}
	}
	if cap(buf) <= keepWriteBuffer {
		s.wbuf = buf[:0]
	} else {
		s.wbuf = nil
	}

	var errs []error
	if accepted > 0 {
		if err := s.appendSpool(buf); err != nil {
			s.dropOnWrite(accepted, "spool write failed: "+cause(err))
			errs = append(errs, fmt.Errorf("httpsink: spool: %w: %d records dropped", err, accepted))
			accepted = 0
		}
	}
	if full > 0 {
		s.dropOnWrite(full, "spool full")
		errs = append(errs, fmt.Errorf("%w: %d of %d records dropped", ErrSpoolFull, full, len(batch)))
	}
	if invalid > 0 {
		s.dropOnWrite(invalid, "invalid record")
		errs = append(errs, fmt.Errorf("%w: %d records dropped", ErrInvalidRecord, invalid))
	}

	s.mu.Lock()
	s.segs[len(s.segs)-1].size = s.activeSize
	if accepted > 0 {
		s.pendingBytes += int64(len(buf))
		s.pendingRecords += int64(accepted)
		s.spooled += count(accepted)
	}
	if len(errs) == 0 {
		s.writeFailed = false
	}
	s.mu.Unlock()
	if accepted > 0 {
		s.notify()
	}
	return errors.Join(errs...)
}

// dropOnWrite counts n records dropped by Write, and logs it at most once
// every dropLogEvery. writeMu is held.
func (s *Sink) dropOnWrite(n int, reason string) {
	now := time.Now()
	s.mu.Lock()
	s.dropped += count(n)
	total := s.dropped
	s.writeFailed = true
	s.lastErr, s.lastErrAt = reason, now
	s.mu.Unlock()
	if now.Sub(s.lastDropLog) >= dropLogEvery {
		s.lastDropLog = now
		s.log.Warn("audit records dropped", "reason", reason, "dropped_total", total)
	}
}

func (s *Sink) notify() { signal(s.wake) }

// signal sends on a channel of capacity 1 without waiting.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Flush waits until every record Write returned before the call is
// delivered (or dropped by the collector as too large). An upload waiting
// to retry is retried at once.
func (s *Sink) Flush(ctx context.Context) error {
	signal(s.kick)
	s.mu.Lock()
	last := s.segs[len(s.segs)-1]
	s.mu.Unlock()
	target := position{seg: last.seq, off: last.size}
	for {
		s.mu.Lock()
		reached := !s.cursor.before(target)
		progress := s.progress
		s.mu.Unlock()
		if reached {
			return nil
		}
		select {
		case <-progress:
		case <-ctx.Done():
			return fmt.Errorf("httpsink: flush: %w", ctx.Err())
		case <-s.done:
			s.mu.Lock()
			reached = !s.cursor.before(target)
			s.mu.Unlock()
			if reached {
				return nil
			}
			return fmt.Errorf("httpsink: flush: %w", ErrClosed)
		}
	}
}

// Close stops accepting records and keeps uploading until the spool is
// empty or ctx ends; an upload waiting to retry is retried at once. What is
// left stays in the spool for the next New on the same directory; Close then
// reports how many records that is.
func (s *Sink) Close(ctx context.Context) error {
	s.writeMu.Lock()
	if s.closed {
		s.writeMu.Unlock()
		<-s.done
		return nil
	}
	s.closed = true
	s.writeMu.Unlock()

	close(s.closing)
	signal(s.kick)
	select {
	case <-s.done:
	case <-ctx.Done():
		s.cancel() // aborts the request in flight; its batch stays spooled
		<-s.done
	}
	s.cancel()
	if s.ownClient {
		s.client.CloseIdleConnections()
	}

	s.writeMu.Lock()
	err := s.active.Sync()
	err = errors.Join(err, s.active.Close())
	s.writeMu.Unlock()
	if err != nil {
		err = fmt.Errorf("httpsink: spool: %w", err)
	}

	s.mu.Lock()
	left := s.pendingRecords
	s.mu.Unlock()
	switch {
	case left == 0:
	case ctx.Err() != nil:
		err = errors.Join(err, fmt.Errorf("httpsink: %d records left in the spool: %w", left, context.Cause(ctx)))
	default:
		err = errors.Join(err, fmt.Errorf("httpsink: %d records left in the spool", left))
	}
	return err
}

// Status implements audit.Sink.
func (s *Sink) Status() audit.SinkStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return audit.SinkStatus{
		Name:        s.Name(),
		Target:      s.target,
		Healthy:     !s.uploadFailed && !s.writeFailed,
		QueueDepth:  s.pendingRecords,
		SpoolBytes:  s.pendingBytes,
		Written:     s.written,
		Spooled:     s.spooled,
		Dropped:     s.dropped,
		LastError:   s.lastErr,
		LastErrorAt: s.lastErrAt,
	}
}

// cause returns the innermost error's text: "no space left on device"
// without the path, "connection refused" without the URL.
func cause(err error) string {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err.Error()
		}
		err = next
	}
}

// count converts a record count for the counters.
func count(n int) uint64 {
	if n <= 0 {
		return 0
	}
	return uint64(n)
}
