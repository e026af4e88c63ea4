package soak

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/internal/bundle/bundletest"
	"github.com/verdictpdp/verdict/internal/redistest"
)

// Load during the faults: modest, so that the faults and not the host's
// CPU decide what happens.
const (
	faultRate    = 300
	faultWorkers = 16
)

// recorder keeps every observation of a run.
type recorder struct {
	mu  sync.Mutex
	obs []observation
}

func (r *recorder) add(o observation) {
	r.mu.Lock()
	r.obs = append(r.obs, o)
	r.mu.Unlock()
}

func (r *recorder) all() []observation {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]observation(nil), r.obs...)
}

// background runs l until stop is called.
type background struct {
	cancel context.CancelFunc
	done   chan *tally
}

func startLoad(l load, c *clients) *background {
	ctx, cancel := context.WithCancel(context.Background())
	bg := &background{cancel: cancel, done: make(chan *tally, 1)}
	go func() { bg.done <- l.run(ctx, c) }()
	return bg
}

func (b *background) stop() *tally {
	b.cancel()
	return <-b.done
}

// faultEnv is one replica with what a fault needs.
type faultEnv struct {
	s   signer
	b   *bundleServer
	dir string
	cfg pdpConfig
}

func newFaultEnv(t *testing.T) *faultEnv {
	t.Helper()
	e := &faultEnv{s: newSigner(t), b: newBundleServer(t), dir: t.TempDir()}
	e.b.serve(t, e.s, "A")
	e.cfg = pdpConfig{bundleURL: e.b.url(), publicKey: e.s.pubFile}
	return e
}

// TestFaults injects each fault while the mixed load runs and asserts the
// documented behaviour.
func TestFaults(t *testing.T) {
	soakDuration(t)
	t.Run("redis killed and restarted", faultRedis)
	t.Run("audit collector down then back", faultCollector)
	t.Run("bundle server failing", faultBundleServer)
	t.Run("audit disk full", faultDiskFull)
	t.Run("SIGKILL mid-write", faultSIGKILL)
}

