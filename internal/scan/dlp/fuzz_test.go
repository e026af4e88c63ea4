package dlp_test

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/verdictpdp/verdict/internal/scan/dlp"
)

// FuzzApply feeds JSON documents (or, when the bytes are not JSON, the bytes
// as one string) through a scanner masking every detector, and checks that
// Apply never panics, never modifies its input, returns only JSON values, and
// leaves nothing for the masked detectors to find when run again.
func FuzzApply(f *testing.F) {
	for _, c := range loadCorpus(f) {
		for _, p := range slices.Concat(c.Positive, c.Negative) {
			f.Add(p)
			b, err := json.Marshal(map[string]any{"content": []any{map[string]any{"type": "text", "text": p}}, p: p})
			if err != nil {
				f.Fatal(err)
			}
			f.Add(string(b))
		}
	}
	modes := map[string]dlp.Mode{}
	for _, d := range dlp.Detectors() {
		modes[d] = dlp.Mask
	}
	modes[dlp.PromptInjection] = dlp.Report
	s, err := dlp.New(dlp.Options{Detectors: modes, IncludePrivateIPs: true})
	if err != nil {
		f.Fatal(err)
	}
	hashing, err := dlp.New(dlp.Options{Detectors: map[string]dlp.Mode{dlp.Email: dlp.Hash, dlp.CardNumber: dlp.Drop, dlp.Secret: dlp.Block}, HashKey: key})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in string) {
		var v any
		d := json.NewDecoder(strings.NewReader(in))
		d.UseNumber()
		if d.Decode(&v) != nil {
			v = in
		}
		before := deepCopy(v)
		for _, sc := range []*dlp.Scanner{s, hashing} {
			got := sc.Apply(v)
			if diff := cmp.Diff(before, v); diff != "" {
				t.Fatalf("Apply modified its input:\n%s", diff)
			}
			if err := jsonLike(got.Value); err != "" {
				t.Fatalf("output is not JSON-like: %s", err)
			}
			if _, err := json.Marshal(got.Value); err != nil {
				t.Fatalf("output does not marshal: %v", err)
			}
		}
		first := s.Apply(v)
		if first.Skipped != (dlp.Skipped{}) {
			return
		}
		for _, f := range s.Scan(first.Value) {
			if modes[f.Detector] == dlp.Mask {
				t.Fatalf("masked output still has %d %s matches: %q", f.Count, f.Detector, first.Value)
			}
		}
	})
}

func jsonLike(v any) string {
	switch x := v.(type) {
	case nil, string, bool, float64, json.Number:
		return ""
	case []any:
		for _, e := range x {
			if err := jsonLike(e); err != "" {
				return err
			}
		}
		return ""
	case map[string]any:
		for _, e := range x {
			if err := jsonLike(e); err != "" {
				return err
			}
		}
		return ""
	default:
		return reflect.TypeOf(v).String()
	}
}
