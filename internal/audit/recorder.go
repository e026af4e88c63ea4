package audit

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/verdictpdp/verdict/internal/engine"
)

// Defaults of Options.
const (
	DefaultQueueSize     = 16384
	DefaultMaxBlock      = 5 * time.Millisecond
	DefaultRetentionDays = 365
	maxBatch             = 256
	maskTimeout          = 250 * time.Millisecond
	// linger is how long the worker lets a batch gather after its first
	// entry: an event reaches the sinks at most this much later.
	linger = 2 * time.Millisecond
)

// Options configure a Recorder.
type Options struct {
	// Sinks receive every record, in decision order. A recorder without
	// sinks accepts entries and discards them.
	Sinks []Sink
	// QueueSize bounds the entries waiting for the worker.
	QueueSize int
	// MaxBlock bounds how long Record waits for room in a full queue
	// before it drops the entry (counted and logged).
	MaxBlock time.Duration
	// Labels are written with every event (OPA's labels: id, version, …).
	Labels map[string]string
	// Retention chooses each record's retention.
	Retention Retention
	// Snapshot returns the active policy, for data.system.log.mask and
	// drop; nil turns policy masking off.
	Snapshot func() *engine.Snapshot
	// Observe, when set, sees every entry on the request path before it
	// is queued (metrics). It must be fast and must not keep e.
	Observe func(e *Entry)
	Logger  *slog.Logger
}

// Retention is how long records are kept: the decision's retention_days,
// else the default of its classification, else DefaultDays.
type Retention struct {
	DefaultDays      int            `json:"default_days"`
	ByClassification map[string]int `json:"by_classification,omitempty"`
}

// Days returns the retention of a record with the decision's retention
// days and classification.
func (r Retention) Days(days int, classification string) int {
	if days > 0 {
		return days
	}
	if d, ok := r.ByClassification[classification]; ok && d > 0 {
		return d
	}
	if r.DefaultDays > 0 {
		return r.DefaultDays
	}
	return DefaultRetentionDays
}

// Stats are the recorder's counters.
type Stats struct {
	QueueDepth    int64  `json:"queue_depth"`
	QueueCapacity int    `json:"queue_capacity"`
	Recorded      uint64 `json:"recorded"`
	// QueueFull counts entries dropped because the queue stayed full for
	// MaxBlock.
	QueueFull uint64 `json:"queue_full"`
	// PolicyDropped counts events data.system.log.drop dropped.
	PolicyDropped uint64 `json:"policy_dropped"`
	// MaskErrors counts events whose masking policy failed: their input and
	// result were erased whole.
	MaskErrors uint64 `json:"mask_errors"`
	// Unbuilt counts events whose input could not be rebuilt for the log
	// (the event is written without it).
	Unbuilt uint64 `json:"unbuilt"`
}

// Recorder turns entries into records off the request path.
type Recorder struct {
	opts   Options
	labels []byte
	logger *slog.Logger
	queue  chan *Entry
	quit   chan struct{}
	done   chan struct{}
	closed atomic.Bool

	recorded, queueFull, policyDropped, maskErrors, unbuilt atomic.Uint64
	lastFullLog                                             atomic.Int64

	parts  []byte     // the worker's scratch for an event's input and result
	masked []string   // and for its masked pointers
	w      JSONWriter // writes the input of the common case

	closeOnce sync.Once
	closeErr  error
}