// faultRedis: while Redis is down every rate-limited request is refused
// as state.unavailable (fail closed), none gets past a limit, and the
// replica recovers by itself when Redis is back.
func faultRedis(t *testing.T) {
	redis := redistest.Start(t)
	e := newFaultEnv(t)
	e.cfg.redisURL, e.cfg.redisTimeout = redis.URL(), "100ms"
	r := startReplica(t, e.cfg.write(t, e.dir))
	c := dial(t, r.grpcAddr, 2)

	var rec recorder
	bg := startLoad(load{rate: faultRate, workers: faultWorkers, expect: e.b, observe: rec.add}, c)
	// A subject with a limit of 5 a minute, probed every 50ms.
	var tight recorder
	tightBg := startLoad(load{rate: 20, workers: 1, observe: tight.add,
		subject: func(int, int) string { return "tight-1" }}, dial(t, r.grpcAddr, 1))

	time.Sleep(3 * time.Second)
	killAt := time.Now()
	redis.Kill()
	time.Sleep(3 * time.Second)
	restartAt := time.Now()
	redis.Restart()
	var recovered time.Time
	waitFor(15*time.Second, func() bool {
		for _, o := range rec.all() {
			if o.start.After(restartAt) && o.a.allowed {
				recovered = o.at
				return true
			}
		}
		return false
	})
	time.Sleep(3 * time.Second)
	tl := bg.stop()
	tightBg.stop()

	const edge = 300 * time.Millisecond // the calls in flight at the kill, 100ms timeout
	var before, down, after, downAllowed, downRefused, downNotRefused, afterRefused int
	downCodes := map[string]int{} // case/code while down
	for _, o := range rec.all() {
		switch {
		case o.at.Before(killAt):
			// Answered before the kill; a call in flight at the kill may
			// meet it and be refused, and is judged by neither case.
			before++
			if o.v != ok {
				t.Errorf("before the kill: %v %+v", o.k.name, o.a)
			}
		case o.start.After(killAt.Add(edge)) && o.at.Before(restartAt):
			down++
			if o.a.allowed {
				downAllowed++
			}
			if o.a.code == "state.unavailable" {
				downRefused++
			} else if o.k.want["A"] {
				downNotRefused++ // the policy allows it: only the limit can refuse it
			}
			downCodes[o.k.name+"/"+o.a.code]++
		case !recovered.IsZero() && o.start.After(recovered.Add(time.Second)):
			after++
			if o.v != ok {
				afterRefused++
			}
		}
	}
	if tl.get(wrong) != 0 || tl.get(stale) != 0 || tl.get(failed) != 0 {
		t.Errorf("wrong %d, stale %d, failed %d; first: %v", tl.get(wrong), tl.get(stale), tl.get(failed), tl.examples)
	}
	if down == 0 || downAllowed != 0 {
		t.Errorf("while Redis was down: %d answers, %d allowed; want none allowed (fail closed)", down, downAllowed)
	}
	// The policy denies half the mix before any limit is looked at; every
	// request it allows must be refused as state.unavailable.
	if downRefused == 0 || downNotRefused != 0 {
		t.Errorf("while Redis was down: %d answers refused as state.unavailable, %d the policy allows refused otherwise", downRefused, downNotRefused)
	}
	if recovered.IsZero() {
		t.Fatalf("no request allowed within 15s of Redis coming back")
	}
	if after == 0 || afterRefused != 0 {
		t.Errorf("after recovery: %d of %d answers not right", afterRefused, after)
	}
	// The tight subject: 5 a minute for each of its two keys (ext_authz
	// and MCP); Redis restarts empty.
	tightAllowed := map[string][3]int{} // key → allowed before, while down, after
	for _, o := range tight.all() {
		if !o.a.allowed {
			continue
		}
		key := map[bool]string{true: "mcp", false: "envoy"}[o.k.mcp]
		n := tightAllowed[key]
		switch {
		case o.start.Before(killAt): // allowed: Redis counted it before it died
			n[0]++
		case o.start.Before(restartAt):
			n[1]++
		default:
			n[2]++
		}
		tightAllowed[key] = n
	}
	for _, key := range []string{"envoy", "mcp"} {
		if n := tightAllowed[key]; n[0] != 5 || n[1] != 0 || n[2] > 5 {
			t.Errorf("%s key, limit of 5 a minute: %d allowed before the kill, %d while down, %d after the restart (Redis restarts empty)", key, n[0], n[1], n[2])
		}
	}
	tightBefore, tightDown, tightAfter := tightAllowed["mcp"][0], tightAllowed["mcp"][1], tightAllowed["mcp"][2]
	t.Logf("while down, answers by case/reason code: %v", downCodes)
	report(t, "redis", "before=%d ok; down=%d answers, %d allowed, %d refused state.unavailable, %d denied otherwise; recovered %v after restart; after=%d, %d not ok; tight limit 5/min per key: %d/%d/%d allowed before/down/after (MCP key; ext_authz alike)",
		before, down, downAllowed, downRefused, down-downRefused, recovered.Sub(restartAt).Round(time.Millisecond), after, afterRefused, tightBefore, tightDown, tightAfter)
}

// report prints one line per fault for docs/reliability.md.
func report(t *testing.T, fault, format string, args ...any) {
	t.Helper()
	line := fmt.Sprintf("FAULT %s: "+format, append([]any{fault}, args...)...)
	fmt.Println(line)
	t.Log(line)
}

