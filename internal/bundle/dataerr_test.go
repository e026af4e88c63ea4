package bundle_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/verdictpdp/verdict/internal/bundle"
)

// TestDataErrors puts each broken file of testdata/data-errors into a
// bundle as users/data.json (or users/data.yaml), reads the bundle as a
// directory and as an archive, and expects the error in the .want file
// next to it. UPDATE_WANT=1 rewrites the .want files.
func TestDataErrors(t *testing.T) {
	t.Parallel()
	dir := filepath.Join("..", "..", "testdata", "data-errors")
	files, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, file := range files {
		if strings.HasSuffix(file, ".want") {
			continue
		}
		n++
		t.Run(filepath.Base(file), func(t *testing.T) {
			t.Parallel()
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			name := "users/data" + filepath.Ext(file)
			root := t.TempDir()
			if err := os.MkdirAll(filepath.Join(root, "users"), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(root, name), raw, 0o600); err != nil {
				t.Fatal(err)
			}
			r := bundle.NewReader(bundle.Limits{}, nil)
			_, dirErr := r.ReadPath("users", root)
			_, tarErr := r.ReadArchive("users", tarGz(t, map[string][]byte{name: raw}))
			if dirErr == nil || tarErr == nil {
				t.Fatalf("directory: %v, archive: %v; want errors", dirErr, tarErr)
			}
			got := tarErr.Error() + "\n"
			if os.Getenv("UPDATE_WANT") != "" {
				if err := os.WriteFile(file+".want", []byte(got), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(file + ".want")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("archive error (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(filepath.Join(root, string(want)), dirErr.Error()+"\n"); diff != "" {
				t.Errorf("directory error (-want +got):\n%s", diff)
			}
		})
	}
	if n == 0 {
		t.Fatal("no cases in " + dir)
	}
}
