package projection

import (
	"encoding/binary"

	"github.com/open-policy-agent/opa/v1/ast"
)

// encodingAST starts every key. There is one encoding: an adapter that
// writes a key without building the input (AppendKeyWith, AppendGoKey) must
// write exactly the bytes AppendKey writes for the input it would build, so
// that equal keys always mean equal projected values, whichever way each key
// was written (and a request that had to be built shares its cache entry
// with one that did not).
const encodingAST byte = 'A'

// Value tags of the canonical encoding. Every value is self-delimiting, so
// the concatenation of the projected values is injective.
const (
	tagUndefined = 'u'
	tagNull      = 'n'
	tagFalse     = 'f'
	tagTrue      = 't'
	tagNumber    = 'd'
	tagString    = 's'
	tagArray     = 'a'
	tagObject    = 'o'
	tagSet       = 'S'
	tagOther     = 'x'
	tagDefined   = 'D'
)

// AppendKey appends the canonical encoding of every projected path of v (the
// whole of v when the projection is Whole) to dst. It is the reference every
// other key writer must equal byte for byte.
func (p *Projection) AppendKey(dst []byte, v ast.Value) []byte {
	dst = append(dst, encodingAST)
	if p.Whole {
		return appendValue(dst, v)
	}
	for _, path := range p.Paths {
		dst = AppendValueAt(dst, v, path.Ref, path.Kind)
	}
	return dst
}

// AppendKeyWith writes the key AppendKey would write for an input the caller
// has not built: at appends, for one projected path, exactly what AppendKey
// appends for it (with AppendValueAt, AppendGoAt, AppendStringAt or
// AppendUndefined on the part of the input that determines it). It returns
// false, and the caller builds the input, when the projection is Whole or
// when at returns false.
func (p *Projection) AppendKeyWith(dst []byte, at func(dst []byte, path Path) ([]byte, bool)) ([]byte, bool) {
	if p.Whole {
		return dst, false
	}
	dst = append(dst, encodingAST)
	for _, path := range p.Paths {
		var ok bool
		if dst, ok = at(dst, path); !ok {
			return dst, false
		}
	}
	return dst, true
}

// AppendValueAt appends what AppendKey appends for a path of the given kind
// whose value is v's value at rest (v nil: undefined).
func AppendValueAt(dst []byte, v ast.Value, rest ast.Ref, kind Kind) []byte {
	var x ast.Value
	if v != nil {
		var err error
		if x, err = v.Find(rest); err != nil {
			x = nil
		}
	}
	switch kind {
	case Presence:
		return appendPresence(dst, x == nil, x == ast.Boolean(false))
	case Type:
		return append(dst, typeTag(x))
	case Full:
	}
	if x == nil {
		return append(dst, tagUndefined)
	}
	return appendValue(dst, x)
}

// AppendStringAt is AppendValueAt for ast.String(s), without converting s.
func AppendStringAt(dst []byte, s string, rest ast.Ref, kind Kind) []byte {
	switch {
	case len(rest) > 0: // a string has no members
		return append(dst, tagUndefined)
	case kind == Presence:
		return append(dst, tagDefined)
	case kind == Type:
		return append(dst, TypeString)
	}
	return appendString(dst, s)
}

// AppendUndefined appends what AppendKey appends for a path that has no
// value, whatever its kind.
func AppendUndefined(dst []byte) []byte { return append(dst, tagUndefined) }

// Type tags: what a Type path depends on, the JSON type of its value.
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

// appendPresence appends what a Presence path depends on: whether the value
// is undefined, false, or anything else.
func appendPresence(dst []byte, undefined, isFalse bool) []byte {
	switch {
	case undefined:
		return append(dst, tagUndefined)
	case isFalse:
		return append(dst, tagFalse)
	}
	return append(dst, tagDefined)
}

func appendString(dst []byte, s string) []byte {
	dst = append(dst, tagString)
	dst = binary.AppendVarint(dst, int64(len(s)))
	return append(dst, s...)
}

func appendNumber(dst []byte, s []byte) []byte {
	dst = append(dst, tagNumber)
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
		return appendString(dst, string(v))
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
