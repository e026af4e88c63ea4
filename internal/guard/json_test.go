package guard

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestJSONLimitsWithDefaults(t *testing.T) {
	got := JSONLimits{MaxDepth: 3, MaxMembers: -1, RejectDuplicateKeys: true}.WithDefaults()
	want := JSONLimits{
		MaxBytes:            1 << 20,
		MaxDepth:            3,
		MaxElements:         100_000,
		MaxStringBytes:      256 << 10,
		MaxMembers:          10_000,
		RejectDuplicateKeys: true,
	}
	if got != want {
		t.Errorf("WithDefaults() = %+v, want %+v", got, want)
	}
}

// anyOffset in a test case means the offset is not checked.
const anyOffset = -2

func TestScanJSON(t *testing.T) {
	small := JSONLimits{MaxBytes: 64, MaxDepth: 3, MaxElements: 10, MaxStringBytes: 5, MaxMembers: 3}
	dups := JSONLimits{RejectDuplicateKeys: true}
	many := func(n int, sep string, item func(int) string) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = item(i)
		}
		return strings.Join(parts, sep)
	}
	tests := []struct {
		name   string
		in     string
		limits JSONLimits
		code   string // "" for accepted
		offset int
	}{
		// Accepted.
		{name: "object", in: `{"a":1,"b":[true,false,null],"c":{"d":"e"}}`},
		{name: "scalar string", in: `"x"`},
		{name: "scalar number", in: `-0.5e+10`},
		{name: "literals", in: `[true,false,null]`},
		{name: "surrounding whitespace", in: " \t\r\n{ \"a\" : [ 1 , 2 ] } \n"},
		{name: "empty containers", in: `[{},[],{"a":[]}]`},
		{name: "escapes", in: `"\"\\\/\b\f\n\r\t\u00e9\uD83D\uDE00"`},
		{name: "raw utf8", in: `"café 😀"`},
		{name: "numbers", in: `[0,-0,1,-1,10,0.0,1.5,1e5,1E+5,1e-5,-12.34E-56]`},
		{name: "duplicate keys allowed by default", in: `{"a":1,"a":2}`},
		{name: "same key in sibling objects", in: `[{"a":1},{"a":1}]`, limits: dups},
		{name: "same key at different depths", in: `{"a":{"a":{"a":1}}}`, limits: dups},
		{name: "keys differing after unescape", in: `{"a":1,"\u0062":2}`, limits: dups},
		{name: "depth at limit", in: `[[[1]]]`, limits: small},
		{name: "members at limit", in: `{"a":1,"b":2,"c":3}`, limits: small},
		{name: "string at limit", in: `"abcde"`, limits: small},
		{name: "escaped string at limit", in: `"\u00e9\u00e9a"`, limits: small},
		{name: "elements at limit", in: `[1,2,3,[4,5],6,7,8]`, limits: JSONLimits{MaxElements: 10}},
		{name: "many distinct keys indexed", in: "{" + many(100, ",", func(i int) string { return `"k` + strconv.Itoa(i) + `":1` }) + "}", limits: dups},

		// Limits.
		{name: "too large", in: strings.Repeat(" ", 65), limits: small, code: CodeTooLarge, offset: 64},
		{name: "too deep", in: `[[[[1]]]]`, limits: small, code: CodeTooDeep, offset: 3},
		{name: "too deep objects", in: `{"a":{"b":{"c":{}}}}`, limits: small, code: CodeTooDeep, offset: 15},
		{name: "too many elements", in: `[1,2,3,[4,5],6,7,8,9]`, limits: JSONLimits{MaxElements: 10}, code: CodeTooManyElements, offset: 19},
		{name: "too many array elements", in: `[1,2,3,4]`, limits: small, code: CodeTooManyMembers, offset: 7},
		{name: "too many object members", in: `{"a":1,"b":2,"c":3,"d":4}`, limits: small, code: CodeTooManyMembers, offset: 19},
		{name: "string too long", in: `["abcdef"]`, limits: small, code: CodeStringTooLong, offset: 1},
		{name: "key too long", in: `{"abcdef":1}`, limits: small, code: CodeStringTooLong, offset: 1},
		{name: "escapes count decoded", in: `"\u00e9\u00e9\u00e9"`, limits: small, code: CodeStringTooLong, offset: 0},
		{name: "surrogate pair counts four bytes", in: `"\ud83d\ude00\ud83d\ude00"`, limits: small, code: CodeStringTooLong, offset: 0},

		// Duplicates.
		{name: "duplicate key", in: `{"a":1,"b":2,"a":3}`, limits: dups, code: CodeDuplicateKey, offset: 13},
		{name: "duplicate key escaped", in: `{"a":1,"\u0061":2}`, limits: dups, code: CodeDuplicateKey, offset: 7},
		{name: "duplicate key both escaped", in: `{"\/":1,"\u002F":2}`, limits: dups, code: CodeDuplicateKey, offset: 8},
		{name: "duplicate key nested", in: `{"x":{"a":1,"a":2}}`, limits: dups, code: CodeDuplicateKey, offset: 12},
		{name: "duplicate key after nested object", in: `{"a":{"b":1},"b":2,"a":3}`, limits: dups, code: CodeDuplicateKey, offset: 19},
		{name: "duplicate key in large object", in: "{" + many(40, ",", func(i int) string { return `"k` + strconv.Itoa(i) + `":1` }) + `,"k\u0033\u0037":2}`, limits: dups, code: CodeDuplicateKey, offset: anyOffset},

		// UTF-8.
		{name: "invalid utf8 in string", in: "\"ab\xff\"", code: CodeInvalidUTF8, offset: 3},
		{name: "truncated utf8 in string", in: "\"\xc3\"", code: CodeInvalidUTF8, offset: 1},
		{name: "overlong utf8", in: "\"\xc0\xaf\"", code: CodeInvalidUTF8, offset: 1},
		{name: "utf8 surrogate", in: "\"\xed\xa0\x80\"", code: CodeInvalidUTF8, offset: 1},
		{name: "invalid utf8 in key", in: "{\"\xff\":1}", code: CodeInvalidUTF8, offset: 2},
		{name: "lone high surrogate", in: `"\ud800"`, code: CodeInvalidUTF8, offset: 1},
		{name: "lone low surrogate", in: `"\udc00"`, code: CodeInvalidUTF8, offset: 1},
		{name: "high surrogate then non-low", in: `"\ud800\u0041"`, code: CodeInvalidUTF8, offset: 1},
		{name: "reversed surrogates", in: `"\ude00\ud83d"`, code: CodeInvalidUTF8, offset: 1},

		// Syntax.
		{name: "empty", in: ``, code: CodeInvalidJSON, offset: 0},
		{name: "only whitespace", in: "  \n", code: CodeInvalidJSON, offset: 3},
		{name: "NaN", in: `NaN`, code: CodeInvalidJSON, offset: 0},
		{name: "Infinity", in: `[-Infinity]`, code: CodeInvalidJSON, offset: 1},
		{name: "line comment", in: "{// x\n}", code: CodeInvalidJSON, offset: 1},
		{name: "block comment", in: `[1/*x*/]`, code: CodeInvalidJSON, offset: 2},
		{name: "single quotes", in: `{'a':1}`, code: CodeInvalidJSON, offset: 1},
		{name: "trailing comma object", in: `{"a":1,}`, code: CodeInvalidJSON, offset: 7},
		{name: "trailing comma array", in: `[1,]`, code: CodeInvalidJSON, offset: 3},
		{name: "missing colon", in: `{"a" 1}`, code: CodeInvalidJSON, offset: 5},
		{name: "missing comma", in: `[1 2]`, code: CodeInvalidJSON, offset: 3},
		{name: "unquoted key", in: `{a:1}`, code: CodeInvalidJSON, offset: 1},
		{name: "mismatched bracket", in: `[1}`, code: CodeInvalidJSON, offset: 2},
		{name: "unclosed array", in: `[1,2`, code: CodeInvalidJSON, offset: 4},
		{name: "unclosed object", in: `{"a":1`, code: CodeInvalidJSON, offset: 6},
		{name: "unterminated string", in: `"abc`, code: CodeInvalidJSON, offset: 0},
		{name: "raw newline in string", in: "\"a\nb\"", code: CodeInvalidJSON, offset: 2},
		{name: "raw tab in string", in: "\"a\tb\"", code: CodeInvalidJSON, offset: 2},
		{name: "bad escape", in: `"\x41"`, code: CodeInvalidJSON, offset: 1},
		{name: "short unicode escape", in: `"\u12"`, code: CodeInvalidJSON, offset: 1},
		{name: "bad hex in low surrogate", in: `"\ud800\uZZZZ"`, code: CodeInvalidJSON, offset: 7},
		{name: "leading zero", in: `01`, code: CodeInvalidJSON, offset: 0},
		{name: "leading plus", in: `+1`, code: CodeInvalidJSON, offset: 0},
		{name: "bare minus", in: `-`, code: CodeInvalidJSON, offset: 0},
		{name: "no fraction digits", in: `1.`, code: CodeInvalidJSON, offset: 0},
		{name: "leading dot", in: `.5`, code: CodeInvalidJSON, offset: 0},
		{name: "no exponent digits", in: `1e+`, code: CodeInvalidJSON, offset: 0},
		{name: "hex number", in: `0x10`, code: CodeTrailingData, offset: 1},
		{name: "truncated literal", in: `tru`, code: CodeInvalidJSON, offset: 0},
		{name: "capital literal", in: `True`, code: CodeInvalidJSON, offset: 0},
		{name: "byte order mark", in: "\ufeff{}", code: CodeInvalidJSON, offset: 0},
		{name: "invalid utf8 outside strings", in: "[\xff]", code: CodeInvalidJSON, offset: 1},

		// Trailing data.
		{name: "two values", in: `{} {}`, code: CodeTrailingData, offset: 3},
		{name: "extra close", in: `[1]]`, code: CodeTrailingData, offset: 3},
		{name: "trailing garbage", in: "1 x", code: CodeTrailingData, offset: 2},
		{name: "trailing NUL", in: "{}\x00", code: CodeTrailingData, offset: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := ScanJSON([]byte(tt.in), tt.limits)
			if tt.code == "" {
				if v != nil {
					t.Fatalf("ScanJSON(%q) = %v, want nil", tt.in, v)
				}
				return
			}
			if v == nil {
				t.Fatalf("ScanJSON(%q) = nil, want %s", tt.in, tt.code)
			}
			if v.Code != tt.code || tt.offset != anyOffset && v.Offset != tt.offset {
				t.Fatalf("ScanJSON(%q) = %s at %d (%v), want %s at %d", tt.in, v.Code, v.Offset, v, tt.code, tt.offset)
			}
			checkMessage(t, v)
		})
	}
}

