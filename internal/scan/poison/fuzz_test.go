package poison_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/verdictpdp/verdict/internal/scan/poison"
)

// FuzzScan checks that no definition makes Scan panic, run long or return
// evidence unsafe to show, and that Scan is deterministic. Seeds are the
// corpus definitions.
func FuzzScan(f *testing.F) {
	for _, c := range loadCorpus(f) {
		d := c.Definition
		f.Add(d.Kind, d.Name, d.Title, d.Description, string(d.InputSchema))
	}
	f.Add("tool", "re\u0430d_file", "", "a\u200b\u202e\U000E0041", `{"properties":{"x\u200b":{"enum":["\u0000"]}}}`)
	f.Fuzz(func(t *testing.T, kind, name, title, desc, schema string) {
		d := poison.Definition{Kind: kind, Server: "fuzz", Name: name, Title: title, Description: desc}
		if json.Valid([]byte(schema)) {
			d.Schema = json.RawMessage(schema)
		} else {
			d.Annotations = map[string]any{"title": schema}
		}
		opts := poison.Options{KnownTools: map[string][]string{"other": {"send_email", name, desc}}}
		start := time.Now()
		fs := poison.Scan(d, opts)
		if el := time.Since(start); el > 5*time.Second {
			t.Fatalf("scan of %d bytes took %v", len(name)+len(title)+len(desc)+len(schema), el)
		}
		checkEvidence(t, fs)
		if diff := cmp.Diff(fs, poison.Scan(d, opts)); diff != "" {
			t.Fatalf("second scan differs (-first +second):\n%s", diff)
		}
	})
}
