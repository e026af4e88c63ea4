package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"time"

	"github.com/verdictpdp/verdict/internal/mcp"
)

// Defaults of Stdio.
const (
	DefaultMaxLineBytes  = 4 << 20
	DefaultShutdownGrace = 5 * time.Second
)

// errLineTooLong is a line longer than MaxLineBytes, discarded unread.
var errLineTooLong = errors.New("line too long")

// Stdio wraps a local MCP server process, enforcing on its JSON-RPC stream:
// MCP's stdio transport, one JSON-RPC message or batch per line both ways.
//
// Client lines are decided before they reach the server's stdin; a line
// that is not JSON-RPC is answered with an error (id null) and never
// forwarded. Server lines pass through ServerBody; the answers to a batch
// go back as one array. The server's stderr is copied to errOut. Message
// contents are never logged. An authorization challenge or retry delay
// has no stdio form: the JSON-RPC errors answered carry the refusal.
//
// JSON-RPC wants a batch answered with one array. A batch the gateway
// partly refuses is answered with two: the gateway's own errors at once,
// the server's answers when it sends them.
type Stdio struct {
	Enforcer *Enforcer
	// Command is the server: program and arguments.
	Command []string
	// Env is the server's environment (nil: the gateway's own).
	Env []string
	// Dir is the server's working directory (empty: the gateway's own).
	Dir string
	// Caller is who the client is: stdio carries no tokens, so it is a
	// configured subject.
	Caller Caller
	// MaxLineBytes bounds a line (default DefaultMaxLineBytes). A longer
	// client line is answered with an error (-32600, id null), a longer
	// server line dropped; neither is buffered whole.
	MaxLineBytes int
	Logger       *slog.Logger
	// ShutdownGrace is how long the server has to exit once its stdin is
	// closed, and again after SIGTERM, before it is killed (default
	// DefaultShutdownGrace).
	ShutdownGrace time.Duration
}

// stdioRun is the state of one Run.
type stdioRun struct {
	s      *Stdio
	e      *Enforcer
	conn   *Conn
	log    *slog.Logger
	maxLen int
	// ctx bounds decisions; it outlives Run's ctx so that a shutdown can
	// still decide what the server says while it exits.
	ctx context.Context

	outMu     sync.Mutex
	out       io.Writer
	outClosed bool

	// mu orders a client line's handling against the end of Run: once
	// stopped, no line is forwarded or answered.
	mu      sync.Mutex
	stopped bool
	calls   map[string]struct{}
	stdin   io.WriteCloser

	stopOnce sync.Once
	stop     chan struct{}
}

// Run serves in (client → gateway) and out (gateway → client) until the
// client closes in, ctx is done or the server exits. Either of the first
// two closes the server's stdin, waits ShutdownGrace, sends SIGTERM (to
// its process group, on Unix), waits again and kills it. Calls still in
// flight when the server is gone are answered with an error.
//
// errOut receives the server's stderr (nil: discarded).
//
// Run returns the server's exit error (an *exec.ExitError for a non-zero
// exit or a signal) or the error starting it. When the server exits
// first, Run returns without waiting for in: a read blocked on it ends in
// the background, and nothing it reads is forwarded or answered.
func (s *Stdio) Run(ctx context.Context, in io.Reader, out io.Writer, errOut io.Writer) error {
	if s.Enforcer == nil {
		return errors.New("gateway: stdio: no enforcer")
	}
	if len(s.Command) == 0 || s.Command[0] == "" {
		return errors.New("gateway: stdio: no server command")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	grace := s.ShutdownGrace
	if grace <= 0 {
		grace = DefaultShutdownGrace
	}
	r := &stdioRun{
		s: s, e: s.Enforcer, conn: s.Enforcer.NewConn(), log: s.Logger, maxLen: s.MaxLineBytes,
		out: out, calls: map[string]struct{}{}, stop: make(chan struct{}),
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.maxLen <= 0 {
		r.maxLen = DefaultMaxLineBytes
	}
	decideCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	r.ctx = decideCtx

	cmd := exec.Command(s.Command[0], s.Command[1:]...) //nolint:gosec // the operator's configured server
	cmd.Env, cmd.Dir, cmd.Stderr = s.Env, s.Dir, errOut
	cmd.WaitDelay = grace
	setProcessGroup(cmd)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return fmt.Errorf("gateway: stdio: %w", err)
	}
	// Not StdoutPipe: Wait must not close the pipe under the reader.
	pr, pw, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("gateway: stdio: %w", err)
	}
	cmd.Stdout = pw
	err = cmd.Start()
	_ = pw.Close()
	if err != nil {
		_ = pr.Close()
		return fmt.Errorf("gateway: stdio: start %s: %w", s.Command[0], err)
	}
	r.stdin = stdin
	r.log.Info("gateway: stdio server started", "pid", cmd.Process.Pid)

	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	serverDone := make(chan struct{})
	go func() { defer close(serverDone); r.serveServer(pr) }()
	go r.serveClient(in)

	select {
	case <-exited:
	case <-serverDone:
		r.log.Info("gateway: stdio server closed its stdout")
		r.shutdown(cmd.Process, exited, grace)
	case <-r.stop:
		r.shutdown(cmd.Process, exited, grace)
	case <-ctx.Done():
		r.shutdown(cmd.Process, exited, grace)
	}
	// What the server wrote before exiting is still delivered, unless a
	// process it left behind holds its stdout open.
	select {
	case <-serverDone:
	case <-time.After(grace):
		_ = pr.Close()
		<-serverDone
	}
	_ = pr.Close()
	r.finish()
	r.log.Info("gateway: stdio server exited", "err", waitErr)
	return waitErr
}

