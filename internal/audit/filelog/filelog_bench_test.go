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
// record check (the full one, or the trusted one the service uses), the
// splice, hashing, and one write per batch (no fsync).
func BenchmarkWrite(b *testing.B) {
	for _, bc := range []struct {
		n       int
		trusted bool
	}{{1, false}, {64, false}, {256, false}, {64, true}} {
		name := strconv.Itoa(bc.n)
		if bc.trusted {
			name += "/trusted"
		}
		n := bc.n
		b.Run(name, func(b *testing.B) {
			s, err := Open(Options{Path: filepath.Join(b.TempDir(), "audit.jsonl"), CheckpointEvery: 10_000, TrustRecords: bc.trusted})
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
