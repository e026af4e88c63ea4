// Package audit records every decision as an event in OPA's decision-log
// format, masks it as the policy says, and hands it to the configured sinks
// off the request path.
//
// The request path only enqueues an Entry. One worker builds each event
// (input, masking, JSON) and writes batches to every sink in order; sinks
// (internal/audit/filelog, internal/audit/httpsink, the console) store or ship
// the bytes they are given and report their health through Status.
package audit

import (
	"context"
	"time"
)

// Record is one event as a sink receives it.
type Record struct {
	// ID is the decision id.
	ID string
	// Time is when the decision was made.
	Time time.Time
	// Expires is when the record's retention ends: a sink that keeps records
	// may delete it after this instant, and must not before.
	Expires time.Time
	// JSON is the event: one JSON object, without a trailing newline. Sinks
	// must not modify it; it is shared between sinks.
	JSON []byte
}

// Sink stores or ships records.
type Sink interface {
	// Name identifies the sink in status, metrics and logs ("file", "http",
	// "console").
	Name() string
	// Write takes one batch, in decision order. It is called from a single
	// goroutine and must not wait on the network. It returns an error when
	// any record of the batch was not accepted; the sink has then already
	// counted those records as dropped and recorded the error in Status.
	Write(ctx context.Context, batch []Record) error
	// Close flushes what the sink holds and releases it, giving up when ctx
	// ends. Records it could not deliver by then stay where a restart finds
	// them (a spool), or are counted as dropped.
	Close(ctx context.Context) error
	// Status reports the sink's health and counters. It is safe to call
	// concurrently with Write.
	Status() SinkStatus
}

// SinkStatus is what /v1/status and /metrics report about a sink.
type SinkStatus struct {
	Name string `json:"name"`
	// Target is the file path or the URL (without credentials).
	Target string `json:"target"`
	// Healthy is false while the sink's last write or upload failed.
	Healthy bool `json:"healthy"`
	// QueueDepth is the number of records accepted but not yet stored or
	// delivered.
	QueueDepth int64 `json:"queue_depth"`
	// SpoolBytes is the on-disk spool's size (HTTP sink).
	SpoolBytes int64 `json:"spool_bytes,omitempty"`
	// Written counts records stored (file, console) or delivered (HTTP).
	Written uint64 `json:"written"`
	// Spooled counts records written to the on-disk spool (HTTP sink).
	Spooled uint64 `json:"spooled,omitempty"`
	// Dropped counts records lost: a full disk, a full spool.
	Dropped uint64 `json:"dropped"`
	// LastError is the last failure, safe to show an operator: no
	// credentials, no record contents.
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
}
