package redisstore

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/verdictpdp/verdict/internal/control"
)

func TestMessageRoundTrip(t *testing.T) {
	t.Parallel()
	ids := func(prefix string, n int) []control.Change {
		out := make([]control.Change, n)
		for i := range out {
			out[i] = control.Change{Kind: control.KindApproval, ID: prefix + strings.Repeat(string(rune('a'+i%26)), 26)}
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		changes []control.Change
		want    message
	}{
		{"kinds in order", []control.Change{
			{Kind: control.KindQuarantine, ID: "qua_" + strings.Repeat("q", 26)},
			{Kind: control.KindApproval, ID: "apr_" + strings.Repeat("a", 26)},
		}, message{src: "ab12", ids: map[control.Kind][]string{
			control.KindApproval:   {"apr_" + strings.Repeat("a", 26)},
			control.KindQuarantine: {"qua_" + strings.Repeat("q", 26)},
		}}},
		{"too many ids", ids("apr_", maxMessageIDs+1), message{src: "ab12", all: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseMessage([]byte(encodeMessage("ab12", tc.changes)))
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got, cmp.AllowUnexported(message{})); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

// FuzzParseMessage: a change message comes from Redis, which anyone with
// access can publish to: parsing never panics, and what it accepts names
// only well-formed ids of known kinds, within the bounds.
func FuzzParseMessage(f *testing.F) {
	f.Add([]byte("v1 ab12\napprovals apr_" + strings.Repeat("a", 26)))
	f.Add([]byte("v1 ab12\nall"))
	f.Add([]byte("v1 ab12\ngrants grt_" + strings.Repeat("b", 26) + " grt_" + strings.Repeat("c", 26) + "\nquarantines qua_" + strings.Repeat("d", 26)))
	f.Add([]byte("v1 ab12\napprovals ../../etc"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := parseMessage(raw)
		if err != nil {
			return
		}
		if !validSrc(m.src) {
			t.Fatalf("accepted source %q", m.src)
		}
		n := 0
		for k, ids := range m.ids {
			for _, id := range ids {
				if !control.ValidID(k, id) {
					t.Fatalf("accepted %s id %q", k, id)
				}
				n++
			}
		}
		if n > maxMessageIDs || (!m.all && n == 0) {
			t.Fatalf("accepted %d ids", n)
		}
	})
}
