// Command pdp is the Verdict policy decision point.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/verdictpdp/verdict/internal/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := app.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
