package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// process is a server subprocess whose output goes to a log file.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has exited
	waitErr error
}

// fleet starts subprocesses and stops every one it started.
type fleet struct {
	dir   string // log files
	procs []*process
}

// start runs argv with its output captured in a log file.
func (f *fleet) start(name string, argv []string, env []string) (*process, error) {
	logPath := filepath.Join(f.dir, sanitize(name)+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("%s: log file: %w", name, err)
	}
	// The child gets its own descriptor; ours is not needed after Start.
	defer func() { _ = logFile.Close() }()
	cmd := exec.Command(argv[0], argv[1:]...) //nolint:gosec // the binaries and arguments are the benchmark's own
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	f.procs = append(f.procs, p)
	return p, nil
}

// stopAll stops every process started, in reverse order.
func (f *fleet) stopAll() {
	for i := len(f.procs) - 1; i >= 0; i-- {
		f.procs[i].stop()
	}
	f.procs = nil
}

func (p *process) pid() int { return p.cmd.Process.Pid }

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop asks the process to terminate and kills it if it does not within a
// few seconds.
func (p *process) stop() {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(3 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// exitStatus describes how the process ended; call it after done closed.
func (p *process) exitStatus() string {
	if p.waitErr == nil {
		return "exit status 0"
	}
	return p.waitErr.Error()
}

// logTail returns the end of the process's output, for error messages.
func (p *process) logTail() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return "(no output: " + err.Error() + ")"
	}
	const limit = 4000
	if len(b) > limit {
		b = append([]byte("..."), b[len(b)-limit:]...)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return "(no output)"
	}
	return string(b)
}

// waitReady polls ready until it succeeds, the process exits or the
// timeout passes; the last two return an error quoting the process output.
func (p *process) waitReady(ctx context.Context, timeout time.Duration, ready func(context.Context) error) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		if p.exited() {
			return fmt.Errorf("%s exited before it was ready (%s); its output:\n%s", p.name, p.exitStatus(), p.logTail())
		}
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		last = ready(cctx)
		cancel()
		if last == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", p.name, ctx.Err())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %v (last check: %w); its output:\n%s", p.name, timeout, last, p.logTail())
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// alive returns an error with the process output when it has exited.
func (p *process) alive() error {
	if p.exited() {
		return fmt.Errorf("%s exited (%s); its output:\n%s", p.name, p.exitStatus(), p.logTail())
	}
	return nil
}

// httpOK returns a readiness check that GETs url and wants a 200.
func httpOK(client *http.Client, url string) func(context.Context) error {
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("readiness request: %w", err)
		}
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("readiness: %w", err)
		}
		defer func() { _ = resp.Body.Close() }()
		_, _ = io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	}
}

// tcpOpen returns a readiness check that wants addr to accept connections.
func tcpOpen(addr string) func(context.Context) error {
	return func(ctx context.Context) error {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return fmt.Errorf("readiness: %w", err)
		}
		return c.Close()
	}
}

// freeAddr returns a loopback address with a port that was free a moment
// ago. The child binds it shortly after; a collision shows up as a start
// failure with the child's message.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("pick a free port: %w", err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		return "", fmt.Errorf("pick a free port: %w", err)
	}
	return addr, nil
}

// --- /proc ------------------------------------------------------------------

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat:
// 100 on every Linux architecture Go supports (it is part of the ABI, not
// the kernel's CONFIG_HZ).
const clockTicks = 100

// cpuTime returns the user plus system CPU time of all threads of pid.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("cpu time: %w", err)
	}
	return parseStatCPU(b)
}

// parseStatCPU reads utime and stime (fields 14 and 15) of a
// /proc/<pid>/stat line. The command name (field 2) may contain spaces and
// parentheses, so fields are counted from its closing parenthesis.
func parseStatCPU(stat []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("cpu time: malformed /proc stat")
	}
	fields := strings.Fields(string(stat[i+1:]))
	const utime, stime = 14 - 3, 15 - 3 // fields[0] is field 3
	if len(fields) <= stime {
		return 0, errors.New("cpu time: short /proc stat")
	}
	var ticks int64
	for _, f := range []string{fields[utime], fields[stime]} {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("cpu time: %w", err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// rssBytes returns VmRSS of pid.
func rssBytes(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, fmt.Errorf("rss: %w", err)
	}
	return parseVmRSS(b)
}

func parseVmRSS(status []byte) (int64, error) {
	for line := range strings.Lines(string(status)) {
		rest, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("rss: unexpected VmRSS line %q", strings.TrimSpace(line))
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("rss: %w", err)
		}
		return kb << 10, nil
	}
	return 0, errors.New("rss: no VmRSS in /proc status")
}

