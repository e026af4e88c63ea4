package app

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestJSONPointerPositions(t *testing.T) {
	t.Parallel()
	src := []byte("{\n  \"a/b\": [1,\n    {\"~x\": true}],\n\t\"c\" : null\n}")
	got := jsonPointerPositions(src)
	want := map[string]position{
		"":            {1, 1},
		"/a~1b":       {2, 3},
		"/a~1b/0":     {2, 11},
		"/a~1b/1":     {3, 5},
		"/a~1b/1/~0x": {3, 6},
		"/c":          {4, 2},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("positions (-want +got):\n%s", d)
	}
	for _, tc := range []struct {
		src  string
		want position
	}{
		{"{\"a\": 1,}", position{1, 9}},
		{"[1,\n 2,\n]", position{3, 1}},
		{"{\"a\" 1}", position{1, 6}},
	} {
		pos, err := jsonSyntaxPosition([]byte(tc.src))
		if err == nil || pos != tc.want {
			t.Errorf("%q: at %v (%v), want %v", tc.src, pos, err, tc.want)
		}
	}
}
