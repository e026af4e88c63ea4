package filelog

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// FuzzVerify feeds arbitrary bytes to Verify as a segment file: it must not
// panic, and must say OK only when it found no problem.
func FuzzVerify(f *testing.F) {
	key := newKey(f)
	for _, k := range [][]byte{nil, key} {
		_, segs := buildLog(f, k)
		for _, p := range segs {
			b, err := os.ReadFile(p)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
			f.Add(b[:len(b)*2/3]) // cut short
		}
	}
	f.Add([]byte{})
	f.Add([]byte("{}\n"))
	f.Add([]byte(`{"chain":{"seg":1,"seq":0,"prev":"` + string(bytes.Repeat([]byte("0"), 64)) + `"}}` + "\n"))
	pub := public(key)
	// A worker runs its inputs one at a time: one file will do.
	path := filepath.Join(f.TempDir(), "audit-00000001.jsonl")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		for _, opts := range []VerifyOptions{{}, {PublicKey: pub}} {
			rep, err := Verify([]string{path}, opts)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if rep.OK != (len(rep.Problems) == 0) {
				t.Fatalf("OK %v with problems %+v", rep.OK, rep.Problems)
			}
		}
	})
}

// FuzzEventBody checks the record check against encoding/json: a record is
// accepted exactly when it is one JSON object without a top-level member
// that encoding/json would read as "type" or "chain", and its event line
// parses back with its chain.
func FuzzEventBody(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `{}`, `{"type":1}`, `{"a":{"chain":1}}`, `{"\u0054ype":1}`, "{\n\"a\":\"\\\"\"}", `[1]`, `{"a":"b"}x`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, js []byte) {
		var scratch bytes.Buffer
		body, err := eventBody(js, &scratch)

		var head struct {
			Type  json.RawMessage `json:"type"`
			Chain json.RawMessage `json:"chain"`
		}
		t2 := trimSpace(js)
		isObject := len(t2) > 0 && t2[0] == '{' && json.Unmarshal(t2, &head) == nil
		reserved := len(head.Type) > 0 || len(head.Chain) > 0
		if (err == nil) != (isObject && !reserved) {
			t.Fatalf("eventBody(%q) = %v; object %v, reserved member %v", js, err, isObject, reserved)
		}
		if err != nil {
			return
		}
		line := appendEvent(nil, body, 1, 2, digest{9}, never)
		li := parseLine(line[:len(line)-1])
		if li.kind != kindEvent || li.seg != 1 || li.seq != 2 || li.prev != (digest{9}) {
			t.Fatalf("event line %q parses as %+v", line, li)
		}
	})
}

// FuzzRecover feeds arbitrary bytes to crash recovery as the newest
// segment: it must not panic, and when it accepts the segment, what it keeps
// and what it cuts must add up to the file.
func FuzzRecover(f *testing.F) {
	_, segs := buildLog(f, nil)
	for _, p := range segs[:1] {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	path := filepath.Join(f.TempDir(), "audit-00000001.jsonl")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		st, err := readNewest(path, 1)
		if err != nil {
			return
		}
		if st.good+st.truncated != int64(len(data)) {
			t.Fatalf("kept %d and cut %d bytes of %d", st.good, st.truncated, len(data))
		}
		if st.sealed && st.truncated != 0 {
			t.Fatalf("a sealed segment with %d bytes to cut", st.truncated)
		}
	})
}
