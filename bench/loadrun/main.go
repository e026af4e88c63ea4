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
//   - pdp's native MCP API (verdict.mcp.v1.MCPPolicy/Check) as agents call
//     it, every request with new arguments (internal/mcp/mcpgen: a generated
//     organisation with hundreds of rules), with the cache on and off,
//     against a no-op MCP server (the floor) and the opa server (REST, POST
//     /v1/data/verdict/mcp/decision) on the same policy library, data and
//     policy inputs;
//   - pdp's native MCP API on a small catalog and a repeating mix of 20
//     cases, which the cache answers once warm, against the opa server;
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
//	go run ./bench/loadrun -groups mcp-miss         # only the MCP cache-miss servers
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
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/verdictpdp/verdict/internal/mcp/mcpgen"
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
	missRules   int
	missCorpus  int
	missVerify  int
	missStreams []int
	groups      map[string]bool
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
	fs.IntVar(&o.missRules, "miss-rules", 300, "access rules of the generated organisation of the MCP cache-miss mix (40 tools)")
	fs.IntVar(&o.missCorpus, "miss-corpus", 65536, "generated MCP requests, each new, the cache-miss mix cycles through")
	fs.IntVar(&o.missVerify, "miss-verify", 200, "more generated MCP requests, on which pdp, opa and the generator must agree before timing")
	missStreams := fs.String("miss-streams", "16", "comma-separated concurrencies of the MCP cache-miss mix")
	groups := fs.String("groups", strings.Join(allGroups, ","), "comma-separated parts to run: "+strings.Join(allGroups, ", "))
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
			"rounds":      func() { o.rounds = 2 },
			"duration":    func() { o.duration = 300 * time.Millisecond },
			"warmup":      func() { o.warmup = 300 * time.Millisecond },
			"corpus":      func() { o.corpusSize = 4096 },
			"mem-checks":  func() { o.memChecks = 10_000 },
			"miss-corpus": func() { o.missCorpus = 4096 },
			"miss-verify": func() { o.missVerify = 40 },
			// Smoke figures must not replace the committed chart.
			"svg": func() { o.svgPath = "" },
		}
		for name, apply := range quick {
			if !set[name] {
				apply()
			}
		}
	}
	var err error
	if o.streams, err = parseStreams("-streams", *streams); err != nil {
		return o, err
	}
	if o.missStreams, err = parseStreams("-miss-streams", *missStreams); err != nil {
		return o, err
	}
	o.groups = map[string]bool{}
	for _, g := range strings.Split(*groups, ",") {
		g = strings.TrimSpace(g)
		if !slices.Contains(allGroups, g) {
			return o, fmt.Errorf("-groups: %q is not one of %s", g, strings.Join(allGroups, ", "))
		}
		o.groups[g] = true
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
	case o.missRules < 1:
		return o, errors.New("-miss-rules must be at least 1")
	case o.missCorpus < 1 || o.missVerify < 1:
		return o, errors.New("-miss-corpus and -miss-verify must be at least 1")
	}
	return o, nil
}

// missEvalTimeout bounds one evaluation of the pdps of the cache-miss mix.
const missEvalTimeout = time.Minute

// allGroups are the parts of a run, for -groups.
var allGroups = []string{groupMCPMiss, groupExtAuthz, groupMCP, "memory"}

