package guard

import (
	"bytes"
	"strings"
	"unicode/utf8"
)

// DefaultPathMaxBytes is the default PathLimits.MaxBytes.
const DefaultPathMaxBytes = 8 << 10

// PathLimits bounds what CheckPath accepts. A zero or negative field means
// the default.
type PathLimits struct {
	// MaxBytes is the longest :path, query included. Default 8 KiB.
	MaxBytes int
}

// WithDefaults returns l with every zero or negative limit replaced by its
// default.
func (l PathLimits) WithDefaults() PathLimits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultPathMaxBytes
	}
	return l
}

// CheckPath refuses request paths no HTTP client should send. rawPath is
// Envoy's :path, the path with an optional "?query". After l.WithDefaults it
// refuses:
//
//   - a rawPath longer than MaxBytes: path_too_long;
//   - a rawPath that does not start with "/" (except the literal "*"), or
//     that contains '#' (a fragment is never sent), or a raw non-ASCII byte
//     in the path part: path_invalid;
//   - a control character (C0 or DEL), raw anywhere or percent-encoded in
//     the path part (%00, %0A, %7F, and the C1 controls %C2%80-%C2%9F):
//     path_control_char;
//   - a malformed percent escape in the path part (%zz, a truncated %4):
//     path_bad_escape;
//   - percent-encoded bytes that are not valid UTF-8 (%C3 alone, overlong
//     forms such as %C0%AF, encoded surrogates): invalid_utf8;
//   - a path that servers read in different ways (see below):
//     ambiguous_path.
//
// # Ambiguous paths
//
// A policy can only guard a path prefix if the upstream resolves the path
// the way the policy reads it. These paths are resolved differently by
// common servers, so they are refused rather than normalized one way:
//
//   - a raw "\" (servers on Windows, and some frameworks, read it as "/");
//   - an encoded "/" or "\" (%2F, %5C, any case), which servers that decode
//     before routing turn into separators;
//   - a dot segment written with escapes (%2e, .%2E, %2e%2e), and a
//     segment that is empty, "." or ".." once its ";" path parameters are
//     dropped ("..;", ".;x", "..;jsessionid=1", "%2e%2e;", ";x"): only the
//     plain "." and ".." are resolved, as every server does, while Tomcat
//     and Jetty drop ";..." from each segment first, so "/docs/..;/admin"
//     is "/admin" to them and "/docs/;/../admin" is "/admin" too;
//   - ".." right after an empty segment ("/admin//../x"): servers that
//     merge slashes first serve "/x", servers that follow RFC 3986 alone
//     (Jetty, the WHATWG URL parser) "/admin/x";
//   - a double-encoded ".", "/", "\" or "%" (%252e, %252F, %255c,
//     %2525), which servers that decode twice (a proxy, then the
//     application) turn into the above.
//
// Other ";" parameters ("/a;v=1/b", "/app;jsessionid=1/x") are kept: they
// cannot move a path out of a prefix, so refusing them would only break
// clients that use them.
//
// The query is checked only for length, control characters and '#'.
// Offsets are byte offsets in rawPath.
func CheckPath(rawPath string, l PathLimits) *Violation {
	l = l.WithDefaults()
	_, v := processPath(rawPath, l.MaxBytes, false)
	return v
}

// NormalizePath returns the canonical form of rawPath that policies should
// match on:
//
//   - the path part only, without the query;
//   - percent escapes decoded, except for "%", "?" and "#", which stay
//     encoded as %25, %3F and %23 (uppercase hex), so the result never reads
//     differently when parsed again;
//   - ";" path parameters kept as they are ("/a;v=1/b" stays as it is);
//   - repeated slashes merged;
//   - "." and ".." segments resolved as in RFC 3986 section 5.2.4; ".."
//     above the root stays at the root;
//   - a trailing slash kept (also the one a final "." or ".." leaves, as
//     in RFC 3986: "/a/b/.." is "/a/").
//
// Ambiguous paths (see CheckPath) are refused with ambiguous_path, never
// normalized: a raw "\", %2F, %5C, dot segments written with escapes or
// with ";" parameters, and double-encoded ".", "/", "\" or "%".
//
// Percent-encoded UTF-8 is decoded to raw UTF-8 ("/caf%C3%A9" is
// "/café"), so the result is for matching, not for sending upstream.
//
// NormalizePath refuses what CheckPath refuses with default limits, with one
// exception: raw non-ASCII in the path part is accepted when it is valid
// UTF-8 (and not a C1 control), because that is NormalizePath's own output
// for encoded UTF-8; this makes NormalizePath idempotent. Call CheckPath
// first to refuse such paths.
//
// Examples:
//
//	/a//b/../c          /a/c
//	/%7Euser            /~user
//	/./a/               /a/
//	/..                 /
//	/a?x=/../           /a
//	/a;v=1/b            /a;v=1/b
//	*                   *
//	/docs/%2e%2e/admin  ambiguous_path
//	/docs/..;/admin     ambiguous_path
//	/a%2fb, /a\b        ambiguous_path
//	/admin//../x        ambiguous_path
func NormalizePath(rawPath string) (string, *Violation) {
	return processPath(rawPath, DefaultPathMaxBytes, true)
}