// checkMessage asserts the properties every violation message has: short,
// printable and valid UTF-8.
func checkMessage(t *testing.T, v *Violation) {
	t.Helper()
	if v.Message == "" || len(v.Message) > 200 || !utf8.ValidString(v.Message) {
		t.Fatalf("bad message %q", v.Message)
	}
	for _, r := range v.Message {
		if r < 0x20 || r == 0x7f {
			t.Fatalf("message %q has a control character", v.Message)
		}
	}
}

// TestScanJSONDuplicatePointer: a duplicate is named by its JSON pointer,
// the end of it when it is long, and never by its value.
func TestScanJSONDuplicatePointer(t *testing.T) {
	dups := JSONLimits{RejectDuplicateKeys: true}
	long := strings.Repeat("x", 40)
	tests := []struct{ in, want string }{
		{`{"action":"write","action":"read"}`, `"/action"`},
		{`{"params":{"name":"search","arguments":{"q":"a","\u0071":"b"}}}`, `"/params/arguments/q"`},
		{`{"a":[0,{"b":1},{"c":{"d":1,"d":2}}]}`, `"/a/2/c/d"`},
		{`{"a/b":{"m~n":1,"m~n":2}}`, `"/a~1b/m~0n"`},
		{`[{"":1,"":2}]`, `"/0/"`},
		{`{"caf\u00e9":{"k":1,"k":2}}`, `"/caf\u00e9/k"`},
		{`{"` + long + `":{"k":1,"k":2}}`, `..."` + long[len(long)-30:] + `/k"`},
		{`{"a":{"` + long + `":1,"` + long + `":2}}`, `..."` + long[len(long)-32:] + `"`},
	}
	for _, tt := range tests {
		v := ScanJSON([]byte(tt.in), dups)
		if v == nil || v.Code != CodeDuplicateKey {
			t.Errorf("ScanJSON(%q) = %v, want duplicate_key", tt.in, v)
			continue
		}
		if want := "JSON object has a duplicate member name at " + tt.want; v.Message != want {
			t.Errorf("ScanJSON(%q) message = %q, want %q", tt.in, v.Message, want)
		}
		for _, value := range []string{"write", "read", "search", `"b"`} {
			if strings.Contains(v.Message, value) {
				t.Errorf("ScanJSON(%q) message %q quotes a value", tt.in, v.Message)
			}
		}
		checkMessage(t, v)
	}
}

