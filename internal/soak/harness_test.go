package soak

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// envVar turns the suite on; its value is the soak's duration.
const envVar = "VERDICT_SOAK"

const howToRun = "set " + envVar + " to run the soak, fault and capacity tests: " +
	"make soak (10m), make capacity, or " + envVar + "=60s go test ./internal/soak -v -count=1 -timeout 20m"

// soakDuration is the soak's length from VERDICT_SOAK; without it the test
// is skipped.
func soakDuration(t *testing.T) time.Duration {
	t.Helper()
	v := os.Getenv(envVar)
	if v == "" {
		t.Skip(howToRun)
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 10*time.Second {
		t.Fatalf("%s=%q: want a duration of at least 10s, like 60s or 10m", envVar, v)
	}
	return d
}

var (
	buildOnce sync.Once
	binDir    string
	pdpBin    string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// pdpBinary builds ./cmd/pdp once per run.
func pdpBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "verdict-soak-")
		if buildErr != nil {
			return
		}
		pdpBin = filepath.Join(binDir, "pdp")
		out, err := exec.Command("go", "build", "-o", pdpBin, "github.com/verdictpdp/verdict/cmd/pdp").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./cmd/pdp: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return pdpBin
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String()
}

// pdpConfig is what a replica is started with.
type pdpConfig struct {
	bundleURL    string
	publicKey    string // PEM file verifying bundle signatures
	redisURL     string // empty: in-memory rate limits
	redisTimeout string // state.redis.timeout; empty: soakRedisTimeout
	auditFile    string
	collectorURL string
	spoolDir     string
}

// write writes cfg as the YAML (JSON) file pdp serve --config reads.
func (c pdpConfig) write(t *testing.T, dir string) string {
	t.Helper()
	doc := map[string]any{
		"bundles": []any{map[string]any{"name": "soak", "source": c.bundleURL,
			"polling": map[string]any{"min_delay": "200ms", "max_delay": "400ms"}}},
		"bundle_verification": map[string]any{"key_id": "soak", "public_key_file": c.publicKey, "algorithm": "RS256"},
		"library":             false,
		"log":                 map[string]any{"level": "warn"},
	}
	if c.redisURL != "" {
		timeout := c.redisTimeout
		if timeout == "" {
			timeout = soakRedisTimeout
		}
		doc["state"] = map[string]any{"redis": map[string]any{"url": c.redisURL, "timeout": timeout}}
	}
	audit := map[string]any{}
	if c.auditFile != "" {
		audit["file"] = map[string]any{"path": c.auditFile}
	}
	if c.collectorURL != "" {
		audit["http"] = map[string]any{"url": c.collectorURL, "spool_dir": c.spoolDir}
	}
	if len(audit) > 0 {
		doc["audit"] = audit
	}
	raw, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, fmt.Sprintf("verdict-%d.json", time.Now().UnixNano()))
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// replica is `pdp serve` running as a process.
type replica struct {
	t                  *testing.T
	cmd                *exec.Cmd
	grpcAddr, httpAddr string
	logPath            string
	done               chan struct{}
	waitErr            error
}

