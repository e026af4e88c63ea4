// Command loadrun measures Verdict's pdp end to end over loopback gRPC and
// writes the results as a Markdown fragment and an SVG chart.
//
// In one run, with interleaved rounds and the same request mix and
// concurrency (1 and 16 streams over one connection), it measures:
//
//   - a no-op ext_authz v3 server (the floor: transport and decoding only),
//     run as a subprocess of this binary (-serve-floor);
//   - pdp serving the RBAC benchmark policy (testdata/bench/rbac.rego), with
//     the decision cache on and, when the binary has --cache, off;
//   - pdp's native MCP API (verdict.mcp.v1.MCPPolicy/Check) against the opa
//     server (REST, POST /v1/data/verdict/mcp/decision), both deciding with
//     the policy library in policies/ on the same catalog and the same
//     policy inputs;
//   - pdp's resident memory with a ~10 MB bundle before and after 100,000
//     distinct Checks.
//
// Every server is a subprocess, so its CPU time per request is read from
// /proc/<pid>/stat; the client reports its own CPU time and allocations per
// request to show that it is not what is measured. Linux only.
//
// Usage, from the repository root:
//
//	go run ./bench/loadrun                          # 5 rounds of 3 s per cell
//	go run ./bench/loadrun -quick                   # a smoke run for CI
//	go run ./bench/loadrun -update docs/benchmarks.md
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "loadrun: %v\n", err)
		os.Exit(1)
	}
}

// options are the command-line flags.
type options struct {
	rounds      int
	duration    time.Duration
	warmup      time.Duration
	quick       bool
	streams     []int
	pdpPath     string
	opaPath     string
	repo        string
	svgPath     string
	updatePath  string
	corpusSize  int
	memChecks   int
	memBundleMB int
	serveFloor  string // hidden: run the floor server on this address
	args        []string
}

// hiddenFlags are internal modes left out of -help.
var hiddenFlags = map[string]bool{"serve-floor": true}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("loadrun", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.rounds, "rounds", 5, "timed rounds per server and concurrency")
	fs.DurationVar(&o.duration, "duration", 3*time.Second, "length of one timed cell")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "warm-up per server before the rounds")
	fs.BoolVar(&o.quick, "quick", false, "CI smoke run: 2 rounds of 0.3s, 10,000 memory checks, no chart unless -svg is given (explicit flags win)")
	streams := fs.String("streams", "1,16", "comma-separated concurrencies (streams over one connection)")
	fs.StringVar(&o.pdpPath, "pdp", "", "pdp binary to measure (default: go build ./cmd/pdp into a temporary directory)")
	fs.StringVar(&o.opaPath, "opa", "", "opa binary (default: $(go env GOPATH)/bin/opa, then PATH)")
	fs.StringVar(&o.repo, "repo", "", "repository root (default: found from the working directory)")
	fs.StringVar(&o.svgPath, "svg", "docs/benchmarks-loadrun.svg", "write the chart here (empty: no chart)")
	fs.StringVar(&o.updatePath, "update", "", "replace the text between the loadrun markers of this Markdown file with the results")
	fs.IntVar(&o.corpusSize, "corpus", 32768, "distinct ext_authz requests (unique x-request-id) before the mix repeats")
	fs.IntVar(&o.memChecks, "mem-checks", 100_000, "distinct Checks of the memory measurement")
	fs.IntVar(&o.memBundleMB, "mem-bundle-mb", 10, "size of the memory measurement's data.json in MB")
	fs.StringVar(&o.serveFloor, "serve-floor", "", "internal: serve the no-op ext_authz floor on this address")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: go run ./bench/loadrun [flags]\n\n"+
			"Measures pdp (ext_authz, cache on and off, native MCP) against a no-op floor and opa, end to end over loopback.\n\nFlags:\n")
		fs.VisitAll(func(f *flag.Flag) {
			if hiddenFlags[f.Name] {
				return
			}
			fmt.Fprintf(stderr, "  -%s\n    \t%s", f.Name, f.Usage)
			if f.DefValue != "" && f.DefValue != "false" {
				fmt.Fprintf(stderr, " (default %s)", f.DefValue)
			}
			fmt.Fprintln(stderr)
		})
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	o.args = args
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if o.quick {
		quick := map[string]func(){
			"rounds":     func() { o.rounds = 2 },
			"duration":   func() { o.duration = 300 * time.Millisecond },
			"warmup":     func() { o.warmup = 300 * time.Millisecond },
			"corpus":     func() { o.corpusSize = 4096 },
			"mem-checks": func() { o.memChecks = 10_000 },
			// Smoke figures must not replace the committed chart.
			"svg": func() { o.svgPath = "" },
		}
		for name, apply := range quick {
			if !set[name] {
				apply()
			}
		}
	}
	for _, s := range strings.Split(*streams, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return o, fmt.Errorf("-streams: %q is not a positive integer", s)
		}
		o.streams = append(o.streams, n)
	}
	switch {
	case o.rounds < 1:
		return o, errors.New("-rounds must be at least 1")
	case o.duration <= 0:
		return o, errors.New("-duration must be positive")
	case o.warmup < 0:
		return o, errors.New("-warmup must not be negative")
	case o.corpusSize < len(extAuthzCases):
		return o, fmt.Errorf("-corpus must be at least %d, one request per case", len(extAuthzCases))
	case o.memChecks < 0:
		return o, errors.New("-mem-checks must not be negative")
	case o.memBundleMB < 1:
		return o, errors.New("-mem-bundle-mb must be at least 1")
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	opts, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if opts.serveFloor != "" {
		return serveFloor(ctx, opts.serveFloor)
	}
	if opts.updatePath != "" {
		// Fail before minutes of measuring, not after.
		if err := checkMarkers(opts.updatePath); err != nil {
			return err
		}
	}
	root := opts.repo
	if root == "" {
		wd, err := os.Getwd()
		if err != nil {
			return fmt.Errorf("working directory: %w", err)
		}
		if root, err = repoRoot(wd); err != nil {
			return err
		}
	}
	tmp, err := os.MkdirTemp("", "loadrun-")
	if err != nil {
		return fmt.Errorf("temporary directory: %w", err)
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	fl := &fleet{dir: tmp}
	defer fl.stopAll()

	r := &runner{opts: opts, log: stderr, root: root, tmp: tmp, fleet: fl, httpc: &http.Client{Timeout: 10 * time.Second}}
	started := time.Now()
	res, err := r.measure(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted; every server was stopped (%w)", ctx.Err())
		}
		return err
	}
	res.wall = time.Since(started)

	md := renderMarkdown(res)
	if _, err := io.WriteString(stdout, md); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	if opts.svgPath != "" {
		if err := writeFileAtomic(opts.svgPath, []byte(renderSVG(res))); err != nil {
			return fmt.Errorf("write chart: %w", err)
		}
		fmt.Fprintf(stderr, "chart written to %s\n", opts.svgPath)
	}
	if opts.updatePath != "" {
		if err := updateMarkdown(opts.updatePath, md); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "results written between the loadrun markers of %s\n", opts.updatePath)
	}
	return nil
}

