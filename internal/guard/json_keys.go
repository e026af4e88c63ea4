package guard

import (
	"bytes"
	"hash/maphash"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Duplicate member names: ScanJSON records the keys of the open objects and
// refuses a name an object already has, naming it by its JSON pointer.

// keyRef is an object key: its raw bytes between the quotes, and the hash
// of its unescaped value once its object is indexed.
type keyRef struct {
	start, end int
	hash       uint64
	escaped    bool
}

// keyBytes returns k unescaped: its raw bytes when it has no escapes,
// otherwise decoded into *buf.
func (s *jsonScanner) keyBytes(k keyRef, buf *[]byte) []byte {
	raw := s.b[k.start:k.end]
	if !k.escaped {
		return raw
	}
	*buf = appendUnescaped((*buf)[:0], raw)
	return *buf
}

// sameKey reports whether a and b name the same member: the same bytes
// once unescaped.
func (s *jsonScanner) sameKey(a, b keyRef) bool {
	if s.l.FoldCase {
		return bytes.EqualFold(s.keyBytes(a, &s.bufA), s.keyBytes(b, &s.bufB))
	}
	if !a.escaped && !b.escaped {
		return bytes.Equal(s.b[a.start:a.end], s.b[b.start:b.end])
	}
	return bytes.Equal(s.keyBytes(a, &s.bufA), s.keyBytes(b, &s.bufB))
}

func (s *jsonScanner) hashKey(k keyRef) uint64 {
	key := s.keyBytes(k, &s.bufA)
	if s.l.FoldCase {
		s.bufB = appendFolded(s.bufB[:0], key)
		key = s.bufB
	}
	return maphash.Bytes(keySeed, key)
}

// appendFolded appends key with every rune replaced by the smallest rune
// of its case-folding orbit: names equal under bytes.EqualFold fold to the
// same bytes, so they hash alike.
func appendFolded(dst, key []byte) []byte {
	for len(key) > 0 {
		r, n := utf8.DecodeRune(key)
		key = key[n:]
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		dst = utf8.AppendRune(dst, least)
	}
	return dst
}

// addKey records k in the innermost object and reports whether the object
// already has a member of that name. An object's first key is only
// recorded, and small objects are searched linearly byte by byte; from
// linearKeys keys on, an index by hash keeps the cost linear in the number
// of members. Memory is bounded by the keys of the open objects (at most
// MaxElements) and one index per nesting level, reused.
func (s *jsonScanner) addKey(k *keyRef) bool {
	f := &s.frames[len(s.frames)-1]
	prev := s.keys[f.keys0:]
	if !f.indexed && len(prev) >= linearKeys {
		if f.index == nil {
			f.index = make(map[uint64]int, 2*linearKeys)
		} else {
			clear(f.index)
		}
		for j := range prev {
			p := &prev[j]
			p.hash = s.hashKey(*p)
			if _, ok := f.index[p.hash]; !ok {
				f.index[p.hash] = f.keys0 + j
			}
		}
		f.indexed = true
	}
	if f.indexed {
		k.hash = s.hashKey(*k)
		if first, ok := f.index[k.hash]; ok {
			// Same hash: almost surely the same name, but confirm, and
			// check every key with this hash in case of a collision.
			for _, p := range s.keys[first:] {
				if p.hash == k.hash && s.sameKey(p, *k) {
					return true
				}
			}
		} else {
			f.index[k.hash] = len(s.keys)
		}
	} else {
		for _, p := range prev {
			if s.sameKey(p, *k) {
				return true
			}
		}
	}
	s.keys = append(s.keys, *k)
	return false
}

// pointer names the member k of the innermost object by its JSON pointer
// (RFC 6901), such as "/params/arguments/0/name", quoted and escaped. Only
// the last maxExcerpt bytes are kept ("..." marks the cut), so the message
// stays short whatever the depth and the length of the names; member
// values never appear. It runs only to report a duplicate: it allocates.
func (s *jsonScanner) pointer(k keyRef) string {
	// Collect the reference tokens from the innermost out, and stop once
	// the tail is long enough.
	var tokens []string
	n := 0
	add := func(tok string) {
		tokens = append(tokens, tok)
		n += 1 + len(tok)
	}
	add(pointerToken(s.keyBytes(k, &s.bufA)))
	for d := len(s.frames) - 2; d >= 0 && n <= maxExcerpt; d-- {
		if f := &s.frames[d]; f.obj {
			// The current member of an enclosing object is its last key
			// recorded before the child container opened.
			add(pointerToken(s.keyBytes(s.keys[s.frames[d+1].keys0-1], &s.bufA)))
		} else {
			add(strconv.Itoa(f.members - 1))
		}
	}
	var b strings.Builder
	b.Grow(n)
	for j := len(tokens) - 1; j >= 0; j-- {
		b.WriteByte('/')
		b.WriteString(tokens[j])
	}
	return tailExcerpt(b.String())
}

// pointerToken escapes a member name as a JSON pointer reference token:
// "~" as "~0" and "/" as "~1".
func pointerToken(name []byte) string {
	if bytes.IndexByte(name, '~') < 0 && bytes.IndexByte(name, '/') < 0 {
		return string(name)
	}
	r := strings.NewReplacer("~", "~0", "/", "~1")
	return r.Replace(string(name))
}

// appendUnescaped appends the decoded form of raw, the bytes between the
// quotes of a string scanString accepted, to dst.
func appendUnescaped(dst, raw []byte) []byte {
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' || i+1 >= len(raw) {
			dst = append(dst, c)
			i++
			continue
		}
		switch e := raw[i+1]; e {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, ok := hex4(raw, i+2)
			if !ok {
				return append(dst, raw[i:]...) // unreachable for checked input
			}
			i += 6
			if r >= 0xD800 && r < 0xDC00 && i+1 < len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
				if r2, ok := hex4(raw, i+2); ok && r2 >= 0xDC00 && r2 < 0xE000 {
					r = 0x10000 + (r-0xD800)<<10 + (r2 - 0xDC00)
					i += 6
				}
			}
			dst = utf8.AppendRune(dst, r)
			continue
		default: // '"', '\\', '/'
			dst = append(dst, e)
		}
		i += 2
	}
	return dst
}
