package poison

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// isTagChar reports Unicode tag characters (U+E0000–U+E007F), which render as
// nothing and can spell out ASCII text a model still reads.
func isTagChar(r rune) bool { return r >= 0xE0000 && r <= 0xE007F }

// isBidi reports bidirectional embedding, override and isolate controls.
func isBidi(r rune) bool {
	return (r >= 0x202A && r <= 0x202E) || (r >= 0x2066 && r <= 0x2069)
}

// isInvisible reports zero-width and other characters that render as nothing.
func isInvisible(r rune) bool {
	switch {
	case r >= 0x200B && r <= 0x200F, // zero-width space, joiners, LRM, RLM
		r >= 0x2060 && r <= 0x2064,   // word joiner, invisible operators
		r == 0xFEFF,                  // zero-width no-break space (BOM)
		r == 0x00AD,                  // soft hyphen
		r == 0x180E,                  // Mongolian vowel separator
		r == 0x034F,                  // combining grapheme joiner
		r >= 0xE0100 && r <= 0xE01EF: // variation selectors supplement
		return true
	}
	return false
}

// normalize returns the text a model effectively reads, for matching:
// invisible characters and bidi controls dropped, tag characters decoded to
// ASCII, NFKC applied (fullwidth and mathematical letters become ASCII) and
// Latin look-alikes from Cyrillic and Greek folded to Latin.
func normalize(s string) string {
	needs := false
	for _, r := range s {
		if r >= utf8.RuneSelf {
			needs = true
			break
		}
	}
	if !needs {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		switch {
		case isTagChar(r):
			if c := r - 0xE0000; c >= 0x20 && c < 0x7F {
				b.WriteRune(c)
			}
		case isInvisible(r) || isBidi(r):
		default:
			b.WriteRune(r)
		}
	}
	out := norm.NFKC.String(b.String())
	return foldConfusables(out)
}

// sanitize makes evidence safe to log and show: control, format (including
// bidi and zero-width), tag and separator characters and invalid UTF-8 are
// escaped, whitespace runs become one space, and the result is at most
// MaxEvidenceBytes, cut on a rune boundary with "…" when shortened.
func sanitize(s string) string {
	if len(s) > 4*MaxEvidenceBytes {
		s = s[:4*MaxEvidenceBytes]
	}
	const ellipsis = "…"
	var b strings.Builder
	cut := -1 // the longest prefix of whole pieces that leaves room for the ellipsis
	space := false
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		var piece string
		switch {
		case r == utf8.RuneError && size <= 1:
			piece = `\x` + hex2(s[i-1])
		case r == ' ' || r == '\t' || r == '\n' || r == '\r':
			if space {
				continue
			}
			piece = " "
		case unsafeRune(r):
			piece = escapeRune(r)
		default:
			piece = s[i-size : i]
		}
		space = piece == " "
		if b.Len()+len(piece) > MaxEvidenceBytes-len(ellipsis) && cut < 0 {
			cut = b.Len()
		}
		b.WriteString(piece)
		if b.Len() > MaxEvidenceBytes {
			break
		}
	}
	out := b.String()
	if len(out) > MaxEvidenceBytes {
		out = strings.TrimRight(out[:cut], " ") + ellipsis
	}
	return out
}

// safePointer escapes what sanitize escapes in a JSON pointer, keeping its
// white space, and cuts it on a rune boundary at MaxPointerBytes.
func safePointer(p string) string {
	clean := true
	for _, r := range p {
		if unsafeRune(r) || r == '\n' || r == '\t' || r == '\r' {
			clean = false
			break
		}
	}
	if clean && len(p) <= MaxPointerBytes {
		return p
	}
	var b strings.Builder
	for i := 0; i < len(p); {
		r, size := utf8.DecodeRuneInString(p[i:])
		piece := p[i : i+size]
		switch {
		case r == utf8.RuneError && size <= 1:
			piece = `\x` + hex2(p[i])
		case unsafeRune(r) || r == '\n' || r == '\t' || r == '\r':
			piece = escapeRune(r)
		}
		if b.Len()+len(piece) > MaxPointerBytes-len("…") {
			b.WriteString("…")
			break
		}
		b.WriteString(piece)
		i += size
	}
	return b.String()
}

// unsafeRune reports runes evidence must not carry raw.
func unsafeRune(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || unicode.In(r, unicode.Zl, unicode.Zp) ||
		isBidi(r) || isInvisible(r) || isTagChar(r) || unicode.Is(unicode.Co, r) || r == utf8.RuneError ||
		(r >= 0xFE00 && r <= 0xFE0F)
}

func escapeRune(r rune) string {
	if r <= 0xFFFF {
		s := strconv.FormatInt(int64(r), 16)
		return `\u` + strings.Repeat("0", 4-len(s)) + s
	}
	s := strconv.FormatInt(int64(r), 16)
	return `\U` + strings.Repeat("0", 8-len(s)) + s
}

func hex2(c byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[c>>4], digits[c&0xF]})
}

// excerpt returns the text around s[start:end]: a little context before, the
// match and what follows, for sanitize to cut.
func excerpt(s string, start, end int) string {
	const before = 16
	from := max(start-before, 0)
	for from > 0 && from < len(s) && !utf8.RuneStart(s[from]) {
		from--
	}
	to := min(end+MaxEvidenceBytes, len(s))
	for to < len(s) && !utf8.RuneStart(s[to]) {
		to++
	}
	out := s[from:to]
	if from > 0 {
		out = "…" + out
	}
	return out
}

func itoa(n int) string { return strconv.Itoa(n) }

// strconvQuote quotes s with Go escapes for anything not printable ASCII.
func strconvQuote(s string) string { return strconv.QuoteToASCII(s) }
