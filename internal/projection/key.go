package projection

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"slices"
	"strconv"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Encodings tag a key with how it was built, so that keys built from an
// ast.Value, from Go values or by an adapter straight from its wire format
// can never collide with one another.
const (
	encodingAST byte = 'A'
	encodingGo  byte = 'G'
)

// Value tags of the canonical encoding. Every value is self-delimiting, so
// the concatenation of the projected values is injective.
const (
	tagUndefined = 'u'
	tagNull      = 'n'
	tagFalse     = 'f'
	tagTrue      = 't'
	tagNumber    = 'd'
	tagFloat     = 'F'
	tagString    = 's'
	tagArray     = 'a'
	tagObject    = 'o'
	tagSet       = 'S'
	tagOther     = 'x'
	tagDefined   = 'D'
)

// AppendKey appends the canonical encoding of every projected path of v (the
// whole of v when the projection is Whole) to dst.
func (p *Projection) AppendKey(dst []byte, v ast.Value) []byte {
	dst = append(dst, encodingAST)
	if p.Whole {
		return appendValue(dst, v)
	}
	for _, path := range p.Paths {
		x, err := v.Find(path.Ref)
		if err != nil {
			x = nil
		}
		switch path.Kind {
		case Presence:
			dst = appendPresence(dst, x == nil, x == ast.Boolean(false))
			continue
		case Type:
			dst = append(dst, typeTag(x))
			continue
		}
		if x == nil {
			dst = append(dst, tagUndefined)
			continue
		}
		dst = appendValue(dst, x)
	}
	return dst
}

// AppendPresence appends what a Presence path depends on: whether the value
// is undefined, false, or anything else.
func AppendPresence(dst []byte, undefined, isFalse bool) []byte {
	return appendPresence(dst, undefined, isFalse)
}

// AppendType appends what a Type path depends on: the JSON type of a value
// (tag is one of the Type* constants).
func AppendType(dst []byte, tag byte) []byte { return append(dst, tag) }

// Type tags, for AppendType.
const (
	TypeUndefined byte = tagUndefined
	TypeNull      byte = tagNull
	TypeBoolean   byte = 'b'
	TypeNumber    byte = tagNumber
	TypeString    byte = tagString
	TypeArray     byte = tagArray
	TypeObject    byte = tagObject
	TypeSet       byte = tagSet
	typeOther     byte = tagOther
)

// typeTag returns the Type tag of v (nil: undefined).
func typeTag(v ast.Value) byte {
	switch v.(type) {
	case nil:
		return TypeUndefined
	case ast.Null:
		return TypeNull
	case ast.Boolean:
		return TypeBoolean
	case ast.Number:
		return TypeNumber
	case ast.String:
		return TypeString
	case *ast.Array:
		return TypeArray
	case ast.Object:
		return TypeObject
	case ast.Set:
		return TypeSet
	}
	return typeOther
}

// goTypeTag is typeTag for the Go values AppendGoKey takes.
func goTypeTag(v any) (byte, bool) {
	switch x := v.(type) {
	case nil:
		return TypeNull, true
	case bool:
		return TypeBoolean, true
	case json.Number, int, int64:
		return TypeNumber, true
	case float64:
		return TypeNumber, !math.IsNaN(x) && !math.IsInf(x, 0)
	case string:
		return TypeString, true
	case []any:
		return TypeArray, true
	case map[string]any:
		return TypeObject, true
	}
	return 0, false
}

// AppendUndefined appends the encoding of a path that has no value.
func AppendUndefined(dst []byte) []byte { return append(dst, tagUndefined) }

func appendPresence(dst []byte, undefined, isFalse bool) []byte {
	switch {
	case undefined:
		return append(dst, tagUndefined)
	case isFalse:
		return append(dst, tagFalse)
	}
	return append(dst, tagDefined)
}

// AppendString appends a string in the canonical encoding, for adapters that
// encode values straight from their wire format.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, tagString)
	dst = binary.AppendVarint(dst, int64(len(s)))
	return append(dst, s...)
}