func parseStreams(flagName, list string) ([]int, error) {
	var out []int
	for _, s := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%s: %q is not a positive integer", flagName, s)
		}
		out = append(out, n)
	}
	return out, nil
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
	mcpMiss    []*series // by concurrency, then server
	extAuthz   []*series
	mcp        []*series
	gen        *genCorpus
	memory     []memoryResult
	notes      []string
	extCorpus  int
	mcpCorpus  int
	opaVersion string
	opaMCP     string // addresses of the opa servers, for verification
	opaGen     string
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
	var rbacPolicy []byte
	if r.opts.groups[groupExtAuthz] || r.opts.groups["memory"] {
		if rbacPolicy, err = os.ReadFile(filepath.Join(r.root, "testdata", "bench", "rbac.rego")); err != nil {
			return nil, fmt.Errorf("benchmark policy: %w", err)
		}
	}
	rbacDir := filepath.Join(r.tmp, "bundles", "rbac")
	if r.opts.groups[groupExtAuthz] {
		if err := writeBundle(rbacDir, "bench-1", []string{"envoy", "rbac"},
			map[string][]byte{"rbac.rego": rbacPolicy}, map[string]any{"rbac": rbacData()}); err != nil {
			return nil, err
		}
	}
	mcpDir := filepath.Join(r.tmp, "bundles", "mcp-catalog")
	if err := writeBundle(mcpDir, "bench-mcp-1", []string{"mcp"}, nil, map[string]any{"mcp": mcpCatalog()}); err != nil {
		return nil, err
	}
	genDir := filepath.Join(r.tmp, "bundles", "mcp-generated")
	var gen *genCorpus
	if r.opts.groups[groupMCPMiss] {
		spec := genSpec(r.opts.missRules)
		catalog := mcpgen.Catalog(spec)
		if err := writeBundle(genDir, "bench-mcpgen-1", []string{"mcp"}, nil, catalog); err != nil {
			return nil, err
		}
		r.logf("generating %d MCP requests against %d rules", r.opts.missCorpus+r.opts.missVerify, r.opts.missRules)
		if gen, err = buildGenCorpus(catalog, spec, r.opts.missCorpus, r.opts.missVerify); err != nil {
			return nil, err
		}
		res.gen = gen
	}
	r.logf("building the request mixes")
	var extCorpus *corpus
	if r.opts.groups[groupExtAuthz] {
		if extCorpus, err = buildExtAuthzCorpus(r.opts.corpusSize); err != nil {
			return nil, err
		}
		res.extCorpus = extCorpus.reqs.len()
	}
	var mcpCorpus *mcpCorpus
	if r.opts.groups[groupMCP] {
		if mcpCorpus, err = buildMCPCorpus(max(r.opts.corpusSize/4, len(mcpCases))); err != nil {
			return nil, err
		}
		res.mcpCorpus = mcpCorpus.native.reqs.len()
	}
	// Building the mixes left garbage behind: give it back before the
	// clock starts, so that the client's collector has only the mixes.
	debug.FreeOSMemory()

	// Servers.
	r.logf("starting the servers")
	maxStreams := max(slices.Max(r.opts.streams), slices.Max(r.opts.missStreams))
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
	opaClient := newHTTPClient(maxStreams)
	defer opaClient.CloseIdleConnections()
	startPDP := func(name, group string, c *corpus, decode func([]byte) (verdict, error), method string, cacheOff bool, flags ...string) (*target, error) {
		p, err := r.fleet.startPDP(ctx, group+" "+name, pdpBin, r.httpc, flags...)
		if err != nil {
			return nil, err
		}
		conn, err := dial(p.grpcAddr)
		if err != nil {
			return nil, err
		}
		explain := extAuthzAnswer
		if method == checkMethodMCP {
			explain = mcpReasons
		}
		return &target{name: name, group: group, proc: p.proc, pdp: p, corpus: c, cacheOff: cacheOff,
			newCaller: grpcTarget(conn, method, c, decode), explain: explain}, nil
	}
	cacheOn, cacheOff := "pdp (cache on)", "pdp (cache off)"
	if !features.cache {
		cacheOn = "pdp (no cache in build)"
	}
	var floorConn *grpc.ClientConn
	if r.opts.groups[groupExtAuthz] || r.opts.groups[groupMCPMiss] {
		floorProc, floorAddr, err := r.fleet.startFloor(ctx, self)
		if err != nil {
			return nil, err
		}
		if floorConn, err = dial(floorAddr); err != nil {
			return nil, err
		}
		if r.opts.groups[groupMCPMiss] {
			targets = append(targets, &target{
				name: "floor (no-op MCP Check)", group: groupMCPMiss, proc: floorProc, corpus: gen.native, allowAll: true,
				streams: r.opts.missStreams, newCaller: grpcTarget(floorConn, checkMethodMCP, gen.native, mcpVerdict),
			})
		}
		if r.opts.groups[groupExtAuthz] {
			targets = append(targets, &target{
				name: "floor (no-op ext_authz)", group: groupExtAuthz, proc: floorProc, corpus: extCorpus, allowAll: true,
				newCaller: grpcTarget(floorConn, checkMethodExtAuthz, extCorpus, extAuthzVerdict),
			})
		}
	}
	if r.opts.groups[groupMCPMiss] {
		// The generated users call far faster than people: their rate limits
		// would turn allows into denies. The policy still computes the
		// rate_limit obligation; pdp does not enforce it, and opa has none.
		// At 16 streams on few cores an evaluation of hundreds of rules
		// queues behind fifteen others: the default bound of a second would
		// deny the slowest (evaluation_timeout), which opa, without a bound,
		// does not. The latency columns show how long they took.
		flags := []string{"--bundle", genDir}
		if features.rateLimit {
			flags = append(flags, "--rate-limit=false")
		}
		if features.evalTimeout {
			flags = append(flags, "--eval-timeout", missEvalTimeout.String())
		}
		t, err := startPDP(cacheOn+" native gRPC", groupMCPMiss, gen.native, mcpVerdict, checkMethodMCP, false, flags...)
		if err != nil {
			return nil, err
		}
		t.streams = r.opts.missStreams
		targets = append(targets, t)
		if features.cache {
			if t, err = startPDP(cacheOff+" native gRPC", groupMCPMiss, gen.native, mcpVerdict, checkMethodMCP, true, append(flags, "--cache=false")...); err != nil {
				return nil, err
			}
			t.streams = r.opts.missStreams
			targets = append(targets, t)
		}
		opa, err := r.fleet.startOPA(ctx, "opa-generated", opaBin, r.httpc, filepath.Join(r.root, "policies"), genDir)
		if err != nil {
			return nil, err
		}
		res.opaGen = opa.addr
		targets = append(targets, &target{
			name: "opa REST", group: groupMCPMiss, proc: opa.proc, corpus: gen.native, streams: r.opts.missStreams,
			newCaller: opaTarget(opaClient, "http://"+opa.addr+"/v1/data/verdict/mcp/decision", &gen.opaBodies), explain: opaAnswer,
		})
	}
	if r.opts.groups[groupExtAuthz] {
		t, err := startPDP(cacheOn, groupExtAuthz, extCorpus, extAuthzVerdict, checkMethodExtAuthz, false, "--bundle", rbacDir, "--library=false")
		if err != nil {
			return nil, err
		}
		targets = append(targets, t)
		if features.cache {
			if t, err = startPDP(cacheOff, groupExtAuthz, extCorpus, extAuthzVerdict, checkMethodExtAuthz, true,
				"--bundle", rbacDir, "--library=false", "--cache=false"); err != nil {
				return nil, err
			}
			targets = append(targets, t)
		}
	}
	if r.opts.groups[groupMCP] {
		t, err := startPDP(cacheOn+" native gRPC", groupMCP, mcpCorpus.native, mcpVerdict, checkMethodMCP, false, "--bundle", mcpDir)
		if err != nil {
			return nil, err
		}
		targets = append(targets, t)
		if features.cache {
			if t, err = startPDP(cacheOff+" native gRPC", groupMCP, mcpCorpus.native, mcpVerdict, checkMethodMCP, true, "--bundle", mcpDir, "--cache=false"); err != nil {
				return nil, err
			}
			targets = append(targets, t)
		}
		opa, err := r.fleet.startOPA(ctx, "opa", opaBin, r.httpc, filepath.Join(r.root, "policies"), mcpDir)
		if err != nil {
			return nil, err
		}
		res.opaMCP = opa.addr
		targets = append(targets, &target{
			name: "opa REST", group: groupMCP, proc: opa.proc, corpus: mcpCorpus.native,
			newCaller: opaTarget(opaClient, "http://"+opa.addr+"/v1/data/verdict/mcp/decision", &mcpCorpus.opaBodies), explain: opaAnswer,
		})
	}

	r.logf("verifying the decisions of every server")
	if err := r.verify(ctx, targets, extCorpus, mcpCorpus, gen, opaClient, res); err != nil {
		return nil, err
	}

	if err := r.rounds(ctx, targets, res); err != nil {
		return nil, err
	}
	for _, t := range targets {
		// A repeat matters only where a cache could answer it.
		if t.group == groupMCPMiss && t.pdp != nil && !t.cacheOff {
			if sent := int(t.next.Load()); sent > t.corpus.timedLen() { //nolint:gosec // a count of calls
				res.notes = append(res.notes, fmt.Sprintf("%s sent %s requests of the cache-miss mix, which has %s: %s were repeats "+
					"(raise -miss-corpus).", t.name, fmtInt(sent), fmtInt(t.corpus.timedLen()), fmtInt(sent-t.corpus.timedLen())))
			}
		}
	}
	r.fleet.stopAll()

	if r.opts.memChecks > 0 && r.opts.groups["memory"] {
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
	var concurrencies []int
	for _, t := range targets {
		if t.streams != nil {
			concurrencies = append(concurrencies, t.streams...)
		} else {
			concurrencies = append(concurrencies, r.opts.streams...)
		}
	}
	slices.Sort(concurrencies)
	concurrencies = slices.Compact(concurrencies)
	maxStreams := slices.Max(concurrencies)
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
	for _, n := range concurrencies {
		var at []*target
		for _, t := range targets {
			if t.runsAt(n, r.opts.streams) {
				at = append(at, t)
			}
		}
		// Room for ~60k calls/s in total without growing in the timed loop.
		bufs := newStreams(n, max(4096, int(r.opts.duration.Seconds()*60_000)/n))
		all := make([]*series, len(at))
		for i, t := range at {
			all[i] = &series{target: t, streams: n}
		}
		for round := range r.opts.rounds {
			for k := range at {
				i := (k + round) % len(at)
				t, s := at[i], all[i]
				c, err := r.timedCell(ctx, t, n, bufs)
				if err != nil {
					return err
				}
				s.add(c, bufs)
				r.logf("  streams=%-2d round %d/%d  %-44s %9.0f calls/s  p50 %s", n, round+1, r.opts.rounds,
					t.name+" ["+t.group+"]", rate(c.calls, c.elapsed), fmtLatency(cellPercentile(bufs, 50)))
			}
		}
		// Tables and chart show each group's baseline (floor, opa) first,
		// then the servers that evaluate every request (cache off).
		slices.SortStableFunc(all, func(a, b *series) int { return rowRank(a.target) - rowRank(b.target) })
		for _, s := range all {
			switch s.target.group {
			case groupExtAuthz:
				res.extAuthz = append(res.extAuthz, s)
			case groupMCPMiss:
				res.mcpMiss = append(res.mcpMiss, s)
			default:
				res.mcp = append(res.mcp, s)
			}
		}
	}
	if busy1, err := machineBusy(); err == nil && busyErr == nil {
		var ours time.Duration
		for _, group := range [][]*series{res.mcpMiss, res.extAuthz, res.mcp} {
			for _, s := range group {
				_, server, client, _ := s.totals()
				ours += server + client
			}
		}
		res.otherCPU = float64(busy1-busy0-ours) / float64(time.Since(started)*time.Duration(runtime.NumCPU()))
	}
	return nil
}

// rowRank orders a group's rows: the floor, opa, pdp with the cache off,
// pdp with the cache on.
func rowRank(t *target) int {
	switch {
	case t.pdp == nil && t.allowAll:
		return 0
	case t.pdp == nil:
		return 1
	case t.cacheOff:
		return 2
	default:
		return 3
	}
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
