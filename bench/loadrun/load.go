package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
)

// --- pre-marshaled gRPC -----------------------------------------------------

// rawCodec sends pre-marshaled protobuf bytes and hands responses back
// undecoded, so the load generator spends nothing on (un)marshaling. It
// names itself "proto": on the wire the calls are ordinary
// application/grpc+proto calls.
type rawCodec struct{}

// rawMessage is a request or response of rawCodec.
type rawMessage struct{ b []byte }

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(*rawMessage)
	if !ok {
		return nil, fmt.Errorf("rawCodec: cannot marshal %T", v)
	}
	return mem.BufferSlice{mem.SliceBuffer(m.b)}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(*rawMessage)
	if !ok {
		return fmt.Errorf("rawCodec: cannot unmarshal into %T", v)
	}
	n := data.Len()
	if cap(m.b) < n {
		m.b = make([]byte, n)
	}
	m.b = m.b[:n]
	data.CopyTo(m.b)
	return nil
}

func (rawCodec) Name() string { return "proto" }

// forceRaw is the call option that selects rawCodec. ForceCodecV2 is marked
// experimental in grpc-go; it is the documented way to bypass the codec.
var forceRaw = grpc.ForceCodecV2(rawCodec{})

// extAuthzVerdict reads the decision of a marshaled ext_authz v3
// CheckResponse: allowed when status.code (field 1.1) is OK, as Envoy does.
func extAuthzVerdict(b []byte) (verdict, error) {
	st, err := protoField(b, 1, protowire.BytesType)
	if err != nil || st == nil {
		return verdictAllow, err // no status: code 0
	}
	code, err := protoField(st, 1, protowire.VarintType)
	if err != nil {
		return verdictUnknown, err
	}
	if code == nil {
		return verdictAllow, nil
	}
	if v, _ := protowire.ConsumeVarint(code); v == 0 {
		return verdictAllow, nil
	}
	return verdictDeny, nil
}

// mcpVerdict reads the decision (field 1) of a marshaled
// verdict.mcp.v1.CheckResponse.
func mcpVerdict(b []byte) (verdict, error) {
	f, err := protoField(b, 1, protowire.VarintType)
	if err != nil || f == nil {
		return verdictUnknown, err
	}
	switch v, _ := protowire.ConsumeVarint(f); v {
	case 1:
		return verdictAllow, nil
	case 2:
		return verdictDeny, nil
	case 3:
		return verdictApproval, nil
	default:
		return verdictUnknown, nil
	}
}

// mcpReasons describes the reasons (field 2: code 1, message 2) of a
// marshaled verdict.mcp.v1.CheckResponse, for error messages.
func mcpReasons(b []byte) string {
	var out []string
	for len(b) > 0 {
		n, t, l := protowire.ConsumeTag(b)
		if l < 0 {
			break
		}
		b = b[l:]
		l = protowire.ConsumeFieldValue(n, t, b)
		if l < 0 {
			break
		}
		if n == 2 && t == protowire.BytesType {
			r, _ := protowire.ConsumeBytes(b[:l])
			code, _ := protoField(r, 1, protowire.BytesType)
			msg, _ := protoField(r, 2, protowire.BytesType)
			out = append(out, fmt.Sprintf("%s (%s)", code, msg))
		}
		b = b[l:]
	}
	if len(out) == 0 {
		return "no reasons"
	}
	return "reasons " + strings.Join(out, ", ")
}

// extAuthzAnswer describes the status (field 1: code 1, message 2) of a
// marshaled ext_authz v3 CheckResponse, for error messages.
func extAuthzAnswer(b []byte) string {
	st, _ := protoField(b, 1, protowire.BytesType)
	code, _ := protoField(st, 1, protowire.VarintType)
	c, _ := protowire.ConsumeVarint(code)
	msg, _ := protoField(st, 2, protowire.BytesType)
	return fmt.Sprintf("status %d (%s)", c, msg)
}