// appendValue appends the canonical encoding of v.
func appendValue(dst []byte, v ast.Value) []byte {
	switch v := v.(type) {
	case ast.Null:
		return append(dst, tagNull)
	case ast.Boolean:
		if v {
			return append(dst, tagTrue)
		}
		return append(dst, tagFalse)
	case ast.Number:
		dst = append(dst, tagNumber)
		dst = binary.AppendVarint(dst, int64(len(v)))
		return append(dst, v...)
	case ast.String:
		return AppendString(dst, string(v))
	case *ast.Array:
		dst = append(dst, tagArray)
		dst = binary.AppendVarint(dst, int64(v.Len()))
		for i := range v.Len() {
			dst = appendValue(dst, v.Elem(i).Value)
		}
		return dst
	case ast.Object:
		dst = append(dst, tagObject)
		dst = binary.AppendVarint(dst, int64(v.Len()))
		v.Foreach(func(k, x *ast.Term) { // sorted by key
			dst = appendValue(dst, k.Value)
			dst = appendValue(dst, x.Value)
		})
		return dst
	case ast.Set:
		dst = append(dst, tagSet)
		dst = binary.AppendVarint(dst, int64(v.Len()))
		v.Foreach(func(x *ast.Term) { dst = appendValue(dst, x.Value) }) // sorted
		return dst
	default:
		s := v.String()
		dst = append(dst, tagOther)
		dst = binary.AppendVarint(dst, int64(len(s)))
		return append(dst, s...)
	}
}

// AppendGoKey is AppendKey for input held as JSON-like Go values
// (map[string]any, []any, string, bool, nil, json.Number, float64, int and
// int64), without converting it to an ast.Value first. It returns false for
// a value of any other type; the caller then converts and uses AppendKey.
func (p *Projection) AppendGoKey(dst []byte, v any) ([]byte, bool) {
	dst = append(dst, encodingGo)
	if p.Whole {
		return appendGo(dst, v)
	}
	for _, path := range p.Paths {
		x, found := findGo(v, path.Ref)
		switch path.Kind {
		case Presence:
			dst = appendPresence(dst, !found, x == false)
			continue
		case Type:
			if !found {
				dst = append(dst, tagUndefined)
				continue
			}
			tag, ok := goTypeTag(x)
			if !ok {
				return dst, false
			}
			dst = append(dst, tag)
			continue
		}
		if !found {
			dst = append(dst, tagUndefined)
			continue
		}
		var ok bool
		if dst, ok = appendGo(dst, x); !ok {
			return dst, false
		}
	}
	return dst, true
}

func findGo(v any, path ast.Ref) (any, bool) {
	for _, t := range path {
		switch x := v.(type) {
		case map[string]any:
			k, ok := t.Value.(ast.String)
			if !ok {
				return nil, false
			}
			if v, ok = x[string(k)]; !ok {
				return nil, false
			}
		case []any:
			n, ok := t.Value.(ast.Number)
			if !ok {
				return nil, false
			}
			i, ok := n.Int()
			if !ok || i < 0 || i >= len(x) {
				return nil, false
			}
			v = x[i]
		default:
			return nil, false
		}
	}
	return v, true
}

func appendGo(dst []byte, v any) ([]byte, bool) {
	switch v := v.(type) {
	case nil:
		return append(dst, tagNull), true
	case bool:
		if v {
			return append(dst, tagTrue), true
		}
		return append(dst, tagFalse), true
	case string:
		return AppendString(dst, v), true
	case json.Number:
		return appendNumber(dst, string(v)), true
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return dst, false
		}
		// A float64 is tagged apart from decimal strings: it may convert to
		// a differently spelled ast.Number than json.Number("1") does.
		dst = append(dst, tagFloat)
		return binary.BigEndian.AppendUint64(dst, math.Float64bits(v)), true
	case int:
		return appendNumber(dst, strconv.Itoa(v)), true
	case int64:
		return appendNumber(dst, strconv.FormatInt(v, 10)), true
	case []any:
		dst = append(dst, tagArray)
		dst = binary.AppendVarint(dst, int64(len(v)))
		for _, x := range v {
			var ok bool
			if dst, ok = appendGo(dst, x); !ok {
				return dst, false
			}
		}
		return dst, true
	case map[string]any:
		dst = append(dst, tagObject)
		dst = binary.AppendVarint(dst, int64(len(v)))
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			dst = AppendString(dst, k)
			var ok bool
			if dst, ok = appendGo(dst, v[k]); !ok {
				return dst, false
			}
		}
		return dst, true
	}
	return dst, false
}

func appendNumber(dst []byte, s string) []byte {
	dst = append(dst, tagNumber)
	dst = binary.AppendVarint(dst, int64(len(s)))
	return append(dst, s...)
}
