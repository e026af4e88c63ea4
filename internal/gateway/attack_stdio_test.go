package gateway

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mcpv1 "github.com/verdictpdp/verdict/proto/verdict/mcp/v1"
)

// atkPythonServer reads stdin as the Python MCP SDK's stdio_server does
// (io.TextIOWrapper over sys.stdin.buffer, iterated by line: universal
// newlines, so a bare CR ends a line too) and logs every message it
// parses, then answers requests.
const atkPythonServer = `
import io, json, sys
log = open(sys.argv[1], "a")
for line in io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8"):
    try:
        m = json.loads(line)
    except Exception:
        continue
    if not isinstance(m, dict) or "method" not in m:
        continue
    log.write(m["method"] + " " + str((m.get("params") or {}).get("name", "")) + "\n")
    log.flush()
    if "id" in m:
        sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": m["id"], "result": {}}) + "\n")
        sys.stdout.flush()
`

// TestAttackStdioCRSmuggling: JSON allows a bare CR as whitespace, so one
// line the gateway decides as a ping can hold, between two CRs, a whole
// tools/call the policy denies. A server that splits lines on CR (Python's
// universal newlines, as the Python SDK's stdio transport reads) runs it.
func TestAttackStdioCRSmuggling(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not installed")
	}
	dir := t.TempDir()
	script, logPath := filepath.Join(dir, "server.py"), filepath.Join(dir, "server.log")
	if err := os.WriteFile(script, []byte(atkPythonServer), 0o600); err != nil {
		t.Fatal(err)
	}
	e, err := New(&atkDecider{}, Options{Server: "files"})
	if err != nil {
		t.Fatal(err)
	}
	s := &Stdio{Enforcer: e, Command: []string{"python3", script, logPath},
		Caller: Caller{Subject: &mcpv1.Subject{Id: "alice"}}, ShutdownGrace: time.Second}
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- s.Run(context.Background(), inR, outW, io.Discard)
		_ = outW.Close()
	}()
	lines := bufio.NewReader(outR)
	send := func(line string) string {
		t.Helper()
		if _, err := io.WriteString(inW, line+"\n"); err != nil {
			t.Fatal(err)
		}
		got, _ := lines.ReadString('\n')
		return got
	}
	// The denied call, asked plainly, is refused.
	if got := send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_all"}}`); !strings.Contains(got, "-32001") {
		t.Fatalf("plain delete_all: %q, want the policy's refusal", got)
	}
	// The same call, hidden in an unknown member of a ping between CRs.
	go func() { _, _ = io.Copy(io.Discard, lines) }()
	_, _ = io.WriteString(inW, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\",\"x\":\r{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":\"delete_all\"}}\r}\n")
	time.Sleep(time.Second)
	_ = inW.Close()
	select {
	case err := <-done:
		t.Logf("stdio run ended: %v", err) // the wrapped server's exit status does not matter here
	case <-time.After(10 * time.Second):
		t.Fatal("stdio run did not end")
	}
	ran, _ := os.ReadFile(logPath)
	if strings.Contains(string(ran), "tools/call delete_all") {
		t.Errorf("the server ran tools/call delete_all, which the policy denies (server log:\n%s)", ran)
	}
}
