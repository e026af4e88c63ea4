package mcpnative

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"
)

// The arguments' check against a tool's input schema, with OPA's
// json.match_schema, and the JSON text it reads them as.

// matchSchema is json.match_schema(arguments, tool.input_schema), with
// the tool's schema compiled once. The messages are "field: description".
func matchSchema(ctx context.Context, tool *entry, args map[string]any, caps *ast.Capabilities) (bool, []string, bool) {
	// The document goes in as JSON text, which json.match_schema decodes as
	// it decodes the JSON it writes from a Rego value: the same document,
	// without building the Rego value and marshalling it again.
	bp := textBufs.Get().(*[]byte)
	defer textBufs.Put(bp)
	text, ok := appendJSON((*bp)[:0], args)
	*bp = text
	var doc ast.Value
	if ok {
		doc = ast.String(text)
	} else if doc, ok = toValue(args); !ok {
		return false, nil, false
	}
	v, err := call(ctx, builtinMatchSchema, tool.slot, caps, ast.NewTerm(doc), ast.NewTerm(tool.schema))
	if err != nil {
		return false, nil, false
	}
	arr, ok := v.(*ast.Array)
	if !ok || arr.Len() != 2 {
		return false, nil, false
	}
	valid, ok := arr.Elem(0).Value.(ast.Boolean)
	if !ok {
		return false, nil, false
	}
	if valid {
		return true, nil, true
	}
	errs, ok := arr.Elem(1).Value.(*ast.Array)
	if !ok {
		return false, nil, false
	}
	msgs := make([]string, 0, errs.Len())
	for i := range errs.Len() {
		o, ok := errs.Elem(i).Value.(ast.Object)
		if !ok {
			return false, nil, false
		}
		f, ok1 := o.Get(ast.StringTerm("field")).Value.(ast.String)
		d, ok2 := o.Get(ast.StringTerm("desc")).Value.(ast.String)
		if !ok1 || !ok2 {
			return false, nil, false
		}
		msgs = append(msgs, string(f)+": "+string(d))
	}
	return false, msgs, true
}

var textBufs = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

// appendJSON appends v as JSON text whose decoding (with json.Number) is
// the document OPA decodes from the Rego value of v: numbers are written
// as the text of their Rego number. It returns false for values it does
// not write (other Go types, numbers Rego refuses).
func appendJSON(dst []byte, v any) ([]byte, bool) {
	switch v := v.(type) {
	case nil:
		return append(dst, "null"...), true
	case bool:
		return strconv.AppendBool(dst, v), true
	case string:
		return appendJSONString(dst, v), true
	case json.Number, float64, int, int64:
		av, err := ast.InterfaceToValue(v)
		if err != nil {
			return dst, false
		}
		n, ok := av.(ast.Number)
		if !ok || !json.Valid([]byte(n)) {
			return dst, false
		}
		return append(dst, n...), true
	case []any:
		dst = append(dst, '[')
		for i, x := range v {
			if i > 0 {
				dst = append(dst, ',')
			}
			var ok bool
			if dst, ok = appendJSON(dst, x); !ok {
				return dst, false
			}
		}
		return append(dst, ']'), true
	case map[string]any:
		dst = append(dst, '{')
		first := true
		for k, x := range v {
			if !utf8.ValidString(k) {
				// Two such keys would both be written as U+FFFD and collide
				// in an order of this map's making: OPA's path sorts them.
				return dst, false
			}
			if !first {
				dst = append(dst, ',')
			}
			first = false
			dst = appendJSONString(dst, k)
			dst = append(dst, ':')
			var ok bool
			if dst, ok = appendJSON(dst, x); !ok {
				return dst, false
			}
		}
		return append(dst, '}'), true
	}
	return dst, false
}

// appendJSONString writes s as a JSON string that decodes to what
// encoding/json's encoding of s decodes to (invalid UTF-8 as U+FFFD).
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c < 0x20:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, `\ufffd`...)
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}
