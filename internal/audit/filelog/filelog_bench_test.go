package filelog

import (
	"context"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/internal/audit"
)

// BenchmarkWrite measures Write of batches of records of about 1 KB: the
// record check, the splice, hashing, and one write per batch (no fsync).
func BenchmarkWrite(b *testing.B) {
	for _, n := range []int{1, 64, 256} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			s, err := Open(Options{Path: filepath.Join(b.TempDir(), "audit.jsonl"), CheckpointEvery: 10_000})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = s.Close(context.Background()) })
			now := time.Now()
			batch := make([]audit.Record, n)
			size := 0
			for i := range batch {
				batch[i] = audit.Record{ID: strconv.Itoa(i), Time: now, Expires: now.Add(time.Hour), JSON: event(i, now, 1024)}
				size += len(batch[i].JSON)
			}
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if err := s.Write(context.Background(), batch); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
