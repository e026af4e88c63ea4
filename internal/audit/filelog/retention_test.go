package filelog

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestRetention(t *testing.T) {
	t.Parallel()
	h := time.Hour
	type step struct {
		advance time.Duration
		// reopen closes the sink and opens it again (retention runs at
		// Open); otherwise the background work runs once.
		reopen bool
		// want lists the segment numbers left.
		want []int64
	}
	cases := []struct {
		name string
		// segments lists, for each segment, when its records expire (from
		// t0); the last one stays open.
		segments [][]time.Duration
		steps    []step
	}{
		{
			name:     "oldest first",
			segments: [][]time.Duration{{h, h}, {2 * h}, {3 * h}, {100 * h}},
			steps: []step{
				{advance: 30 * time.Minute, want: []int64{1, 2, 3, 4}},
				{advance: time.Hour, want: []int64{2, 3, 4}},
				{advance: time.Hour, want: []int64{3, 4}},
				{advance: time.Hour, want: []int64{4}},
			},
		},
		{
			name:     "a middle segment first",
			segments: [][]time.Duration{{2 * h}, {h}, {3 * h}, {100 * h}},
			steps: []step{
				{advance: 90 * time.Minute, want: []int64{1, 3, 4}},
				{advance: time.Hour, want: []int64{3, 4}},
			},
		},
		{
			name:     "kept until its last record expires",
			segments: [][]time.Duration{{h, 5 * h, h}, {h}, {100 * h}},
			steps: []step{
				{advance: 2 * h, want: []int64{1, 3}},
				{advance: 2 * h, want: []int64{1, 3}},
				{advance: 2 * h, want: []int64{3}},
			},
		},
		{
			name:     "records without an expiry are kept",
			segments: [][]time.Duration{{h, -1}, {h}, {100 * h}},
			steps: []step{
				// Segment 3 is over MaxAge: rotated, then expired.
				{advance: 1000 * h, want: []int64{1, 4}},
			},
		},
		{
			name:     "at Open",
			segments: [][]time.Duration{{h}, {h}, {100 * h}},
			steps: []step{
				{advance: 2 * h, reopen: true, want: []int64{3, 4}},
			},
		},
		{
			// The retention line recording segment 2 is in segment 4,
			// which is deleted in turn; segment 5's segment_start carries
			// the record on.
			name:     "gaps outlive the segment that recorded them",
			segments: [][]time.Duration{{4 * h}, {h}, {5 * h}, {150 * time.Minute}},
			steps: []step{
				{advance: 90 * time.Minute, want: []int64{1, 3, 4}},
				{reopen: true, want: []int64{1, 3, 4, 5}},
				{advance: 70 * time.Minute, want: []int64{1, 3, 5}},
				{advance: 2 * h, want: []int64{3, 5}},
				{reopen: true, want: []int64{3, 6}},
				{advance: 2 * h, want: []int64{6}},
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clock := newClock()
			o := testOptions(t, clock)
			o.RetentionCheck = time.Minute
			counts := map[int64]int{}
			var s *Sink
			for i, exps := range tc.segments {
				s = open(t, o)
				for j, e := range exps {
					exp := t0.Add(e)
					if e < 0 {
						exp = time.Time{}
					}
					write(t, s, records(100*i+j, 1, clock.Now(), exp))
				}
				counts[int64(i+1)] = len(exps)
				if i < len(tc.segments)-1 {
					closeSink(t, s)
				}
			}
			for i, st := range tc.steps {
				clock.Advance(st.advance)
				if st.reopen {
					closeSink(t, s)
					s = open(t, o)
				} else {
					s.maintain()
				}
				var got []int64
				want := 0
				for _, p := range segments(t, o.Path) {
					n, _ := guessNumber(p)
					got = append(got, n)
					want += counts[n]
				}
				if d := cmp.Diff(st.want, got); d != "" {
					t.Fatalf("step %d: segments left (-want +got):\n%s", i+1, d)
				}
				mustVerify(t, o.Path, nil, want)
			}
			closeSink(t, s)
			rep := verify(t, o.Path, nil)
			if !rep.OK {
				t.Fatalf("Verify after Close: %+v", rep.Problems)
			}
			if slices.ContainsFunc(rep.Warnings, func(w string) bool { return strings.Contains(w, "before its records expired") }) {
				t.Errorf("retention deleted records early: %q", rep.Warnings)
			}
		})
	}
}