// runner holds what one measurement run shares.
type runner struct {
	opts  options
	log   io.Writer
	root  string
	tmp   string
	fleet *fleet
	httpc *http.Client // readiness and status
}

// results is everything the report shows.
type results struct {
	opts       options
	cmdline    string
	machine    machineInfo
	features   pdpFeatures
	extAuthz   []*series // by concurrency, then server
	mcp        []*series
	memory     []memoryResult
	notes      []string
	extCorpus  int
	mcpCorpus  int
	opaVersion string
	wall       time.Duration
	// otherCPU is the share of the machine's CPU time during the timed
	// rounds that went neither to the client nor to the server under load.
	otherCPU float64
}

func (r *runner) logf(format string, args ...any) {
	fmt.Fprintf(r.log, format+"\n", args...)
}

func (r *runner) measure(ctx context.Context) (*results, error) {
	res := &results{opts: r.opts, cmdline: commandLine(r.opts.args), otherCPU: math.NaN()}
	if r.opts.quick {
		res.notes = append(res.notes, "`-quick` is a smoke run: its cells are too short for stable throughput, and with few "+
			"memory checks the RSS deltas are within the Go runtime's own variation. Publish figures from a full run only.")
	}

	pdpBin := r.opts.pdpPath
	if pdpBin == "" {
		r.logf("building ./cmd/pdp")
		var err error
		if pdpBin, err = buildPDP(ctx, r.root, r.tmp); err != nil {
			return nil, err
		}
	}
	features, err := probePDP(ctx, pdpBin)
	if err != nil {
		return nil, err
	}
	res.features = features
	if !features.cache {
		res.notes = append(res.notes, "This pdp build has no `--cache` flag: the cache-off server was skipped and "+
			"\"pdp\" runs without a decision cache.")
	}
	opaBin, err := findOPA(ctx, r.opts.opaPath)
	if err != nil {
		return nil, err
	}
	res.opaVersion = toolVersion(ctx, opaBin)
	if res.opaVersion != "1.22.0" {
		res.notes = append(res.notes, fmt.Sprintf("opa is version %s, not the pinned 1.22.0.", res.opaVersion))
	}
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find this binary for the floor server: %w", err)
	}
	res.machine = readMachineInfo(ctx, r.root, pdpBin)

	// Bundles and request mixes, all before any clock starts.
	rbacPolicy, err := os.ReadFile(filepath.Join(r.root, "testdata", "bench", "rbac.rego"))
	if err != nil {
		return nil, fmt.Errorf("benchmark policy: %w", err)
	}
	rbacDir := filepath.Join(r.tmp, "bundles", "rbac")
	if err := writeBundle(rbacDir, "bench-1", []string{"envoy", "rbac"},
		map[string][]byte{"rbac.rego": rbacPolicy}, map[string]any{"rbac": rbacData()}); err != nil {
		return nil, err
	}
	mcpDir := filepath.Join(r.tmp, "bundles", "mcp-catalog")
	if err := writeBundle(mcpDir, "bench-mcp-1", []string{"mcp"}, nil, map[string]any{"mcp": mcpCatalog()}); err != nil {
		return nil, err
	}
	r.logf("building the request mixes")
	extCorpus, err := buildExtAuthzCorpus(r.opts.corpusSize)
	if err != nil {
		return nil, err
	}
	mcpCorpus, err := buildMCPCorpus(max(r.opts.corpusSize/4, len(mcpCases)))
	if err != nil {
		return nil, err
	}
	res.extCorpus, res.mcpCorpus = extCorpus.reqs.len(), mcpCorpus.native.reqs.len()

	// Servers.
	r.logf("starting the servers")
	floorProc, floorAddr, err := r.fleet.startFloor(ctx, self)
	if err != nil {
		return nil, err
	}
	type pdpSpec struct {
		name, group string
		flags       []string
	}
	cacheOn, cacheOff := "pdp (cache on)", "pdp (cache off)"
	if !features.cache {
		cacheOn = "pdp (no cache in build)"
	}
	specs := []pdpSpec{{cacheOn, groupExtAuthz, []string{"--bundle", rbacDir, "--library=false"}}}
	if features.cache {
		specs = append(specs, pdpSpec{cacheOff, groupExtAuthz, []string{"--bundle", rbacDir, "--library=false", "--cache=false"}})
	}
	specs = append(specs, pdpSpec{cacheOn, groupMCP, []string{"--bundle", mcpDir}})
	if features.cache {
		specs = append(specs, pdpSpec{cacheOff, groupMCP, []string{"--bundle", mcpDir, "--cache=false"}})
	}
	maxStreams := slices.Max(r.opts.streams)
	var targets []*target
	var conns []*grpc.ClientConn
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	dial := func(addr string) (*grpc.ClientConn, error) {
		c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", addr, err)
		}
		conns = append(conns, c)
		return c, nil
	}
	floorConn, err := dial(floorAddr)
	if err != nil {
		return nil, err
	}
	targets = append(targets, &target{
		name: "floor (no-op ext_authz)", group: groupExtAuthz, proc: floorProc, corpus: extCorpus, allowAll: true,
		newCaller: grpcTarget(floorConn, checkMethodExtAuthz, extCorpus, extAuthzVerdict),
	})
	for _, s := range specs {
		p, err := r.fleet.startPDP(ctx, s.group+" "+s.name, pdpBin, r.httpc, s.flags...)
		if err != nil {
			return nil, err
		}
		conn, err := dial(p.grpcAddr)
		if err != nil {
			return nil, err
		}
		t := &target{name: s.name, group: s.group, proc: p.proc, pdp: p}
		if s.group == groupExtAuthz {
			t.corpus, t.newCaller = extCorpus, grpcTarget(conn, checkMethodExtAuthz, extCorpus, extAuthzVerdict)
		} else {
			t.name += " native gRPC"
			t.corpus, t.newCaller = mcpCorpus.native, grpcTarget(conn, checkMethodMCP, mcpCorpus.native, mcpVerdict)
		}
		targets = append(targets, t)
	}
	opa, err := r.fleet.startOPA(ctx, opaBin, r.httpc, filepath.Join(r.root, "policies"), mcpDir)
	if err != nil {
		return nil, err
	}
	opaClient := newHTTPClient(maxStreams)
	defer opaClient.CloseIdleConnections()
	targets = append(targets, &target{
		name: "opa REST", group: groupMCP, proc: opa.proc, corpus: mcpCorpus.native,
		newCaller: opaTarget(opaClient, "http://"+opa.addr+"/v1/data/verdict/mcp/decision", &mcpCorpus.opaBodies),
	})

	r.logf("verifying the decisions of every server")
	if err := r.verify(ctx, targets, extCorpus, mcpCorpus, opaClient, opa.addr); err != nil {
		return nil, err
	}

	if err := r.rounds(ctx, targets, res); err != nil {
		return nil, err
	}
	r.fleet.stopAll()

	if r.opts.memChecks > 0 {
		if err := r.memory(ctx, pdpBin, rbacPolicy, res); err != nil {
			return nil, err
		}
	}
	return res, nil
}