// startReplica starts the pdp with the config file and waits until it is
// ready (its bundle active). wrap, when given, is a command line the pdp's
// is appended to (prlimit ...).
func startReplica(t *testing.T, cfgPath string, wrap ...string) *replica {
	t.Helper()
	bin := pdpBinary(t)
	r := &replica{t: t, grpcAddr: freeAddr(t), httpAddr: freeAddr(t), done: make(chan struct{})}
	r.logPath = filepath.Join(t.TempDir(), "pdp.log")
	logf, err := os.Create(r.logPath)
	if err != nil {
		t.Fatal(err)
	}
	argv := append(append([]string{}, wrap...), bin, "serve", "--config", cfgPath, "--grpc-addr", r.grpcAddr, "--http-addr", r.httpAddr)
	r.cmd = exec.Command(argv[0], argv[1:]...)
	r.cmd.Stdout, r.cmd.Stderr = logf, logf
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		r.waitErr = r.cmd.Wait()
		_ = logf.Close()
		close(r.done)
	}()
	t.Cleanup(func() {
		r.kill()
		if t.Failed() {
			t.Logf("pdp log (%s), tail:\n%s", cfgPath, r.logTail())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + r.httpAddr + "/readyz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return r
			}
		}
		select {
		case <-r.done:
			t.Fatalf("pdp exited before it was ready (%v):\n%s", r.waitErr, r.logTail())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("pdp not ready within 30s:\n%s", r.logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *replica) pid() int { return r.cmd.Process.Pid }

// kill sends SIGKILL and waits for the process.
func (r *replica) kill() {
	_ = r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.done
}

// stop sends SIGTERM and waits for a clean exit.
func (r *replica) stop(t *testing.T) {
	t.Helper()
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-r.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("pdp did not stop within 30s of SIGTERM:\n%s", r.logTail())
	}
	if r.waitErr != nil {
		t.Errorf("pdp did not stop cleanly: %v\n%s", r.waitErr, r.logTail())
	}
}

func (r *replica) logTail() string {
	raw, _ := os.ReadFile(r.logPath)
	if len(raw) > 4000 {
		raw = raw[len(raw)-4000:]
	}
	return string(raw)
}

// metrics scrapes the admin listener's /metrics.
func (r *replica) metrics(t *testing.T) string {
	t.Helper()
	resp, err := http.Get("http://" + r.httpAddr + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

// metric is the value of one series ("go_goroutines",
// `verdict_audit_records_dropped_total{sink="file"}`), 0 when absent.
func metric(body, series string) float64 {
	for line := range strings.Lines(body) {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err == nil {
				return v
			}
		}
	}
	return 0
}

// status reads /v1/status as loose JSON.
func (r *replica) status(t *testing.T) map[string]any {
	t.Helper()
	resp, err := http.Get("http://" + r.httpAddr + "/v1/status")
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	defer func() { _ = resp.Body.Close() }()
	var st map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// rssKiB is VmRSS of pid.
func rssKiB(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// cpuSeconds is the user and system CPU time pid has used
// (/proc/PID/stat, in clock ticks of 1/100 s).
func cpuSeconds(pid int) (float64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces: count fields after its ')'.
	fields := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+1:]))
	if len(fields) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(fields))
	}
	utime, err1 := strconv.ParseFloat(fields[11], 64)
	stime, err2 := strconv.ParseFloat(fields[12], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: utime %q stime %q", pid, fields[11], fields[12])
	}
	return (utime + stime) / 100, nil
}

// verifyLog runs `pdp audit verify` on the file log.
func verifyLog(t *testing.T, path string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(pdpBinary(t), "audit", "verify", path)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		return ee.ExitCode(), out.String()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, out.String()
}

// logDecisionIDs reads the decision ids of the file log's event lines, in
// the order they were written (segments in order, bookkeeping lines and a
// torn last line skipped).
func logDecisionIDs(t *testing.T, path string) []string {
	t.Helper()
	base := strings.TrimSuffix(path, filepath.Ext(path))
	segs, err := filepath.Glob(base + "-*" + filepath.Ext(path))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(segs)
	var ids []string
	for _, seg := range segs {
		raw, err := os.ReadFile(seg)
		if err != nil {
			t.Fatal(err)
		}
		for line := range bytes.Lines(raw) {
			var ev struct {
				Type       string `json:"type"`
				DecisionID string `json:"decision_id"`
			}
			if json.Unmarshal(line, &ev) != nil || ev.Type != "" || ev.DecisionID == "" {
				continue
			}
			ids = append(ids, ev.DecisionID)
		}
	}
	return ids
}

// median of xs (0 when empty).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// sampler records a replica's RSS and goroutines every interval.
type sampler struct {
	mu         sync.Mutex
	rss        []float64 // MiB
	goroutines []float64
	stopc      chan struct{}
	wg         sync.WaitGroup
}

func startSampler(t *testing.T, r *replica, every time.Duration) *sampler {
	t.Helper()
	s := &sampler{stopc: make(chan struct{})}
	s.wg.Go(func() {
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-s.stopc:
				return
			case <-tick.C:
			}
			kib, err := rssKiB(r.pid())
			if err != nil {
				continue
			}
			resp, err := http.Get("http://" + r.httpAddr + "/metrics")
			if err != nil {
				continue
			}
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			s.mu.Lock()
			s.rss = append(s.rss, float64(kib)/1024)
			s.goroutines = append(s.goroutines, metric(string(body), "go_goroutines"))
			s.mu.Unlock()
		}
	})
	return s
}

func (s *sampler) stop() {
	close(s.stopc)
	s.wg.Wait()
}

// quarters are the medians of the first and last quarter of the samples
// taken after the first skip.
func quarters(xs []float64, skip int) (first, last float64) {
	if len(xs) > skip {
		xs = xs[skip:]
	}
	q := max(len(xs)/4, 1)
	return median(xs[:min(q, len(xs))]), median(xs[len(xs)-min(q, len(xs)):])
}

// waitFor polls cond every 50ms until it holds or within passes.
func waitFor(within time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// httpStatus is the status code of a GET.
func httpStatus(url string) (int, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}