// opaAnswer shortens opa's answer for error messages.
func opaAnswer(b []byte) string {
	const limit = 600
	if len(b) > limit {
		return string(b[:limit]) + "…"
	}
	return string(b)
}

// protoField returns the encoded value of the last occurrence of field num
// at the top level of b (for a varint, the varint bytes; for bytes, the
// content), or nil when absent.
func protoField(b []byte, num protowire.Number, typ protowire.Type) ([]byte, error) {
	var found []byte
	for len(b) > 0 {
		n, t, l := protowire.ConsumeTag(b)
		if l < 0 {
			return nil, protowire.ParseError(l)
		}
		b = b[l:]
		l = protowire.ConsumeFieldValue(n, t, b)
		if l < 0 {
			return nil, protowire.ParseError(l)
		}
		if n == num && t == typ {
			found = b[:l]
			if t == protowire.BytesType {
				v, _ := protowire.ConsumeBytes(found)
				found = v
			}
		}
		b = b[l:]
	}
	return found, nil
}

// opaVerdict reads allow and require_approval of the MCP decision in opa's
// compact JSON answer without decoding it. Neither key occurs anywhere else
// in the decision, and quotes inside strings are escaped, so the byte
// patterns cannot match by accident; the full decode during verification
// checks the same answers.
func opaVerdict(body []byte) verdict {
	switch {
	case !bytes.HasPrefix(body, []byte(`{"result":{`)):
		return verdictUnknown
	case bytes.Contains(body, []byte(`"require_approval":true`)):
		return verdictApproval
	case bytes.Contains(body, []byte(`"allow":true`)):
		return verdictAllow
	default:
		return verdictDeny
	}
}

// --- targets ----------------------------------------------------------------

// caller sends request i of its target's corpus and returns the decision
// and the raw answer, valid until its next call. A caller belongs to one
// stream and is not safe for concurrent use.
type caller func(ctx context.Context, i int) (verdict, []byte, error)

// target is one server as the load loops see it.
type target struct {
	name  string
	group string // groupExtAuthz or groupMCP
	proc  *process
	pdp   *pdpServer // for cache statistics; nil for floor and opa
	// corpus gives the size of the mix and what each request must get;
	// allowAll overrides it for the floor, which allows without looking.
	corpus   *corpus
	allowAll bool
	// cacheOff marks a pdp without a decision cache: its rows come before
	// the cached pdp's, so that every table leads with evaluated requests.
	cacheOff bool
	// streams are the concurrencies this target runs at (nil: all of -streams).
	streams   []int
	newCaller func() caller
	// explain describes a raw answer for an error message (nil: nothing).
	explain func([]byte) string
	// next is the index of the next request: it runs on across cells, so
	// the requests of a target repeat only after the whole corpus was sent.
	next atomic.Uint64
}

const (
	groupExtAuthz = "ext_authz"
	groupMCP      = "mcp"
	groupMCPMiss  = "mcp-miss"
)

// runsAt reports whether t runs at n streams, given the run's -streams.
func (t *target) runsAt(n int, all []int) bool {
	if t.streams != nil {
		return slices.Contains(t.streams, n)
	}
	return slices.Contains(all, n)
}

func (t *target) want(i int) verdict {
	if t.allowAll {
		return verdictAllow
	}
	return t.corpus.want[i]
}

// grpcTarget calls method on conn with the pre-marshaled requests of c.
func grpcTarget(conn *grpc.ClientConn, method string, c *corpus, decode func([]byte) (verdict, error)) func() caller {
	return func() caller {
		var req, resp rawMessage
		return func(ctx context.Context, i int) (verdict, []byte, error) {
			req.b = c.reqs.at(i)
			if err := conn.Invoke(ctx, method, &req, &resp, forceRaw); err != nil {
				return verdictUnknown, nil, fmt.Errorf("%s: %w", method, err)
			}
			v, err := decode(resp.b)
			return v, resp.b, err
		}
	}
}

