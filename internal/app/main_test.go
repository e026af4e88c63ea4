package app_test

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"testing"

	"github.com/verdictpdp/verdict/internal/app"
)

// childEnv makes the test binary run `pdp` with its arguments instead of
// the tests, so a test can start the service as a process of its own (and
// kill it).
const childEnv = "VERDICT_TEST_PDP_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := app.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}
