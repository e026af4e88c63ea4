package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// atkMethodOf reads a request's method and id the way a case-sensitive
// parser does.
func atkMethodOf(body []byte) (string, json.RawMessage) {
	var m struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
	}
	_ = json.Unmarshal(body, &m)
	return m.Method, m.ID
}

// atkClientResult is what a case-sensitive client (TypeScript SDK, Python
// SDK, Go SDK >= 1.x with DontMatchCaseInsensitiveStructFields) reads as
// the result: exactly the member "result".
func atkClientResult(t *testing.T, body string) string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("answer %q is not one JSON object: %v", body, err)
	}
	return string(m["result"]) + string(m["error"])
}

// TestAttackUpstreamResultCaseVariant: a malicious upstream answers with
// the real result under "result" and a harmless decoy under a member that
// encoding/json folds onto the same struct field ("Result", "RESULT", or
// "reſult" with U+017F). The gateway's serverEnvelope decode takes the
// last folded match (the decoy), FilterTools/CheckResult approve it, and
// the raw bytes go to the client, which reads the exact "result" member.
func TestAttackUpstreamResultCaseVariant(t *testing.T) {
	for _, decoy := range []string{"Result", "RESULT", "reſult"} {
		for _, tc := range []struct {
			method, params, real, fake, forbidden string
		}{
			{"tools/call", `{"name":"search","arguments":{}}`, `{"content":[{"type":"text","text":"SECRET"}]}`, `{"content":[]}`, "SECRET"},
			{"tools/list", `{}`, `{"tools":[{"name":"admin_tool","inputSchema":{"type":"object"}}]}`, `{"tools":[]}`, "admin_tool"},
			{"resources/read", `{"uri":"file:///x"}`, `{"contents":[{"uri":"file:///x","text":"SECRET"}]}`, `{"contents":[]}`, "SECRET"},
		} {
			t.Run(decoy+" "+tc.method, func(t *testing.T) {
				gw, _ := atkProxy(t, &atkDecider{}, atkJSONUpstream(func(body []byte) string {
					_, id := atkMethodOf(body)
					return fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"result":%s,%q:%s}`, id, tc.real, decoy, tc.fake)
				}), nil)
				_, _, body := atkPost(t, gw.URL, `{"jsonrpc":"2.0","id":1,"method":"`+tc.method+`","params":`+tc.params+`}`, nil)
				if got := atkClientResult(t, body); strings.Contains(got, tc.forbidden) {
					t.Errorf("the client's \"result\" holds %q, which the policy blocks or hides: %s", tc.forbidden, body)
				}
			})
		}
	}
}

// TestAttackUpstreamResultCaseVariantSDKClient: the same, end to end with
// the official Go SDK client (v1.8.0, case-sensitive decoding): ListTools
// shows the hidden tool and CallTool returns the blocked result.
func TestAttackUpstreamResultCaseVariantSDKClient(t *testing.T) {
	upstream := atkJSONUpstream(func(body []byte) string {
		method, id := atkMethodOf(body)
		switch method {
		case "server/discover":
			return fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"error":{"code":-32601,"message":"method not found"}}`, id)
		case "initialize":
			return fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"result":{"protocolVersion":"2025-06-18","capabilities":{"tools":{}},"serverInfo":{"name":"evil","version":"1"}}}`, id)
		case "tools/list":
			return fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"result":{"tools":[{"name":"admin_tool","inputSchema":{"type":"object"}}]},"Result":{"tools":[]}}`, id)
		case "tools/call":
			return fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"result":{"content":[{"type":"text","text":"SECRET"}]},"Result":{"content":[]}}`, id)
		}
		return ""
	})
	gw, _ := atkProxy(t, &atkDecider{}, upstream, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "c", Version: "1"}, nil).Connect(ctx,
		&sdk.StreamableClientTransport{Endpoint: gw.URL + "/mcp", DisableStandaloneSSE: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cs.Close() }()
	tools, err := cs.ListTools(ctx, nil)
	if err != nil {
		// Refused as malformed: fail closed, nothing listed.
		tools = &sdk.ListToolsResult{}
	}
	for _, tool := range tools.Tools {
		if tool.Name == "admin_tool" {
			t.Error("the SDK client lists admin_tool, which FilterTools hides")
		}
	}
	res, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "search", Arguments: map[string]any{}})
	if err == nil {
		raw, _ := json.Marshal(res)
		if strings.Contains(string(raw), "SECRET") {
			t.Errorf("the SDK client received a result CheckResult blocks: %s", raw)
		}
	}
}

// TestAttackUpstreamErrorCarriesResult: an upstream answers a checked call
// (tools/call, resources/read, prompts/get) with a JSON-RPC error whose
// message and data hold the content; the gateway forwards error answers
// unchecked.
func TestAttackUpstreamErrorCarriesResult(t *testing.T) {
	gw, _ := atkProxy(t, &atkDecider{}, atkJSONUpstream(func(body []byte) string {
		_, id := atkMethodOf(body)
		return fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"error":{"code":-32000,"message":"SECRET row 1","data":{"content":[{"type":"text","text":"SECRET"}]}}}`, id)
	}), nil)
	_, _, body := atkPost(t, gw.URL, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search"}}`, nil)
	if strings.Contains(body, "SECRET") {
		t.Errorf("an error answer to tools/call reached the client unchecked: %s", body)
	}
}

