package sse_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/verdictpdp/verdict/internal/gateway/sse"
)

// BenchmarkReader reads a stream of 1000 events, each a JSON-RPC result of about 2 KiB with an id.
func BenchmarkReader(b *testing.B) {
	msg, err := json.Marshal(map[string]any{
		"jsonrpc": "2.0",
		"id":      1,
		"result":  map[string]any{"content": []any{map[string]any{"type": "text", "text": strings.Repeat("lorem ipsum ", 170)}}},
	})
	if err != nil {
		b.Fatal(err)
	}
	var stream bytes.Buffer
	w := sse.NewWriter(&stream)
	for i := range 1000 {
		if err := w.WriteEvent(sse.Event{ID: "stream-1/" + string(rune('a'+i%26)), HasID: true, Data: msg}); err != nil {
			b.Fatal(err)
		}
		if i%100 == 0 {
			_ = w.Comment("ping")
		}
	}
	in := stream.Bytes()
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		r := sse.NewReader(bytes.NewReader(in), 1<<20)
		n := 0
		for {
			_, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		if n != 1000 {
			b.Fatalf("%d events, want 1000", n)
		}
	}
}