// shutdown closes the server's stdin and waits for it to exit, then
// terminates and finally kills it.
func (r *stdioRun) shutdown(p *os.Process, exited <-chan struct{}, grace time.Duration) {
	_ = r.stdin.Close()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-exited:
		return
	case <-t.C:
	}
	r.log.Warn("gateway: stdio server did not exit after its stdin closed: terminating", "pid", p.Pid)
	terminate(p)
	t.Reset(grace)
	select {
	case <-exited:
		return
	case <-t.C:
	}
	r.log.Warn("gateway: stdio server did not exit after SIGTERM: killing", "pid", p.Pid)
	kill(p)
	<-exited
}

// finish answers the calls the server never will and stops all output.
func (r *stdioRun) finish() {
	_ = r.stdin.Close()
	r.mu.Lock()
	r.stopped = true
	keys := make([]string, 0, len(r.calls))
	for k := range r.calls {
		keys = append(keys, k)
	}
	for _, a := range r.e.Unanswered(r.conn, keys, "the MCP server exited before answering") {
		r.write(a)
	}
	r.mu.Unlock()
	r.outMu.Lock()
	r.outClosed = true
	r.outMu.Unlock()
}

// serveClient reads the client's lines until in ends, then stops Run.
func (r *stdioRun) serveClient(in io.Reader) {
	defer r.stopOnce.Do(func() { close(r.stop) })
	lr := newLineReader(in, r.maxLen)
	for {
		line, err := lr.next()
		if err != nil && !errors.Is(err, errLineTooLong) {
			if !errors.Is(err, io.EOF) {
				r.log.Warn("gateway: stdio client input failed", "err", err)
			}
			return
		}
		r.mu.Lock()
		if r.stopped {
			r.mu.Unlock()
			return
		}
		if err != nil {
			r.log.Warn("gateway: stdio client line too long: refused", "max_bytes", r.maxLen)
			r.write(errorResponse(nullID, mcp.CodeInvalidRequest, fmt.Sprintf("the message is longer than %d bytes", r.maxLen), nil))
		} else {
			r.clientLine(line)
		}
		r.mu.Unlock()
	}
}

// clientLine decides one client line, forwards what is allowed and
// answers the rest; r.mu is held.
func (r *stdioRun) clientLine(line []byte) {
	fwd, answer, calls := decideLine(r.ctx, r.e, r.conn, r.s.Caller, line)
	for _, k := range calls {
		r.calls[k] = struct{}{}
	}
	if answer != nil {
		r.write(answer)
	}
	if fwd != nil {
		b := make([]byte, 0, len(fwd)+1)
		if _, err := r.stdin.Write(append(append(b, fwd...), '\n')); err != nil {
			// The calls are answered when the server's exit ends Run.
			r.log.Warn("gateway: stdio write to server failed", "bytes", len(fwd), "err", err)
		}
	}
	// Forget the calls already answered, keeping the set as small as the
	// connection's.
	for k := range r.calls {
		if !r.conn.Pending(k) {
			delete(r.calls, k)
		}
	}
}

