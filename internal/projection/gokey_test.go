package projection_test

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/verdictpdp/verdict/internal/projection"
)

// paths builds a projection reading each "input..." ref with its kind.
func paths(refs map[string]projection.Kind) *projection.Projection {
	p := &projection.Projection{}
	for ref, kind := range refs {
		p.Paths = append(p.Paths, projection.Path{Ref: ast.MustParseRef(ref)[1:], Kind: kind})
	}
	return p
}

// goKeyProjections read every part of the goKeyInputs, under each kind.
var goKeyProjections = func() []*projection.Projection {
	refs := []string{
		"input.peer.dns_names[0]", "input.peer.dns_names[1]", "input.peer.dns_names", "input.peer",
		"input.labels.app", "input.labels", "input.labels[0]",
		"input.n", "input.n.x", "input.list[0]", "input.list[\"0\"]", "input.list[0].x", "input.list[-1]",
		"input.other", "input.other.x", "input.absent", "input.absent.x", "input.flag",
	}
	var out []*projection.Projection
	for _, kind := range []projection.Kind{projection.Full, projection.Presence, projection.Type} {
		m := map[string]projection.Kind{}
		for _, r := range refs {
			m[r] = kind
		}
		out = append(out, paths(m))
	}
	return append(out, &projection.Projection{Whole: true})
}()

// TestGoKeyEqualsConvertedKey holds AppendGoKey to AppendKey of the
// converted input, byte for byte, for every Go type ast.InterfaceToValue
// takes. A type it cannot encode must make it refuse, never read as
// undefined: that keyed input.peer.dns_names[0] ([]string) as undefined for
// every gateway, so one gateway's decision answered another's.
func TestGoKeyEqualsConvertedKey(t *testing.T) {
	t.Parallel()
	type point struct{ X int }
	tests := []struct {
		name   string
		n      any  // input.n
		refuse bool // AppendGoKey must return false
		// mayRefuse: AppendGoKey may return false (a value whose
		// conversion it does not reproduce).
		mayRefuse bool
	}{
		{name: "nil"}, {name: "bool", n: true}, {name: "false", n: false}, {name: "string", n: "x"},
		{name: "int", n: 42}, {name: "int8", n: int8(-8)}, {name: "int16", n: int16(300)}, {name: "int32", n: int32(-1)},
		{name: "int64", n: int64(math.MinInt64)}, {name: "uint", n: uint(7)}, {name: "uint8", n: uint8(255)},
		{name: "uint16", n: uint16(9)}, {name: "uint32", n: uint32(1 << 31)}, {name: "uint64", n: uint64(1 << 40)},
		{name: "uint64 above MaxInt64", n: uint64(math.MaxUint64), mayRefuse: true},
		{name: "float64 integral", n: 1.0}, {name: "float64 fraction", n: 0.1}, {name: "float64 large", n: 1e21},
		{name: "float64 small", n: 1e-7}, {name: "negative zero", n: math.Copysign(0, -1)}, {name: "NaN", n: math.NaN()},
		{name: "infinity", n: math.Inf(-1)}, {name: "float32", n: float32(0.1)}, {name: "float32 large", n: float32(3e38)},
		{name: "json.Number", n: json.Number("1.50")}, {name: "json.Number exponent", n: json.Number("1e5")},
		{name: "json.Number interned", n: json.Number("7")},
		{name: "json.Number huge exponent", n: json.Number("1e999999999"), refuse: true},
		{name: "[]string", n: []string{"a", "b"}}, {name: "map[string]string", n: map[string]string{"b": "2", "a": "1"}},
		{name: "nil map", n: map[string]any(nil)}, {name: "nil slice", n: []any(nil)}, {name: "nil []string", n: []string(nil)},
		{name: "nested", n: map[string]any{"x": []any{1, "a", nil, map[string]string{"k": "v"}}}},
		{name: "ast value", n: ast.String("x"), refuse: true},
		{name: "struct", n: point{1}, refuse: true},
		{name: "pointer", n: &point{1}, refuse: true},
		{name: "[]int", n: []int{1}, refuse: true},
		{name: "map[string]int", n: map[string]int{"a": 1}, refuse: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := map[string]any{
				"peer":   map[string]any{"verified": true, "dns_names": []string{"gw-a.example", "x"}},
				"labels": map[string]string{"app": "web", "": "empty"},
				"list":   []any{map[string]any{"x": 1}, "b"},
				"other":  "s",
				"flag":   false,
				"n":      tc.n,
			}
			v, convErr := ast.InterfaceToValue(in)
			for i, p := range goKeyProjections {
				got, ok := p.AppendGoKey(nil, in)
				if ok == tc.refuse && !tc.mayRefuse {
					t.Fatalf("projection %d: AppendGoKey ok = %v, want %v", i, ok, !tc.refuse)
				}
				if !ok {
					continue
				}
				if convErr != nil {
					t.Fatalf("AppendGoKey wrote a key for an input that does not convert: %v", convErr)
				}
				if want := p.AppendKey(nil, v); !bytes.Equal(got, want) {
					t.Errorf("projection %d (%v):\n go  %q\n ast %q", i, p.Strings(), got, want)
				}
			}
		})
	}
}

