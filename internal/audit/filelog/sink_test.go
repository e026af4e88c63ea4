package filelog

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/verdictpdp/verdict/internal/audit"
)

func TestWriteRotateReopen(t *testing.T) {
	t.Parallel()
	const batchSize = 8
	key := newKey(t)
	cases := []struct {
		name string
		opts func(*Options)
		// sessions lists how many batches each Open writes before Close.
		sessions []int
		// advance is how far the clock moves before each batch.
		advance time.Duration
		pub     ed25519.PublicKey
		// wantSegments is the number of segment files at the end; 0 to
		// check only that every sealed segment reached MaxBytes.
		wantSegments int
		// wantCheckpoints counts the periodic checkpoints, when >= 0.
		wantCheckpoints int
	}{
		{name: "one session", sessions: []int{3}, wantSegments: 1, wantCheckpoints: 0},
		{name: "reopened", sessions: []int{2, 1, 3}, wantSegments: 3, wantCheckpoints: 0},
		{name: "rotated by size", opts: func(o *Options) { o.MaxBytes = 8 << 10 }, sessions: []int{10, 4}, wantCheckpoints: -1},
		{name: "rotated by age", opts: func(o *Options) { o.MaxAge = time.Hour }, sessions: []int{7}, advance: 25 * time.Minute, wantSegments: 3, wantCheckpoints: 0},
		{name: "checkpoint every 20 records", opts: func(o *Options) { o.CheckpointEvery = 20 }, sessions: []int{6}, wantSegments: 1, wantCheckpoints: 2},
		{
			name:     "signed",
			opts:     func(o *Options) { o.SigningKey, o.CheckpointEvery, o.MaxBytes = key, 16, 8<<10 },
			sessions: []int{9, 2}, pub: public(key), wantCheckpoints: -1,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clock := newClock()
			o := testOptions(t, clock)
			if tc.opts != nil {
				tc.opts(&o)
			}
			total := 0
			for _, batches := range tc.sessions {
				s := open(t, o)
				for range batches {
					clock.Advance(tc.advance)
					write(t, s, records(total, batchSize, clock.Now(), t0.Add(30*24*time.Hour)))
					total += batchSize
				}
				st := s.Status()
				if !st.Healthy || st.Dropped != 0 || st.Written != uint64(batches*batchSize) || st.Name != "file" || st.Target != o.Path {
					t.Errorf("Status = %+v", st)
				}
				closeSink(t, s)
			}
			mustVerify(t, o.Path, tc.pub, total)

			segs := segments(t, o.Path)
			if tc.wantSegments > 0 && len(segs) != tc.wantSegments {
				t.Errorf("%d segments, want %d", len(segs), tc.wantSegments)
			}
			if tc.wantSegments == 0 {
				checkSizes(t, segs, o.MaxBytes, len(tc.sessions))
			}
			if tc.wantCheckpoints >= 0 {
				if n := countLines(t, segs, `"type":"checkpoint"`, `"final":false`); n != tc.wantCheckpoints {
					t.Errorf("%d periodic checkpoints, want %d", n, tc.wantCheckpoints)
				}
			}
		})
	}
}

// checkSizes checks that a log rotated by size: more segments than
// sessions, and every segment sealed by size at least maxBytes and less than
// maxBytes plus one batch.
func checkSizes(t *testing.T, segs []string, maxBytes int64, sessions int) {
	t.Helper()
	if len(segs) <= sessions {
		t.Fatalf("%d segments for %d sessions: no rotation by size", len(segs), sessions)
	}
	rotated := 0
	for _, p := range segs {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() >= maxBytes {
			rotated++
			if fi.Size() > maxBytes+8<<10 {
				t.Errorf("%s has %d bytes, far over MaxBytes %d", p, fi.Size(), maxBytes)
			}
		}
	}
	if rotated < len(segs)-sessions {
		t.Errorf("only %d of %d segments reached MaxBytes", rotated, len(segs))
	}
}

