package sse

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// lineSlack is how much longer than the event limit a line may be: room for "event: " before a
// value of the full limit, and for any retry line the Reader accepts ("retry: " and nine digits).
const lineSlack = 16

// bom is the UTF-8 byte order mark a stream may start with.
var bom = []byte("\xEF\xBB\xBF")

// Reader reads events from a text/event-stream. It is not safe for concurrent use.
type Reader struct {
	br      *bufio.Reader
	max     int // event size limit
	lineMax int // line length limit, terminator excluded
	err     error

	line    []byte // the current line when it spans more than one fill of br
	discard int    // bytes of br still to discard: the line last returned and its terminator
	skipLF  bool   // the last line ended in CR: an LF right after it ends nothing
	started bool   // a line has been read, so a BOM is no longer expected

	// The event being read.
	pending bool   // a field line has been read since the last blank line
	data    []byte // data lines, each followed by LF
	id      []byte
	hasID   bool
	typ     []byte
	retry   int
}

// NewReader returns a Reader of r whose events (id, type and data together, see Event.Size) may be
// at most maxEventBytes long, DefaultMaxEventBytes when maxEventBytes is not positive.
func NewReader(r io.Reader, maxEventBytes int) *Reader {
	if maxEventBytes <= 0 {
		maxEventBytes = DefaultMaxEventBytes
	}
	size := min(max(maxEventBytes+lineSlack, 4<<10), 64<<10)
	return &Reader{
		br:      bufio.NewReaderSize(r, size),
		max:     maxEventBytes,
		lineMax: maxEventBytes + lineSlack,
	}
}

// Next returns the next event. Comment lines (":...") and events with no data, no id and no
// positive retry are skipped; comments never count against the size limit.
//
// Next returns io.EOF only at a clean event boundary. A stream that ends after some lines of an
// event but before the blank line that completes it returns ErrTruncated, so that no half event is
// ever passed on. An event over the limit, or a single line more than 16 bytes over it (room for a
// field name), returns an error wrapping ErrTooLarge, having read at most about that much of it.
// Lines end in LF, CRLF or CR; a UTF-8 BOM at the start of the stream is skipped. Fields other than
// data, event, id and retry are ignored, as are id fields holding NUL and retry fields that are
// not one to nine ASCII digits.
//
// Once Next returns an error, every later call returns the same error. Errors never hold stream
// content.
func (r *Reader) Next() (Event, error) {
	if r.err != nil {
		return Event{}, r.err
	}
	ev, err := r.next()
	if err != nil {
		r.err = err
	}
	return ev, err
}

func (r *Reader) next() (Event, error) {
	for {
		line, err := r.readLine()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				return Event{}, err
			}
			if r.pending || (len(line) > 0 && line[0] != ':') {
				return Event{}, ErrTruncated
			}
			return Event{}, io.EOF
		}
		switch {
		case len(line) == 0:
			if ev, ok := r.dispatch(); ok {
				return ev, nil
			}
		case line[0] == ':':
			// A comment.
		default:
			if err := r.field(line); err != nil {
				return Event{}, err
			}
		}
	}
}

// readLine returns the next line without its terminator. The line is valid until the next call.
// At the end of the stream it returns the unterminated rest, possibly empty, with io.EOF.
func (r *Reader) readLine() ([]byte, error) {
	if r.discard > 0 {
		_, _ = r.br.Discard(r.discard) // never fails: the bytes are buffered
		r.discard = 0
	}
	r.line = r.line[:0]
	for {
		if r.br.Buffered() == 0 {
			if _, err := r.br.Peek(1); err != nil {
				if errors.Is(err, io.EOF) {
					return r.stripBOM(r.line), io.EOF
				}
				return nil, fmt.Errorf("sse: read: %w", err)
			}
		}
		buf, _ := r.br.Peek(r.br.Buffered()) // never fails: the bytes are buffered
		if r.skipLF {
			r.skipLF = false
			if buf[0] == '\n' {
				_, _ = r.br.Discard(1)
				continue
			}
		}
		end := bytes.IndexByte(buf, '\n')
		head := buf
		if end >= 0 {
			head = buf[:end]
		}
		if cr := bytes.IndexByte(head, '\r'); cr >= 0 {
			end = cr
		}
		if end < 0 {
			if len(r.line)+len(buf) > r.lineMax {
				return nil, r.tooLarge()
			}
			r.line = append(r.line, buf...)
			_, _ = r.br.Discard(len(buf))
			continue
		}
		if len(r.line)+end > r.lineMax {
			return nil, r.tooLarge()
		}
		r.skipLF = buf[end] == '\r'
		r.discard = end + 1
		if len(r.line) == 0 {
			return r.stripBOM(buf[:end]), nil
		}
		r.line = append(r.line, buf[:end]...)
		return r.stripBOM(r.line), nil
	}
}

// stripBOM drops a BOM from the first line of the stream.
func (r *Reader) stripBOM(line []byte) []byte {
	if r.started {
		return line
	}
	r.started = true
	return bytes.TrimPrefix(line, bom)
}

// field applies one field line to the event being read.
func (r *Reader) field(line []byte) error {
	r.pending = true
	name, value := line, []byte(nil)
	if i := bytes.IndexByte(line, ':'); i >= 0 {
		name, value = line[:i], line[i+1:]
		if len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
	}
	switch string(name) {
	case "data":
		if len(r.data)+len(value)+len(r.id)+len(r.typ) > r.max {
			return r.tooLarge()
		}
		r.data = append(append(r.data, value...), '\n')
	case "event":
		if r.dataLen()+len(r.id)+len(value) > r.max {
			return r.tooLarge()
		}
		r.typ = append(r.typ[:0], value...)
	case "id":
		if bytes.IndexByte(value, 0) >= 0 {
			return nil
		}
		if r.dataLen()+len(value)+len(r.typ) > r.max {
			return r.tooLarge()
		}
		r.id = append(r.id[:0], value...)
		r.hasID = true
	case "retry":
		if n, ok := parseRetry(value); ok {
			r.retry = n
		}
	}
	return nil
}

// dataLen is the length of the event's data so far.
func (r *Reader) dataLen() int {
	return max(len(r.data)-1, 0)
}

// dispatch ends the event being read, returning it unless it is one to skip.
func (r *Reader) dispatch() (Event, bool) {
	var ev Event
	if n := r.dataLen(); n > 0 {
		ev.Data = bytes.Clone(r.data[:n])
	}
	ok := len(ev.Data) > 0 || r.hasID || r.retry > 0
	if ok {
		ev.ID, ev.HasID, ev.Type, ev.Retry = string(r.id), r.hasID, string(r.typ), r.retry
	}
	r.pending, r.data, r.id, r.hasID, r.typ, r.retry = false, reuse(r.data), reuse(r.id), false, reuse(r.typ), 0
	r.line = reuse(r.line)
	return ev, ok
}

// keepBytes is the largest scratch buffer kept from one event to the next, so that an idle stream
// does not hold on to the memory of its largest event.
const keepBytes = 64 << 10

// reuse empties b for the next event, or drops it when it has grown past keepBytes.
func reuse(b []byte) []byte {
	if cap(b) > keepBytes {
		return nil
	}
	return b[:0]
}

func (r *Reader) tooLarge() error {
	return fmt.Errorf("%w: over %d bytes", ErrTooLarge, r.max)
}

// parseRetry parses a retry value: ASCII digits only, and not so many that they overflow.
func parseRetry(value []byte) (int, bool) {
	if len(value) == 0 || len(value) > 9 {
		return 0, false
	}
	n := 0
	for _, c := range value {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}