const (
	checkMethodExtAuthz = "/envoy.service.auth.v3.Authorization/Check"
	checkMethodMCP      = "/verdict.mcp.v1.MCPPolicy/Check"
)

// rounds warms every target up, then runs the interleaved timed rounds:
// for each concurrency, R rounds, each running every target once, in an
// order rotated by one each round so no server always follows the same one.
func (r *runner) rounds(ctx context.Context, targets []*target, res *results) error {
	maxStreams := slices.Max(r.opts.streams)
	if r.opts.warmup > 0 {
		r.logf("warming up (%v per server, %d streams)", r.opts.warmup, maxStreams)
		bufs := newStreams(maxStreams, 1024)
		for _, t := range targets {
			if _, err := runCell(ctx, t, newCallers(t, maxStreams), bufs, r.opts.warmup); err != nil {
				return fmt.Errorf("warm-up: %w", err)
			}
		}
	}
	busy0, busyErr := machineBusy()
	started := time.Now()
	for _, n := range r.opts.streams {
		// Room for ~60k calls/s in total without growing in the timed loop.
		bufs := newStreams(n, max(4096, int(r.opts.duration.Seconds()*60_000)/n))
		all := make([]*series, len(targets))
		for i, t := range targets {
			all[i] = &series{target: t, streams: n}
		}
		for round := range r.opts.rounds {
			for k := range targets {
				i := (k + round) % len(targets)
				t, s := targets[i], all[i]
				c, err := r.timedCell(ctx, t, n, bufs)
				if err != nil {
					return err
				}
				s.add(c, bufs)
				r.logf("  streams=%-2d round %d/%d  %-34s %9.0f calls/s  p50 %s", n, round+1, r.opts.rounds,
					t.name+" ["+t.group+"]", rate(c.calls, c.elapsed), fmtLatency(cellPercentile(bufs, 50)))
			}
		}
		// Tables and chart show each group's baseline (floor, opa) first.
		slices.SortStableFunc(all, func(a, b *series) int { return boolOrder(a.target.pdp != nil, b.target.pdp != nil) })
		for _, s := range all {
			if s.target.group == groupExtAuthz {
				res.extAuthz = append(res.extAuthz, s)
			} else {
				res.mcp = append(res.mcp, s)
			}
		}
	}
	if busy1, err := machineBusy(); err == nil && busyErr == nil {
		var ours time.Duration
		for _, group := range [][]*series{res.extAuthz, res.mcp} {
			for _, s := range group {
				_, server, client, _ := s.totals()
				ours += server + client
			}
		}
		res.otherCPU = float64(busy1-busy0-ours) / float64(time.Since(started)*time.Duration(runtime.NumCPU()))
	}
	return nil
}

