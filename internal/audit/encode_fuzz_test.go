package audit_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/verdictpdp/verdict/internal/audit"
)

// FuzzEncodeString writes arbitrary strings (decision ids, header values,
// request paths come from the network) through the event encoder: the
// event must be valid JSON and decode to the string, made valid UTF-8.
func FuzzEncodeString(f *testing.F) {
	for _, s := range []string{"", "a", `"\`, "\x00\x1f\x7f", "\xff\xfe", "\u2028", "🙂", "</script>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sink := &memSink{}
		r, err := audit.New(audit.Options{Sinks: []audit.Sink{sink}})
		if err != nil {
			t.Fatal(err)
		}
		in := ast.NewObject([2]*ast.Term{ast.StringTerm(s), ast.StringTerm(s)})
		r.Record(&audit.Entry{DecisionID: s, Time: time.Unix(0, 0), Kind: audit.KindEnvoy, Path: s, Input: in, Decision: audit.Allow, Subject: s})
		if err := r.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		raw := sink.records[0].JSON
		var ev map[string]any
		if err := json.Unmarshal(raw, &ev); err != nil {
			t.Fatalf("event for %q is not JSON: %v\n%s", s, err, raw)
		}
		want := perByteValid(s)
		if ev["decision_id"] != want || ev["path"] != want || (s != "" && ev["subject"] != want) {
			t.Fatalf("%q came back as %q", s, ev["decision_id"])
		}
		if got := ev["input"].(map[string]any)[want]; got != want {
			t.Fatalf("input member %q = %v", want, got)
		}
	})
}

// perByteValid replaces each byte of invalid UTF-8 with U+FFFD, as
// encoding/json does.
func perByteValid(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteRune(utf8.RuneError)
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}