// Normalize is NormalizePath with l's MaxBytes bounding the result.
func (l PathLimits) Normalize(rawPath string) (string, *Violation) {
	return processPath(rawPath, l.WithDefaults().MaxBytes, true)
}

// isCtl reports whether c is a C0 control character or DEL.
func isCtl(c byte) bool { return c < 0x20 || c == 0x7f }

// isPathLiteral marks the bytes that stand for themselves in both the raw
// path and its canonical form: space and printable ASCII except '%', '/',
// '\', '?' and '#'.
var isPathLiteral = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = true
	}
	for _, c := range []byte("%/\\?#") {
		t[c] = false
	}
	return t
}()

// keepEncoded reports whether the decoded byte c stays percent-encoded in
// the canonical form.
func keepEncoded(c byte) bool {
	return c == '/' || c == '\\' || c == '%' || c == '?' || c == '#'
}

const upperHex = "0123456789ABCDEF"

// processPath checks rawPath and, when norm is set, returns its canonical
// form (see NormalizePath).
func processPath(rawPath string, maxBytes int, norm bool) (string, *Violation) {
	if len(rawPath) > maxBytes {
		return "", violationf(CodePathTooLong, maxBytes, "path is %d bytes, over the limit of %d", len(rawPath), maxBytes)
	}
	if rawPath == "*" {
		return rawPath, nil
	}
	if rawPath == "" {
		return "", violationf(CodePathInvalid, -1, "empty path")
	}
	if rawPath[0] != '/' {
		return "", violationf(CodePathInvalid, 0, `path does not start with "/"`)
	}
	path := rawPath
	q := strings.IndexByte(rawPath, '?')
	if q >= 0 {
		path = rawPath[:q]
	}

	var (
		out []byte
		v   *Violation
	)
	switch {
	case norm && isCanonical(path):
		// Nothing to check or to change.
	case norm:
		out, v = normalizeSegments(path)
	default:
		v = checkPathPart(path)
	}
	if v == nil {
		v = checkAmbiguous(path)
	}
	if v != nil {
		return "", v
	}
	if q >= 0 {
		for i := q + 1; i < len(rawPath); i++ {
			switch c := rawPath[i]; {
			case isCtl(c):
				return "", violationf(CodePathControlChar, i, "query contains control character %s", describeByte(c))
			case c == '#':
				return "", violationf(CodePathInvalid, i, "path contains '#' (a fragment)")
			}
		}
	}
	if !norm {
		return "", nil
	}
	if out == nil {
		return path, nil // already canonical: no copy
	}
	if len(out) > maxBytes {
		return "", violationf(CodePathTooLong, -1, "normalized path is %d bytes, over the limit of %d", len(out), maxBytes)
	}
	return string(out), nil
}

// isCanonical reports whether path (no query) is already in canonical form
// and needs no checks beyond that: printable ASCII without escapes, no empty
// segment but a final one, no dot-segment.
func isCanonical(path string) bool {
	segStart := 1
	for i := 1; i <= len(path); i++ {
		if i < len(path) && path[i] != '/' {
			if !isPathLiteral[path[i]] {
				return false
			}
			continue
		}
		seg := path[segStart:i]
		if seg == "." || seg == ".." || seg == "" && i < len(path) {
			return false
		}
		segStart = i + 1
	}
	return true
}

