package guard

import (
	"net/url"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestPathLimitsWithDefaults(t *testing.T) {
	if got := (PathLimits{}).WithDefaults(); got.MaxBytes != 8<<10 {
		t.Errorf("WithDefaults() = %+v", got)
	}
	if got := (PathLimits{MaxBytes: 10}).WithDefaults(); got.MaxBytes != 10 {
		t.Errorf("WithDefaults() = %+v", got)
	}
}

func TestNormalizePath(t *testing.T) {
	tests := []struct {
		in   string
		want string
		code string // when refused
	}{
		// The examples of the package documentation.
		{in: "/a//b/../c", want: "/a/c"},
		{in: "/docs/%2e%2e/admin", code: CodeAmbiguousPath},
		{in: "/a%2Fb", code: CodeAmbiguousPath},
		{in: "/admin//../x", code: CodeAmbiguousPath},
		{in: "//../x", code: CodeAmbiguousPath},
		{in: "/a%2fb", code: CodeAmbiguousPath},
		{in: `/a\b`, code: CodeAmbiguousPath},
		{in: "/a%5cb", code: CodeAmbiguousPath},
		{in: "/%7Euser", want: "/~user"},
		{in: "/./a/", want: "/a/"},
		{in: "/..", want: "/"},
		{in: "/a?x=/../", want: "/a"},
		{in: "*", want: "*"},
		{in: "/caf%C3%A9", want: "/café"},
		{in: "/a;v=1/b", want: "/a;v=1/b"},
		{in: "/a%00", code: CodePathControlChar},
		{in: "/%zz", code: CodePathBadEscape},
		{in: "/%C3", code: CodeInvalidUTF8},

		// Already canonical.
		{in: "/", want: "/"},
		{in: "/mcp", want: "/mcp"},
		{in: "/api/v1/users/42/", want: "/api/v1/users/42/"},
		{in: "/a b", want: "/a b"},
		{in: "/a+b;c=d,e:f@g!$&'()*", want: "/a+b;c=d,e:f@g!$&'()*"},

		// Slashes and dot-segments.
		{in: "//", want: "/"},
		{in: "///a///b///", want: "/a/b/"},
		{in: "/.", want: "/"},
		{in: "/a/.", want: "/a/"},
		{in: "/a/..", want: "/"},
		{in: "/a/b/..", want: "/a/"},
		{in: "/a/b/../..", want: "/"},
		{in: "/../../../etc/passwd", want: "/etc/passwd"},
		{in: "/a/./b/./c", want: "/a/b/c"},
		{in: "/a/..b/c..", want: "/a/..b/c.."},
		{in: "/a/.../b", want: "/a/.../b"},
		{in: "/a/..b/c../...;x", want: "/a/..b/c../...;x"},
		{in: "/a;/b", want: "/a;/b"},
		{in: "/a/b;x/../c", want: "/a/c"},
		{in: "/a/%2Eb/c%2e", want: "/a/.b/c."},

		// Ambiguous: servers resolve these in different ways.
		{in: "/a/%2E/b", code: CodeAmbiguousPath},
		{in: "/a/.%2e/b", code: CodeAmbiguousPath},
		{in: "/a/%2E%2E", code: CodeAmbiguousPath},
		{in: "/a/b/%2e%2e/", code: CodeAmbiguousPath},
		{in: "/a/..;/b", code: CodeAmbiguousPath},
		{in: "/a/.;/b", code: CodeAmbiguousPath},
		{in: "/a/..;jsessionid=1/b", code: CodeAmbiguousPath},
		{in: "/a/%2e%2e;/b", code: CodeAmbiguousPath},
		{in: "/a/..%3B/b", code: CodeAmbiguousPath},
		{in: "/a/;/../b", code: CodeAmbiguousPath},
		{in: "/a/;x=1/../b", code: CodeAmbiguousPath},
		{in: "/a/%3B/../b", code: CodeAmbiguousPath},
		{in: "/a/%2e%2e%2fb", code: CodeAmbiguousPath},
		{in: `/a\..\b`, code: CodeAmbiguousPath},
		{in: "/a/%5C../b", code: CodeAmbiguousPath},
		{in: "/a/..%2Fb", code: CodeAmbiguousPath},
		{in: "/a/%252e%252e/b", code: CodeAmbiguousPath},
		{in: "/a/%252F", code: CodeAmbiguousPath},
		{in: "/a/%255c", code: CodeAmbiguousPath},
		{in: "/a/%25%32%65", code: CodeAmbiguousPath},
		{in: "/a/%2525", code: CodeAmbiguousPath},

		// Escapes.
		{in: "/%41%42%43", want: "/ABC"},
		{in: "/%2F", code: CodeAmbiguousPath},
		{in: "/%252F", code: CodeAmbiguousPath},
		{in: "/%25", want: "/%25"},
		{in: "/%2541/%25zz", want: "/%2541/%25zz"},
		{in: "/a%3Fb", want: "/a%3Fb"},
		{in: "/a%3fb?c", want: "/a%3Fb"},
		{in: "/a%23b", want: "/a%23b"},
		{in: "/a%20b", want: "/a b"},
		{in: "/%3B", code: CodeAmbiguousPath},
		{in: "/a%3Bb", want: "/a;b"},
		{in: "/%F0%9F%98%80", want: "/😀"},
		{in: "/café", want: "/café"}, // raw UTF-8: NormalizePath's own output form
		{in: "/a?", want: "/a"},
		{in: "/a?b#", code: CodePathInvalid},
		{in: "/a?b\x00", code: CodePathControlChar},

		// Refusals.
		{in: "", code: CodePathInvalid},
		{in: "a/b", code: CodePathInvalid},
		{in: "?a", code: CodePathInvalid},
		{in: "*?a", code: CodePathInvalid},
		{in: "http://example.com/a", code: CodePathInvalid},
		{in: "/a#frag", code: CodePathInvalid},
		{in: "/a\x00", code: CodePathControlChar},
		{in: "/a\tb", code: CodePathControlChar},
		{in: "/a\r\nb", code: CodePathControlChar},
		{in: "/a\x7f", code: CodePathControlChar},
		{in: "/a%0A", code: CodePathControlChar},
		{in: "/a%7f", code: CodePathControlChar},
		{in: "/a%C2%85", code: CodePathControlChar},
		{in: "/a\u0085", code: CodePathControlChar},
		{in: "/%", code: CodePathBadEscape},
		{in: "/%4", code: CodePathBadEscape},
		{in: "/%4g", code: CodePathBadEscape},
		{in: "/%C3%", code: CodePathBadEscape},
		{in: "/%C3a", code: CodeInvalidUTF8},
		{in: "/%C3%28", code: CodeInvalidUTF8},
		{in: "/%C0%AF", code: CodeInvalidUTF8},
		{in: "/%ED%A0%80", code: CodeInvalidUTF8},
		{in: "/%F4%90%80%80", code: CodeInvalidUTF8},
		{in: "/%FF", code: CodeInvalidUTF8},
		{in: "/%80", code: CodeInvalidUTF8},
		{in: "/\xff", code: CodeInvalidUTF8},
		{in: "/\xc3%A9", code: CodeInvalidUTF8},
		{in: "/" + strings.Repeat("a", 8<<10), code: CodePathTooLong},
		{in: "/" + strings.Repeat(`\`, 3000), code: CodeAmbiguousPath},
	}
	for _, tt := range tests {
		got, v := NormalizePath(tt.in)
		switch {
		case tt.code != "" && (v == nil || v.Code != tt.code):
			t.Errorf("NormalizePath(%q) = %q, %v; want %s", tt.in, got, v, tt.code)
		case tt.code == "" && (v != nil || got != tt.want):
			t.Errorf("NormalizePath(%q) = %q, %v; want %q", tt.in, got, v, tt.want)
		case tt.code == "":
			if again, v := NormalizePath(got); v != nil || again != got {
				t.Errorf("NormalizePath(%q) = %q, %v; not idempotent", got, again, v)
			}
		default:
			checkMessage(t, v)
		}
	}
}

func TestCheckPath(t *testing.T) {
	tests := []struct {
		in     string
		limits PathLimits
		code   string // "" for accepted
		offset int
	}{
		{in: "/"},
		{in: "*"},
		{in: "/a/../b//c/./d"},
		{in: "/a%20c%C3%A9;v=1/b"},
		{in: "/a?b=%2F..;\\"}, // the query is not part of the path
		{in: "/a?q=caf\xc3\xa9&x=%zz&y=%00&z=\xff"}, // the query is checked for controls and '#' only
		{in: "/a b"},
		{in: "/12345", limits: PathLimits{MaxBytes: 6}},

		{in: "", code: CodePathInvalid, offset: -1},
		{in: "a", code: CodePathInvalid, offset: 0},
		{in: "**", code: CodePathInvalid, offset: 0},
		{in: "/a#b", code: CodePathInvalid, offset: 2},
		{in: "/a?b#c", code: CodePathInvalid, offset: 4},
		{in: "/café", code: CodePathInvalid, offset: 4},
		{in: "/a\x00", code: CodePathControlChar, offset: 2},
		{in: "/a?b=\r\n", code: CodePathControlChar, offset: 5},
		{in: `/docs/..\admin`, code: CodeAmbiguousPath, offset: 8},
		{in: "/docs/..%5Cadmin", code: CodeAmbiguousPath, offset: 8},
		{in: "/docs/..%2Fadmin", code: CodeAmbiguousPath, offset: 8},
		{in: "/docs/..;/admin", code: CodeAmbiguousPath, offset: 6},
		{in: "/docs/%2e%2e/admin", code: CodeAmbiguousPath, offset: 6},
		{in: "/docs/%252e%252e/admin", code: CodeAmbiguousPath, offset: 6},
		{in: "/docs/x%255Cy", code: CodeAmbiguousPath, offset: 7},
		{in: "/a%00", code: CodePathControlChar, offset: 2},
		{in: "/a%1b", code: CodePathControlChar, offset: 2},
		{in: "/a%c2%9f", code: CodePathControlChar, offset: 2},
		{in: "/a%zz", code: CodePathBadEscape, offset: 2},
		{in: "/a%4", code: CodePathBadEscape, offset: 2},
		{in: "/a%C3%A", code: CodePathBadEscape, offset: 5},
		{in: "/a%C3", code: CodeInvalidUTF8, offset: 2},
		{in: "/a%C0%80", code: CodeInvalidUTF8, offset: 2},
		{in: "/123456", limits: PathLimits{MaxBytes: 6}, code: CodePathTooLong, offset: 6},
		{in: "/a?" + strings.Repeat("q", 8<<10), code: CodePathTooLong, offset: 8 << 10},
	}
	for _, tt := range tests {
		v := CheckPath(tt.in, tt.limits)
		if tt.code == "" {
			if v != nil {
				t.Errorf("CheckPath(%q) = %v, want nil", tt.in, v)
			}
			continue
		}
		if v == nil || v.Code != tt.code || v.Offset != tt.offset {
			t.Errorf("CheckPath(%q) = %v, want %s at %d", tt.in, v, tt.code, tt.offset)
			continue
		}
		checkMessage(t, v)
	}
}

// FuzzNormalizePath checks that NormalizePath never panics, that its output
// is canonical and idempotent, and that it agrees with CheckPath.
func FuzzNormalizePath(f *testing.F) {
	for _, s := range []string{
		"/", "*", "/a//b/../c", "/docs/%2e%2e/admin", "/a%2Fb", `/a\b`, "/%7Euser",
		"/./a/", "/..", "/a?x=/../", "/caf%C3%A9", "/a%00", "/%zz", "/%C3", "/a;v=1/..;/b",
		"/a/%2E%2e/%2e/b/", "/%25%2F%5C%3F%23", "/café", "//a//", "/a#b", "/a?b#c",
		"/docs/..;/admin", "/docs/..%2Fadmin", `/docs/..\admin`, "/docs/..%5Cadmin",
		"/docs/%2e%2e;x/admin", "/docs/;/../admin", "/docs/%252e%252e/admin", "/docs/x;v=1/../y",
		"/docs/a%3B/../b", "/docs/%25%32%65%25%32%65/admin",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, v := NormalizePath(in)
		checkErr := CheckPath(in, PathLimits{})
		if v != nil {
			checkMessage(t, v)
			if out != "" {
				t.Fatalf("NormalizePath(%q) = %q with %v", in, out, v)
			}
			// Refused: CheckPath refuses too, for the same reason unless
			// the path has raw non-ASCII or grew too long.
			if checkErr == nil && v.Code != CodePathTooLong {
				t.Fatalf("NormalizePath(%q) = %v but CheckPath accepts it", in, v)
			}
			if checkErr != nil && !hasRawNonASCII(in) && *checkErr != *v && v.Code != CodePathTooLong {
				t.Fatalf("NormalizePath(%q) = %v, CheckPath = %v", in, v, checkErr)
			}
			return
		}
		if checkErr != nil && (!hasRawNonASCII(in) || checkErr.Code != CodePathInvalid) {
			t.Fatalf("NormalizePath(%q) = %q but CheckPath = %v", in, out, checkErr)
		}
		if out != "*" && !strings.HasPrefix(out, "/") {
			t.Fatalf("NormalizePath(%q) = %q, no leading slash", in, out)
		}
		for _, bad := range []string{"//", "/./", "/../", `\`, "?", "#"} {
			if strings.Contains(out, bad) {
				t.Fatalf("NormalizePath(%q) = %q, contains %q", in, out, bad)
			}
		}
		if strings.HasSuffix(out, "/.") || strings.HasSuffix(out, "/..") {
			t.Fatalf("NormalizePath(%q) = %q, ends in a dot-segment", in, out)
		}
		if !utf8.ValidString(out) || strings.ContainsFunc(out, unicode.IsControl) {
			t.Fatalf("NormalizePath(%q) = %q, invalid UTF-8 or control character", in, out)
		}
		if len(out) > DefaultPathMaxBytes {
			t.Fatalf("NormalizePath(%q) is %d bytes", in, len(out))
		}
		if again, v := NormalizePath(out); v != nil || again != out {
			t.Fatalf("NormalizePath(%q) = %q, then %q, %v: not idempotent", in, out, again, v)
		}
		if out != "*" {
			checkUpstreams(t, in, out)
		}
	})
}

// checkUpstreams checks that a policy matching prefixes of out is safe
// whatever the upstream does with in: each server model below resolves the
// raw path to the same leading segments as out, up to out's first segment
// that a model could read differently (one with ";" or a kept escape).
func checkUpstreams(t *testing.T, in, out string) {
	t.Helper()
	want := splitSegments(out)
	clean := 0
	for clean < len(want) && !strings.ContainsAny(want[clean], ";%") {
		clean++
	}
	path, _, _ := strings.Cut(in, "?")
	for _, m := range upstreamModels {
		got, ok := m.resolve(path)
		if !ok {
			continue // this server would refuse the path
		}
		if len(got) < clean || !slices.Equal(got[:clean], want[:clean]) || clean == len(want) && len(got) != len(want) {
			t.Fatalf("NormalizePath(%q) = %q, but a server that %s serves %q", in, out, m.name, "/"+strings.Join(got, "/"))
		}
	}
}

func splitSegments(p string) []string {
	var segs []string
	for s := range strings.SplitSeq(p, "/") {
		if s != "" {
			segs = append(segs, s)
		}
	}
	return segs
}

// upstreamModel is one way servers resolve a raw path.
type upstreamModel struct {
	name string
	// decodes is how many times percent escapes are decoded; before
	// splitting into segments when decodeFirst is set, else per segment.
	decodes     int
	decodeFirst bool
	// backslash reads "\" as "/"; params drops ";..." from each segment
	// (before decoding it, as Tomcat does, when decodeFirst is not set).
	backslash, params bool
}

var upstreamModels = []upstreamModel{
	{name: "decodes each segment (RFC 3986)", decodes: 1},
	{name: "decodes before splitting", decodes: 1, decodeFirst: true},
	{name: "decodes twice", decodes: 2, decodeFirst: true},
	{name: "reads \\ as /", decodes: 1, decodeFirst: true, backslash: true},
	{name: "drops ;parameters (Tomcat)", decodes: 1, params: true},
	{name: "decodes, reads \\ as / and drops ;parameters", decodes: 1, decodeFirst: true, backslash: true, params: true},
	{name: "decodes twice and drops ;parameters", decodes: 2, decodeFirst: true, backslash: true, params: true},
}

// resolve returns the segments m serves for the raw path part p, merging
// slashes and resolving dot segments (never above the root); false when
// the path does not decode.
func (m upstreamModel) resolve(p string) ([]string, bool) {
	decode := func(s string) (string, bool) {
		for range m.decodes {
			var err error
			if s, err = url.PathUnescape(s); err != nil {
				return "", false
			}
		}
		return s, true
	}
	if m.decodeFirst {
		var ok bool
		if p, ok = decode(p); !ok {
			return nil, false
		}
	}
	if m.backslash {
		p = strings.ReplaceAll(p, `\`, "/")
	}
	var out []string
	for seg := range strings.SplitSeq(p, "/") {
		if m.params {
			seg, _, _ = strings.Cut(seg, ";")
		}
		if !m.decodeFirst {
			var ok bool
			if seg, ok = decode(seg); !ok {
				return nil, false
			}
		}
		switch seg {
		case "", ".":
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		default:
			out = append(out, seg)
		}
	}
	return out, true
}

func hasRawNonASCII(s string) bool {
	path, _, _ := strings.Cut(s, "?")
	return strings.ContainsFunc(path, func(r rune) bool { return r >= utf8.RuneSelf })
}
