package ratelimit_test

import (
	"context"
	"fmt"
	"time"

	"github.com/verdictpdp/verdict/internal/ratelimit"
)

func ExampleMemory() {
	store := ratelimit.NewMemory(ratelimit.MemoryOptions{})
	// From the obligation {key: "alice:crm/export_contacts", limit: 10,
	// period_seconds: 60, burst: 10}.
	rule := ratelimit.Rule{Key: "alice:crm/export_contacts", Limit: 10, Period: 60 * time.Second, Burst: 10}
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	for range 10 {
		if _, err := store.Take(context.Background(), rule, now); err != nil {
			fmt.Println(err)
			return
		}
	}
	res, err := store.Take(context.Background(), rule, now)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("allowed=%v remaining=%d retry_after=%v reset=%v\n", res.Allowed, res.Remaining, res.RetryAfter, res.Reset)
	res, _ = store.Take(context.Background(), rule, now.Add(res.RetryAfter))
	fmt.Printf("allowed=%v remaining=%d retry_after=%v reset=%v\n", res.Allowed, res.Remaining, res.RetryAfter, res.Reset)
	// Output:
	// allowed=false remaining=0 retry_after=6s reset=1m0s
	// allowed=true remaining=0 retry_after=0s reset=1m0s
}
