package poison_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/verdictpdp/verdict/internal/scan/poison"
)

// corpusFile is one testdata/corpus/*.json file: cases sharing known tools.
type corpusFile struct {
	KnownTools map[string][]string `json:"known_tools"`
	Cases      []corpusCase        `json:"cases"`
}

type corpusCase struct {
	ID         string              `json:"id"`
	Definition corpusDefinition    `json:"definition"`
	KnownTools map[string][]string `json:"known_tools,omitempty"`
	Expect     []string            `json:"expect"`
}

type corpusDefinition struct {
	Kind        string          `json:"kind"`
	Server      string          `json:"server"`
	Name        string          `json:"name"`
	Title       string          `json:"title"`
	Description string          `json:"description"`
	InputSchema json.RawMessage `json:"inputSchema"`
	Annotations json.RawMessage `json:"annotations"`
}

func (d corpusDefinition) definition() poison.Definition {
	out := poison.Definition{Kind: d.Kind, Server: d.Server, Name: d.Name, Title: d.Title, Description: d.Description}
	if len(d.InputSchema) > 0 {
		out.Schema = d.InputSchema
	}
	if len(d.Annotations) > 0 {
		out.Annotations = d.Annotations
	}
	return out
}

type loadedCase struct {
	file string
	corpusCase
	opts poison.Options
}

func loadCorpus(tb testing.TB) []loadedCase {
	tb.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "corpus", "*.json"))
	if err != nil || len(paths) == 0 {
		tb.Fatalf("no corpus: %v", err)
	}
	var out []loadedCase
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			tb.Fatal(err)
		}
		var f corpusFile
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&f); err != nil {
			tb.Fatalf("%s: %v", p, err)
		}
		for _, c := range f.Cases {
			known := f.KnownTools
			if c.KnownTools != nil {
				known = c.KnownTools
			}
			out = append(out, loadedCase{file: filepath.Base(p), corpusCase: c, opts: poison.Options{KnownTools: known}})
		}
	}
	return out
}

type counts struct{ tp, fp, fn int }

func (c counts) precision() float64 {
	if c.tp+c.fp == 0 {
		return 1
	}
	return float64(c.tp) / float64(c.tp+c.fp)
}

func (c counts) recall() float64 {
	if c.tp+c.fn == 0 {
		return 1
	}
	return float64(c.tp) / float64(c.tp+c.fn)
}

// TestCorpus scans every corpus definition and measures precision and recall
// per rule (did the rule fire where the label says, and only there) and per
// definition (poisoned reported at all, clean reported not at all).
func TestCorpus(t *testing.T) {
	t.Parallel()
	cases := loadCorpus(t)
	perRule := map[string]*counts{}
	for _, r := range poison.Rules() {
		perRule[r.ID] = &counts{}
	}
	var overall, defs counts
	poisoned, clean := 0, 0
	ids := map[string]bool{}
	for _, c := range cases {
		if ids[c.ID] {
			t.Errorf("duplicate case id %s", c.ID)
		}
		ids[c.ID] = true
		for _, e := range c.Expect {
			if perRule[e] == nil {
				t.Errorf("%s: unknown rule %s", c.ID, e)
			}
		}
		findings := poison.Scan(c.Definition.definition(), c.opts)
		var got []string
		for _, f := range findings {
			if !slices.Contains(got, f.Rule) {
				got = append(got, f.Rule)
			}
		}
		want := append([]string{}, c.Expect...)
		got = append([]string{}, got...)
		slices.Sort(got)
		slices.Sort(want)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Logf("%s/%s: rules (-want +got):\n%s  findings: %+v", c.file, c.ID, diff, findings)
		}
		for id, n := range perRule {
			w, g := slices.Contains(want, id), slices.Contains(got, id)
			switch {
			case w && g:
				n.tp++
				overall.tp++
			case g:
				n.fp++
				overall.fp++
			case w:
				n.fn++
				overall.fn++
			}
		}
		if len(want) > 0 {
			poisoned++
		} else {
			clean++
		}
		switch {
		case len(want) > 0 && len(got) > 0:
			defs.tp++
		case len(got) > 0:
			defs.fp++
		case len(want) > 0:
			defs.fn++
		}
	}
	t.Logf("corpus: %d definitions, %d poisoned, %d clean", len(cases), poisoned, clean)
	for _, r := range poison.Rules() {
		n := perRule[r.ID]
		t.Logf("%-30s tp=%-3d fp=%-3d fn=%-3d precision=%.2f recall=%.2f", r.ID, n.tp, n.fp, n.fn, n.precision(), n.recall())
	}
	t.Logf("%-30s tp=%-3d fp=%-3d fn=%-3d precision=%.2f recall=%.2f", "overall (rule labels)", overall.tp, overall.fp, overall.fn, overall.precision(), overall.recall())
	t.Logf("%-30s tp=%-3d fp=%-3d fn=%-3d precision=%.2f recall=%.2f", "overall (definitions)", defs.tp, defs.fp, defs.fn, defs.precision(), defs.recall())
	if poisoned < 40 || clean < 40 {
		t.Errorf("corpus has %d poisoned and %d clean definitions, want at least 40 of each", poisoned, clean)
	}
	for name, c := range map[string]counts{"rule labels": overall, "definitions": defs} {
		if c.precision() < 0.9 || c.recall() < 0.9 {
			t.Errorf("overall (%s): precision %.2f, recall %.2f; want both ≥ 0.90", name, c.precision(), c.recall())
		}
	}
}
