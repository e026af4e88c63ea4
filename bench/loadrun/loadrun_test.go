package main

import (
	"encoding/xml"
	"errors"
	"io"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/verdictpdp/verdict/internal/mcp/mcpgen"
	mcpv1 "github.com/verdictpdp/verdict/proto/verdict/mcp/v1"
)

func TestPercentile(t *testing.T) {
	t.Parallel()
	ms := func(ns ...int) []time.Duration {
		out := make([]time.Duration, len(ns))
		for i, n := range ns {
			out[i] = time.Duration(n) * time.Millisecond
		}
		return out
	}
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one", ms(7), 50, 7 * time.Millisecond},
		{"one p99", ms(7), 99, 7 * time.Millisecond},
		{"p50 of 1..100 is 50", hundred, 50, 50 * time.Millisecond},
		{"p99 of 1..100 is 99", hundred, 99, 99 * time.Millisecond},
		{"p100 is the maximum", hundred, 100, 100 * time.Millisecond},
		{"tiny p is the minimum", hundred, 0.001, time.Millisecond},
		{"nearest rank rounds up", ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{"nearest rank of 5", ms(1, 2, 3, 4, 5), 50, 3 * time.Millisecond},
		{"p99 of few is the maximum", ms(1, 2, 3, 4, 5), 99, 5 * time.Millisecond},
	}
	for _, tc := range tests {
		if got := percentile(tc.sorted, tc.p); got != tc.want {
			t.Errorf("%s: percentile(%v) = %v, want %v", tc.name, tc.p, got, tc.want)
		}
	}
}

func TestMedian(t *testing.T) {
	t.Parallel()
	tests := []struct {
		xs   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{10, 10, 1000, 9, 11}, 10},
	}
	for _, tc := range tests {
		in := append([]float64(nil), tc.xs...)
		if got := median(in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.xs, got, tc.want)
		}
		for i := range in {
			if in[i] != tc.xs[i] {
				t.Fatalf("median reordered its argument: %v", in)
			}
		}
	}
}

func TestSeriesMedianOfRounds(t *testing.T) {
	t.Parallel()
	s := &series{}
	bufs := &streams{lat: [][]time.Duration{{3 * time.Millisecond, time.Millisecond}, {2 * time.Millisecond}}}
	// Rounds of 1000, 3000 and 2000 calls/s: the median round is 2000, an
	// outlier round does not drag it the way a mean would.
	for _, c := range []cell{
		{calls: 1000, elapsed: time.Second},
		{calls: 6000, elapsed: 2 * time.Second},
		{calls: 1000, elapsed: 500 * time.Millisecond},
	} {
		s.add(c, bufs)
	}
	if got := s.throughput(); got != 2000 {
		t.Errorf("throughput = %v, want 2000", got)
	}
	if got, want := s.spread(), (3000.0-1000)/2000; got != want {
		t.Errorf("spread = %v, want %v", got, want)
	}
	if len(s.lat) != 9 {
		t.Fatalf("latencies of all rounds kept: %d, want 9", len(s.lat))
	}
	if got := s.percentile(50); got != 2*time.Millisecond {
		t.Errorf("p50 over all rounds = %v, want 2ms", got)
	}
	if got := s.percentile(99); got != 3*time.Millisecond {
		t.Errorf("p99 over all rounds = %v, want 3ms", got)
	}
	if r, reported := s.cacheHits(); reported || !math.IsNaN(r) {
		t.Errorf("cacheHits without cache figures = %v, %t; want NaN, false", r, reported)
	}
}

