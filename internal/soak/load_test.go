package soak

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"

	mcpv1 "github.com/verdictpdp/verdict/proto/verdict/mcp/v1"
)

// soakCase is one request of the mix and what each version answers.
type soakCase struct {
	name         string
	mcp          bool
	role, method string // ext_authz
	path         string
	tool         string // MCP
	want         map[string]bool
}

// mix alternates ext_authz and MCP; each version allows some requests the
// other denies.
var mix = []soakCase{
	{name: "envoy reader GET", role: "reader", method: "GET", path: "/api/v1/items", want: map[string]bool{"A": true, "B": true}},
	{name: "mcp search", mcp: true, tool: "search", want: map[string]bool{"A": true, "B": true}},
	{name: "envoy writer POST", role: "writer", method: "POST", path: "/api/v1/items", want: map[string]bool{"A": true, "B": false}},
	{name: "mcp lookup", mcp: true, tool: "lookup", want: map[string]bool{"A": true, "B": false}},
	{name: "envoy reader POST", role: "reader", method: "POST", path: "/api/v1/items", want: map[string]bool{"A": false, "B": false}},
	{name: "mcp export", mcp: true, tool: "export", want: map[string]bool{"A": false, "B": true}},
	{name: "envoy guest GET", role: "guest", method: "GET", path: "/api/v1/items", want: map[string]bool{"A": false, "B": false}},
	{name: "mcp delete", mcp: true, tool: "delete", want: map[string]bool{"A": false, "B": false}},
}

// answer is what the pdp said.
type answer struct {
	allowed    bool
	rev        string // the revision that answered, "" when not reported
	code       string // the first reason code of an MCP denial
	decisionID string
	err        error
}

// clients are gRPC clients of both APIs over a few connections.
type clients struct {
	envoy []authv3.AuthorizationClient
	mcp   []mcpv1.MCPPolicyClient
	seq   atomic.Int64
}

func dial(t *testing.T, addr string, conns int) *clients {
	t.Helper()
	c := &clients{}
	for range conns {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		c.envoy = append(c.envoy, authv3.NewAuthorizationClient(conn))
		c.mcp = append(c.mcp, mcpv1.NewMCPPolicyClient(conn))
	}
	return c
}

// send sends case k for subject sub on connection conn.
func (c *clients) send(ctx context.Context, conn int, k soakCase, sub string) answer {
	id := c.seq.Add(1)
	conn %= len(c.envoy)
	if k.mcp {
		params, _ := structpb.NewStruct(map[string]any{"name": k.tool, "arguments": map[string]any{"q": strconv.FormatInt(id, 10)}})
		resp, err := c.mcp[conn].Check(ctx, &mcpv1.CheckRequest{Server: "crm", Method: "tools/call", Params: params, Subject: &mcpv1.Subject{Id: sub}})
		if err != nil {
			return answer{err: err}
		}
		a := answer{allowed: resp.GetDecision() == mcpv1.Decision_DECISION_ALLOW, rev: resp.GetObligations().GetLabels()["rev"], decisionID: resp.GetDecisionId()}
		if rs := resp.GetReasons(); len(rs) > 0 {
			a.code = rs[0].GetCode()
		}
		return a
	}
	sid := strconv.FormatInt(id, 10)
	req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Principal: "spiffe://cluster.local/ns/web/sa/frontend"},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: sid, Method: k.method, Path: k.path, Host: "api.example.com",
			Headers: map[string]string{
				":authority": "api.example.com", ":method": k.method, ":path": k.path,
				"x-roles": k.role, "x-subject": sub, "x-request-id": "req-" + sid,
			},
		}},
	}}
	resp, err := c.envoy[conn].Check(ctx, req)
	if err != nil {
		return answer{err: err}
	}
	a := answer{allowed: resp.GetStatus().GetCode() == 0, decisionID: resp.GetDynamicMetadata().GetFields()["decision_id"].GetStringValue()}
	var hdrs []*corev3.HeaderValueOption
	if a.allowed {
		hdrs = resp.GetOkResponse().GetHeaders()
	} else {
		hdrs = resp.GetDeniedResponse().GetHeaders()
		var body struct {
			Code string `json:"code"`
		}
		if json.Unmarshal([]byte(resp.GetDeniedResponse().GetBody()), &body) == nil {
			a.code = body.Code // a refusal that did not come from the policy
		}
	}
	for _, h := range hdrs {
		if h.GetHeader().GetKey() == "x-soak-rev" {
			a.rev = h.GetHeader().GetValue()
		}
	}
	return a
}

