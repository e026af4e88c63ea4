package audit

import (
	"context"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// Console writes records as JSON lines to a stream, for development. It
// keeps nothing: a failed write is counted as dropped.
type Console struct {
	mu      sync.Mutex
	w       io.Writer
	target  string
	buf     []byte
	written atomic.Uint64
	dropped atomic.Uint64
	lastErr atomic.Pointer[sinkError]
}

type sinkError struct {
	msg string
	at  time.Time
}

// NewConsole returns a console sink writing to w, named target in status
// ("stdout", "stderr").
func NewConsole(w io.Writer, target string) *Console { return &Console{w: w, target: target} }

// Name implements Sink.
func (c *Console) Name() string { return "console" }

// Write implements Sink.
func (c *Console) Write(_ context.Context, batch []Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf = c.buf[:0]
	for _, r := range batch {
		c.buf = append(c.buf, r.JSON...)
		c.buf = append(c.buf, '\n')
	}
	if _, err := c.w.Write(c.buf); err != nil {
		c.dropped.Add(uint64(len(batch)))
		c.lastErr.Store(&sinkError{msg: "write to " + c.target + " failed", at: time.Now()})
		return err
	}
	c.written.Add(uint64(len(batch)))
	c.lastErr.Store(nil)
	return nil
}

// Close implements Sink.
func (c *Console) Close(context.Context) error { return nil }

// Status implements Sink.
func (c *Console) Status() SinkStatus {
	st := SinkStatus{Name: c.Name(), Target: c.target, Healthy: true, Written: c.written.Load(), Dropped: c.dropped.Load()}
	if e := c.lastErr.Load(); e != nil {
		st.Healthy, st.LastError, st.LastErrorAt = false, e.msg, e.at
	}
	return st
}