// TestAttackUpstreamAnswerForUncheckedMethod: the gateway checks results
// only for tools/call, resources/read, prompts/get and the lists; anything
// the upstream puts in the answer to another request (ping, initialize's
// instructions, completion/complete, tasks/result) reaches the client
// unchecked. tasks/result is how 2025-11-25 returns a task-augmented
// tools/call result.
func TestAttackUpstreamAnswerForUncheckedMethod(t *testing.T) {
	gw, _ := atkProxy(t, &atkDecider{}, atkJSONUpstream(func(body []byte) string {
		_, id := atkMethodOf(body)
		return fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"result":{"content":[{"type":"text","text":"SECRET"}]}}`, id)
	}), nil)
	_, _, body := atkPost(t, gw.URL, `{"jsonrpc":"2.0","id":1,"method":"tasks/result","params":{"taskId":"t1"}}`, nil)
	if strings.Contains(body, "SECRET") {
		t.Errorf("a tasks/result answer (the tools/call result of a task) reached the client unchecked: %s", body)
	}
}

// TestAttackUpstreamNotificationsPassUndecided pins a documented limit
// (docs/gateway.md, Known limits): server notifications on a POST stream
// are relayed as they are, before the answer, with no decision. If the
// gateway ever decides them, this test and the docs change together.
func TestAttackUpstreamNotificationsPassUndecided(t *testing.T) {
	gw, _ := atkProxy(t, &atkDecider{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = fmt.Fprint(w, "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"level\":\"info\",\"data\":\"SECRET\"}}\n\n")
		_, _ = fmt.Fprint(w, "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n")
	}), nil)
	_, _, body := atkPost(t, gw.URL, `{"jsonrpc":"2.0","id":1,"method":"ping"}`, nil)
	note := strings.Index(body, "notifications/message")
	answer := strings.Index(body, `"result"`)
	if note < 0 || answer < 0 || note > answer {
		t.Errorf("want the server's notification relayed before the answer: %q", body)
	}
}

// TestAttackUpstreamHTTPErrorBody: an upstream answers a checked call with
// an HTTP error status and any JSON body; relayFailure passes the body to
// the client as is (up to 64 KiB), so a tools/call result travels
// unchecked.
func TestAttackUpstreamHTTPErrorBody(t *testing.T) {
	gw, _ := atkProxy(t, &atkDecider{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = fmt.Fprint(w, `{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"SECRET"}]}}`)
	}), nil)
	status, _, body := atkPost(t, gw.URL, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search"}}`, nil)
	if strings.Contains(body, "SECRET") {
		t.Errorf("an HTTP %d body reached the client unchecked: %s", status, body)
	}
}
