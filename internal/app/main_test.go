package app_test

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/verdictpdp/verdict/internal/app"
)

// childEnv makes the test binary run `pdp` with its arguments instead of
// the tests, so a test can start the service as a process of its own (and
// kill it).
const childEnv = "VERDICT_TEST_PDP_CHILD"

// serverEnv makes the test binary run the example CRM MCP server on
// standard input and output instead of the tests: the server a stdio
// gateway wraps.
const serverEnv = "VERDICT_TEST_MCP_SERVER"

func TestMain(m *testing.M) {
	if os.Getenv(serverEnv) == "crm" {
		err := newCRMServer().server.Run(context.Background(), &mcp.StdioTransport{})
		if err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	if os.Getenv(childEnv) == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := app.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}
