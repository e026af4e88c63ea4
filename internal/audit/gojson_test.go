package audit

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzAppendGo holds appendGo to json.Marshal, byte for byte: on decoded
// JSON (numbers as json.Number and as float64), on arbitrary strings as
// keys and values, and on arbitrary text as a json.Number.
func FuzzAppendGo(f *testing.F) {
	for _, s := range []string{`{"allowed":true,"headers":{"x-role":"reader"}}`, `[1,-0.5e+3,"<a&b>",null,false,{}]`,
		`{"b":1,"a":[],"\u2028":"\u0008\f\u001f"}`, `"\ud800"`, `{"":{"":[[{}]]}}`} {
		f.Add([]byte(s), "k\xff<", "1e5")
	}
	f.Add([]byte(`{}`), "", "")
	f.Add([]byte(`0`), "\b\f\x7f", "01")
	f.Add([]byte(`0`), "\u2029", "-")
	f.Add([]byte(`0`), "x", "1.e5")
	f.Fuzz(func(t *testing.T, js []byte, s, num string) {
		var values []any
		dec := json.NewDecoder(bytes.NewReader(js))
		dec.UseNumber()
		var v any
		if dec.Decode(&v) == nil {
			values = append(values, v)
		}
		var f64 any
		if json.Unmarshal(js, &f64) == nil {
			values = append(values, f64)
		}
		values = append(values, s, map[string]any{s: s, "n": json.Number(num)}, []any{json.Number(num), s},
			map[string]any(nil), []any(nil), map[string]any{"x": []string{s}}, json.Number(num))
		for _, v := range values {
			want, err := json.Marshal(v)
			if err != nil {
				want = []byte("null")
			}
			if got := appendGo([]byte("prefix"), v); !bytes.Equal(got, append([]byte("prefix"), want...)) {
				t.Fatalf("appendGo(%#v) = %s, json.Marshal wrote %s", v, got, want)
			}
		}
	})
}
