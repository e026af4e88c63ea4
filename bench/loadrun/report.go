package main

import (
	"encoding/xml"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The markers of -update: the text between them is replaced, markers kept.
const (
	beginMarker = "<!-- loadrun:begin -->"
	endMarker   = "<!-- loadrun:end -->"
)

// --- Markdown -----------------------------------------------------------------

func renderMarkdown(res *results) string {
	var b strings.Builder
	o := res.opts
	fmt.Fprintf(&b, "### End to end over loopback (`bench/loadrun`)\n\n")
	fmt.Fprintf(&b, "Every server is a separate process on 127.0.0.1; the client sends pre-marshaled requests from one goroutine per stream, "+
		"all streams over one gRPC connection (opa: one keep-alive HTTP/1.1 connection per stream). "+
		"After a %s warm-up per server, each concurrency runs %d round(s) in which every server gets %s in turn, "+
		"the order rotating by one each round. Throughput is the median of the rounds (spread: (max − min) / median); "+
		"p50 and p99 are over every call of every round. Server CPU is the server process's user + system time "+
		"(`/proc/<pid>/stat`, 10 ms resolution) per call. Every answer is checked against the decision it must be.\n\n",
		fmtDuration(o.warmup), o.rounds, fmtDuration(o.duration))

	if len(res.mcpMiss) > 0 {
		renderMiss(&b, res)
	}

	allowed := 0
	for _, c := range extAuthzCases {
		if c.allow {
			allowed++
		}
	}
	if len(res.extAuthz) > 0 {
		renderExtAuthz(&b, res, allowed)
	}
	if len(res.mcp) > 0 {
		renderMCP(&b, res)
	}
	renderMemory(&b, res)
	renderClient(&b, res)
	renderRun(&b, res)
	return b.String()
}

// renderMiss writes the table of the generated mix, every request new.
func renderMiss(b *strings.Builder, res *results) {
	g := res.gen
	timed := 0
	for _, n := range g.verdict {
		timed += n
	}
	share := func(v verdict) string { return fmtPercent(float64(g.verdict[v]) / float64(max(timed, 1))) }
	fmt.Fprintf(b, "#### MCP Check, every request new (cache misses)\n\n")
	fmt.Fprintf(b, "Real agents' tool calls carry arguments that change on every call (a search, an id, a path), so most of them miss "+
		"the decision cache. This mix is such traffic: `internal/mcp/mcpgen` generates an organisation (%d servers, %d tools with input "+
		"schemas, classifications, data categories and rate limits; %s access rules of its departments and teams, with argument, hours, "+
		"network, region and purpose conditions) and %s tools/call requests against it, each with argument values no other request has: "+
		"%s allowed, %s needing approval, %s denied (a tool no rule grants the caller, a failed rule condition, arguments the schema "+
		"refuses, clearance, tenant, GDPR). The timed rounds never send a request twice unless a note below says so.\n\n",
		g.spec.Servers, g.tools, fmtInt(g.spec.Rules), fmtInt(timed), share(verdictAllow), share(verdictApproval), share(verdictDeny))
	fmt.Fprintf(b, "The floor is a no-op `MCPPolicy/Check` server (transport and decoding only). pdp serves the built-in policy library "+
		"next to the catalog, with `--rate-limit=false`: the generated users call far faster than people would, and their tools' rate limits "+
		"would refuse them (the policy still computes the `rate_limit` obligation); and with `--eval-timeout %s`: at 16 streams an "+
		"evaluation queues behind fifteen others, and the default bound of a second would deny the slowest, which opa, without a bound, "+
		"answers (the p99 column shows how long they took). opa serves the same library and data "+
		"(`POST /v1/data/verdict/mcp/decision` with the input pdp builds from each request). Before timing, pdp, opa and the generator "+
		"agreed on the decision and reason codes of %d more generated requests, which the timed mix does not contain. Cache hits are "+
		"pdp's own count (`/v1/status`) over the timed rounds.\n\n", missEvalTimeout.String(), len(g.reasons))
	b.WriteString("| server | streams | checks/s | spread | × floor | × opa | p50 (µs) | p99 (µs) | server CPU/check (µs) | cache hits |\n")
	b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, s := range res.mcpMiss {
		floor, opa := floorOf(res.mcpMiss, s.streams), opaOf(res.mcpMiss, s.streams)
		vsFloor, vsOPA := "—", "—"
		if floor != nil {
			vsFloor = fmtRatio(s.throughput() / floor.throughput())
		}
		if opa != nil && s != opa {
			vsOPA = fmtRatio(s.throughput() / opa.throughput())
		}
		calls, cpu, _, _ := s.totals()
		fmt.Fprintf(b, "| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			s.target.name, s.streams, fmtInt(int(math.Round(s.throughput()))), fmtPercent(s.spread()), vsFloor, vsOPA,
			fmtMicros(s.percentile(50)), fmtMicros(s.percentile(99)), fmtCPU(perCall(cpu, calls)), fmtHits(s))
	}
	b.WriteString("\n")
}

func renderExtAuthz(b *strings.Builder, res *results, allowed int) {
	fmt.Fprintf(b, "#### Envoy ext_authz v3 Check\n\n")
	fmt.Fprintf(b, "Policy `testdata/bench/rbac.rego` (role from `x-roles`, permissions from data, `glob.match` on the path). "+
		"Mix: %d (role, method, path) cases, %d allowed and %d denied, as %s CheckRequests with %d–%d headers, each with its own "+
		"`x-request-id`, `traceparent`, stream id and `request.time`; the mix repeats after that.\n\n",
		len(extAuthzCases), allowed, len(extAuthzCases)-allowed, fmtInt(res.extCorpus), 13, 15)
	b.WriteString("| server | streams | checks/s | spread | × floor | p50 (µs) | p99 (µs) | p50 over floor (µs) | server CPU/check (µs) | × floor CPU | cache hits |\n")
	b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, s := range res.extAuthz {
		floor := floorOf(res.extAuthz, s.streams)
		calls, cpu, _, _ := s.totals()
		fcalls, fcpu, _, _ := floor.totals()
		cpuPer, floorCPU := perCall(cpu, calls), perCall(fcpu, fcalls)
		fmt.Fprintf(b, "| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			s.target.name, s.streams, fmtInt(int(math.Round(s.throughput()))), fmtPercent(s.spread()),
			fmtRatio(s.throughput()/floor.throughput()),
			fmtMicros(s.percentile(50)), fmtMicros(s.percentile(99)),
			fmtAdded(s.percentile(50)-floor.percentile(50), s == floor),
			fmtCPU(cpuPer), fmtRatio(cpuPer/floorCPU), fmtHits(s))
	}
	b.WriteString("\n")
}

func renderMCP(b *strings.Builder, res *results) {
	counts := map[verdict]int{}
	for _, c := range mcpCases {
		counts[c.want]++
	}
	fmt.Fprintf(b, "#### MCP Check on a repeating mix (cache hits): pdp native gRPC vs opa REST\n\n")
	fmt.Fprintf(b, "Both decide with the policy library in `policies/` (entrypoint `verdict/mcp/decision`) on the same small catalog "+
		"(4 servers, 12 tools, 7 rules). Mix: %d tools/call, tools/list and resources/read cases from 5 subjects, repeating, so that "+
		"once warm the cache answers nearly all of them: traffic of agents that repeat calls, unlike the mix above. "+
		"%d allowed, %d denied, %d needing approval, %s requests with a fixed `context.time`. The native CheckRequest has no "+
		"JSON-RPC id, so each request carries a unique `params._meta.progressToken` instead, which the policy input leaves out. opa gets, per request, "+
		"the input pdp's native API builds from it (`POST /v1/data/verdict/mcp/decision` with `{\"input\": ...}`); "+
		"before timing, both servers gave the same decision and reason codes for every case.\n\n",
		len(mcpCases), counts[verdictAllow], counts[verdictDeny], counts[verdictApproval], fmtInt(res.mcpCorpus))
	b.WriteString("| server | streams | checks/s | spread | pdp / opa | p50 (µs) | p99 (µs) | server CPU/check (µs) | cache hits |\n")
	b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, s := range res.mcp {
		opa := opaOf(res.mcp, s.streams)
		ratio := "—"
		if s != opa && opa != nil {
			ratio = fmtRatio(s.throughput() / opa.throughput())
		}
		calls, cpu, _, _ := s.totals()
		fmt.Fprintf(b, "| %s | %d | %s | %s | %s | %s | %s | %s | %s |\n",
			s.target.name, s.streams, fmtInt(int(math.Round(s.throughput()))), fmtPercent(s.spread()), ratio,
			fmtMicros(s.percentile(50)), fmtMicros(s.percentile(99)), fmtCPU(perCall(cpu, calls)), fmtHits(s))
	}
	b.WriteString("\n")
}

func renderMemory(b *strings.Builder, res *results) {
	if len(res.memory) > 0 {
		m0 := res.memory[0]
		fmt.Fprintf(b, "#### Memory\n\n")
		fmt.Fprintf(b, "pdp serving the RBAC policy with a %s `data.json` (the permissions plus a product catalog under its own root, "+
			"read by a one-line policy). VmRSS (`/proc/<pid>/status`) once ready; after pass 1, %s distinct allowed Checks on 16 streams "+
			"(a different path each, so each is a decision of its own); after pass 2, the same %s Checks again (the cache admits a "+
			"decision the second time it is made). Cache figures from `/v1/status` once its entry count settled. Pass 1 has warmed "+
			"every code path, so Δ RSS from pass 1 to pass 2 is what the cached decisions hold (VmRSS when ready still has start-up "+
			"garbage the Go runtime returns later); the cache-off row is the control.\n\n",
			fmtMiB(m0.dataBytes), fmtInt(m0.checks), fmtInt(m0.checks))
		b.WriteString("| pdp | VmRSS when ready | after pass 1 | after pass 2 | Δ RSS pass 1 → 2 | cache entries (pass 1 → 2) | cache bytes | Δ RSS per added entry | evictions | dropped |\n")
		b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
		for _, m := range res.memory {
			entries, bytes, perEntry, evictions, dropped := "—", "—", "—", "—", "—"
			delta := m.rssPass2 - m.rssPass1
			if c1, c2 := m.cachePass1, m.cachePass2; c1 != nil && c2 != nil {
				entries = fmtInt(int(c1.Entries)) + " → " + fmtInt(int(c2.Entries))
				bytes = fmtMiB(c2.Bytes)
				evictions, dropped = fmtInt(int(c2.Evictions)), fmtInt(int(c2.Dropped))
				if added := c2.Entries - c1.Entries; added > 0 {
					perEntry = fmtInt(int(delta/added)) + " B"
				}
			}
			fmt.Fprintf(b, "| `%s` | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", m.name, fmtMiB(m.rssReady), fmtMiB(m.rssPass1),
				fmtMiB(m.rssPass2), fmtMiB(delta), entries, bytes, perEntry, evictions, dropped)
		}
		if m0.cachePass2 == nil {
			b.WriteString("\nThis pdp reports no `cache` object in `/v1/status`.\n")
		}
		b.WriteString("\n")
	}
}

func renderClient(b *strings.Builder, res *results) {
	fmt.Fprintf(b, "#### The client\n\n")
	b.WriteString("CPU time and heap allocations of the load generator (all streams, whole process) per call, next to the server's CPU per call. " +
		"A client that costs less than the floor server cannot be what limits the throughput of the servers above it.\n\n")
	b.WriteString("| server | streams | client CPU/call (µs) | server CPU/call (µs) | client allocs/call |\n")
	b.WriteString("| --- | ---: | ---: | ---: | ---: |\n")
	for _, group := range [][]*series{res.mcpMiss, res.extAuthz, res.mcp} {
		for _, s := range group {
			calls, cpu, clientCPU, mallocs := s.totals()
			allocs := math.NaN()
			if calls > 0 {
				allocs = float64(mallocs) / float64(calls)
			}
			fmt.Fprintf(b, "| %s [%s] | %d | %s | %s | %s |\n", s.target.name, s.target.group, s.streams,
				fmtCPU(perCall(clientCPU, calls)), fmtCPU(perCall(cpu, calls)), fmtFloat(allocs, 0))
		}
	}
	b.WriteString("\n")
}

func renderRun(b *strings.Builder, res *results) {
	mi := res.machine
	fmt.Fprintf(b, "#### Run\n\n")
	fmt.Fprintf(b, "- Command: `%s` (wall time %s)\n", res.cmdline, fmtDuration(res.wall.Round(time.Second)))
	fmt.Fprintf(b, "- Machine: %s, %d CPUs, GOMAXPROCS %d", mi.cpuModel, mi.numCPU, mi.gomaxprocs)
	if mi.envMaxProcs != "" {
		fmt.Fprintf(b, " (GOMAXPROCS=%s in the environment of every process)", mi.envMaxProcs)
	} else {
		b.WriteString(" (every process, servers included)")
	}
	fmt.Fprintf(b, ", Linux %s\n", mi.kernel)
	if !math.IsNaN(res.otherCPU) {
		fmt.Fprintf(b, "- Other load: %s of the machine's CPU time during the timed rounds went neither to the client nor to the server under load "+
			"(other processes, idle servers, kernel work such as loopback softirqs)\n", fmtPercent(max(res.otherCPU, 0)))
	}
	fmt.Fprintf(b, "- Go: `%s`; pdp: `%s`", mi.goVersion, mi.pdpVersion)
	if mi.commit != "" {
		fmt.Fprintf(b, " at %s", mi.commit)
	}
	fmt.Fprintf(b, "; opa %s\n", res.opaVersion)
	for _, n := range res.notes {
		fmt.Fprintf(b, "- Note: %s\n", n)
	}
}

// floorOf is the no-op server of a group at a concurrency.
func floorOf(ss []*series, streams int) *series {
	for _, s := range ss {
		if s.streams == streams && s.target.pdp == nil && s.target.allowAll {
			return s
		}
	}
	return nil
}

// opaOf is the opa server of a group at a concurrency.
func opaOf(ss []*series, streams int) *series {
	for _, s := range ss {
		if s.streams == streams && s.target.pdp == nil && !s.target.allowAll {
			return s
		}
	}
	return nil
}

func fmtHits(s *series) string {
	if s.target.pdp == nil {
		return "—"
	}
	switch r, reported := s.cacheHits(); {
	case !reported:
		return "n/a"
	case math.IsNaN(r):
		return "no lookups"
	case r > 0 && r < 0.095:
		return strconv.FormatFloat(100*r, 'f', 1, 64) + " %"
	default:
		return fmtPercent(r)
	}
}

func fmtAdded(d time.Duration, self bool) string {
	if self {
		return "—"
	}
	us := int(math.Round(float64(d) / float64(time.Microsecond)))
	if us >= 0 {
		return "+" + fmtInt(us)
	}
	return fmtInt(us)
}

// fmtCPU is a CPU time per call in microseconds.
func fmtCPU(us float64) string {
	if math.IsNaN(us) || math.IsInf(us, 0) || us < 100 {
		return fmtFloat(us, 1)
	}
	return fmtInt(int(math.Round(us)))
}

func fmtMicros(d time.Duration) string {
	us := float64(d) / float64(time.Microsecond)
	if us < 100 {
		return strconv.FormatFloat(us, 'f', 1, 64)
	}
	return fmtInt(int(math.Round(us)))
}

// fmtLatency is a duration for progress lines.
func fmtLatency(d time.Duration) string {
	return d.Round(time.Microsecond).String()
}

func fmtDuration(d time.Duration) string {
	if d%time.Second == 0 {
		return strconv.Itoa(int(d/time.Second)) + " s"
	}
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + " s"
}

func fmtRatio(r float64) string {
	if math.IsNaN(r) || math.IsInf(r, 0) {
		return "—"
	}
	if r > 0 && r < 0.095 {
		// Two significant digits: a miss can be a hundredth of the floor.
		return strconv.FormatFloat(r, 'g', 2, 64) + "×"
	}
	return strconv.FormatFloat(r, 'f', 2, 64) + "×"
}

func fmtPercent(r float64) string {
	if math.IsNaN(r) {
		return "—"
	}
	return strconv.FormatFloat(100*r, 'f', 0, 64) + " %"
}

func fmtFloat(f float64, prec int) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "—"
	}
	return strconv.FormatFloat(f, 'f', prec, 64)
}

