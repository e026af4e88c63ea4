package guard

import "unicode/utf8"

// Default header limits, used by HeaderLimits.WithDefaults for unset fields.
const (
	DefaultMaxHeaders      = 100
	DefaultMaxHeaderValue  = 8 << 10
	DefaultMaxHeadersTotal = 64 << 10
)

// HeaderLimits bounds what CheckHeaders accepts. A zero or negative field
// means the default.
type HeaderLimits struct {
	// MaxHeaders is the most header fields (map entries). Default 100.
	MaxHeaders int
	// MaxValueBytes is the longest single header value. Default 8 KiB.
	MaxValueBytes int
	// MaxTotalBytes is the most bytes of all names and values together.
	// Default 64 KiB.
	MaxTotalBytes int
}

// WithDefaults returns l with every zero or negative limit replaced by its
// default.
func (l HeaderLimits) WithDefaults() HeaderLimits {
	if l.MaxHeaders <= 0 {
		l.MaxHeaders = DefaultMaxHeaders
	}
	if l.MaxValueBytes <= 0 {
		l.MaxValueBytes = DefaultMaxHeaderValue
	}
	if l.MaxTotalBytes <= 0 {
		l.MaxTotalBytes = DefaultMaxHeadersTotal
	}
	return l
}

// pseudoHeaders are the request pseudo-header fields (RFC 9113 8.3.1 and
// RFC 8441 4) that Envoy may pass in a CheckRequest's header map.
var pseudoHeaders = map[string]bool{
	":authority": true,
	":method":    true,
	":path":      true,
	":scheme":    true,
	":protocol":  true,
}

// isTchar marks the RFC 9110 token characters allowed in a header name.
var isTchar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range []byte("!#$%&'*+-.^_`|~") {
		t[c] = true
	}
	return t
}()

// CheckHeaders checks a header map as Envoy's ext_authz passes it (lowercase
// names, repeated fields joined with ","), after applying l.WithDefaults:
//
//   - more than MaxHeaders fields: too_many_headers;
//   - names and values together longer than MaxTotalBytes, or one value
//     longer than MaxValueBytes: header_too_large;
//   - a name that is not an RFC 9110 token and not one of the pseudo-headers
//     :authority, :method, :path, :scheme, :protocol: header_name_invalid;
//   - a value with a control character (NUL, CR, LF, any other C0 control
//     but HTAB, or DEL): header_control_char. Bytes 0x80-0xFF (obs-text)
//     are allowed.
//
// The count and the total size are checked first. Per-field problems are
// reported for the field whose name sorts first, so the result does not
// depend on map order. Messages name the header (as an escaped excerpt of at
// most 32 bytes) but never quote a value.
func CheckHeaders(h map[string]string, l HeaderLimits) *Violation {
	v, _ := CheckHeadersUTF8(h, l)
	return v
}

// CheckHeadersUTF8 is CheckHeaders that also reports whether every value is
// valid UTF-8 (names it accepts are ASCII), learnt in the same pass over the
// bytes: a caller that must later refuse what is not UTF-8 (a proto3
// string) need not walk the headers again. The report is false with a
// violation.
func CheckHeadersUTF8(h map[string]string, l HeaderLimits) (*Violation, bool) {
	l = l.WithDefaults()
	if len(h) > l.MaxHeaders {
		return violationf(CodeTooManyHeaders, -1, "request has %d headers, over the limit of %d", len(h), l.MaxHeaders), false
	}
	total := 0
	for name, value := range h {
		total += len(name) + len(value)
	}
	if total > l.MaxTotalBytes {
		return violationf(CodeHeaderTooLarge, -1, "request headers are %d bytes, over the limit of %d", total, l.MaxTotalBytes), false
	}
	// Equivalent to checking in sorted name order and stopping at the first
	// violation, without sorting: keep the violation of the least name.
	var (
		first     *Violation
		firstName string
		valid     = true
	)
	for name, value := range h {
		if first != nil && name >= firstName {
			continue
		}
		v, high := checkHeader(name, value, l)
		if v != nil {
			first, firstName = v, name
			continue
		}
		if high && valid {
			valid = utf8.ValidString(value)
		}
	}
	return first, first == nil && valid
}

// checkHeader checks one field and reports whether its value has bytes
// 0x80-0xFF (obs-text, or UTF-8 beyond ASCII).
func checkHeader(name, value string, l HeaderLimits) (*Violation, bool) {
	if name == "" {
		return violationf(CodeHeaderNameInvalid, 0, "empty header name"), false
	}
	if name[0] == ':' {
		if !pseudoHeaders[name] {
			return violationf(CodeHeaderNameInvalid, 0, "unknown pseudo-header %s", excerpt(name)), false
		}
	} else {
		for i := 0; i < len(name); i++ {
			if !isTchar[name[i]] {
				return violationf(CodeHeaderNameInvalid, i, "header name %s has invalid character %s", excerpt(name), describeByte(name[i])), false
			}
		}
	}
	if len(value) > l.MaxValueBytes {
		return violationf(CodeHeaderTooLarge, -1, "header %s value is %d bytes, over the limit of %d", excerpt(name), len(value), l.MaxValueBytes), false
	}
	var seen byte
	for i := 0; i < len(value); i++ {
		c := value[i]
		if c < 0x20 && c != '\t' || c == 0x7f {
			return violationf(CodeHeaderControlChar, i, "header %s value contains control character %s", excerpt(name), describeByte(c)), false
		}
		seen |= c
	}
	return nil, seen >= 0x80
}