// settle is how long after a swap a replica may still answer with the
// previous revision: polls are 200-400ms apart, activation takes a few ms.
const settle = 3 * time.Second

// verdict classifies an answer.
type verdict int

const (
	ok      verdict = iota
	failed          // a transport or gRPC error
	wrong           // an allow the policy denies or a deny it allows
	stale           // the previous revision answered after the swap settled
	refused         // a limit refused it (rate_limited, state.unavailable)
)

// judge classifies a for case k, sent at start while cur was the expected
// revision.
func judge(k soakCase, a answer, cur *activeRev, start time.Time) verdict {
	switch {
	case a.err != nil:
		return failed
	case a.code == "rate_limited" || a.code == "state.unavailable":
		return refused
	}
	if a.rev == "" { // no revision reported: it must be one version's answer
		if a.allowed != k.want["A"] && a.allowed != k.want["B"] {
			return wrong
		}
		return ok
	}
	want, known := k.want[a.rev]
	if !known || a.allowed != want {
		return wrong
	}
	if cur != nil && a.rev != cur.rev && start.After(cur.at.Add(settle)) {
		return stale
	}
	return ok
}

// tally counts answers; it keeps the first examples of each failure.
type tally struct {
	mu       sync.Mutex
	counts   [5]int64
	examples []string
	codes    map[string]int64 // refusals by reason code
	lat      []time.Duration
}

func (t *tally) add(k soakCase, a answer, v verdict, d time.Duration, keepLatency bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.counts[v]++
	if v == refused {
		if t.codes == nil {
			t.codes = map[string]int64{}
		}
		t.codes[a.code]++
	}
	if keepLatency {
		t.lat = append(t.lat, d)
	}
	if v != ok && v != refused && len(t.examples) < 10 {
		t.examples = append(t.examples, fmt.Sprintf("%s: allowed=%v rev=%q code=%q err=%v", k.name, a.allowed, a.rev, a.code, a.err))
	}
}

func (t *tally) get(v verdict) int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.counts[v]
}

func (t *tally) total() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	var n int64
	for _, c := range t.counts {
		n += c
	}
	return n
}

// percentile of the kept latencies (p in 0..1).
func (t *tally) percentile(p float64) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.lat) == 0 {
		return 0
	}
	s := slices.Clone(t.lat)
	slices.Sort(s)
	return s[min(int(float64(len(s))*p), len(s)-1)]
}

// observation is one acknowledged decision, for the faults that check the
// audit trail.
type observation struct {
	at         time.Time // when the answer arrived
	decisionID string
	k          soakCase
	a          answer
	v          verdict
	start      time.Time
}

// load describes one run of the mix.
type load struct {
	rate    float64 // requests/s over all workers; 0: closed loop
	workers int
	subject func(worker, i int) string
	// expect, when set, is the revision answers must converge on.
	expect *bundleServer
	// observe, when set, sees every answer.
	observe func(observation)
	latency bool
}

// run sends the mix until ctx is done and returns the tally.
func (l load) run(ctx context.Context, c *clients) *tally {
	tl := &tally{}
	var wg sync.WaitGroup
	begin := time.Now()
	for w := range l.workers {
		wg.Go(func() {
			var interval time.Duration
			next := begin
			if l.rate > 0 {
				interval = time.Duration(float64(l.workers) / l.rate * float64(time.Second))
				next = begin.Add(interval * time.Duration(w) / time.Duration(l.workers))
			}
			// Each worker walks the whole mix, from its own offset, so that
			// a slow kind of request slows every worker alike.
			for n := 0; ; n++ {
				i := w + n
				if l.rate > 0 {
					if d := time.Until(next); d > 0 {
						select {
						case <-ctx.Done():
							return
						case <-time.After(d):
						}
					} else if d < -time.Second {
						next = time.Now() // fell behind: do not burst to catch up
					}
					next = next.Add(interval)
				}
				if ctx.Err() != nil {
					return
				}
				k := mix[i%len(mix)]
				sub := "user-" + strconv.Itoa((w*len(mix)+n)%64)
				if l.subject != nil {
					sub = l.subject(w, i)
				}
				var cur *activeRev
				if l.expect != nil {
					cur = l.expect.cur.Load()
				}
				start := time.Now()
				rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				a := c.send(rctx, w, k, sub)
				cancel()
				d := time.Since(start)
				v := judge(k, a, cur, start)
				tl.add(k, a, v, d, l.latency)
				if l.observe != nil {
					l.observe(observation{at: time.Now(), decisionID: a.decisionID, k: k, a: a, v: v, start: start})
				}
			}
		})
	}
	wg.Wait()
	return tl
}
