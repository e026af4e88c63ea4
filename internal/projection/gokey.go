package projection

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"slices"
	"strconv"

	"github.com/open-policy-agent/opa/v1/ast"
)

// AppendGoKey is AppendKey(dst, ast.InterfaceToValue(v)) for input held as
// Go values, without converting it: it appends exactly the same bytes. It
// returns false when it cannot promise that: when v holds a value of a type
// it does not encode (ast.Value, structs, pointers, ...; the caller then
// converts and uses AppendKey), or one ast.InterfaceToValue refuses (a
// json.Number with a huge exponent), anywhere in v, read or not, because the
// conversion of the whole input would fail.
//
// It encodes what ast.InterfaceToValue converts by itself or by a cheap
// round trip: nil, bool, string, json.Number, every integer type, float32,
// float64, []any, []string, map[string]any and map[string]string.
func (p *Projection) AppendGoKey(dst []byte, v any) ([]byte, bool) {
	if p.Whole {
		dst = append(dst, encodingAST)
		return appendGo(dst, v)
	}
	if !Convertible(v) {
		return dst, false
	}
	return p.AppendKeyWith(dst, func(dst []byte, path Path) ([]byte, bool) {
		return AppendGoAt(dst, v, path.Ref, path.Kind)
	})
}

// AppendGoAt is AppendValueAt(dst, ast.InterfaceToValue(v), rest, kind)
// without converting v. It returns false when it meets a value it does not
// encode on the way to rest, or at rest; it does not look at the rest of v
// (see Convertible).
func AppendGoAt(dst []byte, v any, rest ast.Ref, kind Kind) ([]byte, bool) {
	x, str, st := findGo(v, rest)
	switch st {
	case goUnknown:
		return dst, false
	case goUndefined:
		return append(dst, tagUndefined), true
	case goString:
		return AppendStringAt(dst, str, nil, kind), true
	case goFound:
	}
	switch kind {
	case Presence:
		return appendPresence(dst, false, x == false), true
	case Type:
		tag, _ := goTypeTag(x) // findGo finds only types it knows
		return append(dst, tag), true
	case Full:
	}
	return appendGo(dst, x)
}

// Convertible reports whether ast.InterfaceToValue(v) succeeds and v holds
// only the types AppendGoKey encodes.
func Convertible(v any) bool {
	switch x := v.(type) {
	case map[string]any:
		for _, e := range x {
			if !Convertible(e) {
				return false
			}
		}
		return true
	case []any:
		for _, e := range x {
			if !Convertible(e) {
				return false
			}
		}
		return true
	case json.Number:
		_, err := ast.NumberChecked(string(x))
		return err == nil
	}
	_, ok := goTypeTag(v)
	return ok
}

type goFind uint8

const (
	goFound goFind = iota
	// goString: found an element of a []string or a map[string]string,
	// returned as a string (not boxed in an any, which would allocate).
	goString
	// goUndefined: the path certainly has no value in the converted input
	// (a missing key, an index out of range, a member of a scalar).
	goUndefined
	// goUnknown: a value of a type findGo does not know lies on the path.
	goUnknown
)

// findGo is ast.Value.Find on the conversion of v: object members are found
// by string keys only, array elements by ast.Number.Int indexes in range,
// and a scalar has no members.
func findGo(v any, path ast.Ref) (any, string, goFind) {
	for i, t := range path {
		switch x := v.(type) {
		case map[string]any:
			k, ok := t.Value.(ast.String)
			if !ok {
				return nil, "", goUndefined
			}
			if v, ok = x[string(k)]; !ok {
				return nil, "", goUndefined
			}
		case []any:
			j, ok := index(t, len(x))
			if !ok {
				return nil, "", goUndefined
			}
			v = x[j]
		case map[string]string:
			k, ok := t.Value.(ast.String)
			if !ok {
				return nil, "", goUndefined
			}
			s, ok := x[string(k)]
			if !ok || i < len(path)-1 { // a string has no members
				return nil, "", goUndefined
			}
			return nil, s, goString
		case []string:
			j, ok := index(t, len(x))
			if !ok || i < len(path)-1 {
				return nil, "", goUndefined
			}
			return nil, x[j], goString
		default:
			if _, known := goTypeTag(v); !known {
				return nil, "", goUnknown
			}
			return nil, "", goUndefined // a scalar
		}
	}
	if _, known := goTypeTag(v); !known {
		return nil, "", goUnknown
	}
	return v, "", goFound
}

