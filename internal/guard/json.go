package guard

import (
	"encoding/binary"
	"hash/maphash"
	"sync"
	"unicode/utf8"
)

// Default JSON limits, used by JSONLimits.WithDefaults for unset fields.
const (
	DefaultJSONMaxBytes       = 1 << 20
	DefaultJSONMaxDepth       = 64
	DefaultJSONMaxElements    = 100_000
	DefaultJSONMaxStringBytes = 256 << 10
	DefaultJSONMaxMembers     = 10_000
)

// JSONLimits bounds what ScanJSON accepts. A zero or negative field means
// the default; there is no "unlimited".
type JSONLimits struct {
	// MaxBytes is the largest document, in bytes. Default 1 MiB.
	MaxBytes int
	// MaxDepth is the deepest nesting of arrays and objects ("[]" has depth
	// 1, a scalar document depth 0). Default 64.
	MaxDepth int
	// MaxElements is the most values (scalars and containers, not object
	// keys) in the whole document. Default 100,000.
	MaxElements int
	// MaxStringBytes is the longest string or object key, measured decoded
	// (after unescaping, in UTF-8). Default 256 KiB.
	MaxStringBytes int
	// MaxMembers is the most members of one object or elements of one
	// array. Default 10,000.
	MaxMembers int
	// RejectDuplicateKeys refuses an object that names a member twice,
	// compared after unescaping ("a" and "\u0061" are the same name).
	RejectDuplicateKeys bool
	// FoldCase, with RejectDuplicateKeys, also refuses two member names
	// equal under Unicode case folding ("name" and "Name", "sk" and
	// "ſK"): Go's encoding/json, and so the Go MCP SDK, matches struct
	// fields that way, so such an object reads differently to an exact
	// parser and to a server.
	FoldCase bool
}

// WithDefaults returns l with every zero or negative limit replaced by its
// default. RejectDuplicateKeys and FoldCase are kept as they are.
func (l JSONLimits) WithDefaults() JSONLimits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultJSONMaxBytes
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultJSONMaxDepth
	}
	if l.MaxElements <= 0 {
		l.MaxElements = DefaultJSONMaxElements
	}
	if l.MaxStringBytes <= 0 {
		l.MaxStringBytes = DefaultJSONMaxStringBytes
	}
	if l.MaxMembers <= 0 {
		l.MaxMembers = DefaultJSONMaxMembers
	}
	return l
}

// ScanJSON returns nil when b is exactly one JSON value (RFC 8259; leading
// and trailing whitespace allowed) within l, after applying
// l.WithDefaults. Otherwise it returns the first violation found in one
// left-to-right pass, which stops there: the size check comes before
// anything else, and a document nested deeper than MaxDepth is refused at
// the first bracket past the limit, without looking at the rest.
//
// Besides the grammar, ScanJSON refuses invalid UTF-8 inside strings and
// escaped lone surrogates such as "\ud800" (code invalid_utf8), which JSON
// parsers handle inconsistently. For any other document within the limits,
// it accepts exactly what encoding/json.Valid accepts, provided MaxDepth does
// not exceed encoding/json's own nesting limit of 10,000.
func ScanJSON(b []byte, l JSONLimits) *Violation {
	l = l.WithDefaults()
	if len(b) > l.MaxBytes {
		return violationf(CodeTooLarge, l.MaxBytes, "JSON body is %d bytes, over the limit of %d", len(b), l.MaxBytes)
	}
	s, _ := scannerPool.Get().(*jsonScanner)
	if s == nil {
		s = new(jsonScanner)
	}
	s.b, s.l = b, l
	v := s.scan()
	s.release()
	return v
}

// Scanners are pooled so that the container stack, the key list and the
// per-depth key indexes are reused across documents.
var scannerPool = sync.Pool{New: func() any { return new(jsonScanner) }}

// Bounds on what a pooled scanner may keep, so that one hostile document
// does not pin its peak memory in the pool.
const (
	poolMaxFrames  = 256
	poolMaxKeys    = 4096
	poolMaxScratch = 64 << 10
)

// linearKeys is how many keys of one object are compared byte by byte for
// duplicates before the object gets a hash index. Objects below it (nearly
// all of them) cost no hashing at all.
const linearKeys = 16

