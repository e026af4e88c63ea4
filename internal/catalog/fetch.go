// Package catalog builds MCP catalog entries (data.mcp.servers.NAME) from
// what a live MCP server lists: it connects with the official Go MCP SDK
// client, reads tools/list, prompts/list and resources/list, pins every
// definition as the policy library does, merges the result into an
// existing data.json without touching operator-set fields, and scans the
// definitions for tool poisoning. It prints nothing and must not import
// internal/app.
package catalog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Bounds on what is read from a server.
const (
	MaxDefinitions      = 10000   // per kind (tools, prompts, resources)
	MaxPages            = 1000    // pages per list
	MaxPageBytes        = 8 << 20 // one list result, as received
	MaxDescriptionBytes = 64 << 10
	MaxSchemaBytes      = 256 << 10
	MaxNameBytes        = 256
)

// ErrLimit is returned when a server lists more than the bounds allow.
var ErrLimit = errors.New("catalog: server listing exceeds a limit")

// Source says how to reach a server: URL (streamable HTTP) or Command
// (stdio, run exactly as given, without a shell).
type Source struct {
	URL     string
	Headers map[string]string
	Command []string
	// HTTPClient, when set, is used for URL (tests).
	HTTPClient *http.Client
}

// Listing is what a server listed: the entries exactly as received
// (decoded with json.Number), so pins match what the gateway sends.
type Listing struct {
	Tools     []map[string]any
	Prompts   []map[string]any
	Resources []map[string]any
}