// index is ast.Array.Find's reading of an index term.
func index(t *ast.Term, n int) (int, bool) {
	num, ok := t.Value.(ast.Number)
	if !ok {
		return 0, false
	}
	i, ok := num.Int()
	return i, ok && i >= 0 && i < n
}

// goTypeTag is typeTag of the conversion of v, for the types AppendGoKey
// encodes; false for any other type.
func goTypeTag(v any) (byte, bool) {
	switch v.(type) {
	case nil:
		return TypeNull, true
	case bool:
		return TypeBoolean, true
	case json.Number, float64, float32, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return TypeNumber, true
	case string:
		return TypeString, true
	case []any, []string:
		return TypeArray, true
	case map[string]any, map[string]string:
		return TypeObject, true
	}
	return 0, false
}

// appendGo appends appendValue(ast.InterfaceToValue(v)). The numbers are
// spelled as InterfaceToValue spells them: float64 with 'g' (1 is "1", 1e21
// is "1e+21"), other non-JSON number types as util.RoundTrip writes them
// before converting the json.Number (float32 with 'f'). It returns false for
// the few values whose conversion it does not reproduce.
func appendGo(dst []byte, v any) ([]byte, bool) {
	var buf [32]byte
	switch v := v.(type) {
	case nil:
		return append(dst, tagNull), true
	case bool:
		if v {
			return append(dst, tagTrue), true
		}
		return append(dst, tagFalse), true
	case string:
		return appendString(dst, v), true
	case json.Number:
		if _, err := ast.NumberChecked(string(v)); err != nil {
			return dst, false
		}
		dst = append(dst, tagNumber)
		dst = binary.AppendVarint(dst, int64(len(v)))
		return append(dst, v...), true
	case float64:
		return appendNumber(dst, strconv.AppendFloat(buf[:0], v, 'g', -1, 64)), true
	case float32:
		return appendNumber(dst, strconv.AppendFloat(buf[:0], float64(v), 'f', -1, 32)), true
	case int:
		return appendNumber(dst, strconv.AppendInt(buf[:0], int64(v), 10)), true
	case int8:
		return appendNumber(dst, strconv.AppendInt(buf[:0], int64(v), 10)), true
	case int16:
		return appendNumber(dst, strconv.AppendInt(buf[:0], int64(v), 10)), true
	case int32:
		return appendNumber(dst, strconv.AppendInt(buf[:0], int64(v), 10)), true
	case int64:
		if v > math.MaxInt || v < math.MinInt { // OPA converts through int: 32-bit platforms wrap
			return dst, false
		}
		return appendNumber(dst, strconv.AppendInt(buf[:0], v, 10)), true
	case uint:
		return appendNumber(dst, strconv.AppendUint(buf[:0], uint64(v), 10)), true
	case uint8:
		return appendNumber(dst, strconv.AppendUint(buf[:0], uint64(v), 10)), true
	case uint16:
		return appendNumber(dst, strconv.AppendUint(buf[:0], uint64(v), 10)), true
	case uint32:
		return appendNumber(dst, strconv.AppendUint(buf[:0], uint64(v), 10)), true
	case uint64:
		// ast.InterfaceToValue converts a uint64 through int, so one above
		// math.MaxInt64 becomes a negative number; leave that to it.
		if v > math.MaxInt {
			return dst, false
		}
		return appendNumber(dst, strconv.AppendUint(buf[:0], v, 10)), true
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
	case []string:
		dst = append(dst, tagArray)
		dst = binary.AppendVarint(dst, int64(len(v)))
		for _, x := range v {
			dst = appendString(dst, x)
		}
		return dst, true
	case map[string]any:
		dst = append(dst, tagObject)
		dst = binary.AppendVarint(dst, int64(len(v)))
		for _, k := range sortedKeys(v) {
			dst = appendString(dst, k)
			var ok bool
			if dst, ok = appendGo(dst, v[k]); !ok {
				return dst, false
			}
		}
		return dst, true
	case map[string]string:
		dst = append(dst, tagObject)
		dst = binary.AppendVarint(dst, int64(len(v)))
		for _, k := range sortedKeys(v) {
			dst = appendString(dst, k)
			dst = appendString(dst, v[k])
		}
		return dst, true
	}
	return dst, false
}

// sortedKeys returns m's keys in the order of ast.String.Compare (bytewise),
// the order in which an ast.Object encodes its members.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
