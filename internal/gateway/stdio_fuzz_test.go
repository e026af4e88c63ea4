package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"sync"
	"testing"

	mcpv1 "github.com/verdictpdp/verdict/proto/verdict/mcp/v1"
)

// recordingDecider allows a client request or notification when its method
// has an even length, and every answer to a server request; it records
// what it allowed.
type recordingDecider struct {
	mu      sync.Mutex
	allowed map[string]int // method ("" for an answer) → count
}

func (d *recordingDecider) Check(_ context.Context, req *mcpv1.CheckRequest) (*mcpv1.CheckResponse, error) {
	if !req.GetResponse() && len(req.GetMethod())%2 == 1 {
		return &mcpv1.CheckResponse{Decision: mcpv1.Decision_DECISION_DENY,
			JsonrpcError: &mcpv1.JsonRpcError{Code: -32001, Message: "odd"}}, nil
	}
	d.mu.Lock()
	d.allowed[req.GetMethod()]++
	d.mu.Unlock()
	return &mcpv1.CheckResponse{Decision: mcpv1.Decision_DECISION_ALLOW}, nil
}

func (d *recordingDecider) FilterTools(context.Context, *mcpv1.FilterToolsRequest) (*mcpv1.FilterToolsResponse, error) {
	return nil, errors.New("not used")
}

func (d *recordingDecider) CheckResult(context.Context, *mcpv1.CheckResultRequest) (*mcpv1.CheckResultResponse, error) {
	return nil, errors.New("not used")
}

// FuzzStdioClientLine feeds client bytes through the stdio line reader and
// decideLine: no panic; lines are split at newlines and never longer than
// the limit; every line for the client or the server is one valid JSON
// line; nothing is forwarded that the decider did not allow, and what is
// forwarded is the client's own bytes.
func FuzzStdioClientLine(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}`,
		`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"search","arguments":{"q":"x"}}}` + "\n" + `{"jsonrpc":"2.0","method":"notifications/initialized"}`,
		`[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"pong!"},{"jsonrpc":"2.0","id":1,"method":"ping"}]`,
		`{"jsonrpc":"2.0","id":"s1","result":{"roots":[]}}` + "\n" + `{"jsonrpc":"2.0","id":"s1","result":{}}`,
		`{"jsonrpc":"2.0","id":7,"error":{"code":-1,"message":"no"}}`,
		"\n\n  \r\n{\"jsonrpc\":",
		`[]`, `{}`, `null`, `"x"`, "\xff", `{"jsonrpc":"2.0","id":1e999,"method":"ping"}`,
	} {
		f.Add([]byte(s))
	}
	const maxLen = 512
	f.Fuzz(func(t *testing.T, data []byte) {
		d := &recordingDecider{allowed: map[string]int{}}
		e, err := New(d, Options{Server: "files"})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		c := e.NewConn()
		// The server asked the client something: its answer is decided.
		if len(e.ServerBody(ctx, c, []byte(`{"jsonrpc":"2.0","id":"s1","method":"roots/list"}`))) != 1 {
			t.Fatal("server request not passed")
		}

		segments := bytes.Split(data, []byte("\n"))
		if len(segments[len(segments)-1]) == 0 {
			segments = segments[:len(segments)-1]
		}
		lr := newLineReader(bytes.NewReader(data), maxLen)
		for i := 0; ; i++ {
			line, err := lr.next()
			if errors.Is(err, io.EOF) {
				if i != len(segments) {
					t.Fatalf("read %d lines, want %d", i, len(segments))
				}
				return
			}
			if i >= len(segments) {
				t.Fatalf("read more lines than the %d there are", len(segments))
			}
			if errors.Is(err, errLineTooLong) {
				if len(segments[i]) <= maxLen {
					t.Fatalf("line %d of %d bytes refused as too long", i, len(segments[i]))
				}
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(line, segments[i]) {
				t.Fatalf("line %d = %q, want %q", i, line, segments[i])
			}
			d.mu.Lock()
			d.allowed = map[string]int{}
			d.mu.Unlock()
			fwd, answer, calls := decideLine(ctx, e, c, Caller{}, line)
			checkDecided(t, d, line, fwd, answer, calls)
		}
	})
}

// checkDecided checks what decideLine made of line against what d allowed
// while deciding it.
func checkDecided(t *testing.T, d *recordingDecider, line, fwd, answer []byte, calls []string) {
	t.Helper()
	for _, out := range [][]byte{fwd, answer} {
		if out != nil && (!json.Valid(out) || bytes.ContainsAny(out, "\r\n")) {
			t.Fatalf("output is not one JSON line: %q", out)
		}
	}
	if fwd == nil {
		if len(calls) > 0 {
			t.Fatalf("calls %v awaited but nothing forwarded", calls)
		}
		return
	}
	var elems []json.RawMessage
	if bytes.HasPrefix(fwd, []byte("[")) {
		if err := json.Unmarshal(fwd, &elems); err != nil {
			t.Fatal(err)
		}
	} else {
		elems = []json.RawMessage{fwd}
	}
	for _, el := range elems {
		if !bytes.Contains(line, el) {
			t.Fatalf("forwarded %q, which the client did not send in %q", el, line)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(el, &m); err != nil {
			t.Fatal(err)
		}
		method := ""
		if raw, ok := m["method"]; ok {
			if err := json.Unmarshal(raw, &method); err != nil {
				t.Fatal(err)
			}
		}
		if d.allowed[method] == 0 {
			t.Fatalf("forwarded %q, which the decider did not allow", el)
		}
		d.allowed[method]--
	}
}
