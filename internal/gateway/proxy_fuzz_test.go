package gateway

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/verdictpdp/verdict/internal/mcp"
	mcpv1 "github.com/verdictpdp/verdict/proto/verdict/mcp/v1"
)

// forwardLog is what the gateway's observer says it forwarded, by
// JSON-RPC id and method.
type forwardLog struct {
	mu  sync.Mutex
	fwd map[string]int
}

func (l *forwardLog) Message(r *Record) {
	if r.Direction != FromClient || r.Action != ActionForwarded {
		return
	}
	l.mu.Lock()
	l.fwd[r.Kind+" "+r.ID+" "+r.Method]++
	l.mu.Unlock()
}

// FuzzProxyPost sends arbitrary POST bodies (with a fuzzed Mcp-Method
// header and protocol version) through the proxy, deciding with the stub
// decider, to an upstream answering every request with an empty result.
// No panic; every answer is JSON (or an empty 202); and every message the
// upstream received was allowed by the decider (same method and params)
// and forwarded as that id and method.
func FuzzProxyPost(f *testing.F) {
	for _, seed := range []string{
		callOK,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"deny_rm"}}`,
		`[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ok"}},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"deny_rm"}},{"jsonrpc":"2.0","method":"notifications/initialized"}]`,
		`[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"deny_x"}}]`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ok","name":"deny_rm"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ok","arguments":{"n":9007199254740993}}}`,
		`{"jsonrpc":"2.0","id":"x","result":{}}`,
		`{"jsonrpc":"2.0","method":"tools/call","params":{"name":"deny_n"}}`,
		`[]`,
		``,
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"\xff\"}}",
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ok"}} `,
		`[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","id":"1","method":"tools/list"},{"jsonrpc":"2.0","id":1e0,"method":"tools/list"}]`,
	} {
		f.Add([]byte(seed), "", uint8(0))
	}
	f.Add([]byte(callOK), "tools/call", uint8(2))
	f.Add([]byte(``), "tools/call", uint8(2))
	f.Add([]byte(``), "notifications/initialized", uint8(2))
	f.Add([]byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"deny_x"}}`), "=?base64?dG9vbHMvY2FsbA==?=", uint8(2))

	var (
		mu        sync.Mutex
		received  [][]byte
		upMethods []string
	)
	up := newUpstream(f, func(w http.ResponseWriter, r *http.Request, body []byte) {
		mu.Lock()
		received = append(received, body)
		upMethods = append(upMethods, r.Header.Get("Mcp-Method"))
		mu.Unlock()
		answerAll(w, body, `{}`)
	})
	client := up.Client()
	versions := []string{"", "2025-06-18", "2026-07-28", "2025-11-25"}

	f.Fuzz(func(t *testing.T, body []byte, method string, version uint8) {
		mu.Lock()
		received, upMethods = nil, nil
		mu.Unlock()
		up.mu.Lock()
		up.bodies = nil
		up.mu.Unlock()
		d := &proxyStub{}
		log := &forwardLog{fwd: map[string]int{}}
		p := newTestProxy(t, d, up.URL, func(po *ProxyOptions, eo *Options) {
			po.MaxBodyBytes = 64 << 10
			po.UpstreamTimeout = 10 * time.Second
			// One client for all runs: a transport per run would leak its
			// idle connections.
			po.Client = client
			eo.Observer = log
		})
		req := httptest.NewRequest(http.MethodPost, "http://gw.test/mcp", strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if method != "" {
			req.Header["Mcp-Method"] = []string{method}
		}
		if v := versions[int(version)%len(versions)]; v != "" {
			req.Header.Set("Mcp-Protocol-Version", v)
		}
		rec := httptest.NewRecorder()
		p.ServeHTTP(rec, req)

		res := rec.Result()
		out := rec.Body.Bytes()
		switch {
		case res.StatusCode == http.StatusAccepted:
			if len(out) != 0 {
				t.Fatalf("202 with a body: %q", out)
			}
		case res.Header.Get("Content-Type") != "application/json":
			t.Fatalf("status %d, Content-Type %q: %q", res.StatusCode, res.Header.Get("Content-Type"), out)
		case !json.Valid(out):
			t.Fatalf("status %d, invalid JSON: %q", res.StatusCode, out)
		}

		mu.Lock()
		got, gotMethods := received, upMethods
		mu.Unlock()
		d.mu.Lock()
		allowed := append([]*mcpv1.CheckRequest(nil), d.allowed...)
		d.mu.Unlock()
		for i, b := range got {
			msgs, batch, err := mcp.ParseMessages(b, mcp.DefaultMaxDepth)
			if err != nil {
				t.Fatalf("the upstream received a body that is not JSON-RPC (%v): %q", err, b)
			}
			raws, err := Split(b, batch)
			if err != nil {
				t.Fatal(err)
			}
			if hm := gotMethods[i]; hm != "" {
				if dm, _ := mcp.DecodeHeaderValue(hm); batch || dm != msgs[0].Method {
					t.Fatalf("the upstream received Mcp-Method %q with %q", hm, b)
				}
			}
			for j, m := range msgs {
				if m.Response {
					t.Fatalf("the upstream received an answer to a request it never sent: %s", raws[j])
				}
				params, err := toStruct(m.Params, false)
				if err != nil {
					t.Fatalf("params of %s: %v", raws[j], err)
				}
				k := -1
				for n, a := range allowed {
					if a.GetMethod() == m.Method && proto.Equal(a.GetParams(), params) {
						k = n
						break
					}
				}
				if k < 0 {
					t.Fatalf("the upstream received %s, which the decider did not allow", raws[j])
				}
				allowed = append(allowed[:k], allowed[k+1:]...)
				key := "notification  " + m.Method
				if m.HasID {
					key = "request " + string(idJSON(m.ID)) + " " + m.Method
				}
				log.mu.Lock()
				n := log.fwd[key]
				log.fwd[key] = n - 1
				log.mu.Unlock()
				if n <= 0 {
					t.Fatalf("the upstream received %s, not forwarded as %q", raws[j], key)
				}
			}
		}
	})
}