func countLines(t *testing.T, files []string, subs ...string) int {
	t.Helper()
	n := 0
	for _, f := range files {
	lines:
		for _, l := range fileLines(t, f) {
			for _, s := range subs {
				if !strings.Contains(l, s) {
					continue lines
				}
			}
			n++
		}
	}
	return n
}

// TestLineFormat pins the bytes of each kind of line, as the package
// comment describes them.
func TestLineFormat(t *testing.T) {
	t.Parallel()
	clock := newClock()
	o := testOptions(t, clock)
	s := open(t, o)
	rec := audit.Record{
		ID:      "d1",
		Time:    t0,
		Expires: t0.Add(30*24*time.Hour + 500*time.Millisecond),
		JSON:    []byte(`{"decision_id":"d1","result":true}`),
	}
	write(t, s, []audit.Record{rec})
	clock.Advance(time.Minute)
	closeSink(t, s)
	clock.Advance(time.Minute)
	s = open(t, o)
	closeSink(t, s)

	segs := segments(t, o.Path)
	if len(segs) != 2 {
		t.Fatalf("segments %q, want 2", segs)
	}
	one, two := fileLines(t, segs[0]), fileLines(t, segs[1])
	hash := func(l string) string { h := sha256.Sum256([]byte(l)); return hex.EncodeToString(h[:]) }
	zeros := strings.Repeat("0", 64)

	want := []map[string]any{
		{"type": "segment_start", "version": 1.0, "segment": 1.0, "created": "2026-03-01T12:00:00Z",
			"chain": map[string]any{"seg": 1.0, "seq": 0.0, "prev": zeros}},
		nil, // the event, compared byte for byte below
		{"type": "checkpoint", "time": "2026-03-01T12:01:00Z", "records": 1.0, "first": "2026-03-01T12:00:00Z",
			"last": "2026-03-01T12:00:00Z", "expires": "2026-03-31T12:00:01Z", "final": true,
			"chain": map[string]any{"seg": 1.0, "seq": 2.0, "prev": hash(one[1])}},
	}
	if len(one) != len(want) {
		t.Fatalf("segment 1 has %d lines, want %d:\n%s", len(one), len(want), strings.Join(one, "\n"))
	}
	wantEvent := `{"decision_id":"d1","result":true,"chain":{"seg":1,"seq":1,"prev":"` + hash(one[0]) + `","exp":"2026-03-31T12:00:01Z"}}`
	if one[1] != wantEvent {
		t.Errorf("event line\n got %s\nwant %s", one[1], wantEvent)
	}
	for i, w := range want {
		if w == nil {
			continue
		}
		var got map[string]any
		if err := json.Unmarshal([]byte(one[i]), &got); err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(w, got); d != "" {
			t.Errorf("segment 1 line %d (-want +got):\n%s", i+1, d)
		}
	}
	// The next segment starts from the last line of the first.
	var start map[string]any
	if err := json.Unmarshal([]byte(two[0]), &start); err != nil {
		t.Fatal(err)
	}
	wantStart := map[string]any{"type": "segment_start", "version": 1.0, "segment": 2.0, "created": "2026-03-01T12:02:00Z",
		"prev_segment": 1.0, "chain": map[string]any{"seg": 2.0, "seq": 0.0, "prev": hash(one[2])}}
	if d := cmp.Diff(wantStart, start); d != "" {
		t.Errorf("segment 2 line 1 (-want +got):\n%s", d)
	}
}

