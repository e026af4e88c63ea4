package filelog

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestCrashRecovery(t *testing.T) {
	t.Parallel()
	const partial = `{"decision_id":"dec-000007","input":{"attri`
	appendBytes := func(b string) func(*testing.T, Options, []string) {
		return func(t *testing.T, _ Options, segs []string) {
			t.Helper()
			f, err := os.OpenFile(segs[0], os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteString(b); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
	// restartAndCrash recovers the log, and crashes while the next segment
	// is being created: it holds only content.
	restartAndCrash := func(content string) func(*testing.T, Options, []string) {
		return func(t *testing.T, o Options, _ []string) {
			t.Helper()
			s := open(t, o)
			abandon(t, s)
			segs := segments(t, o.Path)
			if err := os.WriteFile(segs[len(segs)-1], []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	changed := func(f func(*testing.T, []string)) func(*testing.T, Options, []string) {
		return func(t *testing.T, _ Options, segs []string) { t.Helper(); f(t, segs) }
	}
	cases := []struct {
		name  string
		crash func(*testing.T, Options, []string)
		// wantWarning is in Verify's warnings before Open.
		wantWarning string
		// wantTruncated is the recovered checkpoint's truncated_bytes.
		wantTruncated int64
		// wantErr, when set, is in Open's error, which wraps ErrBrokenChain.
		wantErr string
	}{
		{name: "killed between writes", wantWarning: "no final checkpoint"},
		{name: "killed during a write", crash: appendBytes(partial), wantWarning: "incomplete line of 43 bytes", wantTruncated: int64(len(partial))},
		{name: "zeros after the last line", crash: appendBytes(strings.Repeat("\x00", 512)), wantWarning: "incomplete line", wantTruncated: 512},
		{name: "killed while creating a segment", crash: restartAndCrash(""), wantWarning: "sealed by crash recovery"},
		{name: "killed while writing a segment_start", crash: restartAndCrash(`{"type":"segment_st`), wantWarning: "incomplete line of 19 bytes"},
		{name: "a record changed", crash: changed(editLine(1, 3, `"dec-`, `"dez-`)), wantErr: "audit-00000001.jsonl line 4: the line does not link"},
		{name: "a record deleted", crash: changed(deleteLines(1, 4)), wantErr: "audit-00000001.jsonl line 4: the line does not link"},
		{name: "a line that does not parse", crash: appendBytes("garbage\n"), wantErr: "audit-00000001.jsonl line 10: not a JSON object"},
		{name: "a newest segment that is not ours", crash: restartAndCrash("not a segment"), wantErr: "audit-00000002.jsonl line 1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clock := newClock()
			o := testOptions(t, clock)
			o.CheckpointEvery = 5
			s := open(t, o)
			// Lines: 1 segment_start, 2-6 records, 7 checkpoint, 8-9 records.
			write(t, s, records(0, 5, clock.Now(), t0.Add(time.Hour)))
			clock.Advance(time.Minute)
			write(t, s, records(5, 2, clock.Now(), t0.Add(2*time.Hour)))
			abandon(t, s)
			segs := segments(t, o.Path)
			if tc.crash != nil {
				tc.crash(t, o, segs)
			}

			rep := verify(t, o.Path, nil)
			if tc.wantErr == "" && (!rep.OK || rep.Records != 7 ||
				!slices.ContainsFunc(rep.Warnings, func(w string) bool { return strings.Contains(w, tc.wantWarning) })) {
				t.Errorf("Verify before recovery = %+v, want OK, 7 records, a warning %q", rep, tc.wantWarning)
			}

			clock.Advance(time.Minute)
			s2, err := Open(o)
			if tc.wantErr != "" {
				if err == nil {
					_ = s2.Close(context.Background())
				}
				if !errors.Is(err, ErrBrokenChain) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Open = %v, want ErrBrokenChain naming %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			closeSink(t, s2)

			segs = segments(t, o.Path)
			if len(segs) != 2 {
				t.Fatalf("segments after recovery: %q, want 2", segs)
			}
			lines := fileLines(t, segs[0])
			if len(lines) != 10 {
				t.Fatalf("recovered segment has %d lines, want 9 and a final checkpoint", len(lines))
			}
			cp := parseLine([]byte(lines[9])).cp
			if cp == nil || !cp.Final || !cp.Recovered || cp.TruncatedBytes == nil || *cp.TruncatedBytes != tc.wantTruncated ||
				cp.Records != 7 || !cp.Expires.Equal(t0.Add(2*time.Hour)) || !cp.First.Equal(t0) || !cp.Last.Equal(t0.Add(time.Minute)) {
				t.Errorf("recovered checkpoint = %s", lines[9])
			}
			rep = mustVerify(t, o.Path, nil, 7)
			if !slices.ContainsFunc(rep.Warnings, func(w string) bool { return strings.Contains(w, "sealed by crash recovery") }) {
				t.Errorf("no warning about the recovery: %q", rep.Warnings)
			}
		})
	}
}

// TestKilledWriter kills a process writing the log with SIGKILL, then
// recovers and verifies what it left.
func TestKilledWriter(t *testing.T) {
	if path := os.Getenv("FILELOG_TEST_KILLED_WRITER"); path != "" {
		writeForever(path)
		return
	}
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	cmd := exec.Command(os.Args[0], "-test.run=^TestKilledWriter$")
	cmd.Env = append(os.Environ(), "FILELOG_TEST_KILLED_WRITER="+path)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		segs, _ := Segments(path)
		if len(segs) > 1 {
			break
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatal("the writer did not rotate within 20s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	segs := segments(t, path)
	events := countLines(t, segs, `"exp":"`)
	if rep := verify(t, path, nil); !rep.OK || rep.Records > events || rep.Records < events-1 {
		t.Fatalf("Verify of the killed writer's log = %+v (%d event lines)", rep, events)
	}
	s, err := Open(Options{Path: path})
	if err != nil {
		t.Fatalf("Open after SIGKILL: %v", err)
	}
	closeSink(t, s)
	segs = segments(t, path)
	mustVerify(t, path, nil, countLines(t, segs, `"exp":"`))
}

// writeForever is the killed writer: it writes batches until it is killed.
func writeForever(path string) {
	s, err := Open(Options{Path: path, MaxBytes: 256 << 10, CheckpointEvery: 100})
	if err != nil {
		os.Exit(2)
	}
	exp := time.Now().Add(time.Hour)
	for i := 0; ; i += 16 {
		if err := s.Write(context.Background(), records(i, 16, time.Now(), exp)); err != nil {
			os.Exit(3)
		}
	}
}
