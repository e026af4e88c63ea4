package control

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestArgumentsDigestSame(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		a, b any
	}{
		{"key order", json.RawMessage(`{"a":1,"b":{"y":2,"x":[1,2]}}`), json.RawMessage(`{"b":{"x":[1,2],"y":2},"a":1}`)},
		{"1 and 1.0", json.RawMessage(`{"n":1}`), json.RawMessage(`{"n":1.0}`)},
		{"1 and 1e0", json.RawMessage(`{"n":1}`), json.RawMessage(`{"n":1e0}`)},
		{"number and its Go value", json.RawMessage(`{"n":10,"s":"x"}`), map[string]any{"s": "x", "n": 10.0}},
		{"whitespace", json.RawMessage(`{ "a" : [ 1 , 2 ] }`), json.RawMessage(`{"a":[1,2]}`)},
		{"nil and {}", nil, map[string]any{}},
		{"nil map and {}", map[string]any(nil), json.RawMessage(`{}`)},
		{"null and {}", json.RawMessage(` null `), map[string]any{}},
		{"exact big integer", json.RawMessage(`{"n":9007199254740992}`), json.RawMessage(`{"n":9.007199254740992e15}`)},
		{"zero with a huge exponent", json.RawMessage(`{"n":0}`), json.RawMessage(`{"n":0.0e999999999}`)},
		{"exact decimal", json.RawMessage(`{"n":0.5}`), json.RawMessage(`{"n":5e-1}`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			da, err := ArgumentsDigest(tc.a)
			if err != nil {
				t.Fatal(err)
			}
			db, err := ArgumentsDigest(tc.b)
			if err != nil {
				t.Fatal(err)
			}
			if da != db {
				t.Errorf("digests differ: %s vs %s", da, db)
			}
			if len(da) != 64 {
				t.Errorf("digest %q is not hex SHA-256", da)
			}
		})
	}
}

func TestArgumentsDigestDiffers(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		a, b string
	}{
		{"value", `{"path":"/tmp/a"}`, `{"path":"/tmp/b"}`},
		{"type", `{"n":1}`, `{"n":"1"}`},
		{"key", `{"a":1}`, `{"b":1}`},
		{"extra key", `{"a":1}`, `{"a":1,"b":null}`},
		{"array order", `{"a":[1,2]}`, `{"a":[2,1]}`},
		{"nested", `{"a":{"b":1}}`, `{"a":{"b":2}}`},
		{"empty and {}", `{}`, `[]`},
		{"close numbers", `{"n":0.1}`, `{"n":0.2}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			da, err := ArgumentsDigest(json.RawMessage(tc.a))
			if err != nil {
				t.Fatal(err)
			}
			db, err := ArgumentsDigest(json.RawMessage(tc.b))
			if err != nil {
				t.Fatal(err)
			}
			if da == db {
				t.Errorf("%s and %s digest alike", tc.a, tc.b)
			}
		})
	}
}

// Integers a double cannot hold would digest like their neighbours, so an
// approval for one would pass the other: they are refused instead.
func TestArgumentsDigestRefuses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, args, want string
	}{
		{"2^53+1", `{"amount":9007199254740993}`, "send it as a string"},
		{"negative", `{"id":[-12345678901234567]}`, "send it as a string"},
		{"duplicate key", `{"a":1,"a":2}`, "Duplicate key"},
		{"too large", `{"n":1e400}`, "arguments"},
		{"2^53+1 with a fraction", `{"n":9007199254740993.0}`, "send it as a string"},
		{"2^53+1 with an exponent", `{"n":9.007199254740993e15}`, "send it as a string"},
		{"more digits than a double", `{"n":0.1000000000000000000001}`, "send it as a string"},
		{"underflow", `{"n":1e-999999999}`, "send it as a string"},
		{"very long", `{"n":1.` + strings.Repeat("0", 500) + `}`, "too long"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d, err := ArgumentsDigest(json.RawMessage(tc.args))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ArgumentsDigest(%s) = %q, %v; want an error containing %q", tc.args, d, err, tc.want)
			}
		})
	}
}