// New starts a recorder's worker.
func New(opts Options) (*Recorder, error) {
	if opts.QueueSize <= 0 {
		opts.QueueSize = DefaultQueueSize
	}
	if opts.MaxBlock <= 0 {
		opts.MaxBlock = DefaultMaxBlock
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Recorder{
		opts:   opts,
		logger: opts.Logger,
		queue:  make(chan *Entry, opts.QueueSize),
		quit:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	if len(opts.Labels) > 0 {
		b, err := json.Marshal(opts.Labels)
		if err != nil {
			return nil, err
		}
		r.labels = b
	}
	go r.run()
	return r, nil
}

// Enabled reports whether entries go anywhere: callers skip building them
// otherwise.
func (r *Recorder) Enabled() bool {
	return r != nil && (len(r.opts.Sinks) > 0 || r.opts.Observe != nil)
}

// Record hands e to the worker. It waits at most MaxBlock for room in a
// full queue; after that the entry is dropped, counted and logged, and
// Record returns false. Record must not be called after Close.
func (r *Recorder) Record(e *Entry) bool {
	if !r.Enabled() {
		return true
	}
	if r.opts.Observe != nil {
		r.opts.Observe(e)
	}
	if len(r.opts.Sinks) == 0 {
		return true
	}
	if r.closed.Load() {
		r.full()
		return false
	}
	select {
	case r.queue <- e:
		return true
	default:
	}
	t := time.NewTimer(r.opts.MaxBlock)
	defer t.Stop()
	select {
	case r.queue <- e:
		return true
	case <-t.C:
		r.full()
		return false
	}
}

func (r *Recorder) full() {
	n := r.queueFull.Add(1)
	now := time.Now().UnixNano()
	last := r.lastFullLog.Load()
	if now-last > int64(10*time.Second) && r.lastFullLog.CompareAndSwap(last, now) {
		r.logger.Error("audit queue full: decision events dropped", "dropped_total", n, "queue_capacity", r.opts.QueueSize)
	}
}

// Stats returns the recorder's counters.
func (r *Recorder) Stats() Stats {
	if r == nil {
		return Stats{}
	}
	return Stats{
		QueueDepth:    int64(len(r.queue)),
		QueueCapacity: cap(r.queue),
		Recorded:      r.recorded.Load(),
		QueueFull:     r.queueFull.Load(),
		PolicyDropped: r.policyDropped.Load(),
		MaskErrors:    r.maskErrors.Load(),
		Unbuilt:       r.unbuilt.Load(),
	}
}

// Sinks returns every sink's status.
func (r *Recorder) Sinks() []SinkStatus {
	if r == nil {
		return nil
	}
	out := make([]SinkStatus, len(r.opts.Sinks))
	for i, s := range r.opts.Sinks {
		out[i] = s.Status()
	}
	return out
}

// Close writes every queued entry, then closes the sinks (which flush),
// giving up when ctx ends. Call it after the servers stopped.
func (r *Recorder) Close(ctx context.Context) error {
	r.closeOnce.Do(func() {
		r.closed.Store(true)
		close(r.quit)
		select {
		case <-r.done:
		case <-ctx.Done():
			r.closeErr = errors.New("audit queue not drained before the shutdown deadline")
		}
		for _, s := range r.opts.Sinks {
			if err := s.Close(ctx); err != nil {
				r.closeErr = errors.Join(r.closeErr, err)
			}
		}
	})
	return r.closeErr
}

func (r *Recorder) run() {
	defer close(r.done)
	batch := make([]*Entry, 0, maxBatch)
	recs := make([]Record, 0, maxBatch)
	var buf []byte
	for {
		var e *Entry
		select {
		case e = <-r.queue:
		case <-r.quit:
			// Drain what was queued before Close.
			for {
				select {
				case e := <-r.queue:
					batch = append(batch, e)
					if len(batch) == maxBatch {
						buf, recs = r.write(batch, buf, recs)
						batch = batch[:0]
					}
				default:
					r.write(batch, buf, recs)
					return
				}
			}
		}
		batch = append(batch, e)
		if len(r.queue) < maxBatch-1 && !r.closed.Load() {
			// Let a batch gather: decisions queue without waking the worker,
			// which then writes them with one call per sink.
			time.Sleep(linger)
		}
	fill:
		for len(batch) < maxBatch {
			select {
			case e := <-r.queue:
				batch = append(batch, e)
			default:
				break fill
			}
		}
		buf, recs = r.write(batch, buf, recs)
		clear(batch)
		batch = batch[:0]
	}
}

// write builds the batch's records into one buffer and hands them to every
// sink.
func (r *Recorder) write(batch []*Entry, buf []byte, recs []Record) ([]byte, []Record) {
	if len(batch) == 0 {
		return buf, recs
	}
	buf, recs = buf[:0], recs[:0]
	var snap *engine.Snapshot
	if r.opts.Snapshot != nil {
		snap = r.opts.Snapshot()
	}
	ends := make([]int, 0, len(batch))
	kept := make([]*Entry, 0, len(batch))
	days := make([]int, 0, len(batch))
	for _, e := range batch {
		var ok bool
		var d int
		buf, d, ok = r.build(buf, e, snap)
		if !ok {
			continue
		}
		ends = append(ends, len(buf))
		kept = append(kept, e)
		days = append(days, d)
	}
	start := 0
	for i, e := range kept {
		recs = append(recs, Record{
			ID:      e.DecisionID,
			Time:    e.Time,
			Expires: e.Time.Add(time.Duration(days[i]) * 24 * time.Hour),
			JSON:    buf[start:ends[i]:ends[i]],
		})
		start = ends[i]
	}
	r.recorded.Add(uint64(len(batch)))
	if len(recs) == 0 {
		return buf, recs
	}
	for _, s := range r.opts.Sinks {
		if err := s.Write(context.Background(), recs); err != nil {
			r.logger.Warn("audit sink write failed", "sink", s.Name(), "records", len(recs), "err", err)
		}
	}
	// Sinks do not keep the records' bytes: the buffer is reused.
	return buf, recs
}

// build appends e's event to buf. It returns the retention in days, and
// false when the policy dropped the event.
func (r *Recorder) build(buf []byte, e *Entry, snap *engine.Snapshot) ([]byte, int, bool) {
	ev := event{e: e, labels: r.labels, retention: r.opts.Retention.Days(e.RetentionDays, e.Classification)}
	if len(e.Bundles) == 0 && snap != nil {
		// Refused before evaluation: the bundles active when it was logged.
		e.Bundles = snap.Bundles
	}

	policy := snap != nil && (snap.Defines(MaskPath) || snap.Defines(DropPath))
	callMasks := e.Kind != KindEnvoy && (len(e.Redact) > 0 || e.Classification == "restricted")
	direct := !policy && !callMasks

	var astIn ast.Value
	var goIn any
	switch x := e.Input.(type) {
	case nil:
	case map[string]any:
		goIn = x
	case ast.Value:
		astIn = x
	case InputWriter:
		if direct {
			// A cache hit: the input is written from the request it would
			// be built from, with credentials masked on the way.
			return r.buildDirect(buf, &ev, x), ev.retention, true
		}
		astIn = r.auditInput(x)
	case InputSource:
		astIn = r.auditInput(x)
	}

	if astIn != nil && direct {
		// The common case: the input is written straight from the Rego
		// value, with credentials masked on the way.
		w := &r.w
		w.reset(r.parts[:0], r.masked[:0], kindMask(e.Kind))
		w.Value(astIn)
		return r.finish(buf, &ev, w.buf, w.masked), ev.retention, true
	}

	d := doc{}
	if astIn != nil {
		v, err := ast.JSON(astIn)
		if err != nil {
			r.unbuilt.Add(1)
		} else {
			goIn = v
		}
	}
	if goIn != nil {
		d.input, d.hasInput = goIn, true
	}
	if e.Result != nil {
		d.result, d.hasResult = e.Result, true
	}
	switch e.Kind {
	case KindEnvoy:
		d.maskHeaders("/input")
	case KindMCPOverEnvoy:
		d.maskHeaders("/input/envoy")
		if d.redactCall(e, "/input") || e.Classification == "restricted" || len(e.Redact) > 0 {
			d.eraseBodies("/input/envoy")
		}
	case KindMCP:
		d.redactCall(e, "/input")
	case KindControl, KindGateway:
		// A lifecycle event or a gateway's message record has no input;
		// a control's detail is masked when made.
	case KindAuthZEN:
		// Nothing of an AuthZEN request is masked by default; a masking
		// policy (MaskPath) can erase its members.
	}
	if policy {
		ctx, cancel := context.WithTimeout(context.Background(), maskTimeout)
		drop, err := policyMask(ctx, snap, e, &d)
		cancel()
		switch {
		case err != nil:
			// Never write what the policy meant to hide.
			r.maskErrors.Add(1)
			r.logger.Warn("audit masking policy failed: input and result erased", "decision_id", e.DecisionID, "err", err)
			_, _ = d.erase("/input")
			_, _ = d.erase("/result")
		case drop:
			r.policyDropped.Add(1)
			return buf, 0, false
		}
	}
	ev.erased, ev.masked = d.erased, d.masked
	parts := r.parts[:0]
	if d.hasInput {
		parts = appendGo(parts, d.input)
		ev.inputJSON = parts
	}
	if d.hasResult {
		n := len(parts)
		parts = appendGo(parts, d.result)
		ev.resultJSON = parts[n:]
	}
	r.parts = parts
	return appendEvent(buf, &ev), ev.retention, true
}

// auditInput builds the input of src, counting the events written without
// it.
func (r *Recorder) auditInput(src InputSource) ast.Value {
	v, err := src.AuditInput()
	if err != nil {
		r.unbuilt.Add(1)
		return nil
	}
	return v
}

// buildDirect appends the event whose input src writes. An input that
// cannot be built is left out, as AuditInput's failure leaves it out.
func (r *Recorder) buildDirect(buf []byte, ev *event, src InputWriter) []byte {
	w := &r.w
	w.reset(r.parts[:0], r.masked[:0], kindMask(ev.e.Kind))
	if err := src.WriteAuditInput(w); err != nil {
		r.unbuilt.Add(1)
		r.parts, r.masked = w.buf[:0], w.masked[:0]
		return r.finish(buf, ev, nil, nil)
	}
	return r.finish(buf, ev, w.buf, w.masked)
}

// finish appends the event with the input written in input (nil: none) and
// the masked pointers, writing the result after the input. The recorder
// keeps the scratch for the next event: appendEvent copies both.
func (r *Recorder) finish(buf []byte, ev *event, input []byte, masked []string) []byte {
	parts := input
	if parts == nil {
		parts = r.parts[:0]
	}
	n := len(parts)
	if ev.e.Result != nil {
		parts = appendGo(parts, ev.e.Result)
		ev.resultJSON = parts[n:]
	}
	if input != nil {
		ev.inputJSON = parts[:n]
	}
	ev.masked = masked
	r.parts, r.masked = parts, masked
	return appendEvent(buf, ev)
}
