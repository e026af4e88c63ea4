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
	line := "Order 2023-000123 shipped to alice@example.com, call +1 415-867-5309, card 4111 1111 1111 1111, v1.2.3.4 from 8.8.8.8. "
	for _, n := range []int{1, 100, 2000} {
		v := map[string]any{"content": []any{map[string]any{"type": "text", "text": strings.Repeat(line, n)}}}
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(line) * n))
			for b.Loop() {
				s.Apply(v)
			}
		})
	}
}