func fmtMiB(n int64) string {
	return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB"
}

// fmtInt writes n with thousands separators.
func fmtInt(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// --- marker replacement -------------------------------------------------------

// replaceBetweenMarkers returns doc with the text between the loadrun
// markers replaced by content. Each marker must occur exactly once, begin
// before end.
func replaceBetweenMarkers(doc, content string) (string, error) {
	if nb, ne := strings.Count(doc, beginMarker), strings.Count(doc, endMarker); nb != 1 || ne != 1 {
		return "", fmt.Errorf("want exactly one %s and one %s, found %d and %d", beginMarker, endMarker, nb, ne)
	}
	b := strings.Index(doc, beginMarker) + len(beginMarker)
	e := strings.Index(doc, endMarker)
	if e < b {
		return "", fmt.Errorf("%s comes before %s", endMarker, beginMarker)
	}
	return doc[:b] + "\n" + strings.TrimSpace(content) + "\n" + doc[e:], nil
}

// checkMarkers fails when path cannot be updated.
func checkMarkers(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("-update: %w", err)
	}
	if _, err := replaceBetweenMarkers(string(b), ""); err != nil {
		return fmt.Errorf("-update %s: %w", path, err)
	}
	return nil
}

func updateMarkdown(path, content string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("-update: %w", err)
	}
	doc, err := replaceBetweenMarkers(string(b), content)
	if err != nil {
		return fmt.Errorf("-update %s: %w", path, err)
	}
	if err := writeFileAtomic(path, []byte(doc)); err != nil {
		return fmt.Errorf("-update: %w", err)
	}
	return nil
}