// timedCell runs one cell with the pdp cache counters read around it.
func (r *runner) timedCell(ctx context.Context, t *target, n int, bufs *streams) (cell, error) {
	callers := newCallers(t, n)
	var before *cacheStats
	if t.pdp != nil {
		var err error
		if before, err = t.pdp.cacheStatus(ctx, r.httpc); err != nil {
			return cell{}, err
		}
	}
	runtime.GC() // start every cell with the client's heap clean
	c, err := runCell(ctx, t, callers, bufs, r.opts.duration)
	if err != nil {
		return cell{}, err
	}
	if before != nil {
		after, err := t.pdp.cacheStatus(ctx, r.httpc)
		if err != nil {
			return cell{}, err
		}
		if after != nil {
			c.cache = &cacheDelta{hits: after.Hits - before.Hits, misses: after.Misses - before.Misses}
		}
	}
	return c, nil
}

// boolOrder orders false before true.
func boolOrder(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	default:
		return 1
	}
}

func newCallers(t *target, n int) []caller {
	cs := make([]caller, n)
	for i := range cs {
		cs[i] = t.newCaller()
	}
	return cs
}

// cellPercentile is the p-th percentile of the latencies of the last cell.
func cellPercentile(s *streams, p float64) time.Duration {
	var all []time.Duration
	for _, l := range s.lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	return percentile(all, p)
}
