package app

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/verdictpdp/verdict/internal/config"
)

// TestRedisNeverLogsPassword builds clients with a password in the URL and
// in a file, against a Redis that is not there: neither the errors nor the
// start and failure logs carry the password or the URL.
func TestRedisNeverLogsPassword(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close() // nothing listens there now

	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("s3cret-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, r := range []config.Redis{
		{URL: "redis://user:s3cret-url@" + addr + "/0"},
		{URL: "redis://" + addr, PasswordFile: pwFile},
	} {
		var buf bytes.Buffer
		logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
		client, err := newRedisClient(r)
		if err != nil {
			t.Fatal(err)
		}
		if r.PasswordFile != "" && client.Options().Password != "s3cret-file" {
			t.Fatalf("password from the file: %q", client.Options().Password)
		}
		if pingRedis(context.Background(), client, logger) {
			t.Fatal("ping answered with nothing listening")
		}
		h := &redisHealth{logger: logger, addr: client.Options().Addr}
		h.observe(errors.New("dial: refused"))
		h.observe(errors.New("dial: refused"))
		h.observe(nil)
		_ = client.Close()
		out := buf.String()
		if strings.Contains(out, "s3cret") || strings.Contains(out, "redis://") {
			t.Fatalf("log carries a secret or the URL:\n%s", out)
		}
		if n := strings.Count(out, "redis calls failing"); n != 1 || !strings.Contains(out, "redis answering again") {
			t.Fatalf("failures logged %d times, want once, then the recovery:\n%s", n, out)
		}
	}
	// A URL go-redis refuses: the error does not quote the password.
	_, err = newRedisClient(config.Redis{URL: "redis://user:s3cret@" + addr + "/notadb"})
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("bad database: %v", err)
	}
	// An empty password file stops the start.
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := newRedisClient(config.Redis{URL: "redis://" + addr, PasswordFile: empty}); err == nil {
		t.Fatal("empty password file accepted")
	}
}