// nullID is the id of an answer to a message whose id is unknown.
var nullID = json.RawMessage("null")

// decideLine decides one client line: fwd is the body for the server (nil:
// nothing), answer the gateway's own answer line (nil: none), calls the
// forwarded requests awaiting an answer. A line that is not JSON-RPC is
// answered with its parse error, id null. Blank lines yield nothing.
func decideLine(ctx context.Context, e *Enforcer, c *Conn, who Caller, line []byte) (fwd, answer []byte, calls []string) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return nil, nil, nil
	}
	msgs, batch, err := mcp.ParseSizedMessages(line, e.MaxDepth())
	if err != nil {
		code, reason := mcp.CodeParseError, "JSON-RPC body is not valid JSON"
		var re *mcp.RequestError
		if errors.As(err, &re) {
			code, reason = re.JSONRPCCode, re.Reason
		}
		return nil, errorResponse(nullID, code, reason, nil), nil
	}
	raws, err := Split(line, batch)
	if err != nil || len(raws) != len(msgs) {
		return nil, errorResponse(nullID, mcp.CodeParseError, "JSON-RPC body is not valid JSON", nil), nil
	}
	in := e.Client(ctx, c, who, msgs, raws, batch)
	if len(in.Forward) > 0 {
		fwd = in.Body()
	}
	if len(in.Answers) > 0 {
		answer = in.AnswerBody()
	}
	return fwd, answer, in.Calls
}

// serveServer reads the server's lines until its stdout ends.
func (r *stdioRun) serveServer(stdout io.Reader) {
	lr := newLineReader(stdout, r.maxLen)
	for {
		line, err := lr.next()
		switch {
		case errors.Is(err, errLineTooLong):
			r.log.Warn("gateway: stdio server line too long: dropped", "max_bytes", r.maxLen)
			continue
		case err != nil:
			if !errors.Is(err, io.EOF) && !errors.Is(err, os.ErrClosed) {
				r.log.Warn("gateway: stdio server output failed", "err", err)
			}
			return
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		msgs := r.e.ServerBody(r.ctx, r.conn, line)
		if len(msgs) == 0 {
			continue
		}
		if line[0] == '[' {
			r.write(joinBatch(msgs))
			continue
		}
		for _, m := range msgs {
			r.write(m)
		}
	}
}

// write sends one line to the client; after Run it writes nothing.
func (r *stdioRun) write(msg []byte) {
	r.outMu.Lock()
	defer r.outMu.Unlock()
	if r.outClosed {
		return
	}
	b := make([]byte, 0, len(msg)+1)
	b = append(append(b, msg...), '\n')
	if _, err := r.out.Write(b); err != nil {
		r.outClosed = true
		r.log.Warn("gateway: stdio write to client failed: stopping", "err", err)
		r.stopOnce.Do(func() { close(r.stop) })
	}
}

// lineReader reads newline-terminated lines, discarding (not buffering) a
// line longer than max.
type lineReader struct {
	r   *bufio.Reader
	max int
	buf []byte
}

func newLineReader(r io.Reader, maxLen int) *lineReader {
	return &lineReader{r: bufio.NewReaderSize(r, min(maxLen+1, 64<<10)), max: maxLen}
}

// next returns the next line without its newline. A line longer than max
// is read to its end and reported as errLineTooLong; a last line without
// a newline is returned before io.EOF. The line is valid until the next
// call.
func (lr *lineReader) next() ([]byte, error) {
	lr.buf = lr.buf[:0]
	tooLong := false
	for {
		chunk, err := lr.r.ReadSlice('\n')
		chunk = bytes.TrimSuffix(chunk, []byte("\n"))
		if !tooLong {
			if len(lr.buf)+len(chunk) > lr.max {
				tooLong, lr.buf = true, lr.buf[:0]
			} else {
				lr.buf = append(lr.buf, chunk...)
			}
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err == nil:
		case errors.Is(err, io.EOF) && (tooLong || len(lr.buf) > 0):
		default:
			return nil, err
		}
		if tooLong {
			return nil, errLineTooLong
		}
		return lr.buf, nil
	}
}
