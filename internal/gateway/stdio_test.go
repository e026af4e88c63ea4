package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"google.golang.org/protobuf/types/known/structpb"

	mcpv1 "github.com/verdictpdp/verdict/proto/verdict/mcp/v1"
)

// The test binary doubles as the wrapped server: with this variable set it
// runs one instead of the tests.
const (
	serverModeEnv = "VERDICT_STDIO_TEST_SERVER"
	serverLogEnv  = "VERDICT_STDIO_TEST_LOG"
)

func TestMain(m *testing.M) {
	switch os.Getenv(serverModeEnv) {
	case "":
		os.Exit(m.Run())
	case "sdk":
		os.Exit(runTestServer())
	case "echo":
		os.Exit(runEchoServer())
	case "stubborn":
		// Ignores both its stdin closing and SIGTERM.
		signal.Ignore(syscall.SIGTERM)
		time.Sleep(time.Hour)
	}
	os.Exit(2)
}

type queryArgs struct {
	Query string `json:"query,omitempty"`
}

// runTestServer is an MCP server on the official SDK's stdio transport; it
// logs every line it reads and writes to the file serverLogEnv names.
func runTestServer() int {
	logFile, err := os.OpenFile(os.Getenv(serverLogEnv), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return 1
	}
	defer func() { _ = logFile.Close() }()
	fmt.Fprintln(os.Stderr, "test server ready")
	text := func(s string) *sdk.CallToolResult {
		return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: s}}}
	}
	s := sdk.NewServer(&sdk.Implementation{Name: "stdio-test", Version: "1.0.0"}, nil)
	sdk.AddTool(s, &sdk.Tool{Name: "search", Description: "Searches the directory."},
		func(context.Context, *sdk.CallToolRequest, queryArgs) (*sdk.CallToolResult, any, error) {
			return text("found: alice@example.com"), nil, nil
		})
	sdk.AddTool(s, &sdk.Tool{Name: "delete", Description: "Deletes everything.", Annotations: &sdk.ToolAnnotations{DestructiveHint: new(true)}},
		func(context.Context, *sdk.CallToolRequest, queryArgs) (*sdk.CallToolResult, any, error) {
			return text("deleted"), nil, nil
		})
	sdk.AddTool(s, &sdk.Tool{Name: "crash", Description: "Exits mid-call."},
		func(context.Context, *sdk.CallToolRequest, queryArgs) (*sdk.CallToolResult, any, error) {
			os.Exit(3)
			return nil, nil, nil
		})
	sdk.AddTool(s, &sdk.Tool{Name: "confirm", Description: "Asks the user before answering."},
		func(ctx context.Context, req *sdk.CallToolRequest, _ queryArgs) (*sdk.CallToolResult, any, error) {
			res, err := req.Session.Elicit(ctx, &sdk.ElicitParams{Mode: "form", Message: "Proceed?",
				RequestedSchema: map[string]any{"type": "object", "properties": map[string]any{"ok": map[string]any{"type": "boolean"}}}})
			if err != nil {
				return nil, nil, err
			}
			return text(fmt.Sprintf("%s %v", res.Action, res.Content["ok"])), nil, nil
		})
	t := &sdk.LoggingTransport{Transport: &sdk.StdioTransport{}, Writer: logFile}
	if err := s.Run(context.Background(), t); err != nil {
		return 1
	}
	return 0
}

// runEchoServer answers every request with its method as the result, a
// batch with an array plus an answer to an id nobody sent; before
// answering method "big" it writes a line too long for the gateway.
func runEchoServer() int {
	type msg struct {
		ID     json.RawMessage `json:"id,omitempty"`
		Method string          `json:"method"`
	}
	answer := func(m msg) map[string]any {
		return map[string]any{"jsonrpc": "2.0", "id": m.ID, "result": map[string]any{"method": m.Method}}
	}
	enc := json.NewEncoder(os.Stdout)
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		var one msg
		var batch []msg
		var err error
		switch {
		case json.Unmarshal(sc.Bytes(), &batch) == nil:
			out := []map[string]any{{"jsonrpc": "2.0", "id": 999, "result": map[string]any{}}}
			for _, m := range batch {
				out = append(out, answer(m))
			}
			err = enc.Encode(out)
		case json.Unmarshal(sc.Bytes(), &one) == nil && one.ID != nil:
			if one.Method == "big" {
				_ = enc.Encode(map[string]any{"jsonrpc": "2.0", "method": "notifications/message", "params": map[string]any{"pad": strings.Repeat("x", 8192)}})
			}
			err = enc.Encode(answer(one))
		}
		if err != nil {
			return 1
		}
	}
	return 0
}