// --- pdp --------------------------------------------------------------------

// pdpFeatures are the optional serve flags the pdp binary has.
type pdpFeatures struct {
	cache           bool // --cache
	cacheMaxEntries bool // --cache-max-entries
	cacheTTL        bool // --cache-ttl
	rateLimit       bool // --rate-limit
	evalTimeout     bool // --eval-timeout
}

var flagLine = regexp.MustCompile(`(?m)^\s+--?([a-z][a-z0-9-]*)`)

// probePDP reads `pdp serve --help` for the flags this run may use. The
// decision cache flags are new; a pdp without them is run without them.
func probePDP(ctx context.Context, bin string) (pdpFeatures, error) {
	out, err := exec.CommandContext(ctx, bin, "serve", "--help").CombinedOutput()
	// The flag package exits with status 2 after printing the help.
	if len(out) == 0 {
		return pdpFeatures{}, fmt.Errorf("%s serve --help printed nothing: %w", bin, err)
	}
	flags := map[string]bool{}
	for _, m := range flagLine.FindAllStringSubmatch(string(out), -1) {
		flags[m[1]] = true
	}
	if !flags["grpc-addr"] || !flags["http-addr"] || !flags["bundle"] {
		return pdpFeatures{}, fmt.Errorf("%s serve --help does not list --grpc-addr, --http-addr and --bundle:\n%s", bin, out)
	}
	return pdpFeatures{cache: flags["cache"], cacheMaxEntries: flags["cache-max-entries"], cacheTTL: flags["cache-ttl"], rateLimit: flags["rate-limit"],
		evalTimeout: flags["eval-timeout"]}, nil
}

// pdpServer is a running pdp.
type pdpServer struct {
	proc      *process
	grpcAddr  string
	adminAddr string
}

// startPDP starts `pdp serve` on free ports with the given extra flags and
// waits for /readyz.
func (f *fleet) startPDP(ctx context.Context, name, bin string, httpc *http.Client, flags ...string) (*pdpServer, error) {
	grpcAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	adminAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	argv := append([]string{bin, "serve", "--grpc-addr", grpcAddr, "--http-addr", adminAddr, "--log-level", "error"}, flags...)
	p, err := f.start(name, argv, nil)
	if err != nil {
		return nil, err
	}
	if err := p.waitReady(ctx, 60*time.Second, httpOK(httpc, "http://"+adminAddr+"/readyz")); err != nil {
		return nil, err
	}
	return &pdpServer{proc: p, grpcAddr: grpcAddr, adminAddr: adminAddr}, nil
}

// cacheStats is the "cache" object of pdp's /v1/status.
type cacheStats struct {
	Entries    int64 `json:"entries"`
	Bytes      int64 `json:"bytes"`
	Hits       int64 `json:"hits"`
	Misses     int64 `json:"misses"`
	Evictions  int64 `json:"evictions"`
	MaxEntries int64 `json:"max_entries"`
	// Optional: decisions the cache's write queue dropped.
	Dropped int64 `json:"dropped"`
}