// keySeed seeds the duplicate-key hashes; it is random per process, so
// collisions cannot be planned by an attacker (and are confirmed byte by
// byte anyway).
var keySeed = maphash.MakeSeed()

type jsonScanner struct {
	b      []byte
	l      JSONLimits
	elems  int
	frames []frame
	// keys holds the keys of every open object, innermost last; an object's
	// keys are keys[frame.keys0:] and are dropped when it closes. Only used
	// with RejectDuplicateKeys.
	keys []keyRef
	// Scratch buffers for unescaping keys that contain escapes.
	bufA, bufB []byte
}

// frame is one open array or object.
type frame struct {
	obj     bool
	members int
	keys0   int
	// index maps a key hash to the position in keys of the first key of
	// this object with that hash. It is built once the object has
	// linearKeys keys, and kept (cleared) for reuse by later objects at the
	// same depth.
	index   map[uint64]int
	indexed bool
}

func (s *jsonScanner) release() {
	s.b = nil
	s.elems = 0
	s.frames = s.frames[:0]
	s.keys = s.keys[:0]
	if cap(s.bufA) > poolMaxScratch {
		s.bufA = nil
	}
	if cap(s.bufB) > poolMaxScratch {
		s.bufB = nil
	}
	if cap(s.frames) > poolMaxFrames || cap(s.keys) > poolMaxKeys {
		return // too big to keep
	}
	scannerPool.Put(s)
}

