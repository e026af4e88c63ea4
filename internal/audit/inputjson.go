package audit

import (
	"encoding/json"
	"slices"
	"strconv"

	"github.com/open-policy-agent/opa/v1/ast"
)

// InputWriter is an InputSource that can also write its input as the
// event's JSON without building the Rego value. The recorder uses it when
// nothing but the credential masking changes the input (no masking policy,
// no redaction of an MCP call); otherwise it calls AuditInput.
type InputWriter interface {
	InputSource
	// WriteAuditInput writes through w exactly what w.Value would write
	// for the value AuditInput returns, and fails exactly when AuditInput
	// does. What it wrote before failing is discarded.
	WriteAuditInput(w *JSONWriter) error
}

// JSONWriter writes one JSON value, piece by piece, byte for byte as the
// recorder writes the equivalent Rego value: object members in the order of
// their keys (byte-wise, as Rego sorts them; the caller writes them in that
// order), strings as appendString writes them, numbers as given. It applies
// the event's credential masking on the way: a masked member's value is
// written as Mask, whatever the caller writes for it, and its pointer is
// listed.
type JSONWriter struct {
	buf    []byte
	masked []string
	root   *maskNode // the mask of the value itself
	stack  []frame   // the open objects and arrays
	// skip counts what is left of a masked member's value: 1 while the
	// value has not started, then 1 + the depth of the open containers
	// inside it.
	skip int
	keys []string // scratch of Go, sorted per map and popped after it
	ast  astWriter
}

type frame struct {
	array bool
	n     int       // members or elements written
	mask  *maskNode // mask of an object's members (nil: none)
	next  *maskNode // mask of the value of the member whose key came last
}

func (w *JSONWriter) reset(buf []byte, masked []string, mask *maskNode) {
	w.buf, w.masked, w.root = buf, masked, mask
	w.stack, w.skip, w.keys = w.stack[:0], 0, w.keys[:0]
}

// value starts a value: it writes the separator before an array element
// and returns the mask the value is under. It returns false when the value
// is swallowed (masked).
func (w *JSONWriter) value() (*maskNode, bool) {
	if w.skip > 0 {
		return nil, false
	}
	if len(w.stack) == 0 {
		return w.root, true
	}
	f := &w.stack[len(w.stack)-1]
	if f.array {
		if f.n > 0 {
			w.buf = append(w.buf, ',')
		}
		f.n++
		return nil, true
	}
	m := f.next
	f.next = nil
	return m, true
}

// scalar starts a scalar value; false means it is swallowed.
func (w *JSONWriter) scalar() bool {
	if _, ok := w.value(); ok {
		return true
	}
	if w.skip == 1 {
		w.skip = 0 // the masked value, swallowed whole
	}
	return false
}

func (w *JSONWriter) begin(array bool, open byte) {
	mask, ok := w.value()
	if !ok {
		w.skip++
		return
	}
	if array {
		mask = nil // appendAST masks object members only
	}
	w.stack = append(w.stack, frame{array: array, mask: mask})
	w.buf = append(w.buf, open)
}

func (w *JSONWriter) end(closing byte) {
	if w.skip > 0 {
		if w.skip--; w.skip == 1 {
			w.skip = 0
		}
		return
	}
	w.stack = w.stack[:len(w.stack)-1]
	w.buf = append(w.buf, closing)
}

// BeginObject opens an object; its members follow as Key and a value.
func (w *JSONWriter) BeginObject() { w.begin(false, '{') }

// EndObject closes the object BeginObject opened.
func (w *JSONWriter) EndObject() { w.end('}') }

// BeginArray opens an array; its elements follow.
func (w *JSONWriter) BeginArray() { w.begin(true, '[') }

// EndArray closes the array BeginArray opened.
func (w *JSONWriter) EndArray() { w.end(']') }

// Key writes the name of the next member of the open object. Keys must come
// in byte-wise order, as Rego orders an object's keys.
func (w *JSONWriter) Key(k string) {
	if w.skip > 0 {
		return
	}
	f := &w.stack[len(w.stack)-1]
	if f.n > 0 {
		w.buf = append(w.buf, ',')
	}
	f.n++
	w.buf = appendString(w.buf, k)
	w.buf = append(w.buf, ':')
	f.next = nil
	if f.mask == nil {
		return
	}
	c := f.mask.children[k]
	switch {
	case c == nil:
	case c.leaf:
		w.buf = appendString(w.buf, Mask)
		w.masked = append(w.masked, c.pointer)
		w.skip = 1
	default:
		f.next = c
	}
}

// String writes a string (invalid UTF-8 as U+FFFD).
func (w *JSONWriter) String(s string) {
	if w.scalar() {
		w.buf = appendString(w.buf, s)
	}
}

// Number writes a number's text as given: the text of a Rego number.
func (w *JSONWriter) Number(text string) {
	if w.scalar() {
		w.buf = append(w.buf, text...)
	}
}

// Bool writes true or false.
func (w *JSONWriter) Bool(b bool) {
	if w.scalar() {
		w.buf = strconv.AppendBool(w.buf, b)
	}
}

// Null writes null.
func (w *JSONWriter) Null() {
	if w.scalar() {
		w.buf = append(w.buf, "null"...)
	}
}

// Value writes a Rego value as the recorder writes it.
func (w *JSONWriter) Value(v ast.Value) {
	mask, ok := w.value()
	if !ok {
		if w.skip == 1 {
			w.skip = 0
		}
		return
	}
	w.buf = w.ast.append(w.buf, v, mask, &w.masked)
}

// Go writes a JSON-like Go value as Value writes ast.InterfaceToValue(v),
// and fails when that conversion does.
func (w *JSONWriter) Go(v any) error {
	switch x := v.(type) {
	case nil:
		w.Null()
	case bool:
		w.Bool(x)
	case string:
		w.String(x)
	case json.Number:
		if _, err := ast.NumberChecked(string(x)); err != nil {
			return err
		}
		w.Number(string(x))
	case []any:
		w.BeginArray()
		for _, e := range x {
			if err := w.Go(e); err != nil {
				return err
			}
		}
		w.EndArray()
	case []string:
		w.BeginArray()
		for _, e := range x {
			w.String(e)
		}
		w.EndArray()
	case map[string]any:
		start := len(w.keys)
		for k := range x {
			w.keys = append(w.keys, k)
		}
		slices.Sort(w.keys[start:])
		w.BeginObject()
		for i := start; i < start+len(x); i++ {
			k := w.keys[i]
			w.Key(k)
			if err := w.Go(x[k]); err != nil {
				return err
			}
		}
		w.EndObject()
		w.keys = w.keys[:start]
	default:
		av, err := ast.InterfaceToValue(v)
		if err != nil {
			return err
		}
		w.Value(av)
	}
	return nil
}

// AppendInput writes an event's input v as the recorder writes it, with
// kind's credential masking; it returns the JSON and the masked pointers.
func AppendInput(buf []byte, kind Kind, v ast.Value) ([]byte, []string) {
	var masked []string
	buf = appendAST(buf, v, kindMask(kind), &masked)
	return buf, masked
}

// AppendWrittenInput writes src's input through WriteAuditInput as the
// recorder writes it, with kind's credential masking; it returns the JSON
// and the masked pointers.
func AppendWrittenInput(buf []byte, kind Kind, src InputWriter) ([]byte, []string, error) {
	var w JSONWriter
	w.reset(buf, nil, kindMask(kind))
	if err := src.WriteAuditInput(&w); err != nil {
		return buf, nil, err
	}
	return w.buf, w.masked, nil
}