func TestPeriodicCheckpoints(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		opts  func(*Options)
		steps func(t *testing.T, s *Sink, clock *fakeClock)
		want  int
	}{
		{
			name: "by count",
			opts: func(o *Options) { o.CheckpointEvery = 10 },
			steps: func(t *testing.T, s *Sink, clock *fakeClock) {
				t.Helper()
				for i := range 5 {
					write(t, s, records(i*5, 5, clock.Now(), t0.Add(time.Hour)))
				}
			},
			want: 2,
		},
		{
			name: "by interval, only when records were written since",
			opts: func(o *Options) { o.CheckpointInterval = time.Minute },
			steps: func(t *testing.T, s *Sink, clock *fakeClock) {
				t.Helper()
				write(t, s, records(0, 3, clock.Now(), t0.Add(time.Hour)))
				s.maintain()
				clock.Advance(2 * time.Minute)
				s.maintain()
				clock.Advance(2 * time.Minute)
				s.maintain()
				write(t, s, records(3, 1, clock.Now(), t0.Add(time.Hour)))
				clock.Advance(30 * time.Second)
				s.maintain()
				clock.Advance(30 * time.Second)
				s.maintain()
			},
			want: 2,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clock := newClock()
			o := testOptions(t, clock)
			tc.opts(&o)
			s := open(t, o)
			tc.steps(t, s, clock)
			closeSink(t, s)
			segs := segments(t, o.Path)
			if n := countLines(t, segs, `"type":"checkpoint"`, `"final":false`); n != tc.want {
				t.Errorf("%d periodic checkpoints, want %d", n, tc.want)
			}
			rep := verify(t, o.Path, nil)
			if !rep.OK {
				t.Errorf("Verify: %+v", rep.Problems)
			}
		})
	}
}

// faultyFile fails writes, truncates or syncs on demand, as a full or
// failing disk does.
type faultyFile struct {
	*os.File
	mu                               sync.Mutex
	failWrites, failTruncs, failSync int
	partial                          bool
}

func (f *faultyFile) Write(b []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failWrites > 0 {
		f.failWrites--
		n := 0
		if f.partial {
			n, _ = f.File.Write(b[:len(b)/2])
		}
		return n, syscall.ENOSPC
	}
	return f.File.Write(b)
}

func (f *faultyFile) Truncate(size int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failTruncs > 0 {
		f.failTruncs--
		return syscall.EIO
	}
	return f.File.Truncate(size)
}

func (f *faultyFile) Sync() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failSync > 0 {
		f.failSync--
		return syscall.EIO
	}
	return f.File.Sync()
}

func TestWriteFailure(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		sync bool
		// fault is set on the active segment before the second batch.
		fault func(f *faultyFile)
		// failing is how many batches fail from then on.
		failing int
		wantErr error
	}{
		{name: "disk full after part of the batch", fault: func(f *faultyFile) { f.failWrites, f.partial = 1, true }, failing: 1, wantErr: syscall.ENOSPC},
		{name: "disk full, nothing written", fault: func(f *faultyFile) { f.failWrites = 1 }, failing: 1, wantErr: syscall.ENOSPC},
		{
			name:    "cutting the partial write fails once",
			fault:   func(f *faultyFile) { f.failWrites, f.partial, f.failTruncs = 1, true, 1 },
			failing: 1, wantErr: syscall.ENOSPC,
		},
		{
			name:    "cutting the partial write fails twice",
			fault:   func(f *faultyFile) { f.failWrites, f.partial, f.failTruncs = 1, true, 2 },
			failing: 2, wantErr: syscall.ENOSPC,
		},
		{name: "fsync fails", sync: true, fault: func(f *faultyFile) { f.failSync = 1 }, failing: 1, wantErr: syscall.EIO},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clock := newClock()
			o := testOptions(t, clock)
			o.Sync = tc.sync
			var (
				mu     sync.Mutex
				active *faultyFile
			)
			o.wrapFile = func(f *os.File) segmentFile {
				mu.Lock()
				defer mu.Unlock()
				active = &faultyFile{File: f}
				return active
			}
			s := open(t, o)
			exp := t0.Add(time.Hour)
			write(t, s, records(0, 8, clock.Now(), exp))
			mu.Lock()
			tc.fault(active)
			mu.Unlock()

			good := 8
			for i := range tc.failing {
				err := s.Write(context.Background(), records(100+i*8, 8, clock.Now(), exp))
				if err == nil || i == 0 && !errors.Is(err, tc.wantErr) {
					t.Fatalf("Write %d = %v, want %v", i, err, tc.wantErr)
				}
			}
			st := s.Status()
			if st.Healthy || st.Dropped != uint64(8*tc.failing) || st.Written != 8 || st.LastError == "" || st.LastErrorAt.IsZero() {
				t.Errorf("Status after the failure = %+v", st)
			}
			if strings.Contains(st.LastError, "dec-") {
				t.Errorf("LastError shows record contents: %q", st.LastError)
			}
			write(t, s, records(200, 8, clock.Now(), exp))
			good += 8
			if st := s.Status(); !st.Healthy || st.Written != uint64(good) {
				t.Errorf("Status after a good write = %+v", st)
			}
			closeSink(t, s)
			mustVerify(t, o.Path, nil, good)
		})
	}
}