// opaTarget POSTs the pre-encoded bodies to url over a keep-alive client.
func opaTarget(client *http.Client, url string, bodies *arena) func() caller {
	return func() caller {
		var buf bytes.Buffer
		return func(ctx context.Context, i int) (verdict, []byte, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(bodies.at(i)))
			if err != nil {
				return verdictUnknown, nil, fmt.Errorf("opa request: %w", err)
			}
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				return verdictUnknown, nil, fmt.Errorf("opa: %w", err)
			}
			defer func() { _ = resp.Body.Close() }()
			buf.Reset()
			if _, err := buf.ReadFrom(resp.Body); err != nil {
				return verdictUnknown, nil, fmt.Errorf("opa: read answer: %w", err)
			}
			if resp.StatusCode != http.StatusOK {
				return verdictUnknown, nil, fmt.Errorf("opa: %s: %s", resp.Status, bytes.TrimSpace(buf.Bytes()))
			}
			return opaVerdict(buf.Bytes()), buf.Bytes(), nil
		}
	}
}

// newHTTPClient returns a keep-alive client that keeps up to conns idle
// connections to one host: one per stream, none reopened between calls.
func newHTTPClient(conns int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     5 * time.Minute,
		DisableCompression:  true,
	}}
}

// --- cells ------------------------------------------------------------------

// cell is what one timed run of one target at one concurrency measured.
type cell struct {
	calls     int
	elapsed   time.Duration
	serverCPU time.Duration
	clientCPU time.Duration
	mallocs   uint64
	cache     *cacheDelta // nil when the server reports no cache
}

// cacheDelta is the change of the cache counters over a cell.
type cacheDelta struct{ hits, misses int64 }

// streams holds the per-stream latency buffers, reused across cells so the
// timed loops allocate nothing for bookkeeping.
type streams struct {
	lat [][]time.Duration
}

func newStreams(n, capacity int) *streams {
	s := &streams{lat: make([][]time.Duration, n)}
	for i := range s.lat {
		s.lat[i] = make([]time.Duration, 0, capacity)
	}
	return s
}

// runCell drives t with one goroutine per stream for d, each calling as
// fast as it gets answers. Every answer is checked against the decision the
// request must get; a wrong one fails the run. Latencies are left in
// bufs.lat; the cell's resource figures are measured around the run.
func runCell(ctx context.Context, t *target, callers []caller, bufs *streams, d time.Duration) (cell, error) {
	n := len(callers)
	size := uint64(t.corpus.timedLen()) //nolint:gosec // a length
	errs := make([]error, n)
	ends := make([]time.Time, n)

	cpu0, cpuErr := cpuTime(t.proc.pid())
	var ru0 syscall.Rusage
	ruErr := syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	var ms0 runtime.MemStats
	runtime.ReadMemStats(&ms0)

	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for s := range n {
		wg.Go(func() {
			call, lat := callers[s], bufs.lat[s][:0]
			defer func() { bufs.lat[s] = lat }()
			for {
				i := int((t.next.Add(1) - 1) % size) //nolint:gosec // bounded by the corpus length
				t0 := time.Now()
				v, raw, err := call(ctx, i)
				t1 := time.Now()
				if err != nil {
					errs[s] = err
					return
				}
				lat = append(lat, t1.Sub(t0))
				if want := t.want(i); v != want {
					why := ""
					if t.explain != nil {
						why = ": " + t.explain(raw)
					}
					errs[s] = fmt.Errorf("request %d (case %d): got %s, want %s%s", i, i%t.corpus.cases, v, want, why)
					return
				}
				if !t1.Before(deadline) {
					ends[s] = t1
					return
				}
			}
		})
	}
	wg.Wait()

	var ms1 runtime.MemStats
	runtime.ReadMemStats(&ms1)
	var ru1 syscall.Rusage
	ru1Err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu1, cpu1Err := cpuTime(t.proc.pid())

	if err := errors.Join(errs...); err != nil {
		if aerr := t.proc.alive(); aerr != nil {
			return cell{}, fmt.Errorf("%s: %w", t.name, aerr)
		}
		return cell{}, fmt.Errorf("%s: %w", t.name, err)
	}
	c := cell{mallocs: ms1.Mallocs - ms0.Mallocs}
	for s := range n {
		c.calls += len(bufs.lat[s])
		c.elapsed = max(c.elapsed, ends[s].Sub(start))
	}
	if err := errors.Join(cpuErr, cpu1Err); err != nil {
		return cell{}, fmt.Errorf("%s: %w", t.name, err)
	}
	c.serverCPU = cpu1 - cpu0
	if err := errors.Join(ruErr, ru1Err); err != nil {
		return cell{}, fmt.Errorf("client rusage: %w", err)
	}
	c.clientCPU = rusageCPU(&ru1) - rusageCPU(&ru0)
	return c, nil
}