// isPlain marks the string bytes that need no attention: printable ASCII
// other than '"' and '\\'.
var isPlain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// plain8 reports whether all eight bytes packed in x are plain (see
// isPlain), with the SWAR tests of "Bit Twiddling Hacks": a byte at or above
// 0x80, below 0x20, or equal to '"' or '\\' makes it false.
func plain8(x uint64) bool {
	const (
		lo = 0x0101010101010101
		hi = 0x8080808080808080
	)
	hasZero := func(v uint64) uint64 { return (v - lo) & ^v & hi }
	below20 := (x - 0x20*lo) & ^x & hi
	return (x&hi | below20 | hasZero(x^('"'*lo)) | hasZero(x^('\\'*lo))) == 0
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// scan checks s.b. It is iterative: the only per-depth state is s.frames,
// bounded by MaxDepth.
func (s *jsonScanner) scan() *Violation {
	b := s.b
	i := 0
	for {
		// A value starts at the next non-space byte.
		i = skipSpace(b, i)
		if i >= len(b) {
			return s.unexpectedEnd("a value")
		}
		s.elems++
		if s.elems > s.l.MaxElements {
			return violationf(CodeTooManyElements, i, "JSON document has more than %d values", s.l.MaxElements)
		}
		var v *Violation
		switch c := b[i]; {
		case c == '{' || c == '[':
			if len(s.frames) >= s.l.MaxDepth {
				return violationf(CodeTooDeep, i, "JSON nesting is deeper than %d", s.l.MaxDepth)
			}
			obj := c == '{'
			s.push(obj)
			i = skipSpace(b, i+1)
			if i < len(b) && (obj && b[i] == '}' || !obj && b[i] == ']') {
				s.pop()
				i++
				break // an empty container is a complete value
			}
			if obj {
				if i, v = s.member(i); v != nil {
					return v
				}
			} else if v = s.count(i); v != nil {
				return v
			}
			continue // to the first member's value
		case c == '"':
			if i, _, v = s.scanString(i); v != nil {
				return v
			}
		case c == 't':
			i, v = s.literal(i, "true")
		case c == 'f':
			i, v = s.literal(i, "false")
		case c == 'n':
			i, v = s.literal(i, "null")
		case c == '-' || isDigit(c):
			i, v = s.number(i)
		default:
			return violationf(CodeInvalidJSON, i, "unexpected %s where a value was expected", describeByte(c))
		}
		if v != nil {
			return v
		}

		// A value ended at i: close containers until one continues.
		for {
			i = skipSpace(b, i)
			if len(s.frames) == 0 {
				if i < len(b) {
					return violationf(CodeTrailingData, i, "unexpected %s after the JSON value", describeByte(b[i]))
				}
				return nil
			}
			f := &s.frames[len(s.frames)-1]
			if i >= len(b) {
				if f.obj {
					return s.unexpectedEnd("',' or '}'")
				}
				return s.unexpectedEnd("',' or ']'")
			}
			c := b[i]
			if c == ',' {
				i = skipSpace(b, i+1)
				if f.obj {
					if i, v = s.member(i); v != nil {
						return v
					}
				} else {
					if i < len(b) && b[i] == ']' {
						return violationf(CodeInvalidJSON, i, "trailing comma in array")
					}
					if v = s.count(i); v != nil {
						return v
					}
				}
				break
			}
			if f.obj && c == '}' || !f.obj && c == ']' {
				s.pop()
				i++
				continue
			}
			if f.obj {
				return violationf(CodeInvalidJSON, i, "unexpected %s after an object member, expected ',' or '}'", describeByte(c))
			}
			return violationf(CodeInvalidJSON, i, "unexpected %s after an array element, expected ',' or ']'", describeByte(c))
		}
	}
}

func (s *jsonScanner) unexpectedEnd(want string) *Violation {
	return violationf(CodeInvalidJSON, len(s.b), "unexpected end of JSON input, expected %s", want)
}

func (s *jsonScanner) push(obj bool) {
	n := len(s.frames)
	if n < cap(s.frames) {
		s.frames = s.frames[:n+1]
		f := &s.frames[n]
		f.obj, f.members, f.keys0, f.indexed = obj, 0, len(s.keys), false
		return
	}
	s.frames = append(s.frames, frame{obj: obj, keys0: len(s.keys)})
}

func (s *jsonScanner) pop() {
	f := &s.frames[len(s.frames)-1]
	if f.obj {
		s.keys = s.keys[:f.keys0]
	}
	s.frames = s.frames[:len(s.frames)-1]
}

// count counts a new member, starting at i, of the innermost container.
func (s *jsonScanner) count(i int) *Violation {
	f := &s.frames[len(s.frames)-1]
	f.members++
	if f.members > s.l.MaxMembers {
		if f.obj {
			return violationf(CodeTooManyMembers, i, "JSON object has more than %d members", s.l.MaxMembers)
		}
		return violationf(CodeTooManyMembers, i, "JSON array has more than %d elements", s.l.MaxMembers)
	}
	return nil
}

// member scans an object member's name and the colon after it, starting at
// i (at the name), and returns the offset of its value.
func (s *jsonScanner) member(i int) (int, *Violation) {
	b := s.b
	if i >= len(b) {
		return i, s.unexpectedEnd("an object member name")
	}
	if b[i] != '"' {
		if b[i] == '}' {
			return i, violationf(CodeInvalidJSON, i, "trailing comma in object")
		}
		return i, violationf(CodeInvalidJSON, i, "unexpected %s where an object member name was expected", describeByte(b[i]))
	}
	if v := s.count(i); v != nil {
		return i, v
	}
	end, escaped, v := s.scanString(i)
	if v != nil {
		return i, v
	}
	if s.l.RejectDuplicateKeys {
		k := keyRef{start: i + 1, end: end - 1, escaped: escaped}
		if s.addKey(&k) {
			return i, violationf(CodeDuplicateKey, i, "JSON object has a duplicate member name at %s", s.pointer(k))
		}
	}
	i = skipSpace(b, end)
	if i >= len(b) {
		return i, s.unexpectedEnd("':'")
	}
	if b[i] != ':' {
		return i, violationf(CodeInvalidJSON, i, "unexpected %s after an object member name, expected ':'", describeByte(b[i]))
	}
	return i + 1, nil
}

func (s *jsonScanner) literal(i int, lit string) (int, *Violation) {
	if len(s.b)-i < len(lit) || string(s.b[i:i+len(lit)]) != lit {
		return i, violationf(CodeInvalidJSON, i, "invalid literal, expected %s", lit)
	}
	return i + len(lit), nil
}

// number scans a number per RFC 8259:
// -? (0 | [1-9][0-9]*) (\.[0-9]+)? ([eE][+-]?[0-9]+)?
func (s *jsonScanner) number(start int) (int, *Violation) {
	b := s.b
	i := start
	if b[i] == '-' {
		i++
	}
	digits := func(i int) int {
		for i < len(b) && isDigit(b[i]) {
			i++
		}
		return i
	}
	switch {
	case i >= len(b) || !isDigit(b[i]):
		return i, violationf(CodeInvalidJSON, start, "invalid number: no digits after '-'")
	case b[i] == '0':
		i++
		if i < len(b) && isDigit(b[i]) {
			return i, violationf(CodeInvalidJSON, start, "invalid number: leading zero")
		}
	default:
		i = digits(i)
	}
	if i < len(b) && b[i] == '.' {
		j := digits(i + 1)
		if j == i+1 {
			return i, violationf(CodeInvalidJSON, start, "invalid number: no digits after '.'")
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(i)
		if j == i {
			return i, violationf(CodeInvalidJSON, start, "invalid number: no digits in exponent")
		}
		i = j
	}
	return i, nil
}

// scanString scans the string whose opening quote is at start. It returns
// the offset just past the closing quote and whether the string has
// escapes. The decoded length is checked as it grows, so an over-long
// string is refused after MaxStringBytes+1 decoded bytes.
func (s *jsonScanner) scanString(start int) (end int, escaped bool, v *Violation) {
	b := s.b
	maxLen := s.l.MaxStringBytes
	n := 0 // decoded length so far
	i := start + 1
	for {
		// A run of plain bytes, no longer than the rest of the allowance
		// plus one.
		limit := len(b)
		if rem := maxLen - n; rem < len(b)-i {
			limit = i + rem + 1
		}
		j := i
		for j+8 <= limit && plain8(binary.LittleEndian.Uint64(b[j:])) {
			j += 8
		}
		for j < limit && isPlain[b[j]] {
			j++
		}
		n += j - i
		i = j
		if n > maxLen {
			return i, escaped, violationf(CodeStringTooLong, start, "JSON string is longer than %d bytes", maxLen)
		}
		if i >= len(b) {
			return i, escaped, violationf(CodeInvalidJSON, start, "unterminated string")
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1, escaped, nil
		case c == '\\':
			escaped = true
			width, size, v := s.escape(i)
			if v != nil {
				return i, escaped, v
			}
			n += size
			i += width
		case c < 0x20:
			return i, escaped, violationf(CodeInvalidJSON, i, "control character %s in string (must be escaped)", describeByte(c))
		default: // c >= 0x80
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size <= 1 {
				return i, escaped, violationf(CodeInvalidUTF8, i, "invalid UTF-8 in string")
			}
			n += size
			i += size
		}
	}
}

// escape checks the escape sequence at b[i] == '\\' and returns its width
// in the input and its decoded length in UTF-8.
func (s *jsonScanner) escape(i int) (width, size int, v *Violation) {
	b := s.b
	if i+1 >= len(b) {
		return 0, 0, violationf(CodeInvalidJSON, i, "unterminated string")
	}
	switch b[i+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return 2, 1, nil
	case 'u':
		r, ok := hex4(b, i+2)
		if !ok {
			return 0, 0, violationf(CodeInvalidJSON, i, "invalid \\u escape in string")
		}
		switch {
		case r >= 0xD800 && r < 0xDC00:
			if i+7 < len(b) && b[i+6] == '\\' && b[i+7] == 'u' {
				r2, ok := hex4(b, i+8)
				if !ok {
					return 0, 0, violationf(CodeInvalidJSON, i+6, "invalid \\u escape in string")
				}
				if r2 >= 0xDC00 && r2 < 0xE000 {
					return 12, 4, nil
				}
			}
			return 0, 0, violationf(CodeInvalidUTF8, i, "unpaired UTF-16 surrogate escape in string")
		case r >= 0xDC00 && r < 0xE000:
			return 0, 0, violationf(CodeInvalidUTF8, i, "unpaired UTF-16 surrogate escape in string")
		default:
			return 6, utf8.RuneLen(r), nil
		}
	default:
		return 0, 0, violationf(CodeInvalidJSON, i, "invalid escape %s in string", describeByte(b[i+1]))
	}
}

// hex4 decodes four hex digits at b[i:].
func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		d, ok := unhex(c)
		if !ok {
			return 0, false
		}
		r = r<<4 | rune(d)
	}
	return r, true
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
