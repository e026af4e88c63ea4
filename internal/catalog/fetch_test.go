package catalog

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// serveArg as the first argument makes the test binary serve an MCP server
// on stdio instead of running the tests, so Fetch can start it as a command.
const serveArg = "verdict-test-serve-stdio"

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == serveArg {
		srv := testServer(3, "")
		if err := srv.Run(context.Background(), &mcp.StdioTransport{}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func testServer(tools int, description string) *mcp.Server {
	srv := mcp.NewServer(&mcp.Implementation{Name: "t", Version: "1"}, &mcp.ServerOptions{PageSize: 2})
	for i := range tools {
		d := description
		if d == "" {
			d = fmt.Sprintf("Tool number %d.", i)
		}
		srv.AddTool(&mcp.Tool{Name: fmt.Sprintf("t%02d", i), Description: d, InputSchema: map[string]any{"type": "object"}},
			func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
				return &mcp.CallToolResult{}, nil
			})
	}
	return srv
}

func serveHTTP(t *testing.T, srv *mcp.Server) string {
	t.Helper()
	hs := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil))
	t.Cleanup(hs.Close)
	return hs.URL
}

// TestCatalogFetch lists a server over both transports, across pages, and
// pins each entry as the server sent it.
func TestCatalogFetch(t *testing.T) {
	t.Parallel()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}

	sources := map[string]Source{
		"http":  {URL: serveHTTP(t, testServer(3, ""))},
		"stdio": {Command: []string{exe, serveArg}},
	}
	for name, src := range sources {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			l, err := Fetch(context.Background(), src)
			if err != nil {
				t.Fatal(err)
			}
			if len(l.Tools) != 3 { // two pages of two
				t.Fatalf("%d tools, want 3: %v", len(l.Tools), l.Tools)
			}
			s, err := Build(l)
			if err != nil {
				t.Fatal(err)
			}
			e := s.Tools["t01"]
			if e["description"] != "Tool number 1." || e["input_schema"] == nil {
				t.Errorf("t01 entry: %v", e)
			}
			want, _ := Pin(map[string]any{"name": "t01", "description": "Tool number 1.", "inputSchema": map[string]any{"type": "object"}})
			if e["pin_sha256"] != want {
				t.Errorf("pin %v, want %s", e["pin_sha256"], want)
			}
		})
	}
}

// TestCatalogFetchBounds: a server listing more than MaxDefinitions tools,
// or refusing the headers it needs, is an error.
func TestCatalogFetchBounds(t *testing.T) {
	t.Parallel()
	big := mcp.NewServer(&mcp.Implementation{Name: "big", Version: "1"}, &mcp.ServerOptions{PageSize: 5000})
	for i := range MaxDefinitions + 1 {
		big.AddTool(&mcp.Tool{Name: fmt.Sprintf("t%05d", i), InputSchema: map[string]any{"type": "object"}},
			func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
				return &mcp.CallToolResult{}, nil
			})
	}
	if _, err := Fetch(context.Background(), Source{URL: serveHTTP(t, big)}); !errors.Is(err, ErrLimit) {
		t.Errorf("%d tools: error %v, want ErrLimit", MaxDefinitions+1, err)
	}

	srv := testServer(1, "")
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer s3cret" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	if _, err := Fetch(context.Background(), Source{URL: hs.URL}); err == nil {
		t.Error("connected without the header")
	}
	l, err := Fetch(context.Background(), Source{URL: hs.URL, Headers: map[string]string{"Authorization": "Bearer s3cret"}})
	if err != nil || len(l.Tools) != 1 {
		t.Errorf("with the header: %v, %v", l, err)
	}
}
