package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const sample = `goos: linux
pkg: github.com/verdictpdp/verdict/internal/adapter/extauthz
BenchmarkCheck/catalog=100/cache=hit-2    	  636356	      1000 ns/op	     808 B/op	       8 allocs/op
BenchmarkCheck/catalog=100/cache=hit-2    	  636356	      3000 ns/op	     808 B/op	       8 allocs/op
BenchmarkCheck/catalog=100/cache=hit-2    	  636356	      2000 ns/op	     808 B/op	       8 allocs/op
BenchmarkCheck/catalog=100/cache=off-2    	   22084	     50000 ns/op	   17311 B/op	     267 allocs/op
pkg: github.com/verdictpdp/verdict/internal/adapter/mcpapi
BenchmarkMCPCheckRules/rules=300/cache=miss-2         	     200	   1781913 ns/op	        80.00 allow-%	         0 hit-%	  155305 B/op	    3177 allocs/op
BenchmarkMCPCheckRules/rules=300/cache=miss-2         	     200	   1781913 ns/op	        78.00 allow-%	         0.5 hit-%	  155305 B/op	    3177 allocs/op
BenchmarkMCPCheckRules/rules=300/cache=miss-2         	     200	   1781913 ns/op	        79.00 allow-%	         1 hit-%	  155305 B/op	    3177 allocs/op
BenchmarkBuild-2    	  100	     4000 ns/op	   5568 B/op	      64 allocs/op
PASS
`

func TestRenderAndUpdate(t *testing.T) {
	t.Parallel()
	rows, err := parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	md := render(rows, "go test -bench .")
	for _, want := range []string{
		"| `extauthz` | `Check/catalog=100/cache=hit` | 3 | 2.00 µs | 25.00× | — | — | 808 | 8 |",
		"| `extauthz` | `Check/catalog=100/cache=off` | 1 | 50.00 µs | 1.00× | — | — | 17,311 | 267 |",
		"| `mcpapi` | `MCPCheckRules/rules=300/cache=miss` | 3 | 1.78 ms | — | 0.5 % | 79.0 % | 155,305 | 3,177 |",
		"| `mcpapi` | `Build` | 1 | 4.00 µs | — | — | — | 5,568 | 64 |",
		"go test -bench .",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("missing %q in\n%s", want, md)
		}
	}
	// Evaluated rows first, then hits, then the rest.
	if off, hit, build := strings.Index(md, "cache=off`"), strings.Index(md, "cache=hit`"), strings.Index(md, "`Build`"); off > hit || hit > build {
		t.Errorf("tables out of order:\n%s", md)
	}
	path := filepath.Join(t.TempDir(), "b.md")
	if err := os.WriteFile(path, []byte("a\n"+beginMarker+"\nold\n"+endMarker+"\nz\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := replaceMarkers(path, "new\n"); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	if string(got) != "a\n"+beginMarker+"\nnew\n"+endMarker+"\nz\n" {
		t.Fatalf("updated file:\n%s", got)
	}
	if err := replaceMarkers(filepath.Join(t.TempDir(), "missing.md"), "x"); err == nil {
		t.Fatal("no error for a missing file")
	}
	if _, err := parse(strings.NewReader("PASS\n")); err == nil {
		t.Fatal("no error for output without results")
	}
}