// decodeEscape decodes the percent escape at path[i] == '%', together with
// the escapes that follow when it starts a multi-byte UTF-8 sequence. It
// returns the decoded bytes, buf[:n] with n from 1 to 4, and the offset
// after the escapes.
func decodeEscape(path string, i int) (buf [utf8.UTFMax]byte, n, next int, v *Violation) {
	lead, ok := unhex2(path, i)
	switch {
	case !ok:
		return buf, 0, i, badEscape(path, i)
	case isCtl(lead):
		return buf, 0, i, violationf(CodePathControlChar, i, "path contains an escaped control character %%%02X", lead)
	case lead < 0x80:
		buf[0] = lead
		return buf, 1, i + 3, nil
	case lead&0xE0 == 0xC0:
		n = 2
	case lead&0xF0 == 0xE0:
		n = 3
	case lead&0xF8 == 0xF0:
		n = 4
	default:
		return buf, 0, i, invalidPathUTF8(i)
	}
	buf[0] = lead
	next = i + 3
	for k := 1; k < n; k++ {
		if next >= len(path) || path[next] != '%' {
			return buf, 0, i, invalidPathUTF8(i)
		}
		if buf[k], ok = unhex2(path, next); !ok {
			return buf, 0, i, badEscape(path, next)
		}
		next += 3
	}
	r, size := utf8.DecodeRune(buf[:n])
	switch {
	case r == utf8.RuneError && size <= 1 || size != n:
		return buf, 0, i, invalidPathUTF8(i)
	case r < 0xa0: // C1 controls U+0080-U+009F
		return buf, 0, i, violationf(CodePathControlChar, i, "path contains an escaped control character U+%04X", r)
	}
	return buf, n, next, nil
}

// rawRune checks the raw non-ASCII rune at path[i].
func rawRune(path string, i int) (size int, v *Violation) {
	r, size := utf8.DecodeRuneInString(path[i:])
	switch {
	case r == utf8.RuneError && size <= 1:
		return 0, invalidPathUTF8(i)
	case r < 0xa0:
		return 0, violationf(CodePathControlChar, i, "path contains control character U+%04X", r)
	}
	return size, nil
}

// unhex2 decodes the escape "%XX" at path[i].
func unhex2(path string, i int) (byte, bool) {
	if i+2 >= len(path) {
		return 0, false
	}
	hi, ok1 := unhex(path[i+1])
	lo, ok2 := unhex(path[i+2])
	return hi<<4 | lo, ok1 && ok2
}

func badEscape(path string, i int) *Violation {
	return violationf(CodePathBadEscape, i, "path contains a malformed percent escape %s", excerpt(path[i:min(i+3, len(path))]))
}

func invalidPathUTF8(i int) *Violation {
	return violationf(CodeInvalidUTF8, i, "path contains percent-encoded bytes that are not valid UTF-8")
}

// checkPathPart checks the path part of a :path (no query) without
// building anything.
func checkPathPart(path string) *Violation {
	for i := 0; i < len(path); {
		switch c := path[i]; {
		case c == '%':
			_, _, next, v := decodeEscape(path, i)
			if v != nil {
				return v
			}
			i = next
		case isCtl(c):
			return violationf(CodePathControlChar, i, "path contains control character %s", describeByte(c))
		case c == '#':
			return violationf(CodePathInvalid, i, "path contains '#' (a fragment)")
		case c >= 0x80:
			return violationf(CodePathInvalid, i, "path contains raw non-ASCII %s (must be percent-encoded)", describeByte(c))
		default:
			i++
		}
	}
	return nil
}

