package jsonerr_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/verdictpdp/verdict/internal/jsonerr"
)

func TestCheck(t *testing.T) {
	t.Parallel()
	cases := []struct {
		raw, want string
	}{
		{`{"a": 1}`, ""},
		{"{\n  \"a\": 1,\n}", "f.json:3:1: invalid character '}' looking for beginning of object key string: a trailing comma before it?"},
		{"[1, 2,\n ]", "f.json:2:2: invalid character ']' looking for beginning of value: a trailing comma before it?"},
		{"{\"a\": [1, 2\n", "f.json:1:12: unexpected end of JSON input: the text ends early: an unclosed {, [ or string?"},
		{"{} {}", "f.json:1:4: invalid character '{' after top-level value"},
	}
	for _, tc := range cases {
		err := jsonerr.Check("f.json", []byte(tc.raw))
		got := ""
		if err != nil {
			got = err.Error()
			var se *json.SyntaxError
			if !errors.As(err, &se) {
				t.Errorf("%q: %v does not wrap a *json.SyntaxError", tc.raw, err)
			}
		}
		if got != tc.want {
			t.Errorf("%q:\n got %s\nwant %s", tc.raw, got, tc.want)
		}
	}
}

func FuzzCheck(f *testing.F) {
	for _, s := range []string{`{"a":1,}`, "[\n'x']", "{\"a\" 1}", "", "{", "// x\n{}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		err := jsonerr.Check("f.json", raw)
		var e *jsonerr.Error
		if errors.As(err, &e) && (e.Line < 1 || e.Col < 1 || e.Line > len(raw)+1 || e.Col > len(raw)+1) {
			t.Fatalf("position %d:%d out of range for %d bytes", e.Line, e.Col, len(raw))
		}
		if err == nil && !json.Valid(raw) {
			t.Fatal("invalid JSON passed")
		}
	})
}
