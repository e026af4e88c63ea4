package catalog

import (
	"errors"
	"strings"
	"testing"
)

func TestCatalogBuildBounds(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		l       Listing
		wantErr error
	}{
		"long description": {Listing{Tools: []map[string]any{{"name": "a", "description": strings.Repeat("x", MaxDescriptionBytes+1)}}}, ErrLimit},
		"large schema":     {Listing{Tools: []map[string]any{{"name": "a", "inputSchema": map[string]any{"description": strings.Repeat("x", MaxSchemaBytes)}}}}, ErrLimit},
		"no name":          {Listing{Tools: []map[string]any{{"description": "x"}}}, nil},
		"long name":        {Listing{Tools: []map[string]any{{"name": strings.Repeat("n", MaxNameBytes+1)}}}, nil},
		"duplicate":        {Listing{Tools: []map[string]any{{"name": "a"}, {"name": "a", "description": "other"}}}, nil},
		"resource no uri":  {Listing{Resources: []map[string]any{{"name": "r"}}}, nil},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := Build(&c.l)
			if err == nil {
				t.Fatal("Build accepted it")
			}
			if c.wantErr != nil && !errors.Is(err, c.wantErr) {
				t.Errorf("error %v, want %v", err, c.wantErr)
			}
		})
	}
}

// TestCatalogMergeKeepsPins: a changed definition keeps its reviewed entry
// unless repin; operator fields survive a repin.
func TestCatalogMergeKeepsPins(t *testing.T) {
	t.Parallel()
	old := map[string]any{"tools": map[string]any{"a": map[string]any{
		"classification": "internal", "description": "old", "input_schema": map[string]any{"type": "object"}, "pin_sha256": "old-pin",
	}}}
	imported, err := Build(&Listing{Tools: []map[string]any{{"name": "a", "description": "new", "inputSchema": map[string]any{"type": "object"}, "annotations": map[string]any{"readOnlyHint": true}}}})
	if err != nil {
		t.Fatal(err)
	}
	kept, changes := Merge(old, imported, false)
	a := kept["tools"].(map[string]any)["a"].(map[string]any)
	if a["pin_sha256"] != "old-pin" || a["description"] != "old" || len(changes) != 1 || !changes[0].PinKept ||
		strings.Join(changes[0].Fields, ",") != "description,annotations" {
		t.Errorf("without repin: %v %+v", a, changes)
	}
	if old["tools"].(map[string]any)["a"].(map[string]any)["description"] != "old" {
		t.Error("Merge modified its input")
	}
	repinned, _ := Merge(old, imported, true)
	a = repinned["tools"].(map[string]any)["a"].(map[string]any)
	if a["pin_sha256"] != imported.Tools["a"]["pin_sha256"] || a["description"] != "new" || a["classification"] != "internal" ||
		a[KeyAnnotationsReview] != ReviewPending || a["annotations"] != nil {
		t.Errorf("with repin: %v", a)
	}
}
