package sse

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// Writer writes events to a text/event-stream. It is safe for concurrent use, so that keep-alive
// comments may be written from another goroutine than events; each event or comment is written
// whole, with a single Write.
type Writer struct {
	mu    sync.Mutex
	w     io.Writer
	flush func() error // nil when w cannot flush
	buf   []byte
}

// NewWriter returns a Writer to w that flushes w after every event and comment when w can flush:
// an http.ResponseWriter through http.ResponseController (which also finds the Flusher of a
// wrapped ResponseWriter), or any writer with a Flush() error or Flush() method.
func NewWriter(w io.Writer) *Writer {
	sw := &Writer{w: w}
	switch f := w.(type) {
	case http.ResponseWriter:
		rc := http.NewResponseController(f)
		sw.flush = func() error {
			if err := rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
				return err
			}
			return nil
		}
	case interface{ Flush() error }:
		sw.flush = f.Flush
	case http.Flusher:
		sw.flush = func() error { f.Flush(); return nil }
	}
	return sw
}

// WriteEvent writes one event: an "id" field when e.HasID or e.ID is not empty, an "event" field
// when e.Type is not empty, a "retry" field when e.Retry is positive, one "data" field per line of
// e.Data (split at CR, LF and CRLF alike, see the package documentation), then a blank line.
// Empty data writes no data field. An id holding CR, LF or NUL, a type holding CR or LF and a
// negative retry are refused with ErrInvalidField, and nothing is written.
func (w *Writer) WriteEvent(e Event) error {
	switch {
	case strings.ContainsAny(e.ID, "\r\n\x00"):
		return fmt.Errorf("%w: id holds CR, LF or NUL", ErrInvalidField)
	case strings.ContainsAny(e.Type, "\r\n"):
		return fmt.Errorf("%w: event type holds CR or LF", ErrInvalidField)
	case e.Retry < 0:
		return fmt.Errorf("%w: negative retry", ErrInvalidField)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	b := w.buf[:0]
	if e.HasID || e.ID != "" {
		b = appendField(b, "id", e.ID)
	}
	if e.Type != "" {
		b = appendField(b, "event", e.Type)
	}
	if e.Retry > 0 {
		b = append(strconv.AppendInt(append(b, "retry: "...), int64(e.Retry), 10), '\n')
	}
	for data := e.Data; len(data) > 0; {
		end, next := lineEnd(data)
		b = appendField(b, "data", data[:end])
		data = data[next:]
		if end == next {
			// The data ends in this line, unterminated.
			break
		}
		if len(data) == 0 {
			// The data ends in a line break: one more, empty, line.
			b = appendField(b, "data", "")
		}
	}
	b = append(b, '\n')
	w.buf = reuse(b)
	return w.write(b)
}

// Comment writes a comment, ": text" followed by a blank line, which readers ignore; it keeps idle
// connections open. Text holding CR or LF is refused with ErrInvalidField.
func (w *Writer) Comment(text string) error {
	if strings.ContainsAny(text, "\r\n") {
		return fmt.Errorf("%w: comment holds CR or LF", ErrInvalidField)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	b := append(w.buf[:0], ':')
	if text != "" {
		b = append(append(b, ' '), text...)
	}
	b = append(b, '\n', '\n')
	w.buf = b
	return w.write(b)
}

// write writes b and flushes; w.mu is held.
func (w *Writer) write(b []byte) error {
	if _, err := w.w.Write(b); err != nil {
		return fmt.Errorf("sse: write: %w", err)
	}
	if w.flush != nil {
		if err := w.flush(); err != nil {
			return fmt.Errorf("sse: flush: %w", err)
		}
	}
	return nil
}

// appendField appends "name: value\n" to b.
func appendField[T string | []byte](b []byte, name string, value T) []byte {
	b = append(append(b, name...), ':', ' ')
	return append(append(b, value...), '\n')
}

// lineEnd returns where the first line of data ends and where the next one starts: at the first
// CR, LF or CRLF, or both len(data) when there is none.
func lineEnd(data []byte) (end, next int) {
	for i, c := range data {
		switch c {
		case '\n':
			return i, i + 1
		case '\r':
			if i+1 < len(data) && data[i+1] == '\n' {
				return i, i + 2
			}
			return i, i + 1
		}
	}
	return len(data), len(data)
}
