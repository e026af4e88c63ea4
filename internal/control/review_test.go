package control

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// TestReviewOneSubjectCannotDisableKillSwitch: a single caller whose calls
// need approval only ever holds MaxPendingPerSubject pending approvals, but
// each one that expires stays as a record for the retention. By letting
// them expire and asking again, one subject fills MaxRecords; then nobody
// else can ask for approval, and no quarantine (the kill switch) can be
// set.
func TestReviewOneSubjectCannotDisableKillSwitch(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(o *Options) { o.MaxRecords = 64; o.MaxPendingPerSubject = 16; o.TTL = time.Minute })
	n := 0
	for round := 0; round < 8; round++ {
		for i := 0; i < 16; i++ {
			g := f.c.Gate(context.Background(), mkCall(t, "mallory", fmt.Sprintf("t%d", n), nil))
			n++
			if g.Outcome != GatePending {
				break
			}
		}
		f.clk.Advance(2 * time.Minute) // let them expire; they stay for the retention
		if err := f.c.Sweep(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("records held after mallory's rounds: %d (MaxRecords %d)", f.c.Stats().Records, f.opts.MaxRecords)
	if _, err := f.c.Quarantine(context.Background(), boss, QuarantineRequest{Kind: QuarantineSubject, Subject: "mallory"}); err != nil {
		t.Errorf("quarantining the abusive subject is refused: %v", err)
	}
}

// TestReviewOneSubjectCannotStarveOthers: the same churn leaves no room for
// any other subject's approval: MaxPendingPerSubject bounds what one
// subject holds pending, not what it holds.
func TestReviewOneSubjectCannotStarveOthers(t *testing.T) {
	openFinding(t)
	t.Parallel()
	f := newFixture(t, func(o *Options) { o.MaxRecords = 64; o.MaxPendingPerSubject = 16; o.TTL = time.Minute })
	for n := 0; n < 128; n++ {
		if n%16 == 0 {
			f.clk.Advance(2 * time.Minute)
		}
		f.c.Gate(context.Background(), mkCall(t, "mallory", fmt.Sprintf("t%d", n), nil))
	}
	if g := f.c.Gate(context.Background(), mkCall(t, "alice", "a", nil)); g.Outcome != GatePending {
		t.Errorf("another subject cannot ask for approval: %+v", g.Reason)
	}
}

// TestReviewDigestInexactNonIntegers: exactIntegers only looks at literals
// without '.', 'e' or 'E'. The same integer beyond 2^53 written as
// 9007199254740993.0 or 9.007199254740993e15, and decimals with more
// digits than a double holds, digest like a different value; a server that
// reads numbers exactly (BigDecimal, Python Decimal, arbitrary-precision
// JSON) sees another call than the one approved.
func TestReviewDigestInexactNonIntegers(t *testing.T) {
	t.Parallel()
	for _, c := range [][2]string{
		{`{"id":9007199254740992}`, `{"id":9007199254740993.0}`},
		{`{"id":9007199254740992}`, `{"id":9.007199254740993e15}`},
		{`{"amount":0.1}`, `{"amount":0.1000000000000000000001}`},
	} {
		a, errA := ArgumentsDigest(jsonRaw(c[0]))
		b, errB := ArgumentsDigest(jsonRaw(c[1]))
		if errA == nil && errB == nil && a == b {
			t.Errorf("%s and %s share one binding", c[0], c[1])
		}
	}
}

type jsonRaw string

func (j jsonRaw) MarshalJSON() ([]byte, error) { return []byte(j), nil }

// TestReviewApprovalSizeIsBounded: MaxRecords bounds how many approvals
// are held, but not how large one is: the masked arguments are kept whole,
// in memory and on disk. At the default 10000 records and 1 MiB request
// bodies that is ~10 GiB a caller can make the PDP hold.
func TestReviewApprovalSizeIsBounded(t *testing.T) {
	openFinding(t)
	t.Parallel()
	f := newFixture(t, nil)
	big := map[string]any{"text": strings.Repeat("A", 1<<20)}
	call := mkCall(t, "mallory", "write", big)
	g := f.c.Gate(context.Background(), call)
	if g.Outcome == GatePending && len(g.Approval.Arguments) > 64<<10 {
		t.Errorf("an approval holds %d bytes of arguments", len(g.Approval.Arguments))
	}
}

// openFinding skips a test that reproduces a finding not fixed yet, unless
// VERDICT_REVIEW_OPEN=1: run them to see the findings.
func openFinding(t *testing.T) {
	t.Helper()
	if os.Getenv("VERDICT_REVIEW_OPEN") != "1" {
		t.Skip("open review finding; VERDICT_REVIEW_OPEN=1 runs it")
	}
}