func TestRefusedRecords(t *testing.T) {
	t.Parallel()
	cases := []struct {
		json   string
		accept bool
	}{
		{`{"decision_id":"a"}`, true},
		{`{}`, true},
		{"  {\"a\":1}\n", true},
		{"{\n  \"a\": [1,\n 2]\n}", true},
		{`{"a":{"type":"nested is fine","chain":1}}`, true},
		{`{"a":"type"}`, true},
		{`[1,2]`, false},
		{`null`, false},
		{`"x"`, false},
		{`not json`, false},
		{`{"a":1}{"b":2}`, false},
		{`{"a":1`, false},
		{``, false},
		{`{"type":"checkpoint"}`, false},
		{`{"Chain":{}}`, false},
		{`{"t\u0079pe":1}`, false},
	}
	clock := newClock()
	o := testOptions(t, clock)
	s := open(t, o)
	var batch []audit.Record
	want := 0
	for _, tc := range cases {
		batch = append(batch, audit.Record{Time: t0, Expires: t0.Add(time.Hour), JSON: []byte(tc.json)})
		if tc.accept {
			want++
		}
	}
	err := s.Write(context.Background(), batch)
	if err == nil {
		t.Fatal("Write accepted records that are not JSON objects")
	}
	st := s.Status()
	if st.Written != uint64(want) || st.Dropped != uint64(len(cases)-want) || !st.Healthy || st.LastError == "" {
		t.Errorf("Status = %+v, want %d written and %d dropped, healthy", st, want, len(cases)-want)
	}
	closeSink(t, s)
	mustVerify(t, o.Path, nil, want)
	// The accepted records are there, in order, with their bytes.
	lines := fileLines(t, segments(t, o.Path)[0])
	i := 1
	for _, tc := range cases {
		if !tc.accept {
			continue
		}
		body := string(trimSpace([]byte(tc.json)))
		if strings.Contains(body, "\n") {
			body = strings.NewReplacer("\n", "", " ", "").Replace(body)
		}
		if !strings.HasPrefix(lines[i], strings.TrimSuffix(body, "}")) {
			t.Errorf("line %d = %s, want the record %s", i+1, lines[i], body)
		}
		i++
	}
}

func TestClosed(t *testing.T) {
	t.Parallel()
	clock := newClock()
	o := testOptions(t, clock)
	s := open(t, o)
	write(t, s, records(0, 2, clock.Now(), t0.Add(time.Hour)))
	closeSink(t, s)
	closeSink(t, s)
	if err := s.Write(context.Background(), records(2, 3, clock.Now(), t0.Add(time.Hour))); !errors.Is(err, ErrClosed) {
		t.Errorf("Write after Close = %v, want ErrClosed", err)
	}
	if st := s.Status(); st.Written != 2 || st.Dropped != 3 {
		t.Errorf("Status = %+v", st)
	}
	mustVerify(t, o.Path, nil, 2)
}