func TestScanJSONMessagesDoNotQuoteStrings(t *testing.T) {
	const secret = "hunter2-hunter2-hunter2"
	limits := JSONLimits{MaxStringBytes: 8, RejectDuplicateKeys: true}
	for _, in := range []string{
		`{"password":"` + secret + `"}`,
		`{"` + secret + `":1,"` + secret + `":2}`,
		`{"k":"hunter","k":"` + secret + `"}`,
		`["` + secret + "\x01" + `"]`,
		`["` + secret + "\xff" + `"]`,
		`{"` + secret + `"}`,
	} {
		v := ScanJSON([]byte(in), limits)
		if v == nil {
			t.Fatalf("ScanJSON(%q) = nil", in)
		}
		if strings.Contains(v.Error(), "hunter") {
			t.Errorf("ScanJSON(%q) = %q, quotes the input", in, v.Error())
		}
	}
}

// TestScanJSONDepthBomb checks that a 16 MiB "[[[[..." is refused at the
// first bracket past MaxDepth: the violation's offset bounds the bytes
// examined. guard_linux_test.go proves the same with unreadable memory.
func TestScanJSONDepthBomb(t *testing.T) {
	bomb := bytes.Repeat([]byte{'['}, 16<<20)
	for _, depth := range []int{0, 1, 10, 1000} {
		l := JSONLimits{MaxBytes: 32 << 20, MaxDepth: depth}
		max := l.WithDefaults().MaxDepth
		v := ScanJSON(bomb, l)
		if v == nil || v.Code != CodeTooDeep {
			t.Fatalf("MaxDepth %d: ScanJSON = %v, want too_deep", depth, v)
		}
		if v.Offset > max+1 {
			t.Errorf("MaxDepth %d: too_deep at offset %d, want <= %d", depth, v.Offset, max+1)
		}
	}
	// The size check comes first.
	if v := ScanJSON(bomb, JSONLimits{}); v == nil || v.Code != CodeTooLarge {
		t.Errorf("default limits: ScanJSON = %v, want too_large", v)
	}
}

