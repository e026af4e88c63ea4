package guard

import (
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Violation codes. They are stable: callers may log, count and return them.
const (
	CodeTooLarge          = "too_large"
	CodeTooDeep           = "too_deep"
	CodeTooManyElements   = "too_many_elements"
	CodeStringTooLong     = "string_too_long"
	CodeTooManyMembers    = "too_many_members"
	CodeDuplicateKey      = "duplicate_key"
	CodeInvalidUTF8       = "invalid_utf8"
	CodeInvalidJSON       = "invalid_json"
	CodeTrailingData      = "trailing_data"
	CodeHeaderControlChar = "header_control_char"
	CodeHeaderTooLarge    = "header_too_large"
	CodeTooManyHeaders    = "too_many_headers"
	CodeHeaderNameInvalid = "header_name_invalid"
	CodePathInvalid       = "path_invalid"
	CodePathControlChar   = "path_control_char"
	CodePathBadEscape     = "path_bad_escape"
	CodePathTooLong       = "path_too_long"
	CodeAmbiguousPath     = "ambiguous_path"
)

// maxExcerpt is the most input bytes a Violation message ever quotes.
const maxExcerpt = 32

// Violation is a refusal with a stable code and a message safe to send to
// the caller: it never quotes the input beyond a short, escaped excerpt of at
// most 32 bytes (a header name, an offending byte, a malformed percent
// escape, the end of the JSON pointer of a duplicate member), and never
// quotes a header value or a JSON string value.
//
// A nil *Violation means the check passed. Functions in this package return
// *Violation, not error, so that a passing check is not mistaken for a
// non-nil error interface; convert only a non-nil Violation to error.
type Violation struct {
	// Code is one of the Code* constants.
	Code string
	// Message explains the refusal in words safe to return to the caller.
	Message string
	// Offset is the byte offset of the problem in the checked input (the
	// JSON document, the raw path, or the header name or value the message
	// names), or -1 when the refusal is not about one position.
	Offset int
}

// Error returns "guard: <code>: <message>", followed by the offset when there
// is one.
func (v *Violation) Error() string {
	if v == nil {
		return "guard: <nil violation>"
	}
	s := "guard: " + v.Code + ": " + v.Message
	if v.Offset >= 0 {
		s += " (at byte " + strconv.Itoa(v.Offset) + ")"
	}
	return s
}

func violationf(code string, offset int, format string, args ...any) *Violation {
	return &Violation{Code: code, Message: fmt.Sprintf(format, args...), Offset: offset}
}

// excerpt quotes at most maxExcerpt bytes of s, escaping everything that is
// not printable ASCII, and marks a truncation with "...".
func excerpt(s string) string {
	if len(s) <= maxExcerpt {
		return strconv.QuoteToASCII(s)
	}
	cut := maxExcerpt
	// Do not split a valid rune: back up to its first byte.
	for cut > 0 && !utf8.RuneStart(s[cut]) && cut > maxExcerpt-utf8.UTFMax {
		cut--
	}
	return strconv.QuoteToASCII(s[:cut]) + "..."
}

// tailExcerpt is excerpt keeping the end of s instead of its start: for a
// JSON pointer, whose last token is the one the message is about.
func tailExcerpt(s string) string {
	if len(s) <= maxExcerpt {
		return strconv.QuoteToASCII(s)
	}
	cut := len(s) - maxExcerpt
	// Do not split a valid rune: move on to the next rune start.
	for cut < len(s) && !utf8.RuneStart(s[cut]) && cut < len(s)-maxExcerpt+utf8.UTFMax {
		cut++
	}
	return "..." + strconv.QuoteToASCII(s[cut:])
}

// describeByte names one input byte: quoted when it is printable ASCII,
// in hex otherwise.
func describeByte(c byte) string {
	if c > ' ' && c < 0x7f {
		return strconv.QuoteRune(rune(c))
	}
	return fmt.Sprintf("byte 0x%02X", c)
}