func TestReplaceBetweenMarkers(t *testing.T) {
	t.Parallel()
	doc := "# Benchmarks\n\nintro\n\n" + beginMarker + "\nold\nresults\n" + endMarker + "\n\noutro\n"
	got, err := replaceBetweenMarkers(doc, "\n| new | table |\n\n")
	if err != nil {
		t.Fatal(err)
	}
	want := "# Benchmarks\n\nintro\n\n" + beginMarker + "\n| new | table |\n" + endMarker + "\n\noutro\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	// Replacing again is stable.
	again, err := replaceBetweenMarkers(got, "| new | table |")
	if err != nil || again != got {
		t.Errorf("second replacement changed the document: %q, %v", again, err)
	}

	for name, bad := range map[string]string{
		"no markers":   "# Benchmarks\n",
		"no end":       beginMarker + "\nx\n",
		"no begin":     "x\n" + endMarker,
		"reversed":     endMarker + "\nx\n" + beginMarker,
		"two begins":   beginMarker + beginMarker + endMarker,
		"two sections": beginMarker + endMarker + beginMarker + endMarker,
	} {
		if _, err := replaceBetweenMarkers(bad, "x"); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestAnswerDecoders(t *testing.T) {
	t.Parallel()
	marshal := func(m proto.Message) []byte {
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	ext := []struct {
		resp *authv3.CheckResponse
		want verdict
	}{
		{&authv3.CheckResponse{}, verdictAllow},
		{okResponse, verdictAllow},
		{&authv3.CheckResponse{Status: &rpcstatus.Status{Code: 7, Message: "denied"}, HttpResponse: &authv3.CheckResponse_DeniedResponse{
			DeniedResponse: &authv3.DeniedHttpResponse{Body: "forbidden"},
		}}, verdictDeny},
	}
	for _, tc := range ext {
		got, err := extAuthzVerdict(marshal(tc.resp))
		if err != nil || got != tc.want {
			t.Errorf("extAuthzVerdict(%v) = %v, %v; want %v", tc.resp, got, err, tc.want)
		}
	}
	if _, err := extAuthzVerdict([]byte{0x0a, 0x05, 0x08}); err == nil {
		t.Error("extAuthzVerdict of a truncated message: no error")
	}

	for d, want := range map[mcpv1.Decision]verdict{
		mcpv1.Decision_DECISION_UNSPECIFIED:      verdictUnknown,
		mcpv1.Decision_DECISION_ALLOW:            verdictAllow,
		mcpv1.Decision_DECISION_DENY:             verdictDeny,
		mcpv1.Decision_DECISION_REQUIRE_APPROVAL: verdictApproval,
	} {
		resp := &mcpv1.CheckResponse{Decision: d, Reasons: []*mcpv1.Reason{{Code: "x", Message: "y"}}, DecisionId: "id"}
		if got, err := mcpVerdict(marshal(resp)); err != nil || got != want {
			t.Errorf("mcpVerdict(%v) = %v, %v; want %v", d, got, err, want)
		}
	}

	for body, want := range map[string]verdict{
		`{"result":{"allow":true,"obligations":{},"reasons":[],"require_approval":false}}`:                                         verdictAllow,
		`{"result":{"allow":false,"obligations":{},"reasons":[{"code":"a","message":"\"allow\":true"}],"require_approval":false}}`: verdictDeny,
		`{"result":{"allow":false,"obligations":{},"reasons":[],"require_approval":true}}`:                                         verdictApproval,
		`{}`: verdictUnknown,
	} {
		if got := opaVerdict([]byte(body)); got != want {
			t.Errorf("opaVerdict(%s) = %v, want %v", body, got, want)
		}
	}
}

func TestProcParsers(t *testing.T) {
	t.Parallel()
	stat := "4242 (pdp (serve) x) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 12 0 100 0 0\n"
	if got, err := parseStatCPU([]byte(stat)); err != nil || got != 3250*time.Millisecond {
		t.Errorf("parseStatCPU = %v, %v; want 3.25s", got, err)
	}
	if _, err := parseStatCPU([]byte("4242 (pdp) S 1")); err == nil {
		t.Error("parseStatCPU of a short line: no error")
	}
	status := "Name:\tpdp\nVmPeak:\t  900 kB\nVmRSS:\t   51200 kB\nThreads:\t9\n"
	if got, err := parseVmRSS([]byte(status)); err != nil || got != 50<<20 {
		t.Errorf("parseVmRSS = %v, %v; want 50 MiB", got, err)
	}
	if _, err := parseVmRSS([]byte("Name:\tpdp\n")); err == nil {
		t.Error("parseVmRSS without VmRSS: no error")
	}
	procStat := "cpu  100 5 50 1000 20 3 7 2 0 0\ncpu0 50 2 25 500 10 1 3 1 0 0\n"
	if got, err := parseProcStatBusy([]byte(procStat)); err != nil || got != 1670*time.Millisecond {
		t.Errorf("parseProcStatBusy = %v, %v; want 1.67s", got, err)
	}
}

func TestCorpora(t *testing.T) {
	t.Parallel()
	ext, err := buildExtAuthzCorpus(3 * len(extAuthzCases))
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for i := range ext.reqs.len() {
		var req authv3.CheckRequest
		if err := proto.Unmarshal(ext.reqs.at(i), &req); err != nil {
			t.Fatal(err)
		}
		h := req.GetAttributes().GetRequest().GetHttp().GetHeaders()
		if n := len(h); n < 10 || n > 15 {
			t.Errorf("request %d has %d headers", i, n)
		}
		if c := extAuthzCases[i%len(extAuthzCases)]; h[":path"] != c.path || h["x-roles"] != c.roles || ext.want[i] != verdictOf(c.allow) {
			t.Errorf("request %d does not match its case", i)
		}
		ids[h["x-request-id"]] = true
	}
	if len(ids) != ext.reqs.len() {
		t.Errorf("%d distinct x-request-id for %d requests", len(ids), ext.reqs.len())
	}

	// Building the MCP mix also checks that every request of a case has
	// the same policy input.
	mc, err := buildMCPCorpus(2 * len(mcpCases))
	if err != nil {
		t.Fatal(err)
	}
	if mc.native.reqs.len() != mc.opaBodies.len() {
		t.Fatalf("%d native requests, %d opa bodies", mc.native.reqs.len(), mc.opaBodies.len())
	}
	body := string(mc.opaBodies.at(0))
	for _, want := range []string{`"input":`, `"time":"2026-03-10T10:30:00Z"`, `"authenticated":true`, `"tool":{"arguments":`} {
		if !strings.Contains(body, want) {
			t.Errorf("opa body lacks %s: %s", want, body)
		}
	}
	if strings.Contains(body, "progressToken") {
		t.Errorf("opa body carries params._meta: %s", body)
	}
}

func TestFormatting(t *testing.T) {
	t.Parallel()
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -4500: "-4,500"} {
		if got := fmtInt(n); got != want {
			t.Errorf("fmtInt(%d) = %q, want %q", n, got, want)
		}
	}
	if got := commandLine([]string{"-rounds", "3", "-svg", "/tmp/a b.svg", "-x=it's"}); got != `go run ./bench/loadrun -rounds 3 -svg '/tmp/a b.svg' '-x=it'\''s'` {
		t.Errorf("commandLine = %s", got)
	}
}

func TestRender(t *testing.T) {
	t.Parallel()
	floor := &target{name: "floor (no-op ext_authz)", group: groupExtAuthz, allowAll: true}
	pdp := &target{name: "pdp (cache on)", group: groupExtAuthz, pdp: &pdpServer{}}
	opa := &target{name: "opa REST", group: groupMCP}
	native := &target{name: "pdp (cache on) native gRPC", group: groupMCP, pdp: &pdpServer{}}
	missFloor := &target{name: "floor (no-op MCP Check)", group: groupMCPMiss, allowAll: true}
	missOPA := &target{name: "opa REST", group: groupMCPMiss}
	missOn := &target{name: "pdp (cache on) native gRPC", group: groupMCPMiss, pdp: &pdpServer{}}
	bufs := &streams{lat: [][]time.Duration{{100 * time.Microsecond, 300 * time.Microsecond}}}
	mk := func(tg *target, n, calls int, cache *cacheDelta) *series {
		s := &series{target: tg, streams: n}
		s.add(cell{calls: calls, elapsed: time.Second, serverCPU: time.Duration(calls) * 50 * time.Microsecond,
			clientCPU: time.Second / 10, mallocs: uint64(calls) * 80, cache: cache}, bufs)
		return s
	}
	res := &results{
		opts:     options{rounds: 1, duration: 300 * time.Millisecond, warmup: time.Second},
		cmdline:  "go run ./bench/loadrun -quick",
		extAuthz: []*series{mk(floor, 1, 5000, nil), mk(pdp, 1, 2000, &cacheDelta{hits: 1500, misses: 500}), mk(floor, 16, 30000, nil), mk(pdp, 16, 0, nil)},
		mcp:      []*series{mk(opa, 1, 900, nil), mk(native, 1, 1000, nil)},
		mcpMiss:  []*series{mk(missFloor, 16, 20000, nil), mk(missOPA, 16, 500, nil), mk(missOn, 16, 1000, &cacheDelta{hits: 4, misses: 996})},
		gen: &genCorpus{spec: genSpec(300), tools: 40, reasons: make([][]string, 200),
			verdict: map[verdict]int{verdictAllow: 790, verdictApproval: 30, verdictDeny: 180}},
		memory: []memoryResult{{name: "pdp", checks: 10, rssReady: 100 << 20, rssPass1: 101 << 20, rssPass2: 110 << 20,
			cachePass1: &cacheStats{}, cachePass2: &cacheStats{Entries: 10, Bytes: 1 << 20}}},
		machine: machineInfo{numCPU: 2, clientGo: "go1.26"},
		notes:   []string{"a note"},
	}
	md := renderMarkdown(res)
	for _, want := range []string{
		"| pdp (cache on) | 1 | 2,000 |", "0.40×", "| 75 % |", "1.11×", "+0", "a note", "`go run ./bench/loadrun -quick`", "| 0 → 10 |", "943,718 B",
		"| pdp (cache on) native gRPC | 16 | 1,000 | 0 % | 0.05× | 2.00× |", "| 0.4 % |", "300 access rules", "79 % allowed",
		"| opa REST | 16 | 500 | 0 % | 0.025× |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "NaN") || strings.Contains(md, "Inf") {
		t.Errorf("markdown shows a NaN or Inf:\n%s", md)
	}

	svg := renderSVG(res)
	dec := xml.NewDecoder(strings.NewReader(svg))
	for {
		_, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v\n%s", err, svg)
		}
	}
	if miss, ext := strings.Index(md, "every request new"), strings.Index(md, "Envoy ext_authz"); miss < 0 || miss > ext {
		t.Errorf("the cache-miss section does not lead:\n%s", md)
	}
	// A background, a bar per series, but no floor in the cache-miss panel
	// (its bars are pdp relative to opa).
	if n := strings.Count(svg, "<rect "); n != 1+len(res.extAuthz)+len(res.mcp)+1 {
		t.Errorf("SVG has %d rects, want a background and one bar per series", n)
	}
}

// TestGeneratedCorpus: every timed request of the cache-miss mix is new,
// the verification requests come after them, and both servers get the
// same policy input.
func TestGeneratedCorpus(t *testing.T) {
	t.Parallel()
	spec := genSpec(100)
	gc, err := buildGenCorpus(mcpgen.Catalog(spec), spec, 500, 20)
	if err != nil {
		t.Fatal(err)
	}
	if gc.native.reqs.len() != 520 || gc.opaBodies.len() != 520 || gc.native.timedLen() != 500 || len(gc.reasons) != 20 {
		t.Fatalf("%d requests, %d bodies, %d timed, %d verification reasons", gc.native.reqs.len(), gc.opaBodies.len(), gc.native.timedLen(), len(gc.reasons))
	}
	if idx := gc.native.verifyIdx(); len(idx) != 20 || idx[0] != 500 || idx[19] != 519 {
		t.Errorf("verification requests %v, want 500..519", idx)
	}
	bodies := map[string]bool{}
	for i := range gc.native.reqs.len() {
		var req mcpv1.CheckRequest
		if err := proto.Unmarshal(gc.native.reqs.at(i), &req); err != nil {
			t.Fatal(err)
		}
		body := string(gc.opaBodies.at(i))
		if bodies[body] {
			t.Fatalf("request %d repeats an earlier one", i)
		}
		bodies[body] = true
		if req.GetMethod() != "tools/call" || !strings.Contains(body, `"tool":{"arguments":`) || !strings.Contains(body, `"server":{"name":"`+req.GetServer()+`"}`) {
			t.Errorf("request %d: %s", i, body)
		}
	}
	if allow := float64(gc.verdict[verdictAllow]) / 500; allow < 0.7 || allow > 0.88 {
		t.Errorf("%.2f of the timed requests are allowed, want about 0.79", allow)
	}
}

func TestRowOrder(t *testing.T) {
	t.Parallel()
	rows := []*target{
		{name: "on", pdp: &pdpServer{}}, {name: "opa"}, {name: "off", pdp: &pdpServer{}, cacheOff: true}, {name: "floor", allowAll: true},
	}
	slices.SortStableFunc(rows, func(a, b *target) int { return rowRank(a) - rowRank(b) })
	var names []string
	for _, r := range rows {
		names = append(names, r.name)
	}
	if got := strings.Join(names, ","); got != "floor,opa,off,on" {
		t.Errorf("rows in order %s, want floor,opa,off,on", got)
	}
}