func TestViolationError(t *testing.T) {
	tests := []struct {
		v    *Violation
		want string
	}{
		{&Violation{Code: CodeTooDeep, Message: "JSON nesting is deeper than 2", Offset: 2}, "guard: too_deep: JSON nesting is deeper than 2 (at byte 2)"},
		{&Violation{Code: CodeTooManyHeaders, Message: "too many", Offset: -1}, "guard: too_many_headers: too many"},
		{nil, "guard: <nil violation>"},
	}
	for _, tt := range tests {
		if got := tt.v.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
	var err error = ScanJSON([]byte("["), JSONLimits{})
	var v *Violation
	if !errors.As(err, &v) || v.Code != CodeInvalidJSON {
		t.Errorf("errors.As(%v) = %v", err, v)
	}
}

func TestExcerpt(t *testing.T) {
	tests := []struct{ in, want string }{
		{"x-api-key", `"x-api-key"`},
		{"a\x00\r\n\xff", `"a\x00\r\n\xff"`},
		{strings.Repeat("a", 40), `"` + strings.Repeat("a", 32) + `"...`},
		{strings.Repeat("a", 31) + "é", `"` + strings.Repeat("a", 31) + `"...`},
	}
	for _, tt := range tests {
		if got := excerpt(tt.in); got != tt.want {
			t.Errorf("excerpt(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

// jsonStats describes a valid JSON document, as an independent reference
// (encoding/json's Decoder) sees it.
type jsonStats struct {
	depth, elements, maxString, maxMembers int
	duplicate                              bool
	// dupPointer is the JSON pointer of the first duplicate member.
	dupPointer string
}

func referenceStats(b []byte) (jsonStats, error) {
	type level struct {
		obj     bool
		wantKey bool
		members int
		keys    map[string]bool
		key     string // the member being read
	}
	pointer := func(stack []*level, name string) string {
		var b strings.Builder
		esc := strings.NewReplacer("~", "~0", "/", "~1")
		for _, l := range stack[:len(stack)-1] {
			b.WriteByte('/')
			if l.obj {
				b.WriteString(esc.Replace(l.key))
			} else {
				b.WriteString(strconv.Itoa(l.members - 1))
			}
		}
		return b.String() + "/" + esc.Replace(name)
	}
	var (
		st    jsonStats
		stack []*level
	)
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	valueStart := func() {
		st.elements++
		if n := len(stack); n > 0 && !stack[n-1].obj {
			stack[n-1].members++
			st.maxMembers = max(st.maxMembers, stack[n-1].members)
		}
	}
	valueEnd := func() {
		if n := len(stack); n > 0 && stack[n-1].obj {
			stack[n-1].wantKey = true
		}
	}
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return st, nil
		}
		if err != nil {
			return st, err
		}
		switch tok := tok.(type) {
		case json.Delim:
			switch tok {
			case '{', '[':
				valueStart()
				stack = append(stack, &level{obj: tok == '{', wantKey: true, keys: map[string]bool{}})
				st.depth = max(st.depth, len(stack))
			default:
				stack = stack[:len(stack)-1]
				valueEnd()
			}
		case string:
			st.maxString = max(st.maxString, len(tok))
			if n := len(stack); n > 0 && stack[n-1].obj && stack[n-1].wantKey {
				top := stack[n-1]
				top.wantKey = false
				top.members++
				st.maxMembers = max(st.maxMembers, top.members)
				if top.keys[tok] && !st.duplicate {
					st.duplicate = true
					st.dupPointer = pointer(stack, tok)
				}
				top.keys[tok] = true
				top.key = tok
				continue
			}
			valueStart()
			valueEnd()
		default:
			valueStart()
			valueEnd()
		}
	}
}

// hasLoneSurrogate reports whether the valid JSON document b has a \u
// escape of a UTF-16 surrogate that is not part of a pair. In valid JSON
// every backslash starts an escape inside a string, so the raw bytes can be
// scanned without tracking strings.
func hasLoneSurrogate(b []byte) bool {
	hex := func(i int) (uint64, bool) {
		if i+4 > len(b) {
			return 0, false
		}
		r, err := strconv.ParseUint(string(b[i:i+4]), 16, 32)
		return r, err == nil
	}
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' {
			continue
		}
		if i+1 >= len(b) || b[i+1] != 'u' {
			i++ // skip the escaped byte
			continue
		}
		r, _ := hex(i + 2)
		switch {
		case r >= 0xd800 && r < 0xdc00:
			if i+7 < len(b) && b[i+6] == '\\' && b[i+7] == 'u' {
				if r2, ok := hex(i + 8); ok && r2 >= 0xdc00 && r2 < 0xe000 {
					i += 11
					continue
				}
			}
			return true
		case r >= 0xdc00 && r < 0xe000:
			return true
		}
		i += 5
	}
	return false
}

var fuzzJSONLimits = []JSONLimits{
	{RejectDuplicateKeys: true},
	{MaxBytes: 256, MaxDepth: 4, MaxElements: 32, MaxStringBytes: 8, MaxMembers: 4, RejectDuplicateKeys: true},
	{MaxBytes: 256, MaxDepth: 4, MaxElements: 32, MaxStringBytes: 8, MaxMembers: 4},
	{MaxDepth: 8, MaxStringBytes: 16, MaxMembers: 40, RejectDuplicateKeys: true},
}

// FuzzScanJSON checks ScanJSON against encoding/json: it must refuse
// everything json.Valid refuses, accept every valid document within the
// limits (without duplicate keys, invalid UTF-8 or lone surrogates), and
// every refusal of a valid document must be genuine according to an
// independent decoder.
func FuzzScanJSON(f *testing.F) {
	for _, s := range []string{
		`{"a":1}`, `[1,2,3]`, `"x"`, `-1.5e3`, `true`, `null`, ` {} `,
		`{"a":1,"a":2}`, `{"a":1,"\u0061":2}`, `{"\/":{"/":1}}`,
		`{"action":"write","action":"read"}`, `{"x":[{"a~/":1},{"a~/":1,"a\u007e\/":2}]}`,
		`{"params":{"name":"search","name":"delete_all"}}`, `{"":{"":{"":1,"":2}}}`,
		`"\ud83d\ude00"`, `"\ud800"`, `"\udc00x"`, "\"\xff\"", `"caf\u00e9"`,
		`[[[[[[]]]]]]`, `{"a":{"b":{"c":{"d":{}}}}}`, `"abcdefghijklmnop"`,
		`[1,2,3,4,5,6,7,8,9]`, `{"a":1,"b":2,"c":3,"d":4,"e":5}`,
		`01`, `1.`, `[1,]`, `{"a":1,}`, `NaN`, `// c`, `{'a':1}`, `[1]]`,
		"{" + strings.Repeat(`"k":1,`, 20) + `"k":1}`,
		string(mcpToolsCallBody()),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		valid := json.Valid(b)
		var st jsonStats
		lone := false
		if valid {
			var err error
			if st, err = referenceStats(b); err != nil {
				t.Fatalf("json.Valid(%q) but the decoder fails: %v", b, err)
			}
			lone = hasLoneSurrogate(b)
		}
		for _, l := range fuzzJSONLimits {
			v := ScanJSON(b, l)
			if v != nil {
				checkMessage(t, v)
				if v.Offset < -1 || v.Offset > max(len(b), l.MaxBytes) {
					t.Fatalf("ScanJSON(%q) offset %d out of range", b, v.Offset)
				}
			}
			if !valid {
				if v == nil {
					t.Fatalf("ScanJSON(%q, %+v) = nil, json.Valid = false", b, l)
				}
				continue
			}
			l = l.WithDefaults()
			if v == nil {
				switch {
				case len(b) > l.MaxBytes, st.depth > l.MaxDepth, st.elements > l.MaxElements,
					st.maxString > l.MaxStringBytes, st.maxMembers > l.MaxMembers:
					t.Fatalf("ScanJSON(%q, %+v) = nil, beyond limits: %+v", b, l, st)
				case l.RejectDuplicateKeys && st.duplicate:
					t.Fatalf("ScanJSON(%q, %+v) = nil, has a duplicate key", b, l)
				case !utf8.Valid(b) || lone:
					t.Fatalf("ScanJSON(%q) = nil, invalid UTF-8 or lone surrogate", b)
				}
				continue
			}
			genuine := false
			switch v.Code {
			case CodeTooLarge:
				genuine = len(b) > l.MaxBytes
			case CodeTooDeep:
				genuine = st.depth > l.MaxDepth
			case CodeTooManyElements:
				genuine = st.elements > l.MaxElements
			case CodeStringTooLong:
				genuine = st.maxString > l.MaxStringBytes
			case CodeTooManyMembers:
				genuine = st.maxMembers > l.MaxMembers
			case CodeDuplicateKey:
				genuine = l.RejectDuplicateKeys && st.duplicate
				if want := tailExcerpt(st.dupPointer); genuine && !strings.HasSuffix(v.Message, " at "+want) {
					t.Fatalf("ScanJSON(%q) = %v, want the pointer %s", b, v, want)
				}
			case CodeInvalidUTF8:
				o := v.Offset
				r, size := utf8.DecodeRune(b[o:])
				badByte := r == utf8.RuneError && size <= 1
				genuine = (badByte || bytes.HasPrefix(b[o:], []byte(`\u`)) && lone) && (!utf8.Valid(b) || lone)
			}
			if !genuine {
				t.Fatalf("ScanJSON(%q, %+v) = %v; valid JSON with %+v", b, l, v, st)
			}
		}
	})
}

