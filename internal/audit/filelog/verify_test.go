package filelog

import (
	"crypto/ed25519"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// buildLog writes three sealed segments of 10 records each, in two batches
// of 5 with CheckpointEvery 5, so each segment reads:
//
//	line 1       segment_start
//	lines 2-6    records (seq 1-5)
//	line 7       checkpoint
//	lines 8-12   records
//	line 13      checkpoint
//	line 14      final checkpoint
func buildLog(t testing.TB, key ed25519.PrivateKey) (string, []string) {
	t.Helper()
	clock := newClock()
	o := testOptions(t, clock)
	o.CheckpointEvery, o.SigningKey = 5, key
	n := 0
	for range 3 {
		s := open(t, o)
		for range 2 {
			write(t, s, records(n, 5, clock.Now(), t0.Add(24*time.Hour)))
			n += 5
			clock.Advance(time.Second)
		}
		closeSink(t, s)
	}
	segs := segments(t, o.Path)
	if len(segs) != 3 {
		t.Fatalf("built %d segments, want 3", len(segs))
	}
	for _, p := range segs {
		if l := fileLines(t, p); len(l) != 14 {
			t.Fatalf("%s has %d lines, want 14", p, len(l))
		}
	}
	return o.Path, segs
}

// tampering helpers; segs are the log's files, lines are 1-based.

func editLine(seg, line int, old, repl string) func(*testing.T, []string) {
	return func(t *testing.T, segs []string) {
		t.Helper()
		lines := fileLines(t, segs[seg-1])
		if !strings.Contains(lines[line-1], old) {
			t.Fatalf("segment %d line %d has no %q: %s", seg, line, old, lines[line-1])
		}
		lines[line-1] = strings.Replace(lines[line-1], old, repl, 1)
		writeLines(t, segs[seg-1], lines)
	}
}

func deleteLines(seg int, lines ...int) func(*testing.T, []string) {
	return func(t *testing.T, segs []string) {
		t.Helper()
		all := fileLines(t, segs[seg-1])
		var keep []string
		for i, l := range all {
			if !slices.Contains(lines, i+1) {
				keep = append(keep, l)
			}
		}
		writeLines(t, segs[seg-1], keep)
	}
}

// moveLine moves line from to be line to (both in the original numbering
// of the other lines).
func moveLine(seg, from, to int) func(*testing.T, []string) {
	return func(t *testing.T, segs []string) {
		t.Helper()
		lines := fileLines(t, segs[seg-1])
		l := lines[from-1]
		lines = slices.Delete(lines, from-1, from)
		lines = slices.Insert(lines, to-1, l)
		writeLines(t, segs[seg-1], lines)
	}
}

// copyLine inserts a copy of line from (of segment fromSeg) after line after
// of segment seg.
func copyLine(fromSeg, from, seg, after int) func(*testing.T, []string) {
	return func(t *testing.T, segs []string) {
		t.Helper()
		src := fileLines(t, segs[fromSeg-1])[from-1]
		lines := fileLines(t, segs[seg-1])
		writeLines(t, segs[seg-1], slices.Insert(lines, after, src))
	}
}

func replaceLine(fromSeg, from, seg, line int) func(*testing.T, []string) {
	return func(t *testing.T, segs []string) {
		t.Helper()
		src := fileLines(t, segs[fromSeg-1])[from-1]
		lines := fileLines(t, segs[seg-1])
		lines[line-1] = src
		writeLines(t, segs[seg-1], lines)
	}
}

func removeSegment(seg int) func(*testing.T, []string) {
	return func(t *testing.T, segs []string) {
		t.Helper()
		if err := os.Remove(segs[seg-1]); err != nil {
			t.Fatal(err)
		}
	}
}

func truncateFile(seg, keepBytesFromEnd int) func(*testing.T, []string) {
	return func(t *testing.T, segs []string) {
		t.Helper()
		fi, err := os.Stat(segs[seg-1])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(segs[seg-1], fi.Size()-int64(keepBytesFromEnd)); err != nil {
			t.Fatal(err)
		}
	}
}

func swapFiles(a, b int) func(*testing.T, []string) {
	return func(t *testing.T, segs []string) {
		t.Helper()
		tmp := segs[a-1] + ".tmp"
		for _, mv := range [][2]string{{segs[a-1], tmp}, {segs[b-1], segs[a-1]}, {tmp, segs[b-1]}} {
			if err := os.Rename(mv[0], mv[1]); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestVerifyTampering(t *testing.T) {
	t.Parallel()
	signing, other := newKey(t), newKey(t)
	cases := []struct {
		name   string
		sign   ed25519.PrivateKey
		verify ed25519.PublicKey
		tamper func(*testing.T, []string)
		// want is the first problem; File is the segment number. A zero
		// want means the log verifies.
		want Problem
		// more allows problems after the first.
		more bool
	}{
		{name: "untouched"},
		{name: "untouched, signed", sign: signing, verify: public(signing)},
		{name: "a byte of a record changed", tamper: editLine(2, 3, `"dec-`, `"dez-`), want: Problem{File: "2", Line: 3, Kind: KindEdited}},
		{name: "a record changed so it does not parse", tamper: editLine(2, 3, `{"`, `{'`), want: Problem{File: "2", Line: 3, Kind: KindEdited}},
		{name: "a record's seq changed", tamper: editLine(2, 4, `"seq":3`, `"seq":9`), want: Problem{File: "2", Line: 4, Kind: KindEdited}},
		{name: "a record's prev changed", tamper: editLine(2, 4, `"prev":"`, `"prev":"0`), want: Problem{File: "2", Line: 4, Kind: KindEdited}},
		{
			name: "a final checkpoint changed", tamper: editLine(1, 14, `"final":true`, `"final": true`),
			want: Problem{File: "1", Line: 14, Kind: KindEdited},
		},
		{name: "a record deleted", tamper: deleteLines(2, 4), want: Problem{File: "2", Line: 4, Kind: KindDeleted}},
		{name: "two records deleted", tamper: deleteLines(2, 9, 10), want: Problem{File: "2", Line: 9, Kind: KindDeleted}},
		{name: "the segment_start deleted", tamper: deleteLines(2, 1), want: Problem{File: "2", Line: 1, Kind: KindDeleted}},
		{name: "a copied record inserted", tamper: copyLine(2, 3, 2, 9), want: Problem{File: "2", Line: 10, Kind: KindInserted}},
		{name: "a record repeated", tamper: copyLine(2, 3, 2, 3), want: Problem{File: "2", Line: 4, Kind: KindInserted}},
		{name: "a record of another segment inserted", tamper: copyLine(3, 5, 2, 5), want: Problem{File: "2", Line: 6, Kind: KindInserted}},
		{name: "a record replaced by one of another segment", tamper: replaceLine(3, 3, 2, 3), want: Problem{File: "2", Line: 3, Kind: KindReordered}},
		{name: "two records swapped", tamper: moveLine(2, 5, 4), want: Problem{File: "2", Line: 4, Kind: KindReordered}},
		{name: "a record moved down", tamper: moveLine(2, 3, 6), want: Problem{File: "2", Line: 3, Kind: KindReordered}},
		{name: "a middle segment deleted", tamper: removeSegment(2), want: Problem{File: "3", Line: 1, Kind: KindMissingSegment}},
		{name: "the first segment deleted", tamper: removeSegment(1), want: Problem{File: "2", Line: 1, Kind: KindMissingSegment}},
		{
			name: "two segment files swapped", tamper: swapFiles(2, 3),
			want: Problem{File: "2", Line: 1, Kind: KindReordered}, more: true,
		},
		{
			name: "the last records of a sealed segment deleted", tamper: deleteLines(1, 11, 12),
			want: Problem{File: "1", Line: 11, Kind: KindDeleted},
		},
		{
			name: "the end of a sealed segment cut off", tamper: deleteLines(1, 11, 12, 13, 14),
			want: Problem{File: "1", Line: 10, Kind: KindTruncated},
		},
		{
			name: "a sealed segment cut in the middle of its last line", tamper: truncateFile(1, 20),
			want: Problem{File: "1", Line: 14, Kind: KindTruncated},
		},
		{
			name: "a line appended after the final checkpoint", tamper: copyLine(1, 3, 1, 14),
			want: Problem{File: "1", Line: 15, Kind: KindInserted},
		},
		{
			name: "signed with another key", sign: other, verify: public(signing),
			want: Problem{File: "1", Line: 7, Kind: KindBadSignature}, more: true, // every segment
		},
		{
			name: "not signed, verified with a key", verify: public(signing),
			want: Problem{File: "1", Line: 7, Kind: KindBadSignature}, more: true, // every segment
		},
		{
			name: "a signed checkpoint changed", sign: signing, verify: public(signing),
			tamper: editLine(1, 13, `"time":"2026`, `"time":"2027`),
			want:   Problem{File: "1", Line: 13, Kind: KindBadSignature},
		},
		{
			name: "a signed checkpoint's signature removed", sign: signing, verify: public(signing),
			tamper: editLine(3, 14, `"sig":"`, `"sag":"`),
			want:   Problem{File: "3", Line: 14, Kind: KindBadSignature},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path, segs := buildLog(t, tc.sign)
			if tc.tamper != nil {
				tc.tamper(t, segs)
			}
			rep := verify(t, path, tc.verify)
			if tc.want == (Problem{}) {
				if !rep.OK || len(rep.Problems) > 0 || rep.Records != 30 || rep.Segments != 3 {
					t.Fatalf("Verify = %+v, want OK with 30 records in 3 segments", rep)
				}
				return
			}
			if rep.OK || len(rep.Problems) == 0 {
				t.Fatalf("Verify = %+v, want a problem", rep)
			}
			got := rep.Problems[0]
			got.File = strings.TrimLeft(strings.TrimSuffix(strings.TrimPrefix(filepath.Base(got.File), "audit-"), ".jsonl"), "0")
			if got.Message == "" {
				t.Error("problem without a message")
			}
			got.Message = ""
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("first problem (-want +got):\n%s\nall: %+v", d, rep.Problems)
			}
			if !tc.more && len(rep.Problems) != 1 {
				t.Errorf("%d problems for one change: %+v", len(rep.Problems), rep.Problems)
			}
		})
	}
}

// TestVerifyFileOrder checks that the files may be given in any order, and
// that a file that cannot be read is an error, not a problem.
func TestVerifyFileOrder(t *testing.T) {
	t.Parallel()
	_, segs := buildLog(t, nil)
	rev := slices.Clone(segs)
	slices.Reverse(rev)
	rep, err := Verify(rev, VerifyOptions{})
	if err != nil || !rep.OK || rep.Records != 30 {
		t.Errorf("Verify(reversed) = %+v, %v", rep, err)
	}
	if !slices.ContainsFunc(rep.Warnings, func(w string) bool { return strings.Contains(w, "signatures were not checked") }) {
		t.Errorf("no warning that signatures were not checked: %q", rep.Warnings)
	}
	if _, err := Verify(append(segs, segs[0]+".missing"), VerifyOptions{}); err == nil {
		t.Error("Verify of a missing file: no error")
	}
}
