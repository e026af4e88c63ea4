package mcp_test

import (
	"encoding/base64"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/verdictpdp/verdict/internal/mcp"
)

func TestDecodeHeaderValue(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"search", "search", true},
		{"two words\twith tab", "two words\twith tab", true},
		{"=?base64?c2VhcmNo?=", "search", true},
		{"=?base64?" + base64.StdEncoding.EncodeToString([]byte("café")) + "?=", "café", true},
		{"=?base64??=", "", true},
		{"caf\xc3\xa9", "", false},        // raw UTF-8 must be encoded
		{"a\x00b", "", false},             // NUL
		{"a\r\nX-Injected: 1", "", false}, // header splitting
		{"=?base64?c2VhcmNo", "", false},  // no ?=
		{"=?base64?***?=", "", false},     // not base64
		{"=?base64?c2VhcmNo?=?=", "", false},
		{"=?base64?" + base64.StdEncoding.EncodeToString([]byte{0xff, 0xfe}) + "?=", "", false}, // not UTF-8
		{"=?base64?c2VhcmNo?= ", "", false},                                                     // trailing space: no ?= suffix
	} {
		got, err := mcp.DecodeHeaderValue(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("DecodeHeaderValue(%q) = %q, %v; want %q, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// FuzzDecodeHeaderValue checks the Mcp-Name / Mcp-Param-* decoding that
// decides which tool a header-only request names: it never panics, never
// returns bytes a header could not carry or invalid UTF-8, and every UTF-8
// string survives the round trip through the encoded form.
func FuzzDecodeHeaderValue(f *testing.F) {
	for _, s := range []string{"search", "=?base64?c2VhcmNo?=", "=?base64?ZXU=?=", "=?base64?***?=", "=?base64?", "caf\xc3\xa9", "a\r\nb", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		got, err := mcp.DecodeHeaderValue(v)
		if err == nil {
			if !utf8.ValidString(got) {
				t.Fatalf("DecodeHeaderValue(%q) = %q: not UTF-8", v, got)
			}
			if !strings.HasPrefix(v, "=?base64?") && got != v {
				t.Fatalf("plain value %q changed to %q", v, got)
			}
		}
		if utf8.ValidString(v) {
			enc := "=?base64?" + base64.StdEncoding.EncodeToString([]byte(v)) + "?="
			if back, err := mcp.DecodeHeaderValue(enc); err != nil || back != v {
				t.Fatalf("round trip of %q: %q, %v", v, back, err)
			}
		}
	})
}
