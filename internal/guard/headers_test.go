package guard

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestHeaderLimitsWithDefaults(t *testing.T) {
	got := HeaderLimits{MaxHeaders: 5, MaxTotalBytes: -1}.WithDefaults()
	want := HeaderLimits{MaxHeaders: 5, MaxValueBytes: 8 << 10, MaxTotalBytes: 64 << 10}
	if got != want {
		t.Errorf("WithDefaults() = %+v, want %+v", got, want)
	}
}

func TestCheckHeaders(t *testing.T) {
	manyHeaders := func(n int) map[string]string {
		h := make(map[string]string, n)
		for i := range n {
			h["x-h"+strconv.Itoa(i)] = "v"
		}
		return h
	}
	tests := []struct {
		name     string
		headers  map[string]string
		limits   HeaderLimits
		code     string // "" for accepted
		offset   int
		mentions string // the message must name this header
	}{
		{name: "none", headers: nil},
		{name: "typical envoy request", headers: map[string]string{
			":authority": "api.example.com", ":method": "POST", ":path": "/mcp?x=1", ":scheme": "https",
			"content-type": "application/json", "authorization": "Bearer abc.def.ghi",
			"x-forwarded-for": "203.0.113.7,198.51.100.2", "cookie": "a=1; b=2",
		}},
		{name: "token punctuation in name", headers: map[string]string{"x-a!#$%&'*+.^_`|~1": "v"}},
		{name: "uppercase name", headers: map[string]string{"X-Request-ID": "1"}},
		{name: "tab and obs-text in value", headers: map[string]string{"x-note": "a\tb caf\xc3\xa9 \xff"}},
		{name: "empty value", headers: map[string]string{"x-empty": ""}},
		{name: "protocol pseudo-header", headers: map[string]string{":protocol": "websocket"}},
		{name: "at count limit", headers: manyHeaders(3), limits: HeaderLimits{MaxHeaders: 3}},
		{name: "value at size limit", headers: map[string]string{"a": "12345"}, limits: HeaderLimits{MaxValueBytes: 5}},
		{name: "total at size limit", headers: map[string]string{"ab": "123", "c": "4"}, limits: HeaderLimits{MaxTotalBytes: 7}},

		{name: "too many headers", headers: manyHeaders(4), limits: HeaderLimits{MaxHeaders: 3}, code: CodeTooManyHeaders, offset: -1},
		{name: "too many by default", headers: manyHeaders(101), code: CodeTooManyHeaders, offset: -1},
		{name: "value too large", headers: map[string]string{"a": "123456"}, limits: HeaderLimits{MaxValueBytes: 5}, code: CodeHeaderTooLarge, offset: -1, mentions: `"a"`},
		{name: "total too large", headers: map[string]string{"ab": "123", "c": "45"}, limits: HeaderLimits{MaxTotalBytes: 7}, code: CodeHeaderTooLarge, offset: -1},
		{name: "NUL in value", headers: map[string]string{"x-a": "ab\x00c"}, code: CodeHeaderControlChar, offset: 2, mentions: `"x-a"`},
		{name: "CR in value", headers: map[string]string{"x-a": "a\rb"}, code: CodeHeaderControlChar, offset: 1},
		{name: "LF in value", headers: map[string]string{"x-a": "a\nInjected: 1"}, code: CodeHeaderControlChar, offset: 1},
		{name: "CRLF in value", headers: map[string]string{"x-a": "\r\n"}, code: CodeHeaderControlChar, offset: 0},
		{name: "escape in value", headers: map[string]string{"x-a": "\x1b[31m"}, code: CodeHeaderControlChar, offset: 0},
		{name: "DEL in value", headers: map[string]string{"x-a": "a\x7f"}, code: CodeHeaderControlChar, offset: 1},
		{name: "empty name", headers: map[string]string{"": "v"}, code: CodeHeaderNameInvalid, offset: 0},
		{name: "space in name", headers: map[string]string{"x a": "v"}, code: CodeHeaderNameInvalid, offset: 1, mentions: `"x a"`},
		{name: "colon in name", headers: map[string]string{"x:a": "v"}, code: CodeHeaderNameInvalid, offset: 1},
		{name: "CRLF in name", headers: map[string]string{"x\r\ny": "v"}, code: CodeHeaderNameInvalid, offset: 1, mentions: `"x\r\ny"`},
		{name: "non-ASCII name", headers: map[string]string{"x-café": "v"}, code: CodeHeaderNameInvalid, offset: 5},
		{name: "separator in name", headers: map[string]string{"x(a)": "v"}, code: CodeHeaderNameInvalid, offset: 1},
		{name: "unknown pseudo-header", headers: map[string]string{":status": "200"}, code: CodeHeaderNameInvalid, offset: 0, mentions: `":status"`},
		{name: "uppercase pseudo-header", headers: map[string]string{":Path": "/"}, code: CodeHeaderNameInvalid, offset: 0},
		{name: "bare colon", headers: map[string]string{":": "x"}, code: CodeHeaderNameInvalid, offset: 0},
		{name: "long name truncated in message", headers: map[string]string{strings.Repeat("n", 100): "a\x00"}, code: CodeHeaderControlChar, offset: 1, mentions: `"` + strings.Repeat("n", 32) + `"...`},
		{name: "first name in sort order wins", headers: map[string]string{"b": "\x00", "a": "\n", "c": "\r", "a b": "v"}, code: CodeHeaderControlChar, offset: 0, mentions: `"a"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := CheckHeaders(tt.headers, tt.limits)
			if tt.code == "" {
				if v != nil {
					t.Fatalf("CheckHeaders = %v, want nil", v)
				}
				return
			}
			if v == nil || v.Code != tt.code || v.Offset != tt.offset {
				t.Fatalf("CheckHeaders = %v, want %s at %d", v, tt.code, tt.offset)
			}
			checkMessage(t, v)
			if !strings.Contains(v.Message, tt.mentions) {
				t.Errorf("message %q does not name the header %s", v.Message, tt.mentions)
			}
		})
	}
}

func TestCheckHeadersUTF8(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		headers map[string]string
		valid   bool
	}{
		{"none", nil, true},
		{"ASCII", map[string]string{":path": "/", "x-a": "b\tc"}, true},
		{"UTF-8", map[string]string{"x-a": "caf\xc3\xa9", "x-b": "\u2603"}, true},
		{"obs-text", map[string]string{"x-a": "caf\xe9"}, false},
		{"truncated sequence", map[string]string{"x-a": "ok", "x-b": "\xc3"}, false},
		{"with a violation", map[string]string{"x-a": "a\x00"}, false},
	}
	for _, tc := range tests {
		if _, valid := CheckHeadersUTF8(tc.headers, HeaderLimits{}); valid != tc.valid {
			t.Errorf("%s: valid UTF-8 = %v, want %v", tc.name, valid, tc.valid)
		}
	}
}

func TestCheckHeadersNeverQuotesValues(t *testing.T) {
	const secret = "Bearer s3cr3t"
	for _, value := range []string{secret + "\x00", secret + "\r\nx: y", secret + strings.Repeat("x", 9000)} {
		v := CheckHeaders(map[string]string{"authorization": value}, HeaderLimits{})
		if v == nil {
			t.Fatalf("CheckHeaders(%q) = nil", value)
		}
		if strings.Contains(v.Error(), "s3cr3t") {
			t.Errorf("CheckHeaders = %q, quotes the value", v.Error())
		}
	}
}

func TestCheckHeadersDeterministic(t *testing.T) {
	h := map[string]string{}
	for i := range 50 {
		h["x-"+strconv.Itoa(100+i)] = "\x00"
	}
	h["x-1"] = "\x00" // sorts first
	for range 100 {
		v := CheckHeaders(h, HeaderLimits{})
		if v == nil || !strings.Contains(v.Message, `"x-1"`) {
			t.Fatalf("CheckHeaders = %v, want the violation of x-1", v)
		}
	}
}

// referenceCheckHeaders is CheckHeaders written the obvious way: sorted
// names, first violation.
func referenceCheckHeaders(h map[string]string, l HeaderLimits) (code, name string) {
	l = l.WithDefaults()
	if len(h) > l.MaxHeaders {
		return CodeTooManyHeaders, ""
	}
	total := 0
	for k, v := range h {
		total += len(k) + len(v)
	}
	if total > l.MaxTotalBytes {
		return CodeHeaderTooLarge, ""
	}
	names := make([]string, 0, len(h))
	for k := range h {
		names = append(names, k)
	}
	slices.Sort(names)
	const tchar = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	for _, k := range names {
		switch {
		case k == ":authority" || k == ":method" || k == ":path" || k == ":scheme" || k == ":protocol":
		case k == "" || strings.IndexFunc(k, func(r rune) bool { return !strings.ContainsRune(tchar, r) }) >= 0:
			return CodeHeaderNameInvalid, k
		}
		v := h[k]
		if len(v) > l.MaxValueBytes {
			return CodeHeaderTooLarge, k
		}
		for i := range len(v) {
			if c := v[i]; c < 0x20 && c != '\t' || c == 0x7f {
				return CodeHeaderControlChar, k
			}
		}
	}
	return "", ""
}

// FuzzCheckHeaders compares CheckHeaders with referenceCheckHeaders, checks
// it is deterministic and that it never quotes a value.
func FuzzCheckHeaders(f *testing.F) {
	f.Add(":path", "/mcp", "authorization", "Bearer x", "x-a", "1", uint8(0))
	f.Add("x-a", "a\r\nb", "x b", "v", ":status", "200", uint8(2))
	f.Add("", "", "a", strings.Repeat("v", 40), "b", "\x7f", uint8(3))
	f.Fuzz(func(t *testing.T, n1, v1, n2, v2, n3, v3 string, small uint8) {
		// The marker makes leaked values easy to spot.
		const marker = "SECRET-VALUE"
		h := map[string]string{n1: marker + v1, n2: v2, n3: v3}
		l := HeaderLimits{MaxHeaders: int(small % 4), MaxValueBytes: int(small) * 2, MaxTotalBytes: int(small) * 4}
		if small%2 == 0 {
			l = HeaderLimits{}
		}
		v := CheckHeaders(h, l)
		for range 3 {
			if again := CheckHeaders(h, l); (again == nil) != (v == nil) || again != nil && *again != *v {
				t.Fatalf("CheckHeaders not deterministic: %v then %v", v, again)
			}
		}
		vu, valid := CheckHeadersUTF8(h, l)
		if (vu == nil) != (v == nil) || vu != nil && *vu != *v {
			t.Fatalf("CheckHeadersUTF8 = %v, CheckHeaders = %v", vu, v)
		}
		want := v == nil
		for _, value := range h {
			want = want && utf8.ValidString(value)
		}
		if valid != want {
			t.Fatalf("CheckHeadersUTF8(%q) reports valid UTF-8 = %v", h, valid)
		}
		code, name := referenceCheckHeaders(h, l)
		if v == nil {
			if code != "" {
				t.Fatalf("CheckHeaders(%q) = nil, want %s for %q", h, code, name)
			}
			return
		}
		if v.Code != code {
			t.Fatalf("CheckHeaders(%q) = %v, want %s for %q", h, v, code, name)
		}
		checkMessage(t, v)
		if name != "" && !strings.Contains(v.Message, excerpt(name)) {
			t.Fatalf("message %q does not name %q", v.Message, name)
		}
		if strings.Contains(v.Message, marker) && !strings.Contains(n1+n2+n3, "SECRET") {
			t.Fatalf("message %q quotes a value", v.Message)
		}
	})
}
