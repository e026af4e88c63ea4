package audit

import (
	"encoding/json"
	"slices"
	"strconv"
	"unicode/utf8"
)

// appendGo writes a JSON-like Go value as json.Marshal does; a value that
// cannot be encoded becomes null (results and inputs are JSON, so it does
// not happen). The types decoded JSON is made of are written here, byte for
// byte as json.Marshal writes them (FuzzAppendGo); a value holding any
// other type is left to json.Marshal whole.
func appendGo(buf []byte, v any) []byte {
	if out, ok := appendGoFast(buf, v); ok {
		return out
	}
	b, err := json.Marshal(v)
	if err != nil {
		return append(buf, "null"...)
	}
	return append(buf, b...)
}

// appendGoFast writes v as json.Marshal does, or returns false (with buf
// as given) when v holds a type or a number it leaves to json.Marshal.
func appendGoFast(buf []byte, v any) ([]byte, bool) {
	n := len(buf)
	out, ok := appendGoValue(buf, v)
	if !ok {
		return out[:n], false
	}
	return out, true
}

func appendGoValue(buf []byte, v any) ([]byte, bool) {
	switch x := v.(type) {
	case nil:
		return append(buf, "null"...), true
	case bool:
		return strconv.AppendBool(buf, x), true
	case string:
		return appendMarshalString(buf, x), true
	case json.Number:
		if !validNumber(string(x)) {
			return buf, false
		}
		return append(buf, x...), true
	case []any:
		if x == nil {
			return append(buf, "null"...), true
		}
		buf = append(buf, '[')
		for i, e := range x {
			if i > 0 {
				buf = append(buf, ',')
			}
			var ok bool
			if buf, ok = appendGoValue(buf, e); !ok {
				return buf, false
			}
		}
		return append(buf, ']'), true
	case map[string]any:
		if x == nil {
			return append(buf, "null"...), true
		}
		var scratch [16]string
		keys := scratch[:0]
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		buf = append(buf, '{')
		for i, k := range keys {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendMarshalString(buf, k)
			buf = append(buf, ':')
			var ok bool
			if buf, ok = appendGoValue(buf, x[k]); !ok {
				return buf, false
			}
		}
		return append(buf, '}'), true
	}
	return buf, false
}

// appendMarshalString writes s as json.Marshal does: appendString, but
// with \b and \f, and <, > and & escaped for HTML.
func appendMarshalString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			buf = append(buf, s[start:i]...)
			switch c {
			case '"', '\\':
				buf = append(buf, '\\', c)
			case '\b':
				buf = append(buf, '\\', 'b')
			case '\f':
				buf = append(buf, '\\', 'f')
			case '\n':
				buf = append(buf, '\\', 'n')
			case '\r':
				buf = append(buf, '\\', 'r')
			case '\t':
				buf = append(buf, '\\', 't')
			default:
				buf = append(buf, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			buf = append(buf, s[start:i]...)
			buf = append(buf, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			buf = append(buf, s[start:i]...)
			buf = append(buf, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}

// validNumber is the JSON number grammar json.Marshal checks a json.Number
// against (RFC 8259, section 6). The empty Number, which json.Marshal
// writes as 0, is not valid here either: json.Marshal handles it.
func validNumber(s string) bool {
	i, n := 0, len(s)
	if i < n && s[i] == '-' {
		i++
	}
	switch {
	case i < n && s[i] == '0':
		i++
	case i < n && '1' <= s[i] && s[i] <= '9':
		for i++; i < n && isDigit(s[i]); i++ {
		}
	default:
		return false
	}
	if i+1 < n && s[i] == '.' && isDigit(s[i+1]) {
		for i += 2; i < n && isDigit(s[i]); i++ {
		}
	}
	if i+1 < n && (s[i] == 'e' || s[i] == 'E') {
		i++
		if s[i] == '+' || s[i] == '-' {
			i++
			if i == n {
				return false
			}
		}
		for ; i < n && isDigit(s[i]); i++ {
		}
	}
	return i == n
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
