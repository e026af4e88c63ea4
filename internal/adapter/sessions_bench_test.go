package adapter_test

import (
	"context"
	"strconv"
	"testing"

	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/verdictpdp/verdict/internal/adapter/mcpapi"
	"github.com/verdictpdp/verdict/internal/cache"
	"github.com/verdictpdp/verdict/internal/mcp"
	"github.com/verdictpdp/verdict/internal/pipeline"
	"github.com/verdictpdp/verdict/internal/session"
	mcpv1 "github.com/verdictpdp/verdict/proto/verdict/mcp/v1"
)

// BenchmarkSessions measures what session state costs an MCP decision
// that misses the cache (an analyst reading file after file, over 32
// sessions, with the example catalog and its flow rule):
//
//   - off: no session state;
//   - on: state kept and offered to policy; the sessions read only
//     internal files, which no flow rule names, so the native evaluator
//     decides;
//   - on-tainted: every session has read personal data first, so each
//     call is an egress the flow rule judges, in Rego (and denies).
func BenchmarkSessions(b *testing.B) {
	for _, setup := range []string{"off", "on", "on-tainted"} {
		b.Run("sessions="+setup+"/cache=miss", func(b *testing.B) {
			c, err := cache.New(cache.Limits{MaxEntries: 4096})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(c.Close)
			d := decider(b, c)
			if setup != "off" {
				st, err := session.New(session.Options{})
				if err != nil {
					b.Fatal(err)
				}
				d = d.WithObserver(st)
				if setup == "on-tainted" {
					for s := range 32 {
						st.Observe(context.Background(), &mcp.Observation{Stage: mcp.StageCall, Subject: "ana", Session: "sess-" + strconv.Itoa(s),
							Method: mcp.MethodToolsCall, Server: "crm", Target: "get_contact", Verdict: pipeline.Allow,
							Classification: "confidential", Categories: []string{"personal_data"}})
					}
				}
			}
			srv := mcpapi.NewServer(d, mcpapi.Options{})
			reqs := make([]*mcpv1.CheckRequest, pool)
			for i := range reqs {
				params, err := structpb.NewStruct(map[string]any{"name": "read_file", "arguments": map[string]any{"path": path(i)}})
				if err != nil {
					b.Fatal(err)
				}
				reqs[i] = &mcpv1.CheckRequest{
					Subject: &mcpv1.Subject{Id: "ana", Roles: []string{"analyst"}, Scopes: []string{"tools:read"}, Clearance: "internal"},
					Server:  "files", Method: "tools/call", Params: params, SessionId: "sess-" + strconv.Itoa(i%32),
					Context: &mcpv1.RequestContext{Time: timestamppb.New(at)},
				}
			}
			want := mcpv1.Decision_DECISION_ALLOW
			if setup == "on-tainted" {
				want = mcpv1.Decision_DECISION_DENY
			}
			// missLoop's warm-up asks that the first call gets the
			// expected answer: an allow, or the flow rule's deny.
			missLoop(b, c, func(i int) (bool, error) {
				resp, err := srv.Check(context.Background(), reqs[i&(pool-1)])
				return resp.GetDecision() == want, err
			})
		})
	}
}