// TestGoKeyTellsGatewaysApart is the regression for the native MCP bypass:
// two gateways that differ only in dns_names get different keys.
func TestGoKeyTellsGatewaysApart(t *testing.T) {
	t.Parallel()
	p := paths(map[string]projection.Kind{"input.peer.dns_names[0]": projection.Full})
	key := func(dns ...string) string {
		k, ok := p.AppendGoKey(nil, map[string]any{"peer": map[string]any{"verified": true, "dns_names": dns}})
		if !ok {
			t.Fatal("no key for a []string")
		}
		return string(k)
	}
	if key("gw-a.example") == key("gw-b.example") {
		t.Fatal("gateways gw-a and gw-b share a cache key")
	}
}

// FuzzGoKey checks AppendGoKey against AppendKey of the converted input on
// arbitrary JSON (decoded both with float64 and with json.Number numbers),
// read at paths taken from the fuzz input.
func FuzzGoKey(f *testing.F) {
	f.Add(`{"peer":{"dns_names":["a","b"]},"n":1.5}`, "peer.dns_names", 0)
	f.Add(`{"a":[1,2,{"b":null}],"c":1e400}`, "a", 2)
	f.Add(`{"a":{"b":false}}`, "a.b", 1)
	f.Fuzz(func(t *testing.T, doc, ref string, idx int) {
		var plain, numbers any
		if json.Unmarshal([]byte(doc), &plain) != nil {
			return
		}
		dec := json.NewDecoder(bytes.NewReader([]byte(doc)))
		dec.UseNumber()
		if dec.Decode(&numbers) != nil {
			return
		}
		r, err := ast.ParseRef("input." + ref)
		if err != nil || !r.IsGround() {
			return
		}
		r = append(r.Copy(), ast.InternedTerm(idx))
		for _, in := range []any{plain, numbers} {
			for _, kind := range []projection.Kind{projection.Full, projection.Presence, projection.Type} {
				for _, ref := range []ast.Ref{r[:len(r)-1], r} {
					p := &projection.Projection{Paths: []projection.Path{{Ref: ref[1:], Kind: kind}}}
					checkGoKey(t, p, in)
				}
			}
			checkGoKey(t, &projection.Projection{Whole: true}, in)
		}
	})
}

func checkGoKey(t *testing.T, p *projection.Projection, in any) {
	t.Helper()
	got, ok := p.AppendGoKey(nil, in)
	v, err := ast.InterfaceToValue(in)
	switch {
	case err != nil && ok:
		t.Fatalf("key written for an input that does not convert: %v", err)
	case err == nil && !ok:
		t.Fatalf("no key for JSON input %v", in)
	case ok && !bytes.Equal(got, p.AppendKey(nil, v)):
		t.Fatalf("%v: go %q, ast %q", p.Strings(), got, p.AppendKey(nil, v))
	}
}
