package session

import (
	"strconv"
	"strings"
	"testing"
)

// FuzzParseStored: whatever a Redis hash holds (lines of field=value),
// reading it never panics, and what it accepts is what the script writes:
// the counts agree with the entries, and the classification with its
// level.
func FuzzParseStored(f *testing.F) {
	for _, s := range []string{
		"st=1764756000\ncalls=2\nnk=1\nnf=1\nnt=1\ncl=confidential\nsrc=crm/get\nlv=2\nk:personal_data=crm/get\nf:email=2\nt:crm/get=2",
		"nk=0\nnf=1\nf:secret=3",
		"cl=top-secret\nlv=3\nsrc=x/y\nnk=0\nnf=0",
		"calls=x", "k:=a\nnk=1", "lv=1", "zz=1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		h := map[string]string{}
		for line := range strings.SplitSeq(raw, "\n") {
			k, v, _ := strings.Cut(line, "=")
			h[k] = v
		}
		r, calls, tools, err := parse(h)
		if err != nil || r == nil {
			return
		}
		if calls < 0 || r.Classification != h["cl"] {
			t.Fatalf("accepted %q as %+v", raw, r)
		}
		for _, c := range [...]struct {
			field string
			n     int
		}{{"nk", len(r.Categories)}, {"nf", len(r.Findings)}, {"nt", len(tools)}} {
			if v, ok := h[c.field]; (ok || c.n > 0) && v != strconv.Itoa(c.n) {
				t.Fatalf("accepted %q with %s disagreeing with %d entries", raw, c.field, c.n)
			}
		}
		if lv, ok := h["lv"]; (ok || r.Classification != "") && lv != strconv.Itoa(level(r.Classification)) {
			t.Fatalf("accepted %q with a level that disagrees", raw)
		}
		dst := &record{}
		merge(dst, r)
		_ = input(dst, calls, tools)
	})
}
