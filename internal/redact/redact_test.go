package redact_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/verdictpdp/verdict/internal/redact"
)

func TestApply(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		in     any
		rules  []string
		want   any
		counts []int
	}{
		{
			name:   "e-mail addresses in nested strings",
			in:     map[string]any{"a": []any{"mail bob@example.com now", map[string]any{"b": "x.y+z@sub.example.org"}}},
			rules:  []string{redact.Email},
			want:   map[string]any{"a": []any{"mail [REDACTED:email] now", map[string]any{"b": "[REDACTED:email]"}}},
			counts: []int{2},
		},
		{
			name:   "card numbers must pass the Luhn check",
			in:     "valid 4111-1111-1111-1111, invalid 4111 1111 1111 1112, short 4111 1111",
			rules:  []string{redact.CardNumber},
			want:   "valid [REDACTED:card_number], invalid 4111 1111 1111 1112, short 4111 1111",
			counts: []int{1},
		},
		{
			name:   "secret shapes",
			in:     "AKIAIOSFODNN7EXAMPLE xoxb-123456789012-abcdefghij sk_live_abcdefghijklmnop1234 eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abcdefghijklmnop",
			rules:  []string{redact.Secret},
			want:   "[REDACTED:secret] [REDACTED:secret] [REDACTED:secret] [REDACTED:secret]",
			counts: []int{4},
		},
		{
			name:   "PEM private key",
			in:     "key:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----\nbye",
			rules:  []string{redact.Secret},
			want:   "key:\n[REDACTED:private_key]\nbye",
			counts: []int{1},
		},
		{
			name:   "pointer with wildcard and escapes",
			in:     map[string]any{"rows": []any{map[string]any{"a/b": 1, "c": 2}, map[string]any{"a/b": 3}}},
			rules:  []string{"/rows/*/a~1b", "/rows/0/c", "/missing/x"},
			want:   map[string]any{"rows": []any{map[string]any{"a/b": redact.Mask, "c": redact.Mask}, map[string]any{"a/b": redact.Mask}}},
			counts: []int{2, 1, 0},
		},
		{
			name:   "the empty pointer masks the whole value",
			in:     map[string]any{"a": 1},
			rules:  []string{""},
			want:   redact.Mask,
			counts: []int{1},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, counts, err := redact.Apply(tc.in, tc.rules)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
			var n []int
			for _, c := range counts {
				n = append(n, c.Count)
			}
			if d := cmp.Diff(tc.counts, n); d != "" {
				t.Errorf("counts (-want +got):\n%s", d)
			}
		})
	}
}

func TestApplyDoesNotModifyInput(t *testing.T) {
	t.Parallel()
	in := map[string]any{"a": []any{"bob@example.com"}}
	if _, _, err := redact.Apply(in, []string{"/a/0", redact.Email}); err != nil {
		t.Fatal(err)
	}
	if in["a"].([]any)[0] != "bob@example.com" {
		t.Fatalf("input was modified: %v", in)
	}
}

func TestApplyRejectsUnknownRules(t *testing.T) {
	t.Parallel()
	for _, rule := range []string{"phone_number", "employee_id", "/a/~2b"} {
		if _, _, err := redact.Apply(map[string]any{}, []string{rule}); err == nil {
			t.Errorf("rule %q: want an error", rule)
		}
	}
}

func TestSelected(t *testing.T) {
	t.Parallel()
	sel, unknown := redact.Selected([]string{"secret", "iban", "employee_id", "private_key"})
	if d := cmp.Diff([]string{"secret", "private_key", "iban"}, sel); d != "" {
		t.Errorf("selected (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"employee_id"}, unknown); d != "" {
		t.Errorf("unknown (-want +got):\n%s", d)
	}
}

func FuzzApply(f *testing.F) {
	for _, s := range []string{"bob@example.com", "4111 1111 1111 1111", "AKIAIOSFODNN7EXAMPLE", "-----BEGIN PRIVATE KEY-----", "/a/*/b", "~"} {
		f.Add(s, "/a/0")
	}
	f.Fuzz(func(t *testing.T, text, pointer string) {
		in := map[string]any{"a": []any{text, map[string]any{"b": text}}}
		before, err := json.Marshal(in)
		if err != nil {
			t.Skip()
		}
		out, counts, err := redact.Apply(in, []string{redact.Email, redact.CardNumber, redact.Secret, pointer})
		after, _ := json.Marshal(in)
		if string(before) != string(after) {
			t.Fatalf("Apply modified its input: %s -> %s", before, after)
		}
		if err != nil {
			return // malformed pointers are rejected, never applied
		}
		if _, err := json.Marshal(out); err != nil || len(counts) != 4 {
			t.Fatalf("output %v (%v), counts %v", out, err, counts)
		}
	})
}

func TestApplyMasksWhatItCannotScan(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("x", 300<<10)
	out, counts, err := redact.Apply(map[string]any{"a": big}, []string{redact.Email, "/b"})
	if err != nil {
		t.Fatal(err)
	}
	if out != redact.Mask || len(counts) != 2 || counts[0].Count == 0 {
		t.Fatalf("Apply = %v, %v; want the whole value masked and a count per rule", out, counts)
	}
}

// TestApplyMasksCopies: a value a pointer redacts is masked in every
// string that repeats it, as the JSON text mirror of an MCP tool result's
// structuredContent does; in prose, short values are left alone.
func TestApplyMasksCopies(t *testing.T) {
	t.Parallel()
	result := map[string]any{
		"structuredContent": map[string]any{"contacts": []any{
			map[string]any{"name": "Ada", "phone": "+49 30 1234567", "pin": "42", "note": `say "hi"`},
		}},
		"content": []any{
			map[string]any{"type": "text", "text": `{"contacts":[{"name":"Ada","note":"say \"hi\"","phone":"+49 30 1234567","pin":"42"}]}`},
			map[string]any{"type": "text", "text": "Call Ada on +49 30 1234567, pin 42."},
		},
	}
	out, counts, err := redact.Apply(result, []string{"/structuredContent/contacts/*/phone", "/structuredContent/contacts/*/pin", "/structuredContent/contacts/*/note"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range counts {
		if c.Count != 1 {
			t.Errorf("%s replaced %d values, want 1 (copies are not counted)", c.Rule, c.Count)
		}
	}
	content := out.(map[string]any)["content"].([]any)
	mirror := content[0].(map[string]any)["text"].(string)
	if want := `{"contacts":[{"name":"Ada","note":"[REDACTED]","phone":"[REDACTED]","pin":"[REDACTED]"}]}`; mirror != want {
		t.Errorf("mirror = %s\nwant     %s", mirror, want)
	}
	if prose := content[1].(map[string]any)["text"].(string); prose != "Call Ada on [REDACTED], pin 42." {
		t.Errorf("prose = %q", prose)
	}
	if orig := result["content"].([]any)[1].(map[string]any)["text"]; orig != "Call Ada on +49 30 1234567, pin 42." {
		t.Errorf("the input was modified: %q", orig)
	}
}