// faultCollector: decisions are unaffected while the collector is down;
// events are spooled and, once it is back, delivered, all of them, in the
// order of the file log.
func faultCollector(t *testing.T) {
	e := newFaultEnv(t)
	col := newCollector(t)
	logPath := filepath.Join(e.dir, "audit", "audit.jsonl")
	e.cfg.auditFile, e.cfg.collectorURL, e.cfg.spoolDir = logPath, col.url(), filepath.Join(e.dir, "spool")
	r := startReplica(t, e.cfg.write(t, e.dir))
	c := dial(t, r.grpcAddr, 2)

	var ack acked
	bg := startLoad(load{rate: faultRate, workers: faultWorkers, expect: e.b, observe: ack.add}, c)
	time.Sleep(3 * time.Second)
	col.down()
	downAt := time.Now()
	var unhealthy bool
	var spoolBytes float64
	waitFor(10*time.Second, func() bool {
		m := r.metrics(t)
		unhealthy = metric(m, `verdict_audit_sink_healthy{sink="http"}`) == 0
		spoolBytes = metric(m, `verdict_audit_spool_bytes{sink="http"}`)
		return unhealthy && spoolBytes > 0 && time.Since(downAt) > 5*time.Second
	})
	col.start()
	upAt := time.Now()
	time.Sleep(3 * time.Second)
	tl := bg.stop()
	ids := ack.all()
	var deliveredIn time.Duration
	if waitFor(60*time.Second, func() bool { return col.missing(ids) == 0 }) {
		deliveredIn = time.Since(upAt)
	} else {
		t.Errorf("%d of %d answered decisions never reached the collector", col.missing(ids), len(ids))
	}
	m := r.metrics(t)
	healthyAgain := metric(m, `verdict_audit_sink_healthy{sink="http"}`) == 1
	dropped := metric(m, `verdict_audit_records_dropped_total{sink="http"}`)
	r.stop(t)

	if tl.total()-tl.get(ok) != 0 {
		t.Errorf("decisions were affected: %d of %d not ok; first: %v", tl.total()-tl.get(ok), tl.total(), tl.examples)
	}
	if !unhealthy || spoolBytes == 0 {
		t.Errorf("while the collector was down: sink healthy=%v, spool %v bytes; want unhealthy and spooling", !unhealthy, spoolBytes)
	}
	if !healthyAgain || dropped != 0 {
		t.Errorf("after: sink healthy=%v, %v records dropped", healthyAgain, dropped)
	}
	if n := col.rejected(); n != 0 {
		t.Errorf("the collector rejected %d uploads as not OPA decision logs", n)
	}
	inLog := logDecisionIDs(t, logPath)
	got := col.received()
	if i := firstDiff(got, inLog); i >= 0 {
		t.Errorf("the collector's events differ from the file log's from event %d on (collector %d, log %d)", i, len(got), len(inLog))
	}
	report(t, "collector", "%d decisions answered, none affected; down %v: sink unhealthy, %.0f bytes spooled; back: all %d delivered %v after it came back, in the file log's order (%d events, %d dropped)",
		len(ids), upAt.Sub(downAt).Round(100*time.Millisecond), spoolBytes, len(ids), deliveredIn.Round(100*time.Millisecond), len(got), int(dropped))
}

// faultBundleServer: 500s, corrupt archives and a bundle signed with
// another key are refused; the last good bundle keeps answering and the
// failures show in /v1/status and the metrics; a good bundle afterwards is
// served.
func faultBundleServer(t *testing.T) {
	e := newFaultEnv(t)
	r := startReplica(t, e.cfg.write(t, e.dir))
	c := dial(t, r.grpcAddr, 2)
	bg := startLoad(load{rate: faultRate, workers: faultWorkers, expect: e.b}, c)
	time.Sleep(2 * time.Second)

	good := bundletest.Archive(t, versionSpec("B")) // unsigned
	faults := []struct {
		name   string
		body   []byte
		status int
		err    string // in /v1/status's last_error
	}{
		{"HTTP 500", nil, 500, "answered 500"},
		{"not gzip", []byte("this is not a bundle"), 0, "not a gzip stream"},
		{"truncated archive", good[:len(good)/2], 0, "unexpected EOF"},
		{"unsigned bundle", good, 0, ".signatures.json"},
		{"bundle signed with another key", bundletest.SignedArchive(t, versionSpec("B"), e.s.otherPriv, "soak"), 0, "verification error"},
	}
	var observed []string
	for i, f := range faults {
		before := metric(r.metrics(t), `verdict_bundle_failures_total{bundle="soak"}`)
		e.b.setRaw(f.body, fmt.Sprintf(`"fault-%d"`, i), f.status)
		var src map[string]any
		var lastErr string
		if !waitFor(60*time.Second, func() bool {
			src = soakSource(r.status(t))
			lastErr, _ = src["last_error"].(string)
			return strings.Contains(lastErr, f.err)
		}) {
			t.Errorf("%s: /v1/status does not report it within 60s: %v", f.name, src)
		}
		if after := metric(r.metrics(t), `verdict_bundle_failures_total{bundle="soak"}`); after <= before {
			t.Errorf("%s: verdict_bundle_failures_total %v → %v", f.name, before, after)
		}
		if src["revision"] != "soak-A" {
			t.Errorf("%s: /v1/status source %v; want the failure reported and revision soak-A kept", f.name, src)
		}
		observed = append(observed, fmt.Sprintf("%s → %q", f.name, lastErr))
		if resp, err := httpStatus("http://" + r.httpAddr + "/readyz"); err != nil || resp != 200 {
			t.Errorf("%s: /readyz %d %v", f.name, resp, err)
		}
	}
	failures := metric(r.metrics(t), `verdict_bundle_failures_total{bundle="soak"}`)
	// A good bundle again: served at the next poll (after the backoff the
	// failures grew). Answers must then all come from B.
	fixedAt := time.Now()
	e.b.cur.Store(&activeRev{rev: "B", at: fixedAt.Add(time.Hour)}) // either revision until B is served
	e.b.setRaw(e.s.archive(t, "B"), `"B-good"`, 0)
	served := waitFor(60*time.Second, func() bool { return soakSource(r.status(t))["revision"] == "soak-B" })
	servedIn := time.Since(fixedAt)
	e.b.cur.Store(&activeRev{rev: "B", at: time.Now().Add(-settle)})
	time.Sleep(2 * time.Second)
	tl := bg.stop()
	if !served {
		t.Errorf("the good bundle B was not served within 60s of the server recovering")
	}
	if n := tl.total() - tl.get(ok); n != 0 {
		t.Errorf("%d of %d answers not right (wrong %d, stale %d, failed %d); first: %v", n, tl.total(), tl.get(wrong), tl.get(stale), tl.get(failed), tl.examples)
	}
	report(t, "bundle", "%d answers, all from revision A while the server failed (%d failures counted): %s; good bundle B served %v after the server recovered",
		tl.total(), int(failures), strings.Join(observed, "; "), servedIn.Round(100*time.Millisecond))
}

