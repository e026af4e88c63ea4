package dlp_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/verdictpdp/verdict/internal/scan/dlp"
)

func BenchmarkApply(b *testing.B) {
	s, err := dlp.New(dlp.Options{})
	if err != nil {
		b.Fatal(err)
	}
	lines := map[string]string{
		// Every line holds five findings and three near misses.
		"dense": "Order 2023-000123 shipped to alice@example.com, call +1 415-867-5309, card 4111 1111 1111 1111, v1.2.3.4 from 8.8.8.8. ",
		"plain": "The build finished in 42 seconds; 17 tests passed and the report was uploaded to the usual bucket. ",
	}
	for _, kind := range []string{"dense", "plain"} {
		for _, n := range []int{1, 100, 2000} {
			benchApply(b, s, kind, lines[kind], n)
		}
	}
}

func benchApply(b *testing.B, s *dlp.Scanner, kind, line string, n int) {
	b.Helper()
	v := map[string]any{"content": []any{map[string]any{"type": "text", "text": strings.Repeat(line, n)}}}
	b.Run(kind+"/"+strconv.Itoa(n), func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(line) * n))
		for b.Loop() {
			s.Apply(v)
		}
	})
}
