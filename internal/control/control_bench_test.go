package control

import (
	"context"
	"strconv"
	"testing"
	"time"
)

func BenchmarkQuarantined(b *testing.B) {
	for _, n := range []int{0, 100} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			f := newFixture(b, nil)
			for i := range n {
				if _, err := f.c.Quarantine(context.Background(), boss, QuarantineRequest{Kind: QuarantineTool, Server: "srv" + strconv.Itoa(i), Tool: "t"}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				if q, err := f.c.Quarantined("alice", "files", "read", ""); q != nil || err != nil {
					b.Fatal("quarantined")
				}
			}
		})
	}
}

func BenchmarkGrantsFor(b *testing.B) {
	for _, n := range []int{0, 3} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			f := newFixture(b, nil)
			for i := range n {
				r := GrantRequest{Subject: "alice", Tools: []string{"files/t" + strconv.Itoa(i)}, Duration: time.Hour}
				if i == 2 {
					r.Subject, r.Group = "", "devs"
				}
				if _, err := f.c.Grant(context.Background(), boss, r); err != nil {
					b.Fatal(err)
				}
			}
			groups := []string{"devs", "readers"}
			b.ReportAllocs()
			for b.Loop() {
				if got, err := f.c.GrantsFor("alice", groups); len(got) != n || err != nil {
					b.Fatalf("%d grants, want %d", len(got), n)
				}
			}
		})
	}
}

func BenchmarkGateExisting(b *testing.B) {
	for _, n := range []int{1, 100} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			f := newFixture(b, func(o *Options) { o.MaxPendingPerSubject = n + 1 })
			for i := range n - 1 {
				f.pending(b, mkCall(b, "alice", "t"+strconv.Itoa(i), nil))
			}
			call := mkCall(b, "alice", "delete", map[string]any{"path": "/srv"})
			id := f.pending(b, call)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if g := f.c.Gate(ctx, call); g.Approval == nil || g.Approval.ID != id {
					b.Fatal("not the existing approval")
				}
			}
		})
	}
}