// normalizeSegments checks the path part of a :path (no query), which
// starts with "/", and builds its canonical form.
func normalizeSegments(path string) ([]byte, *Violation) {
	out := make([]byte, 0, len(path)+8)
	trailing := false
	for i := 1; i <= len(path); i++ { // i++ steps over the '/' ending a segment
		out = append(out, '/')
		segStart := len(out)
		for i < len(path) && path[i] != '/' {
			switch c := path[i]; {
			case c == '%':
				buf, n, next, v := decodeEscape(path, i)
				if v != nil {
					return nil, v
				}
				if n == 1 && keepEncoded(buf[0]) {
					out = append(out, '%', upperHex[buf[0]>>4], upperHex[buf[0]&0xf])
				} else {
					out = append(out, buf[:n]...)
				}
				i = next
			case c == '\\':
				out = append(out, "%5C"...)
				i++
			case isCtl(c):
				return nil, violationf(CodePathControlChar, i, "path contains control character %s", describeByte(c))
			case c == '#':
				return nil, violationf(CodePathInvalid, i, "path contains '#' (a fragment)")
			case c >= 0x80:
				size, v := rawRune(path, i)
				if v != nil {
					return nil, v
				}
				out = append(out, path[i:i+size]...)
				i += size
			default:
				out = append(out, c)
				i++
			}
		}
		final := i >= len(path)
		seg := out[segStart:]
		switch {
		case len(seg) == 0 || string(seg) == ".":
			out = out[:segStart-1]
			trailing = final
		case string(seg) == "..":
			out = out[:segStart-1]
			if k := bytes.LastIndexByte(out, '/'); k >= 0 {
				out = out[:k]
			}
			trailing = final
		default:
			trailing = false
		}
	}
	if len(out) == 0 || trailing {
		out = append(out, '/')
	}
	return out, nil
}

// checkAmbiguous refuses a path part (no query) that servers resolve in
// different ways; see CheckPath. It runs after the other checks, so every
// escape is well formed. It reads the path once decoded, as NormalizePath
// writes it, so that NormalizePath's results pass it again unchanged.
func checkAmbiguous(path string) *Violation {
	var (
		seg      = 1     // offset of the current segment
		dots     = 0     // dots the segment's name is made of so far; -1 for another byte
		params   = false // a ";" ended the segment's name
		escaped  = false // the name has a percent escape
		pct      = 0     // after a decoded '%': hex digits of a second escape seen (1 or 2)
		hi       byte
		pctStart int
		// prevEmpty: the previous segment was empty ("//").
		prevEmpty = false
	)
	for i := 1; i <= len(path); {
		if i == len(path) || path[i] == '/' {
			// An empty, "." or ".." name with ";" parameters, or a dot
			// segment with escapes.
			if dots >= 0 && dots <= 2 && params || (dots == 1 || dots == 2) && escaped {
				return violationf(CodeAmbiguousPath, seg, `path has an empty or dot segment with escapes or ";" parameters, which servers resolve differently`)
			}
			// "a//../b": servers that merge slashes first serve "/b",
			// those that follow RFC 3986 alone "/a/b".
			if dots == 2 && prevEmpty {
				return violationf(CodeAmbiguousPath, seg, `path has ".." after an empty segment ("//.."), which servers resolve differently`)
			}
			prevEmpty = i == seg
			seg, dots, params, escaped, pct = i+1, 0, false, false, 0
			i++
			continue
		}
		c, w, decodedPct := path[i], 1, false
		switch c {
		case '\\':
			return violationf(CodeAmbiguousPath, i, `path contains a backslash, which some servers read as "/"`)
		case '%':
			c, _ = unhex2(path, i)
			w = 3
			switch c {
			case '/':
				return violationf(CodeAmbiguousPath, i, `path contains an encoded "/" (%%2F), which servers that decode before routing read as a separator`)
			case '\\':
				return violationf(CodeAmbiguousPath, i, `path contains an encoded backslash (%%5C), which some servers read as "/"`)
			case '%':
				decodedPct = true
			}
			if !params {
				escaped = true
			}
		}
		if !params {
			switch {
			case c == ';':
				params = true
			case c == '.' && dots >= 0:
				dots++
			default:
				dots = -1
			}
		}
		// A decoded '%' followed by two decoded hex digits is an escape a
		// second decoding would see.
		if pct > 0 {
			if d, ok := unhex(c); ok {
				if pct == 1 {
					hi, pct = d, 2
				} else {
					switch hi<<4 | d {
					case '.', '/', '\\', '%':
						return violationf(CodeAmbiguousPath, pctStart, `path contains a double-encoded ".", "/", backslash or "%%", which servers that decode twice resolve differently`)
					}
					pct = 0
				}
			} else {
				pct = 0
			}
		}
		if decodedPct {
			pct, pctStart = 1, i
		}
		i += w
	}
	return nil
}
