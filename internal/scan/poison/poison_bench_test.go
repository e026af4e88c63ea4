package poison_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/verdictpdp/verdict/internal/scan/poison"
)

func BenchmarkScan(b *testing.B) {
	const sentence = "Read the complete contents of a file from the file system; see https://docs.acme.io/x. "
	for _, n := range []int{256, 4 << 10, 64 << 10} {
		desc := strings.Repeat(sentence, n/len(sentence)+1)[:n]
		d := poison.Definition{Kind: "tool", Server: "fs", Name: "read_file", Description: desc,
			Schema: map[string]any{"type": "object", "properties": map[string]any{
				"path": map[string]any{"type": "string", "description": "Path of the file"},
			}}}
		opts := poison.Options{KnownTools: known}
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(n))
			for b.Loop() {
				poison.Scan(d, opts)
			}
		})
	}
}
