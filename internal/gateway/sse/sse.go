// Package sse reads and writes Server-Sent Events (WHATWG HTML "server-sent events" parsing rules)
// as MCP's Streamable HTTP transport uses them, with limits on hostile streams.
//
// The Reader parses a text/event-stream body from an untrusted server one event at a time, never
// buffering much more than the configured event size, and tells a stream that ends cleanly (io.EOF)
// apart from one cut off inside an event (ErrTruncated). The Writer writes events back out so that
// reading them again yields the same ID, Type, Data and Retry.
//
// Departures from a browser's EventSource, all deliberate for a proxy that inspects each event:
//   - Event.ID is the id of that event only; the "last event ID" is not carried over to later
//     events.
//   - An event is returned when it has non-empty data, an id field or a positive retry; a browser
//     dispatches only events with data and applies id and retry silently.
//   - SSE cannot carry a carriage return inside data: a line ends at CR, LF or CRLF, and the reader
//     joins data lines with LF. The Writer therefore splits data on CR, LF and CRLF alike, so data
//     holding a CR reads back with an LF in its place. JSON-RPC payloads never hold a raw CR or LF
//     outside whitespace, so their meaning does not change.
package sse

import (
	"errors"
	"fmt"
	"io"
)

// DefaultMaxEventBytes is the event size limit NewReader uses when given a limit that is not
// positive.
const DefaultMaxEventBytes = 1 << 20

var (
	// ErrTooLarge reports an event, or a single line, over the Reader's size limit.
	ErrTooLarge = errors.New("sse: event too large")

	// ErrTruncated reports a stream that ended inside an event, after some of its lines but before
	// the blank line that completes it. It wraps io.ErrUnexpectedEOF.
	ErrTruncated = fmt.Errorf("sse: stream ended inside an event: %w", io.ErrUnexpectedEOF)

	// ErrInvalidField reports an event or comment the Writer cannot write without changing its
	// meaning, such as an id holding a line break.
	ErrInvalidField = errors.New("sse: invalid field")
)

// Event is one server-sent event.
type Event struct {
	ID    string // last "id" field of the event ("" when none); HasID tells an explicit empty id apart
	HasID bool
	Type  string // "event" field; "" means "message"
	Data  []byte // "data" lines joined with "\n"
	Retry int    // "retry" in ms, 0 when absent
}

// Size is the number of bytes of the event the Reader's limit counts: its id, type and data.
func (e Event) Size() int {
	return len(e.ID) + len(e.Type) + len(e.Data)
}
