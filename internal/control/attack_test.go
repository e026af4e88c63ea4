package control

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestOneSubjectCannotDisableKillSwitch: a single caller whose calls
// need approval only ever holds MaxPendingPerSubject pending approvals, but
// each one that expires stays as a record for the retention. By letting
// them expire and asking again, one subject fills MaxRecords; then nobody
// else can ask for approval, and no quarantine (the kill switch) can be
// set.
func TestOneSubjectCannotDisableKillSwitch(t *testing.T) {
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

// TestOneSubjectCannotStarveOthers: a caller that keeps letting its 16
// pending approvals expire and asking again fills the table with final
// records; they are evicted oldest first, so another caller still gets an
// approval.
func TestOneSubjectCannotStarveOthers(t *testing.T) {

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

// TestDigestInexactNonIntegers: JCS writes every number as a double, so a
// number whose exact value is not that double (an integer beyond 2^53 in
// any spelling, a decimal with more digits than a double holds) is refused
// rather than digested like another value a server may read apart.
func TestDigestInexactNonIntegers(t *testing.T) {
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

// TestApprovalSizeIsBounded: an approval keeps the masked arguments for the
// approver to read, at most MaxArgumentBytes of them: a larger call cannot
// be approved (it is refused with approval.too_large), so a caller cannot
// make the PDP hold gigabytes.
func TestApprovalSizeIsBounded(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	big := map[string]any{"text": strings.Repeat("A", 1<<20)}
	g := f.c.Gate(context.Background(), mkCall(t, "mallory", "write", big))
	if g.Outcome != GateRefused || g.Reason.Code != CodeTooLarge {
		t.Errorf("a call with 1 MiB of arguments: %+v, want refused %s", g, CodeTooLarge)
	}
	if st := f.c.Stats(); st.Records != 0 {
		t.Errorf("%d records kept", st.Records)
	}
	fits := map[string]any{"text": strings.Repeat("A", 60<<10)}
	if g := f.c.Gate(context.Background(), mkCall(t, "mallory", "write", fits)); g.Outcome != GatePending {
		t.Errorf("a call with 60 KiB of arguments: %+v, want pending", g)
	}
}