// stubDecider denies tools/call of delete, hides delete from lists and
// redacts email addresses from results. It records the methods it allowed.
type stubDecider struct {
	mu      sync.Mutex
	allowed []string
}

var email = regexp.MustCompile(`[\w.+-]+@[\w-]+\.[\w.]+`)

func (d *stubDecider) Check(_ context.Context, req *mcpv1.CheckRequest) (*mcpv1.CheckResponse, error) {
	if req.GetMethod() == "tools/call" && req.GetParams().GetFields()["name"].GetStringValue() == "delete" {
		return &mcpv1.CheckResponse{Decision: mcpv1.Decision_DECISION_DENY, DecisionId: "d-deny",
			JsonrpcError: &mcpv1.JsonRpcError{Code: -32001, Message: "delete is not allowed"}}, nil
	}
	d.mu.Lock()
	d.allowed = append(d.allowed, req.GetMethod())
	d.mu.Unlock()
	return &mcpv1.CheckResponse{Decision: mcpv1.Decision_DECISION_ALLOW, DecisionId: "d-allow"}, nil
}

func (d *stubDecider) FilterTools(_ context.Context, req *mcpv1.FilterToolsRequest) (*mcpv1.FilterToolsResponse, error) {
	res := req.GetResult()
	tools := res.GetFields()["tools"].GetListValue()
	var kept []*structpb.Value
	for _, t := range tools.GetValues() {
		if t.GetStructValue().GetFields()["name"].GetStringValue() != "delete" {
			kept = append(kept, t)
		}
	}
	if len(kept) == len(tools.GetValues()) {
		return &mcpv1.FilterToolsResponse{Decision: mcpv1.Decision_DECISION_ALLOW, Result: res}, nil
	}
	res.Fields["tools"] = structpb.NewListValue(&structpb.ListValue{Values: kept})
	return &mcpv1.FilterToolsResponse{Decision: mcpv1.Decision_DECISION_ALLOW, Result: res,
		Removed: []*mcpv1.RemovedEntry{{Name: "delete", Reason: &mcpv1.Reason{Code: "tool_hidden"}}}}, nil
}

func (d *stubDecider) CheckResult(_ context.Context, req *mcpv1.CheckResultRequest) (*mcpv1.CheckResultResponse, error) {
	res := redactValue(structpb.NewStructValue(req.GetResult())).GetStructValue()
	return &mcpv1.CheckResultResponse{Action: mcpv1.ResultAction_RESULT_ACTION_REDACT, Result: res}, nil
}

func redactValue(v *structpb.Value) *structpb.Value {
	switch k := v.GetKind().(type) {
	case *structpb.Value_StringValue:
		return structpb.NewStringValue(email.ReplaceAllString(k.StringValue, "[email]"))
	case *structpb.Value_StructValue:
		out := &structpb.Struct{Fields: map[string]*structpb.Value{}}
		for name, f := range k.StructValue.GetFields() {
			out.Fields[name] = redactValue(f)
		}
		return structpb.NewStructValue(out)
	case *structpb.Value_ListValue:
		out := &structpb.ListValue{}
		for _, el := range k.ListValue.GetValues() {
			out.Values = append(out.Values, redactValue(el))
		}
		return structpb.NewListValue(out)
	default:
		return v
	}
}

// lockedBuffer is a bytes.Buffer safe for concurrent use.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// stdioHarness runs Stdio.Run in-process on pipes, wrapping the test
// binary as the server.
type stdioHarness struct {
	t         *testing.T
	toGW      *io.PipeWriter // the client's side of Run's in
	fromGW    *io.PipeReader // the client's side of Run's out
	lines     *bufio.Reader
	recvd     chan []byte
	stderr    *lockedBuffer
	serverLog string
	done      chan error
	started   time.Time
	cancel    context.CancelFunc
}