// Fetch connects to src and lists its tools, prompts and resources.
func Fetch(ctx context.Context, src Source) (*Listing, error) {
	var inner mcp.Transport
	switch {
	case src.URL != "" && len(src.Command) > 0:
		return nil, errors.New("catalog: give a URL or a command, not both")
	case src.URL != "":
		hc := src.HTTPClient
		if hc == nil {
			hc = &http.Client{}
		}
		if len(src.Headers) > 0 {
			base := hc.Transport
			if base == nil {
				base = http.DefaultTransport
			}
			c := *hc
			c.Transport = headerTransport{base: base, headers: src.Headers}
			hc = &c
		}
		inner = &mcp.StreamableClientTransport{Endpoint: src.URL, HTTPClient: hc, DisableStandaloneSSE: true}
	case len(src.Command) > 0:
		inner = &mcp.CommandTransport{Command: exec.CommandContext(ctx, src.Command[0], src.Command[1:]...)} //nolint:gosec // the operator's own command, run without a shell
	default:
		return nil, errors.New("catalog: give a URL or a command")
	}
	rec := &recorder{inner: inner}
	client := mcp.NewClient(&mcp.Implementation{Name: "verdict-catalog", Version: "1"}, nil)
	cs, err := client.Connect(ctx, rec, nil)
	if err != nil {
		return nil, fmt.Errorf("catalog: connect: %w", err)
	}
	defer func() { _ = cs.Close() }()

	l := &Listing{}
	caps := cs.InitializeResult().Capabilities
	if caps == nil || caps.Tools != nil {
		if l.Tools, err = listAll(ctx, rec, "tools/list", "tools", func(c string) (string, error) {
			r, err := cs.ListTools(ctx, &mcp.ListToolsParams{Cursor: c})
			if err != nil {
				return "", err
			}
			return r.NextCursor, nil
		}); err != nil {
			return nil, err
		}
	}
	if caps != nil && caps.Prompts != nil {
		if l.Prompts, err = listAll(ctx, rec, "prompts/list", "prompts", func(c string) (string, error) {
			r, err := cs.ListPrompts(ctx, &mcp.ListPromptsParams{Cursor: c})
			if err != nil {
				return "", err
			}
			return r.NextCursor, nil
		}); err != nil {
			return nil, err
		}
	}
	if caps != nil && caps.Resources != nil {
		if l.Resources, err = listAll(ctx, rec, "resources/list", "resources", func(c string) (string, error) {
			r, err := cs.ListResources(ctx, &mcp.ListResourcesParams{Cursor: c})
			if err != nil {
				return "", err
			}
			return r.NextCursor, nil
		}); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// listAll pages through one list method. call sends one page request with
// the SDK client and returns the next cursor; the entries come from the raw
// result the recorder kept for that request.
func listAll(_ context.Context, rec *recorder, method, member string, call func(cursor string) (string, error)) ([]map[string]any, error) {
	var out []map[string]any
	cursor := ""
	for page := 0; ; page++ {
		if page >= MaxPages {
			return nil, fmt.Errorf("%w: %s has more than %d pages", ErrLimit, method, MaxPages)
		}
		rec.start(method)
		next, err := call(cursor)
		raw, tooBig := rec.take()
		if err != nil {
			return nil, fmt.Errorf("catalog: %s: %w", method, err)
		}
		if tooBig {
			return nil, fmt.Errorf("%w: a %s result is larger than %d bytes", ErrLimit, method, MaxPageBytes)
		}
		if raw == nil {
			return nil, fmt.Errorf("catalog: %s: no result recorded", method)
		}
		items, err := parsePage(raw, member, MaxDefinitions-len(out))
		if err != nil {
			return nil, fmt.Errorf("catalog: %s: %w", method, err)
		}
		out = append(out, items...)
		if next == "" {
			return out, nil
		}
		cursor = next
	}
}

// parsePage returns the entries under member of one raw list result, at
// most limit of them.
func parsePage(raw []byte, member string, limit int) ([]map[string]any, error) {
	var res map[string]json.RawMessage
	if err := json.Unmarshal(raw, &res); err != nil {
		return nil, err
	}
	var items []json.RawMessage
	if r := res[member]; len(r) > 0 && string(r) != "null" {
		if err := json.Unmarshal(r, &items); err != nil {
			return nil, fmt.Errorf("%s: %w", member, err)
		}
	}
	if len(items) > limit {
		return nil, fmt.Errorf("%w: more than %d entries", ErrLimit, MaxDefinitions)
	}
	out := make([]map[string]any, 0, len(items))
	for _, it := range items {
		m, err := decodeObject(it)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

func decodeObject(b []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, errors.New("an entry is not an object")
	}
	return m, nil
}

type headerTransport struct {
	base    http.RoundTripper
	headers map[string]string
}

func (h headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range h.headers {
		r.Header.Set(k, v)
	}
	return h.base.RoundTrip(r)
}

// recorder wraps a transport to keep the raw result of the list request in
// flight: the SDK decodes results into its own types, which drop members
// it does not know, but a pin covers the entry exactly as the server sent
// it.
type recorder struct {
	inner mcp.Transport

	mu      sync.Mutex
	method  string
	ids     map[any]bool
	raw     []byte
	tooBig  bool
	pending bool
}

func (r *recorder) Connect(ctx context.Context) (mcp.Connection, error) {
	c, err := r.inner.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &recConn{Connection: c, rec: r}, nil
}

func (r *recorder) start(method string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.method, r.ids, r.raw, r.tooBig, r.pending = method, map[any]bool{}, nil, false, true
}

func (r *recorder) take() ([]byte, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pending = false
	return r.raw, r.tooBig
}

type recConn struct {
	mcp.Connection
	rec *recorder
}

func (c *recConn) Write(ctx context.Context, m jsonrpc.Message) error {
	if req, ok := m.(*jsonrpc.Request); ok && req.ID.IsValid() {
		c.rec.mu.Lock()
		if c.rec.pending && req.Method == c.rec.method {
			c.rec.ids[req.ID.Raw()] = true
		}
		c.rec.mu.Unlock()
	}
	return c.Connection.Write(ctx, m)
}

func (c *recConn) Read(ctx context.Context) (jsonrpc.Message, error) {
	m, err := c.Connection.Read(ctx)
	if resp, ok := m.(*jsonrpc.Response); ok && err == nil {
		c.rec.mu.Lock()
		if c.rec.pending && c.rec.ids[resp.ID.Raw()] {
			if len(resp.Result) > MaxPageBytes {
				c.rec.tooBig = true
			} else {
				c.rec.raw = append([]byte(nil), resp.Result...)
			}
		}
		c.rec.mu.Unlock()
	}
	return m, err
}
