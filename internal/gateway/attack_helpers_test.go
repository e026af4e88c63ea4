package gateway

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/types/known/structpb"

	mcpv1 "github.com/verdictpdp/verdict/proto/verdict/mcp/v1"
)

// atkDecider is the policy of the attack tests: tools/call of "delete_all"
// is denied, the tool "admin_tool" is hidden from lists, and a checked
// result holding "SECRET" is blocked. Everything else is allowed.
type atkDecider struct {
	mu      sync.Mutex
	checked []string // method/name of every allowed Check
	// hold, when set, is called by Check before it answers.
	hold func(req *mcpv1.CheckRequest)
}

func (d *atkDecider) Check(_ context.Context, req *mcpv1.CheckRequest) (*mcpv1.CheckResponse, error) {
	if d.hold != nil {
		d.hold(req)
	}
	name := req.GetParams().GetFields()["name"].GetStringValue()
	if req.GetMethod() == "tools/call" && name == "delete_all" {
		return &mcpv1.CheckResponse{Decision: mcpv1.Decision_DECISION_DENY, DecisionId: "deny",
			JsonrpcError: &mcpv1.JsonRpcError{Code: -32001, Message: "delete_all is not allowed"}}, nil
	}
	d.mu.Lock()
	d.checked = append(d.checked, req.GetMethod()+"/"+name)
	d.mu.Unlock()
	return &mcpv1.CheckResponse{Decision: mcpv1.Decision_DECISION_ALLOW, DecisionId: "allow"}, nil
}

func (d *atkDecider) FilterTools(_ context.Context, req *mcpv1.FilterToolsRequest) (*mcpv1.FilterToolsResponse, error) {
	res := req.GetResult()
	tools := res.GetFields()["tools"].GetListValue()
	var kept []*structpb.Value
	for _, t := range tools.GetValues() {
		if t.GetStructValue().GetFields()["name"].GetStringValue() != "admin_tool" {
			kept = append(kept, t)
		}
	}
	if len(kept) == len(tools.GetValues()) {
		return &mcpv1.FilterToolsResponse{Decision: mcpv1.Decision_DECISION_ALLOW, Result: res}, nil
	}
	res.Fields["tools"] = structpb.NewListValue(&structpb.ListValue{Values: kept})
	return &mcpv1.FilterToolsResponse{Decision: mcpv1.Decision_DECISION_ALLOW, Result: res,
		Removed: []*mcpv1.RemovedEntry{{Name: "admin_tool", Reason: &mcpv1.Reason{Code: "tool_hidden"}}}}, nil
}

func (d *atkDecider) CheckResult(_ context.Context, req *mcpv1.CheckResultRequest) (*mcpv1.CheckResultResponse, error) {
	b, _ := json.Marshal(req.GetResult().AsMap())
	if strings.Contains(string(b), "SECRET") {
		return &mcpv1.CheckResultResponse{Action: mcpv1.ResultAction_RESULT_ACTION_BLOCK, DecisionId: "block"}, nil
	}
	return &mcpv1.CheckResultResponse{Action: mcpv1.ResultAction_RESULT_ACTION_PASS, DecisionId: "pass"}, nil
}

// atkProxy serves a Proxy in front of upstream with d, every caller being
// subject alice (or the subject Verify names from the bearer token).
func atkProxy(t *testing.T, d Decider, upstream http.Handler, configure func(*ProxyOptions)) (*httptest.Server, *httptest.Server) {
	t.Helper()
	up := httptest.NewServer(upstream)
	t.Cleanup(up.Close)
	e, err := New(d, Options{Server: "crm"})
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(up.URL)
	opts := ProxyOptions{Upstream: u, Subject: &mcpv1.Subject{Id: "alice", Tenant: "acme"}}
	if configure != nil {
		configure(&opts)
	}
	p, err := NewProxy(e, opts)
	if err != nil {
		t.Fatal(err)
	}
	gw := httptest.NewServer(p)
	t.Cleanup(gw.Close)
	return gw, up
}

// atkPost posts body to the gateway and returns status, headers and body.
func atkPost(t *testing.T, gwURL, body string, hdr map[string]string) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, gwURL+"/mcp", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// atkJSONUpstream answers every POST with the JSON body answer returns for
// the request's raw body (or 202 when it returns "").
func atkJSONUpstream(answer func(body []byte) string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		out := answer(body)
		if out == "" {
			w.WriteHeader(http.StatusAccepted)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, out)
	})
}
