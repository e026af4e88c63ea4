package sse_test

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"
	"testing/iotest"

	"github.com/verdictpdp/verdict/internal/gateway/sse"
)

// FuzzReader checks that the Reader never panics, never returns an event over its limit, reads the
// same events and error however the stream is split into reads, and that every event it returns
// reads back the same after the Writer writes it.
func FuzzReader(f *testing.F) {
	for _, seed := range []string{
		"data: {}\n\n",
		"\xEF\xBB\xBFid: 1\nevent: message\nretry: 100\ndata: a\ndata: b\n\n",
		"data: a\r\ndata: b\r\rdata: c\r\n\r\n",
		": ping\n\n: ping\n\ndata: x\n\n",
		"id: a\x00b\ndata: x\n\n",
		"id\ndata\n\nretry: 5\n\n",
		"data: a\n\ndata: b",
		"data: 0123456789012345678901234567890123456789\n\n",
	} {
		f.Add([]byte(seed), uint8(32))
	}
	f.Fuzz(func(t *testing.T, in []byte, limit uint8) {
		maxBytes := int(limit) + 1
		evs, err := readAll(sse.NewReader(bytes.NewReader(in), maxBytes))
		if err == nil {
			t.Fatal("readAll ended without an error")
		}
		if !errors.Is(err, io.EOF) && !errors.Is(err, sse.ErrTruncated) && !errors.Is(err, sse.ErrTooLarge) {
			t.Fatalf("unexpected error %v", err)
		}
		split, splitErr := readAll(sse.NewReader(iotest.OneByteReader(bytes.NewReader(in)), maxBytes))
		if !reflect.DeepEqual(split, evs) || splitErr.Error() != err.Error() {
			t.Fatalf("one byte at a time: %s, %v; whole: %s, %v", show(split...), splitErr, show(evs...), err)
		}
		for _, ev := range evs {
			if ev.Size() > maxBytes {
				t.Fatalf("event of %d bytes over the limit of %d", ev.Size(), maxBytes)
			}
			if len(ev.Data) == 0 && !ev.HasID && ev.Retry == 0 {
				t.Fatalf("empty event returned: %s", show(ev))
			}
			var buf bytes.Buffer
			if err := sse.NewWriter(&buf).WriteEvent(ev); err != nil {
				t.Fatalf("writing %s: %v", show(ev), err)
			}
			back, err := readAll(sse.NewReader(&buf, maxBytes))
			if !errors.Is(err, io.EOF) || len(back) != 1 || !reflect.DeepEqual(back[0], ev) {
				t.Fatalf("%s read back as %s, %v", show(ev), show(back...), err)
			}
		}
	})
}
