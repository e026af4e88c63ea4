package dlp_test

import (
	"encoding/json"
	"os"
	"slices"
	"testing"

	"github.com/verdictpdp/verdict/internal/scan/dlp"
)

type corpusCase struct {
	Positive []string `json:"positive"`
	Negative []string `json:"negative"`
	// KnownMiss are sensitive strings the detector is known not to find;
	// they are logged, not counted, so that the limits stay written down.
	KnownMiss []string `json:"known_miss"`
}

func loadCorpus(tb testing.TB) map[string]corpusCase {
	tb.Helper()
	b, err := os.ReadFile("testdata/corpus.json")
	if err != nil {
		tb.Fatal(err)
	}
	var c map[string]corpusCase
	if err := json.Unmarshal(b, &c); err != nil {
		tb.Fatal(err)
	}
	return c
}

// floors are the precision and recall each detector must keep on the
// corpus. They are measured values rounded down, not aims: lower one only
// with a reason in the commit.
var floors = map[string]struct{ precision, recall float64 }{
	dlp.Email: {1, 1},
	// +44 7700 900123 is in Ofcom's range for drama, which libphonenumber
	// rightly calls unallocated; it stays as a positive because a reader
	// sees a phone number.
	dlp.Phone:           {1, 0.94},
	dlp.CardNumber:      {1, 1},
	dlp.IBAN:            {1, 1},
	dlp.USSSN:           {1, 1},
	dlp.IPAddress:       {1, 1},
	dlp.Secret:          {1, 1},
	dlp.PrivateKey:      {1, 1},
	dlp.PromptInjection: {1, 1},
}

// TestCorpus runs each detector alone, in report mode, over its labelled
// positives and hard negatives, and logs precision and recall:
//
//	go test -run TestCorpus -v ./internal/scan/dlp/
func TestCorpus(t *testing.T) {
	t.Parallel()
	corpus := loadCorpus(t)
	for _, name := range dlp.Detectors() {
		if _, ok := corpus[name]; !ok {
			t.Errorf("corpus has no cases for detector %q", name)
		}
	}
	for _, name := range slices.Sorted(mapsKeys(corpus)) {
		cases := corpus[name]
		s, err := dlp.New(dlp.Options{Detectors: map[string]dlp.Mode{name: dlp.Report}})
		if err != nil {
			t.Fatalf("New(%s): %v", name, err)
		}
		found := func(text string) bool { return len(s.Scan(text)) > 0 }
		var tp, fn, fp int
		for _, p := range cases.Positive {
			if found(p) {
				tp++
			} else {
				fn++
				t.Logf("%s: missed %q", name, p)
			}
		}
		for _, n := range cases.Negative {
			if found(n) {
				fp++
				t.Logf("%s: false positive %q", name, n)
			}
		}
		for _, m := range cases.KnownMiss {
			if found(m) {
				t.Logf("%s: known miss %q is now found: move it to the positives", name, m)
			}
		}
		precision, recall := ratio(tp, tp+fp), ratio(tp, tp+fn)
		t.Logf("%-16s positives %2d negatives %2d known misses %d  precision %.3f  recall %.3f", name, len(cases.Positive), len(cases.Negative), len(cases.KnownMiss), precision, recall)
		if len(cases.Positive) < 15 || len(cases.Negative) < 15 {
			t.Errorf("%s: corpus needs at least 15 positives and 15 negatives", name)
		}
		f, ok := floors[name]
		if !ok {
			t.Errorf("%s: no floor set", name)
			continue
		}
		if precision < f.precision || recall < f.recall {
			t.Errorf("%s: precision %.3f recall %.3f, below the floor %.2f/%.2f", name, precision, recall, f.precision, f.recall)
		}
	}
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 1
	}
	return float64(a) / float64(b)
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// TestCleanText runs the default scanner over ordinary tool output (logs,
// listings, API responses, lock files) that holds nothing sensitive: every
// finding there is a false positive a user would see as a masked word.
func TestCleanText(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("testdata/clean.json")
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	if err := json.Unmarshal(b, &texts); err != nil {
		t.Fatal(err)
	}
	s, err := dlp.New(dlp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range texts {
		if f := s.Scan(text); len(f) > 0 {
			t.Errorf("findings %v in clean text %q", f, text)
		}
	}
}