func startStdio(t *testing.T, mode string, configure func(*Stdio)) *stdioHarness {
	t.Helper()
	e, err := New(&stubDecider{}, Options{Server: "files"})
	if err != nil {
		t.Fatal(err)
	}
	h := &stdioHarness{t: t, stderr: &lockedBuffer{}, serverLog: filepath.Join(t.TempDir(), "server.log"), done: make(chan error, 1)}
	s := &Stdio{
		Enforcer: e,
		Command:  []string{os.Args[0]},
		// A race-instrumented server would sleep a second before exiting.
		Env:           append(os.Environ(), serverModeEnv+"="+mode, serverLogEnv+"="+h.serverLog, "GORACE=atexit_sleep_ms=0"),
		Caller:        Caller{Subject: &mcpv1.Subject{Id: "alice"}},
		ShutdownGrace: 2 * time.Second,
	}
	if configure != nil {
		configure(s)
	}
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	h.toGW, h.fromGW, h.lines = inW, outR, bufio.NewReader(outR)
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.started = time.Now()
	go func() {
		err := s.Run(ctx, inR, outW, h.stderr)
		_ = outW.Close()
		h.done <- err
	}()
	t.Cleanup(func() {
		_ = inW.Close()
		if h.recvd == nil {
			go func() { _, _ = io.Copy(io.Discard, outR) }()
		}
		_ = h.wait(10 * time.Second)
		cancel()
	})
	return h
}

// wait returns Run's error, failing the test if Run outlives timeout.
func (h *stdioHarness) wait(timeout time.Duration) error {
	h.t.Helper()
	select {
	case err := <-h.done:
		h.done <- err
		return err
	case <-time.After(timeout):
		h.t.Fatalf("Run did not return within %v", timeout)
		return nil
	}
}

// sdkClient connects the official SDK client through the gateway.
// version is the protocol version it asks for (empty: the SDK's latest);
// it accepts every elicitation.
func (h *stdioHarness) sdkClient(version string) *sdk.ClientSession {
	h.t.Helper()
	c := sdk.NewClient(&sdk.Implementation{Name: "stdio-test-client", Version: "1.0.0"}, &sdk.ClientOptions{
		ElicitationHandler: func(context.Context, *sdk.ElicitRequest) (*sdk.ElicitResult, error) {
			return &sdk.ElicitResult{Action: "accept", Content: map[string]any{"ok": true}}, nil
		},
	})
	cs, err := c.Connect(context.Background(), &sdk.IOTransport{Reader: h.fromGW, Writer: h.toGW}, &sdk.ClientSessionOptions{ProtocolVersion: version})
	if err != nil {
		h.t.Fatalf("initialize through the gateway: %v", err)
	}
	return cs
}

// send writes one raw line to the gateway.
func (h *stdioHarness) send(line string) {
	h.t.Helper()
	if _, err := io.WriteString(h.toGW, line+"\n"); err != nil {
		h.t.Fatalf("write: %v", err)
	}
}

// recv reads one line from the gateway as a JSON-RPC message. The first
// call starts reading out in the background, so that the gateway never
// blocks on an answer the test has not read yet.
func (h *stdioHarness) recv() map[string]any {
	h.t.Helper()
	line := h.recvLine()
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		h.t.Fatalf("the gateway wrote a line that is not a JSON object: %q", line)
	}
	return m
}

// recvLine reads one line from the gateway.
func (h *stdioHarness) recvLine() []byte {
	h.t.Helper()
	if h.recvd == nil {
		h.recvd = make(chan []byte, 64)
		go func() {
			defer close(h.recvd)
			for {
				line, err := h.lines.ReadBytes('\n')
				if err != nil {
					return
				}
				h.recvd <- line
			}
		}()
	}
	select {
	case line, ok := <-h.recvd:
		if !ok {
			h.t.Fatal("the gateway closed its output")
		}
		return line
	case <-time.After(10 * time.Second):
		h.t.Fatal("no line from the gateway")
		return nil
	}
}

// handshake initializes the session with raw lines.
func (h *stdioHarness) handshake() {
	h.t.Helper()
	h.send(`{"jsonrpc":"2.0","id":"init","method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`)
	if m := h.recv(); m["id"] != "init" || m["result"] == nil {
		h.t.Fatalf("initialize answered %v", m)
	}
	h.send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
}

// serverRead is what the server read, one message a line.
func (h *stdioHarness) serverRead() string {
	b, err := os.ReadFile(h.serverLog)
	if err != nil {
		h.t.Fatal(err)
	}
	var read []string
	for l := range strings.Lines(string(b)) {
		if strings.HasPrefix(l, "read: ") {
			read = append(read, l)
		}
	}
	return strings.Join(read, "")
}

func TestStdioSDKClient(t *testing.T) {
	// 2026-07-28 forbids server requests while serving one (multi round-trip
	// requests instead): the confirm tool asks on the older version only.
	for _, version := range []string{"", "2025-11-25"} {
		t.Run("version="+version, func(t *testing.T) { testSDKClient(t, version) })
	}
}

