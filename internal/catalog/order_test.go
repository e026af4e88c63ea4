package catalog

import (
	"os"
	"path/filepath"
	"testing"
)

// TestCatalogDocumentRoundTrip: reading and writing a data.json changes
// nothing but the formatting of a 2-space indented file: keys keep their
// order, numbers their text.
func TestCatalogDocumentRoundTrip(t *testing.T) {
	t.Parallel()
	src := []byte("{\n  \"z\": 1.50,\n  \"a\": {\n    \"y\": [\n      1e3,\n      \"<&>\",\n      {}\n    ],\n    \"b\": []\n  },\n  \"m\": \"ü\\u0007\"\n}\n")
	path := filepath.Join(t.TempDir(), "data.json")
	if err := os.WriteFile(path, src, 0o600); err != nil {
		t.Fatal(err)
	}
	doc, err := ReadData(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Write(path); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(src) {
		t.Errorf("round trip changed the file:\n%s\nwant:\n%s", got, src)
	}
	// The example bundle survives too, byte for byte.
	example, err := os.ReadFile(filepath.Join("..", "..", "bundles", "mcp-example", "data.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, example, 0o600); err != nil {
		t.Fatal(err)
	}
	if doc, err = ReadData(path); err != nil {
		t.Fatal(err)
	}
	if err := doc.Write(path); err != nil {
		t.Fatal(err)
	}
	if got, _ = os.ReadFile(path); string(got) != string(example) {
		t.Errorf("round trip changed bundles/mcp-example/data.json")
	}
}