// cacheStatus reads the cache figures from /v1/status; nil, nil when the
// pdp reports no cache.
func (s *pdpServer) cacheStatus(ctx context.Context, httpc *http.Client) (*cacheStats, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.adminAddr+"/v1/status", nil)
	if err != nil {
		return nil, fmt.Errorf("status request: %w", err)
	}
	resp, err := httpc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s status: %w", s.proc.name, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s status: %s", s.proc.name, resp.Status)
	}
	var st struct {
		Cache *cacheStats `json:"cache"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, fmt.Errorf("%s status: %w", s.proc.name, err)
	}
	return st.Cache, nil
}

// --- opa and the floor --------------------------------------------------------

// opaServer is a running `opa run --server`.
type opaServer struct {
	proc *process
	addr string
}

// startOPA serves the given directories (policy and data files) and waits
// for /health.
func (f *fleet) startOPA(ctx context.Context, name, bin string, httpc *http.Client, dirs ...string) (*opaServer, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	argv := append([]string{bin, "run", "--server", "--addr", addr, "--log-level", "error", "--skip-version-check"}, dirs...)
	p, err := f.start(name, argv, nil)
	if err != nil {
		return nil, err
	}
	if err := p.waitReady(ctx, 60*time.Second, httpOK(httpc, "http://"+addr+"/health")); err != nil {
		return nil, err
	}
	return &opaServer{proc: p, addr: addr}, nil
}

// startFloor runs this binary in -serve-floor mode.
func (f *fleet) startFloor(ctx context.Context, self string) (*process, string, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	p, err := f.start("floor", []string{self, "-serve-floor", addr}, nil)
	if err != nil {
		return nil, "", err
	}
	if err := p.waitReady(ctx, 30*time.Second, tcpOpen(addr)); err != nil {
		return nil, "", err
	}
	return p, addr, nil
}

// findOPA returns the opa binary: -opa, else $(go env GOPATH)/bin/opa, else
// opa on PATH.
func findOPA(ctx context.Context, flagPath string) (string, error) {
	if flagPath != "" {
		if _, err := os.Stat(flagPath); err != nil {
			return "", fmt.Errorf("-opa %s: %w", flagPath, err)
		}
		return flagPath, nil
	}
	if out, err := exec.CommandContext(ctx, "go", "env", "GOPATH").Output(); err == nil {
		for _, dir := range filepath.SplitList(strings.TrimSpace(string(out))) {
			p := filepath.Join(dir, "bin", "opa")
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
		}
	}
	if p, err := exec.LookPath("opa"); err == nil {
		return p, nil
	}
	return "", errors.New("opa not found in $(go env GOPATH)/bin or on PATH: install it with " +
		"`go install github.com/open-policy-agent/opa@v1.22.0` or pass -opa PATH")
}

// toolVersion returns the first line of `bin version` that has "Version:",
// or the first line.
func toolVersion(ctx context.Context, bin string) string {
	out, err := exec.CommandContext(ctx, bin, "version").Output()
	if err != nil {
		return "unknown"
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	for _, l := range lines {
		if v, ok := strings.CutPrefix(l, "Version:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return strings.TrimSpace(lines[0])
}

// buildPDP builds ./cmd/pdp of the repository at root into dir.
func buildPDP(ctx context.Context, root, dir string) (string, error) {
	bin := filepath.Join(dir, "pdp")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/pdp") //nolint:gosec // a path in our temporary directory
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/pdp: %w\n%s", err, out)
	}
	return bin, nil
}

// repoRoot finds the module root of github.com/verdictpdp/verdict from dir
// upwards.
func repoRoot(dir string) (string, error) {
	for d := dir; ; d = filepath.Dir(d) {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && bytes.HasPrefix(b, []byte("module github.com/verdictpdp/verdict\n")) {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no github.com/verdictpdp/verdict go.mod in %s or above: run from the repository or pass -repo", dir)
		}
	}
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		default:
			return '-'
		}
	}, s)
}

// machineBusy returns the busy time of all CPUs (everything but idle and
// iowait) from the first line of /proc/stat.
func machineBusy() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, fmt.Errorf("machine cpu: %w", err)
	}
	return parseProcStatBusy(b)
}

func parseProcStatBusy(stat []byte) (time.Duration, error) {
	line, _, _ := bytes.Cut(stat, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 9 || f[0] != "cpu" {
		return 0, errors.New("machine cpu: unexpected /proc/stat")
	}
	// user nice system idle iowait irq softirq steal (guest time is
	// already in user and nice).
	var busy int64
	for i, v := range f[1:9] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("machine cpu: %w", err)
		}
		if i != 3 && i != 4 {
			busy += n
		}
	}
	return time.Duration(busy) * time.Second / clockTicks, nil
}
