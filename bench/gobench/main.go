// Command gobench turns `go test -bench` output into the Markdown tables of
// docs/benchmarks.md: the median of each benchmark's runs, and for the
// cache=hit/miss/off sub-benchmarks the speed-up over cache=off measured in
// the same run and the cache hit rate the benchmark measured (hit-%). The
// benchmarks that evaluate every request (cache=miss, cache=off) come first:
// that is what most real requests with changing arguments cost.
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
	pkg     string
	name    string
	metrics map[string][]float64 // by unit: ns/op, B/op, allocs/op, hit-%, ...
	runs    int
}

// lineRE matches a result line up to its ns/op; the other metrics follow as
// value-unit pairs (custom ones, then B/op and allocs/op).
var lineRE = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+\d+\s+([\d.]+) ns/op((?:\s+[\d.e+-]+ \S+)*)\s*$`)

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
			rw = &row{pkg: pkg, name: strings.TrimPrefix(m[1], "Benchmark"), metrics: map[string][]float64{}}
			byName[key] = rw
			rows = append(rows, rw)
		}
		rw.runs++
		rw.metrics["ns/op"] = append(rw.metrics["ns/op"], num(m[2]))
		f := strings.Fields(m[3])
		for i := 0; i+1 < len(f); i += 2 {
			rw.metrics[f[i+1]] = append(rw.metrics[f[i+1]], num(f[i]))
		}
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

// metric is the median of a row's values of unit, and whether it has any.
func (r *row) metric(unit string) (float64, bool) {
	v := r.metrics[unit]
	if len(v) == 0 {
		return 0, false
	}
	return median(v), true
}

// columns beyond time and memory, in order, when some row reports them.
var extraColumns = []struct{ unit, header string }{
	{"hit-%", "cache hits"},
	{"allow-%", "allowed"},
}

// kind sorts a row into a table: 0 evaluated (cache=miss or cache=off),
// 1 answered from the cache (cache=hit), 2 everything else.
func kind(name string) int {
	switch {
	case strings.Contains(name, "/cache=miss"), strings.Contains(name, "/cache=off"):
		return 0
	case strings.Contains(name, "/cache=hit"):
		return 1
	}
	return 2
}

var tableTitles = []string{
	"Every request evaluated: cache misses (each request new) and the cache off",
	"Answered from the cache: the same requests again",
	"Other benchmarks: a whole Check by header count, input building, cache keys, the cache itself",
}

func render(rows []*row, cmd string) string {
	medians := map[string]float64{}
	for _, r := range rows {
		medians[r.pkg+" "+r.name], _ = r.metric("ns/op")
	}
	var extras []int
	for i, c := range extraColumns {
		for _, r := range rows {
			if _, ok := r.metric(c.unit); ok {
				extras = append(extras, i)
				break
			}
		}
	}
	var b strings.Builder
	if cmd != "" {
		fmt.Fprintf(&b, "Command:\n\n```sh\n%s\n```\n\n", cmd)
	}
	for k, title := range tableTitles {
		var these []*row
		for _, r := range rows {
			if kind(r.name) == k {
				these = append(these, r)
			}
		}
		if len(these) == 0 {
			continue
		}
		fmt.Fprintf(&b, "**%s**\n\n", title)
		b.WriteString("| package | benchmark | runs | time/op (median) | × cache off |")
		for _, i := range extras {
			fmt.Fprintf(&b, " %s |", extraColumns[i].header)
		}
		b.WriteString(" B/op | allocs/op |\n| --- | --- | --: | --: | --: |")
		b.WriteString(strings.Repeat(" --: |", len(extras)+2) + "\n")
		for _, r := range these {
			ns, _ := r.metric("ns/op")
			speedup := "—"
			if i := strings.LastIndex(r.name, "/cache="); i >= 0 {
				if off, ok := medians[r.pkg+" "+r.name[:i]+"/cache=off"]; ok && ns > 0 {
					speedup = fmt.Sprintf("%.2f×", off/ns)
				}
			}
			fmt.Fprintf(&b, "| `%s` | `%s` | %d | %s | %s |", r.pkg[strings.LastIndex(r.pkg, "/")+1:], r.name, r.runs, duration(ns), speedup)
			for _, i := range extras {
				if v, ok := r.metric(extraColumns[i].unit); ok {
					fmt.Fprintf(&b, " %s %% |", strconv.FormatFloat(v, 'f', 1, 64))
				} else {
					b.WriteString(" — |")
				}
			}
			bytes, _ := r.metric("B/op")
			allocs, _ := r.metric("allocs/op")
			fmt.Fprintf(&b, " %s | %s |\n", group(bytes), group(allocs))
		}
		b.WriteString("\n")
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
