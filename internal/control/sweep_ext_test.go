package control_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/internal/control"
	"github.com/verdictpdp/verdict/internal/control/boltstore"
)

type allowAllApprovers struct{}

func (allowAllApprovers) Authorize(context.Context, map[string]any) (bool, []control.Reason, error) {
	return true, nil, nil
}

// TestSweepHoldsTheKillSwitch: the sweep writes every expiry in one durable
// step, so a burst of approvals expiring together does not keep a
// quarantine (or a new approval, or a consumption) waiting.
func TestSweepHoldsTheKillSwitch(t *testing.T) {

	if testing.Short() {
		t.Skip("slow")
	}
	store, err := boltstore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	c, err := control.New(context.Background(), store, control.Options{Now: clock, Authorizer: allowAllApprovers{}, MaxPendingPerSubject: 1 << 20, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	const n = 2000
	for i := range n {
		d, _ := control.ArgumentsDigest(map[string]any{"i": i})
		c.Gate(context.Background(), control.Call{Binding: control.Binding{Subject: fmt.Sprint("s", i), Server: "crm", Method: "tools/call", Target: "delete", ArgumentsSHA256: d}})
	}
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	done := make(chan time.Duration)
	go func() {
		start := time.Now()
		_ = c.Sweep(context.Background())
		done <- time.Since(start)
	}()
	time.Sleep(20 * time.Millisecond)
	start := time.Now()
	if _, err := c.Quarantine(context.Background(), control.Approver{ID: "sam"}, control.QuarantineRequest{Kind: control.QuarantineServer, Server: "crm"}); err != nil {
		t.Fatal(err)
	}
	waited := time.Since(start)
	swept := <-done
	t.Logf("sweep of %d expiries took %v; a quarantine set meanwhile waited %v", n, swept, waited)
	if waited > time.Second {
		t.Errorf("the kill switch waited %v for the sweep", waited)
	}
}