// writeFileAtomic replaces path with data through a temporary file in the
// same directory, keeping the mode of an existing file.
func writeFileAtomic(path string, data []byte) error {
	mode := os.FileMode(0o644)
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() { _ = os.Remove(f.Name()) }() // after a successful rename there is nothing to remove
	_, werr := f.Write(data)
	cerr := f.Close()
	if err := errors.Join(werr, cerr, os.Chmod(f.Name(), mode)); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// --- SVG ----------------------------------------------------------------------

// bar is one row of the chart.
type bar struct {
	label string
	value float64 // a throughput ratio
	color string
	group int // bars of another group than the previous one get a gap
}

// panel is a titled group of bars with a reference line at 1.
type panel struct {
	title, reference string
	bars             []bar
}

const (
	colorBaseline = "#9aa0a6"
	colorCacheOn  = "#1a73e8"
	colorCacheOff = "#8ab4f8"
)

// renderSVG draws the throughput ratios: pdp's native MCP API against opa
// when every request is new, ext_authz servers against the floor, and
// pdp's native MCP API against opa on the repeating mix.
func renderSVG(res *results) string {
	miss := panel{title: "MCP Check, every request new: pdp relative to opa REST", reference: "opa"}
	for _, s := range res.mcpMiss {
		if o := opaOf(res.mcpMiss, s.streams); o != nil && s.target.pdp != nil {
			miss.bars = append(miss.bars, bar{seriesLabel(s), s.throughput() / o.throughput(), seriesColor(s), s.streams})
		}
	}
	ext := panel{title: "Envoy ext_authz Check: throughput relative to the no-op floor", reference: "floor"}
	for _, s := range res.extAuthz {
		if f := floorOf(res.extAuthz, s.streams); f != nil {
			ext.bars = append(ext.bars, bar{seriesLabel(s), s.throughput() / f.throughput(), seriesColor(s), s.streams})
		}
	}
	mc := panel{title: "MCP Check, a repeating mix: pdp native gRPC relative to opa REST", reference: "opa"}
	for _, s := range res.mcp {
		if o := opaOf(res.mcp, s.streams); o != nil {
			mc.bars = append(mc.bars, bar{seriesLabel(s), s.throughput() / o.throughput(), seriesColor(s), s.streams})
		}
	}
	var panels []panel
	for _, p := range []panel{miss, ext, mc} {
		if len(p.bars) > 0 {
			panels = append(panels, p)
		}
	}
	return drawPanels(fmt.Sprintf("Verdict pdp end to end over loopback (%d CPUs, %s)", res.machine.numCPU, res.machine.clientGo), panels)
}

func seriesLabel(s *series) string {
	unit := "streams"
	if s.streams == 1 {
		unit = "stream"
	}
	return fmt.Sprintf("%s, %d %s", s.target.name, s.streams, unit)
}

func seriesColor(s *series) string {
	switch {
	case s.target.pdp == nil:
		return colorBaseline
	case strings.Contains(s.target.name, "cache off"):
		return colorCacheOff
	default:
		return colorCacheOn
	}
}

func drawPanels(title string, panels []panel) string {
	const (
		width    = 820
		labelW   = 330 // label column, right-aligned
		barMaxW  = 390
		rowH     = 22
		barH     = 15
		titleH   = 34
		panelGap = 26
		groupGap = 8
	)
	height := titleH
	for _, p := range panels {
		height += panelGap + len(p.bars)*rowH + 10
		for i := 1; i < len(p.bars); i++ {
			if p.bars[i].group != p.bars[i-1].group {
				height += groupGap
			}
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		width, height, width, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#ffffff"/>`+"\n", width, height)
	fmt.Fprintf(&b, `<text x="12" y="22" font-size="15" font-weight="bold">%s</text>`+"\n", escapeXML(title))
	y := titleH
	for _, p := range panels {
		scale := 1.0
		for _, br := range p.bars {
			if !math.IsNaN(br.value) && !math.IsInf(br.value, 0) {
				scale = math.Max(scale, br.value)
			}
		}
		y += panelGap
		fmt.Fprintf(&b, `<text x="12" y="%d" font-size="13" font-weight="bold">%s</text>`+"\n", y-8, escapeXML(p.title))
		// The reference line at 1× goes under the bars.
		ref := float64(labelW) + barMaxW/scale
		var rows strings.Builder
		top := y
		for i, br := range p.bars {
			if i > 0 && br.group != p.bars[i-1].group {
				y += groupGap
			}
			v := br.value
			if math.IsNaN(v) || math.IsInf(v, 0) {
				v = 0
			}
			w := v / scale * barMaxW
			fmt.Fprintf(&rows, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", labelW-8, y+barH-3, escapeXML(br.label))
			fmt.Fprintf(&rows, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", labelW, y, w, barH, br.color)
			fmt.Fprintf(&rows, `<text x="%.1f" y="%d" stroke="#ffffff" stroke-width="3" paint-order="stroke">%s</text>`+"\n",
				float64(labelW)+w+5, y+barH-3, escapeXML(fmtRatio(br.value)))
			y += rowH
		}
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#202124" stroke-dasharray="4 3"/>`+"\n", ref, top-4, ref, y-4)
		b.WriteString(rows.String())
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="10" fill="#5f6368">1× = %s</text>`+"\n", ref+4, y+6, escapeXML(p.reference))
		y += 10
	}
	b.WriteString("</svg>\n")
	return b.String()
}

func escapeXML(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s)) // a strings.Builder does not fail
	return b.String()
}