func TestPlain8(t *testing.T) {
	// Every byte value in every position, against the byte table.
	for pos := range 8 {
		for c := range 256 {
			var chunk [8]byte
			for i := range chunk {
				chunk[i] = 'a'
			}
			chunk[pos] = byte(c)
			x := uint64(0)
			for i := 7; i >= 0; i-- {
				x = x<<8 | uint64(chunk[i])
			}
			if got, want := plain8(x), isPlain[c]; got != want {
				t.Errorf("plain8 with byte 0x%02X at %d = %v, want %v", c, pos, got, want)
			}
		}
	}
}

// TestScanJSONFoldCase: with FoldCase, member names equal without case
// (as encoding/json matches struct fields, the Kelvin sign and long s
// included) are duplicates, in small objects and in indexed ones.
func TestScanJSONFoldCase(t *testing.T) {
	t.Parallel()
	many := func(last string) string {
		var b strings.Builder
		b.WriteString("{")
		for i := range 20 {
			fmt.Fprintf(&b, `"k%d":%d,`, i, i)
		}
		b.WriteString(`"` + last + `":1}`)
		return b.String()
	}
	for _, tc := range []struct {
		name, doc string
		fold, dup bool
	}{
		{"exact names differ in case", `{"name":"a","Name":"b"}`, false, false},
		{"folded", `{"name":"a","Name":"b"}`, true, true},
		{"folded, nested", `{"params":{"arguments":{},"ARGUMENTS":{}}}`, true, true},
		{"folded, escaped", `{"name":1,"\u004eAME":2}`, true, true},
		{"kelvin sign and long s", "{\"sk\":1,\"\u017f\u212a\":2}", true, true},
		{"distinct names", `{"name":1,"names":2,"nam":3}`, true, false},
		{"indexed object", many("K3"), true, true},
		{"indexed object, distinct", many("k30"), true, false},
	} {
		v := ScanJSON([]byte(tc.doc), JSONLimits{RejectDuplicateKeys: true, FoldCase: tc.fold})
		if got := v != nil && v.Code == CodeDuplicateKey; got != tc.dup {
			t.Errorf("%s: violation %v, want duplicate %v", tc.name, v, tc.dup)
		}
	}
}