func soakSource(st map[string]any) map[string]any {
	srcs, _ := st["sources"].([]any)
	for _, s := range srcs {
		if m, ok := s.(map[string]any); ok && m["name"] == "soak" {
			return m
		}
	}
	return nil
}

// faultDiskFull: the file log's disk fills up. Documented (docs/audit.md,
// "Faults"): decisions are unaffected; the batch that cannot be written is
// dropped and counted; the file is cut back to its last good line so the
// chain stays intact. When space returns, writing resumes.
func faultDiskFull(t *testing.T) {
	e := newFaultEnv(t)
	mnt := filepath.Join(e.dir, "auditfs")
	if err := os.MkdirAll(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	var wrap []string
	tmpfs := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", mnt).Run() == nil
	if tmpfs {
		t.Cleanup(func() { _ = exec.Command("umount", "-l", mnt).Run() })
	} else {
		// No mount here: a file size limit of 2 MiB on the process instead
		// (writes past it fail with EFBIG as on a full disk).
		t.Log("mount -t tmpfs not permitted; limiting the file size with prlimit")
		wrap = []string{"prlimit", "--fsize=2097152", "--"}
	}
	logPath := filepath.Join(mnt, "audit.jsonl")
	e.cfg.auditFile = logPath
	r := startReplica(t, e.cfg.write(t, e.dir), wrap...)
	c := dial(t, r.grpcAddr, 2)
	var ack acked
	bg := startLoad(load{rate: faultRate, workers: faultWorkers, expect: e.b, observe: ack.add}, c)

	var dropped float64
	if !waitFor(60*time.Second, func() bool {
		dropped = metric(r.metrics(t), `verdict_audit_records_dropped_total{sink="file"}`)
		return dropped > 0
	}) {
		t.Fatalf("no file records dropped within 60s of load on a 2 MiB disk")
	}
	fullAt := time.Now()
	time.Sleep(3 * time.Second)
	m := r.metrics(t)
	dropped = metric(m, `verdict_audit_records_dropped_total{sink="file"}`)
	unhealthy := metric(m, `verdict_audit_sink_healthy{sink="file"}`) == 0

	var resumed bool
	var writtenBefore, writtenAfter float64
	if tmpfs {
		writtenBefore = metric(m, `verdict_audit_records_written_total{sink="file"}`)
		if err := exec.Command("mount", "-o", "remount,size=64m", mnt).Run(); err != nil {
			t.Fatalf("remount: %v", err)
		}
		resumed = waitFor(15*time.Second, func() bool {
			writtenAfter = metric(r.metrics(t), `verdict_audit_records_written_total{sink="file"}`)
			return writtenAfter > writtenBefore+float64(faultRate)
		})
		if !resumed {
			t.Errorf("writing did not resume within 15s of space coming back (written %v → %v)", writtenBefore, writtenAfter)
		}
		if !waitFor(5*time.Second, func() bool {
			return metric(r.metrics(t), `verdict_audit_sink_healthy{sink="file"}`) == 1
		}) {
			t.Errorf("the file sink still reports unhealthy after writes resumed")
		}
	}
	tl := bg.stop()
	r.stop(t)
	if n := tl.total() - tl.get(ok); n != 0 {
		t.Errorf("decisions were affected: %d of %d not ok; first: %v", n, tl.total(), tl.examples)
	}
	if !unhealthy {
		t.Errorf("the file sink reports healthy while its writes fail")
	}
	code, out := verifyLog(t, logPath)
	if code != 0 {
		t.Errorf("pdp audit verify exit %d after the disk was full:\n%s", code, out)
	}
	report(t, "diskfull", "tmpfs=%v; %d decisions answered, none affected; %.0f records dropped and counted %v after the disk filled, sink unhealthy=%v; resumed after space came back=%v (written %.0f → %.0f); pdp audit verify exit %d: %s",
		tmpfs, len(ack.all()), dropped, time.Since(fullAt).Round(time.Second), unhealthy, resumed, writtenBefore, writtenAfter, code, lastLine(out))
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// lossWindow is how old a decision answered before a SIGKILL may be and
// still be missing from the file log: docs/audit.md says the events still
// in the in-memory queue are lost, "a few ms of decisions" (a batch every
// 2ms); 50ms leaves room for a loaded host.
const lossWindow = 50 * time.Millisecond

// faultSIGKILL: a replica killed mid-write. The log verifies (a torn last
// line is accepted with a warning); every decision answered more than
// lossWindow before the kill is in it; a restart on the same log carries
// the chain on and the whole log verifies after a clean stop.
func faultSIGKILL(t *testing.T) {
	e := newFaultEnv(t)
	logPath := filepath.Join(e.dir, "audit", "audit.jsonl")
	e.cfg.auditFile = logPath
	cfgPath := e.cfg.write(t, e.dir)
	r := startReplica(t, cfgPath)
	var rec recorder
	bg := startLoad(load{rate: 3 * faultRate, workers: faultWorkers, expect: e.b, observe: rec.add}, dial(t, r.grpcAddr, 2))
	time.Sleep(3 * time.Second)
	killAt := time.Now()
	r.kill()
	bg.stop()

	code, out := verifyLog(t, logPath)
	if code != 0 {
		t.Errorf("pdp audit verify exit %d on the killed log:\n%s", code, out)
	}
	logged := map[string]bool{}
	for _, id := range logDecisionIDs(t, logPath) {
		logged[id] = true
	}
	var answered, lostOld, lostRecent int
	var oldestLost time.Duration
	for _, o := range rec.all() {
		if o.a.err != nil || o.decisionID == "" || !o.at.Before(killAt) {
			continue
		}
		answered++
		if logged[o.decisionID] {
			continue
		}
		age := killAt.Sub(o.at)
		oldestLost = max(oldestLost, age)
		if age > lossWindow {
			lostOld++
		} else {
			lostRecent++
		}
	}
	if answered == 0 || lostOld != 0 {
		t.Errorf("%d of %d decisions answered more than %v before the SIGKILL are not in the log (oldest missing: answered %v before)",
			lostOld, answered, lossWindow, oldestLost)
	}

	r2 := startReplica(t, cfgPath)
	var ack acked
	bg = startLoad(load{rate: faultRate, workers: faultWorkers, expect: e.b, observe: ack.add}, dial(t, r2.grpcAddr, 2))
	time.Sleep(2 * time.Second)
	tl := bg.stop()
	r2.stop(t)
	code2, out2 := verifyLog(t, logPath)
	if code2 != 0 {
		t.Errorf("after a restart and a clean stop, pdp audit verify exit %d:\n%s", code2, out2)
	}
	logged = map[string]bool{}
	for _, id := range logDecisionIDs(t, logPath) {
		logged[id] = true
	}
	missing := 0
	for _, id := range ack.all() {
		if !logged[id] {
			missing++
		}
	}
	if missing != 0 || tl.total() != tl.get(ok) {
		t.Errorf("after the restart: %d of %d answered decisions not in the log, %d answers not ok", missing, len(ack.all()), tl.total()-tl.get(ok))
	}
	report(t, "sigkill", "%d decisions answered before the kill; missing from the log: %d answered within %v of it, %d older (oldest missing answered %v before the kill); verify after kill exit %d: %s; restart carried on, %d more decisions, verify exit %d: %s",
		answered, lostRecent, lossWindow, lostOld, oldestLost.Round(100*time.Microsecond), code, oneLine(out), len(ack.all()), code2, lastLine(out2))
}

func oneLine(s string) string { return strings.ReplaceAll(strings.TrimSpace(s), "\n", " | ") }
