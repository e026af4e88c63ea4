package httpsink

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"
)

// BenchmarkWrite measures Write of n records of about 1 KB: one append to
// the spool, while the uploader ships to a loopback collector. The timer
// stops every 16 MiB to let the upload catch up, so the spool never fills.
func BenchmarkWrite(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	b.Cleanup(srv.Close)
	for _, n := range []int{1, 16, 64} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			s, err := New(Options{URL: srv.URL, SpoolDir: b.TempDir()})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			batch := records("bench", n, 1024)
			size := int64(n) * 1025
			b.SetBytes(size)
			b.ReportAllocs()
			var sinceFlush int64
			for b.Loop() {
				if err := s.Write(ctx, batch); err != nil {
					b.Fatal(err)
				}
				if sinceFlush += size; sinceFlush >= 16<<20 {
					b.StopTimer()
					if err := s.Flush(ctx); err != nil {
						b.Fatal(err)
					}
					sinceFlush = 0
					b.StartTimer()
				}
			}
			closeCtx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			if err := s.Close(closeCtx); err != nil {
				b.Fatal(err)
			}
			if st := s.Status(); st.Dropped != 0 {
				b.Fatalf("%d records dropped", st.Dropped)
			}
		})
	}
}