func rusageCPU(ru *syscall.Rusage) time.Duration {
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// --- statistics ---------------------------------------------------------------

// series collects the cells of one target at one concurrency across rounds.
type series struct {
	target  *target
	streams int
	cells   []cell
	lat     []time.Duration // every call of every round
	sorted  bool
}

func (s *series) add(c cell, bufs *streams) {
	s.cells = append(s.cells, c)
	for _, l := range bufs.lat {
		s.lat = append(s.lat, l...)
	}
	s.sorted = false
}

// throughput is the median over rounds of calls per second.
func (s *series) throughput() float64 {
	per := make([]float64, len(s.cells))
	for i, c := range s.cells {
		per[i] = rate(c.calls, c.elapsed)
	}
	return median(per)
}

// spread is (max - min) / median of the per-round throughputs.
func (s *series) spread() float64 {
	if len(s.cells) < 2 {
		return 0
	}
	per := make([]float64, len(s.cells))
	for i, c := range s.cells {
		per[i] = rate(c.calls, c.elapsed)
	}
	m := median(per)
	if m == 0 {
		return 0
	}
	return (slices.Max(per) - slices.Min(per)) / m
}

// percentile of all latencies of all rounds.
func (s *series) percentile(p float64) time.Duration {
	if !s.sorted {
		slices.Sort(s.lat)
		s.sorted = true
	}
	return percentile(s.lat, p)
}

func (s *series) totals() (calls int, serverCPU, clientCPU time.Duration, mallocs uint64) {
	for _, c := range s.cells {
		calls += c.calls
		serverCPU += c.serverCPU
		clientCPU += c.clientCPU
		mallocs += c.mallocs
	}
	return calls, serverCPU, clientCPU, mallocs
}

// perCall returns total / calls in microseconds.
func perCall(total time.Duration, calls int) float64 {
	if calls == 0 {
		return math.NaN()
	}
	return float64(total) / float64(time.Microsecond) / float64(calls)
}

// cacheHits returns hits / (hits + misses) over all cells; reported is
// false when the server reported no cache figures for some cell, and the
// ratio is NaN when there were no lookups.
func (s *series) cacheHits() (ratio float64, reported bool) {
	var hits, lookups int64
	for _, c := range s.cells {
		if c.cache == nil {
			return math.NaN(), false
		}
		hits += c.cache.hits
		lookups += c.cache.hits + c.cache.misses
	}
	if lookups == 0 {
		return math.NaN(), true
	}
	return float64(hits) / float64(lookups), true
}

func rate(calls int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(calls) / d.Seconds()
}

// percentile returns the nearest-rank p-th percentile (0 < p <= 100) of
// sorted, or 0 when it is empty.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// median returns the median of xs (the mean of the middle two for an even
// count), or 0 when it is empty. xs is not modified.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m]
	}
	return (s[m-1] + s[m]) / 2
}
