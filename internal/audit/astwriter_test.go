package audit

import (
	"bytes"
	"slices"
	"strconv"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

// appendASTClosures is appendAST as it was written before astWriter: the
// reference astWriter is held to.
func appendASTClosures(buf []byte, v ast.Value, mask *maskNode, masked *[]string) []byte {
	switch x := v.(type) {
	case ast.Null:
		return append(buf, "null"...)
	case ast.Boolean:
		return strconv.AppendBool(buf, bool(x))
	case ast.Number:
		return append(buf, x...)
	case ast.String:
		return appendString(buf, string(x))
	case *ast.Array:
		buf = append(buf, '[')
		for i := range x.Len() {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendASTClosures(buf, x.Elem(i).Value, nil, nil)
		}
		return append(buf, ']')
	case ast.Set:
		buf = append(buf, '[')
		i := 0
		x.Foreach(func(t *ast.Term) {
			if i > 0 {
				buf = append(buf, ',')
			}
			i++
			buf = appendASTClosures(buf, t.Value, nil, nil)
		})
		return append(buf, ']')
	case ast.Object:
		buf = append(buf, '{')
		i := 0
		x.Foreach(func(k, e *ast.Term) {
			if i > 0 {
				buf = append(buf, ',')
			}
			i++
			key, ok := k.Value.(ast.String)
			if !ok {
				key = ast.String(k.Value.String())
			}
			buf = appendString(buf, string(key))
			buf = append(buf, ':')
			var child *maskNode
			if mask != nil {
				child = mask.children[string(key)]
			}
			switch {
			case child != nil && child.leaf:
				buf = appendString(buf, Mask)
				*masked = append(*masked, child.pointer)
			case child != nil:
				buf = appendASTClosures(buf, e.Value, child, masked)
			default:
				buf = appendASTClosures(buf, e.Value, nil, nil)
			}
		})
		return append(buf, '}')
	default:
		return appendString(buf, v.String())
	}
}

// FuzzAppendAST holds astWriter (through a reused JSONWriter, as the
// recorder writes) to appendASTClosures on Rego values, with each kind's
// masking.
func FuzzAppendAST(f *testing.F) {
	f.Add(`{"attributes":{"request":{"http":{"headers":{"authorization":"x","cookie":{"a":[1]},"x":"y"}}}},"s":{1,"a",{"b":2}}}`)
	f.Add(`{"envoy":{"attributes":{"request":{"http":{"headers":{"x-api-key":"k"}}}}},"a":[{"c":{}},set()],{"k":1}:2}`)
	f.Add(`[null,true,1.5e3,"\u2028<"]`)
	var w JSONWriter
	f.Fuzz(func(t *testing.T, rego string) {
		term, err := ast.ParseTerm(rego)
		if err != nil {
			return
		}
		for _, kind := range []Kind{KindEnvoy, KindMCPOverEnvoy, KindMCP} {
			var wantMasked []string
			want := appendASTClosures([]byte("x"), term.Value, kindMask(kind), &wantMasked)
			w.reset([]byte("x"), nil, kindMask(kind))
			w.Value(term.Value)
			if !bytes.Equal(w.buf, want) || !slices.Equal(w.masked, wantMasked) {
				t.Fatalf("kind %d: wrote %s %q, want %s %q", kind, w.buf, w.masked, want, wantMasked)
			}
		}
	})
}