func testSDKClient(t *testing.T, version string) {
	t.Helper()
	h := startStdio(t, "sdk", nil)
	cs := h.sdkClient(version)
	ctx := context.Background()

	tools, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatalf("tools/list: %v", err)
	}
	var names []string
	for _, tl := range tools.Tools {
		names = append(names, tl.Name)
	}
	if len(names) != 3 || strings.Contains(strings.Join(names, ","), "delete") {
		t.Errorf("tools/list = %v, want 3 tools without delete", names)
	}

	callText := func(name string) (string, error) {
		res, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: name, Arguments: map[string]any{"query": "alice"}})
		if err != nil {
			return "", err
		}
		var b strings.Builder
		for _, c := range res.Content {
			if tc, ok := c.(*sdk.TextContent); ok {
				b.WriteString(tc.Text)
			}
		}
		return b.String(), nil
	}

	t.Run("allowed call is redacted", func(t *testing.T) {
		got, err := callText("search")
		if err != nil {
			t.Fatal(err)
		}
		if got != "found: [email]" {
			t.Errorf("search = %q, want the email redacted", got)
		}
	})
	t.Run("denied call gets the policy's error", func(t *testing.T) {
		_, err := callText("delete")
		var we *jsonrpc.Error
		if !errors.As(err, &we) || we.Code != -32001 || we.Message != "delete is not allowed" {
			t.Fatalf("delete: %v, want -32001 delete is not allowed", err)
		}
	})
	t.Run("server request reaches the client and its answer the server", func(t *testing.T) {
		if version == "" {
			t.Skip("no server requests inside a call on 2026-07-28")
		}
		got, err := callText("confirm")
		if err != nil {
			t.Fatal(err)
		}
		if got != "accept true" {
			t.Errorf("confirm = %q, want the client's answer", got)
		}
	})

	if err := cs.Close(); err != nil {
		t.Logf("close: %v", err)
	}
	if err := h.wait(10 * time.Second); err != nil {
		t.Errorf("Run = %v, want the server's clean exit", err)
	}
	read := h.serverRead()
	if strings.Contains(read, `"delete"`) {
		t.Errorf("the server read the denied call:\n%s", read)
	}
	if !strings.Contains(read, `"search"`) || version != "" && !strings.Contains(read, `"action":"accept"`) {
		t.Errorf("the server did not read the allowed calls:\n%s", read)
	}
	if !strings.Contains(h.stderr.String(), "test server ready") {
		t.Errorf("server stderr not passed through: %q", h.stderr.String())
	}
}

func TestStdioRawLines(t *testing.T) {
	h := startStdio(t, "sdk", func(s *Stdio) { s.MaxLineBytes = 2048 })
	h.handshake()
	tests := []struct {
		name string
		line string
		// code is the error answered with id null; 0: nothing answered.
		code float64
	}{
		{"malformed JSON", `{"jsonrpc":"2.0","id":1,"method":`, -32700},
		{"invalid UTF-8", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"x\":\"\xff\"}", -32700},
		{"not JSON-RPC", `{"id":1,"method":"ping"}`, -32600},
		{"empty batch", `[]`, -32600},
		{"over-long line", `{"jsonrpc":"2.0","id":"long","method":"ping","params":{"pad":"` + strings.Repeat("x", 8192) + `"}}`, -32600},
		{"answer to nothing the server asked", `{"jsonrpc":"2.0","id":"never-asked","result":{}}`, 0},
		{"blank line", ``, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.t = t
			h.send(tt.line)
			// A ping after each line shows the stream still works and that
			// nothing else was answered in between.
			h.send(`{"jsonrpc":"2.0","id":"after","method":"ping"}`)
			if tt.code != 0 {
				m := h.recv()
				e, _ := m["error"].(map[string]any)
				if id, ok := m["id"]; !ok || id != nil || e["code"] != tt.code {
					t.Fatalf("answer = %v, want error %v with id null", m, tt.code)
				}
			}
			if m := h.recv(); m["id"] != "after" || m["result"] == nil {
				t.Fatalf("ping answered %v", m)
			}
		})
	}
	h.t = t
	_ = h.toGW.Close()
	if err := h.wait(10 * time.Second); err != nil {
		t.Fatalf("Run = %v", err)
	}
	read := h.serverRead()
	for _, s := range []string{"never-asked", `"long"`, `"x":`} {
		if strings.Contains(read, s) {
			t.Errorf("the server read %s:\n%s", s, read)
		}
	}
}

