package filelog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestSegments(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, name := range []string{
		"audit-00000010.jsonl", "audit-00000002.jsonl", "audit-123456789.jsonl", "audit-00000001.jsonl",
		"audit.jsonl", "audit-1.jsonl", "audit-00000003.json", "audit-0000000x.jsonl", "other-00000004.jsonl",
		"audit-00000000.jsonl", "audit-00000005.jsonl.tmp",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "audit-00000004.jsonl"), 0o700); err != nil {
		t.Fatal(err)
	}
	got, err := Segments(filepath.Join(dir, "audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range got {
		names = append(names, filepath.Base(p))
	}
	want := []string{"audit-00000001.jsonl", "audit-00000002.jsonl", "audit-00000010.jsonl", "audit-123456789.jsonl"}
	if d := cmp.Diff(want, names); d != "" {
		t.Errorf("Segments (-want +got):\n%s", d)
	}
	if _, err := Segments(filepath.Join(dir, "missing", "audit.jsonl")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Segments of a missing directory = %v, want ErrNotExist", err)
	}
	if got := segmentPath("/var/log/verdict/audit.jsonl", 12); got != "/var/log/verdict/audit-00000012.jsonl" {
		t.Errorf("segmentPath = %s", got)
	}
	if got := segmentPath("/var/log/audit", 1); got != "/var/log/audit-00000001" {
		t.Errorf("segmentPath without an extension = %s", got)
	}
}

func TestEventLine(t *testing.T) {
	t.Parallel()
	var prev digest
	prev[0], prev[31] = 0xab, 0x01
	exp := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	chain := `"chain":{"seg":3,"seq":7,"prev":"ab` + strings.Repeat("0", 60) + `01","exp":"2026-04-01T00:00:00Z"}`
	cases := []struct {
		in, want string
		err      error
	}{
		{in: `{"a":1}`, want: `{"a":1,` + chain + `}`},
		{in: `{}`, want: `{` + chain + `}`},
		{in: `{ }`, want: `{ ` + chain + `}`},
		{in: " \t{\"a\":1 }\r\n", want: `{"a":1 ,` + chain + `}`},
		{in: "{\n \"a\": [1,\n 2]\n}", want: `{"a":[1,2],` + chain + `}`},
		{in: `{"a":"}\"type\":"}`, want: `{"a":"}\"type\":",` + chain + `}`},
		{in: `{"a":{"type":1},"b":["chain"]}`, want: `{"a":{"type":1},"b":["chain"],` + chain + `}`},
		{in: `{"type":1}`, err: errReserved},
		{in: `{"a":1, "CHAIN":2}`, err: errReserved},
		{in: `{"\u0063hain":2}`, err: errReserved},
		{in: `[{"a":1}]`, err: errNotObject},
		{in: `{"a":1}{}`, err: errNotObject},
		{in: `{"a":}`, err: errNotObject},
		{in: ``, err: errNotObject},
	}
	for _, tc := range cases {
		var scratch bytes.Buffer
		body, err := eventBody([]byte(tc.in), &scratch)
		if !errors.Is(err, tc.err) {
			t.Errorf("eventBody(%q) = %v, want %v", tc.in, err, tc.err)
			continue
		}
		if err != nil {
			continue
		}
		line := appendEvent(nil, body, 3, 7, prev, exp)
		if got := string(line); got != tc.want+"\n" {
			t.Errorf("event line of %q\n got %s\nwant %s", tc.in, got, tc.want)
		}
		li := parseLine(line[:len(line)-1])
		if li.kind != kindEvent || li.seg != 3 || li.seq != 7 || li.prev != prev || !li.exp.Equal(exp) {
			t.Errorf("event line of %q parses as %+v", tc.in, li)
		}
	}
}

func TestExpiry(t *testing.T) {
	t.Parallel()
	cet := time.FixedZone("CET", 3600)
	cases := []struct{ in, want time.Time }{
		{time.Time{}, never},
		{time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC), time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)},
		{time.Date(2026, 1, 1, 12, 0, 0, 1, time.UTC), time.Date(2026, 1, 1, 12, 0, 1, 0, time.UTC)},
		{time.Date(2026, 1, 1, 13, 0, 0, 0, cet), time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)},
		{time.Date(12000, 1, 1, 0, 0, 0, 0, time.UTC), never},
	}
	for _, tc := range cases {
		if got := expiry(tc.in); !got.Equal(tc.want) || got.Location() != time.UTC {
			t.Errorf("expiry(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// TestSignedMessage builds the signed message from the package comment's
// description, field by field, and compares it with what the sink signs.
func TestSignedMessage(t *testing.T) {
	t.Parallel()
	cut := int64(42)
	c := checkpointLine{
		Time:           time.Date(2026, 3, 1, 12, 0, 0, 5, time.UTC),
		Records:        9,
		First:          time.Date(2026, 3, 1, 11, 0, 0, 0, time.UTC),
		Last:           time.Date(2026, 3, 1, 11, 59, 0, 0, time.UTC),
		Expires:        time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC),
		Final:          true,
		Recovered:      true,
		TruncatedBytes: &cut,
		Chain:          chainRef{Seg: 3, Seq: 12, Prev: digest{1, 2, 3}},
	}
	var want bytes.Buffer
	want.WriteString("verdict/filelog/checkpoint/v1\x00")
	put := func(v any) {
		if err := binary.Write(&want, binary.BigEndian, v); err != nil {
			t.Fatal(err)
		}
	}
	put(int64(3))
	put(int64(12))
	want.Write(c.Chain.Prev[:])
	put(int64(9))
	for _, tm := range []time.Time{c.Time, c.First, c.Last, c.Expires} {
		put(tm.Unix())
		put(int64(tm.Nanosecond()))
	}
	want.Write([]byte{1, 1})
	put(int64(42))
	if got := signedMessage(&c); !bytes.Equal(got, want.Bytes()) {
		t.Errorf("signed message\n got %x\nwant %x", got, want.Bytes())
	}
	if len(sigDomain) != 30 {
		t.Errorf("the domain is %d bytes, the package comment says 29 and a zero byte", len(sigDomain))
	}
}

func TestTrustedBody(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{{`{"a":1}`, true}, {`{}`, true}, {`[1]`, false}, {`{"a":1}` + "\n", false}, {"{\"a\":\n1}", false}, {`{`, false}, {``, false}} {
		_, err := trustedBody([]byte(tc.in))
		if (err == nil) != tc.ok {
			t.Errorf("trustedBody(%q) = %v, want ok %v", tc.in, err, tc.ok)
		}
	}
}
