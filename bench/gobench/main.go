// Command gobench turns `go test -bench` output into the Markdown table of
// docs/benchmarks.md: the median of each benchmark's runs, and for the
// cache=hit/miss/off sub-benchmarks the speed-up over cache=off measured in
// the same run.
//
// Usage, from the repository root (what `make bench` runs):
//
//	go test -run '^$' -bench . -benchmem -count 5 ./internal/... | tee /tmp/bench.txt
//	go run ./bench/gobench -in /tmp/bench.txt -cmd "…" -update docs/benchmarks.md
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

const (
	beginMarker = "<!-- inprocess:begin -->"
	endMarker   = "<!-- inprocess:end -->"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "gobench: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("gobench", flag.ContinueOnError)
	in := fs.String("in", "", "`file` with go test -bench output (default stdin)")
	cmd := fs.String("cmd", "", "the command that produced the output, printed with the table")
	update := fs.String("update", "", "replace the text between the inprocess markers of this Markdown `file`")
	if err := fs.Parse(args); err != nil {
		return err
	}
	r := io.Reader(os.Stdin)
	if *in != "" {
		f, err := os.Open(*in)
		if err != nil {
			return err
		}
		defer func() { _ = f.Close() }()
		r = f
	}
	rows, err := parse(r)
	if err != nil {
		return err
	}
	md := render(rows, *cmd)
	if *update == "" {
		_, err := io.WriteString(stdout, md)
		return err
	}
	return replaceMarkers(*update, md)
}

// row is one benchmark's runs.
type row struct {
	pkg               string
	name              string
	ns, bytes, allocs []float64
}

var lineRE = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+\d+\s+([\d.]+) ns/op(?:\s+([\d.]+) B/op)?(?:\s+([\d.]+) allocs/op)?`)

func parse(r io.Reader) ([]*row, error) {
	var rows []*row
	byName := map[string]*row{}
	pkg := ""
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = p
			continue
		}
		m := lineRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		key := pkg + " " + m[1]
		rw := byName[key]
		if rw == nil {
			rw = &row{pkg: pkg, name: strings.TrimPrefix(m[1], "Benchmark")}
			byName[key] = rw
			rows = append(rows, rw)
		}
		rw.ns = append(rw.ns, num(m[2]))
		rw.bytes = append(rw.bytes, num(m[3]))
		rw.allocs = append(rw.allocs, num(m[4]))
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, errors.New("no benchmark results in the input")
	}
	return rows, nil
}

func num(s string) float64 {
	v, _ := strconv.ParseFloat(s, 64)
	return v
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func render(rows []*row, cmd string) string {
	medians := map[string]float64{}
	for _, r := range rows {
		medians[r.pkg+" "+r.name] = median(r.ns)
	}
	var b strings.Builder
	if cmd != "" {
		fmt.Fprintf(&b, "Command:\n\n```sh\n%s\n```\n\n", cmd)
	}
	b.WriteString("| package | benchmark | runs | time/op (median) | × cache off | B/op | allocs/op |\n")
	b.WriteString("| --- | --- | --: | --: | --: | --: | --: |\n")
	for _, r := range rows {
		ns := median(r.ns)
		speedup := "—"
		if i := strings.LastIndex(r.name, "/cache="); i >= 0 {
			if off, ok := medians[r.pkg+" "+r.name[:i]+"/cache=off"]; ok && ns > 0 {
				speedup = fmt.Sprintf("%.2f×", off/ns)
			}
		}
		fmt.Fprintf(&b, "| `%s` | `%s` | %d | %s | %s | %s | %s |\n",
			r.pkg[strings.LastIndex(r.pkg, "/")+1:], r.name, len(r.ns), duration(ns), speedup,
			group(median(r.bytes)), group(median(r.allocs)))
	}
	return b.String()
}

func duration(ns float64) string {
	switch {
	case ns >= 1e6:
		return fmt.Sprintf("%.2f ms", ns/1e6)
	case ns >= 1e3:
		return fmt.Sprintf("%.2f µs", ns/1e3)
	}
	return fmt.Sprintf("%.0f ns", ns)
}

// group writes an integer with thousands separators.
func group(v float64) string {
	s := strconv.FormatInt(int64(v+0.5), 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func replaceMarkers(path, content string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	doc := string(raw)
	i := strings.Index(doc, beginMarker)
	j := strings.Index(doc, endMarker)
	if i < 0 || j < i {
		return fmt.Errorf("%s: markers %s and %s not found in order", path, beginMarker, endMarker)
	}
	doc = doc[:i+len(beginMarker)] + "\n" + content + doc[j:]
	return os.WriteFile(path, []byte(doc), 0o644) //nolint:gosec // a documentation file in the repository
}