func TestStdioServerExitsMidCall(t *testing.T) {
	h := startStdio(t, "sdk", nil)
	cs := h.sdkClient("")
	_, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: "crash"})
	var we *jsonrpc.Error
	if !errors.As(err, &we) || we.Code != CodeUnavailable {
		t.Fatalf("crash: %v, want a %d error", err, CodeUnavailable)
	}
	var exit *exec.ExitError
	if err := h.wait(10 * time.Second); !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Fatalf("Run = %v, want exit status 3", err)
	}
}

func TestStdioShutdown(t *testing.T) {
	const grace = 300 * time.Millisecond
	tests := []struct {
		name string
		mode string
		// stop ends the client's side: its stdin or the context.
		stop func(h *stdioHarness)
		// min and max bound how long Run takes to return.
		min, max time.Duration
		killed   bool
	}{
		{"server exits on stdin EOF", "sdk", func(h *stdioHarness) { _ = h.toGW.Close() }, 0, time.Second, false},
		{"context canceled", "sdk", func(h *stdioHarness) { h.cancel() }, 0, time.Second, false},
		{"stubborn server is killed", "stubborn", func(h *stdioHarness) { _ = h.toGW.Close() }, 2 * grace, 2*grace + time.Second, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := startStdio(t, tt.mode, func(s *Stdio) {
				if tt.killed {
					s.ShutdownGrace = grace
				}
			})
			if tt.mode == "sdk" {
				h.handshake()
			} else {
				time.Sleep(100 * time.Millisecond) // let it ignore SIGTERM first
			}
			start := time.Now()
			tt.stop(h)
			err := h.wait(10 * time.Second)
			took := time.Since(start)
			if took < tt.min || took > tt.max {
				t.Errorf("Run returned after %v, want between %v and %v", took, tt.min, tt.max)
			}
			var exit *exec.ExitError
			switch {
			case tt.killed && (!errors.As(err, &exit) || exit.ExitCode() != -1):
				t.Errorf("Run = %v, want the server killed", err)
			case !tt.killed && err != nil:
				t.Errorf("Run = %v, want a clean exit", err)
			}
		})
	}
}

func TestStdioStartError(t *testing.T) {
	e, err := New(&stubDecider{}, Options{Server: "files"})
	if err != nil {
		t.Fatal(err)
	}
	for _, cmd := range [][]string{nil, {"/nonexistent/verdict-test-server"}} {
		s := &Stdio{Enforcer: e, Command: cmd}
		err := s.Run(context.Background(), strings.NewReader(""), io.Discard, io.Discard)
		var exit *exec.ExitError
		if err == nil || errors.As(err, &exit) {
			t.Errorf("Run(%q) = %v, want a start error", cmd, err)
		}
	}
}

func TestStdioBatches(t *testing.T) {
	h := startStdio(t, "echo", func(s *Stdio) { s.MaxLineBytes = 2048 })
	tests := []struct {
		name string
		send string
		// want are the answer lines, each the ids it answers in order (an
		// array line: several).
		want [][]any
	}{
		{"a batch is answered with an array", `[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"tools/list"}]`,
			[][]any{{1.0, 2.0}}},
		{"the gateway answers what it refuses at once", `[{"jsonrpc":"2.0","id":3,"method":"ping"},{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"delete"}}]`,
			[][]any{{4.0}, {3.0}}},
		{"a server line too long is dropped", `{"jsonrpc":"2.0","id":"b","method":"big"}`,
			[][]any{{"b"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.t = t
			h.send(tt.send)
			for _, ids := range tt.want {
				line := h.recvLine()
				var got []map[string]any
				if line[0] == '[' {
					if err := json.Unmarshal(line, &got); err != nil {
						t.Fatal(err)
					}
				} else {
					var m map[string]any
					if err := json.Unmarshal(line, &m); err != nil {
						t.Fatal(err)
					}
					got = []map[string]any{m}
				}
				if (line[0] == '[') != (len(ids) > 1 || strings.HasPrefix(tt.send, "[")) || len(got) != len(ids) {
					t.Fatalf("got %s, want answers to %v", line, ids)
				}
				for i, m := range got {
					if m["id"] != ids[i] {
						t.Fatalf("got %s, want answers to %v", line, ids)
					}
				}
			}
		})
	}
	h.t = t
}
