package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/verdictpdp/verdict/internal/mcp"
	mcpv1 "github.com/verdictpdp/verdict/proto/verdict/mcp/v1"
)

// errSecret is a decider failure whose text must never reach a client.
var errSecret = errors.New("rpc error: code = Unavailable desc = dial tcp 10.9.8.7:9443: SECRET-INTERNAL")

// overrideDecider answers Check with check when set, else like proxyStub.
type overrideDecider struct {
	proxyStub
	check func(*mcpv1.CheckRequest) (*mcpv1.CheckResponse, error)
}

func (d *overrideDecider) Check(ctx context.Context, req *mcpv1.CheckRequest) (*mcpv1.CheckResponse, error) {
	if d.check != nil {
		return d.check(req)
	}
	return d.proxyStub.Check(ctx, req)
}

type recorder struct {
	mu   sync.Mutex
	recs []Record
}

func (r *recorder) Message(rec *Record) {
	r.mu.Lock()
	r.recs = append(r.recs, *rec)
	r.mu.Unlock()
}

func (r *recorder) actions() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, len(r.recs))
	for i, rec := range r.recs {
		out[i] = rec.Kind + ":" + rec.Action
	}
	return out
}

func newEnforcer(t *testing.T, d Decider, mods ...func(*Options)) (*Enforcer, *recorder) {
	t.Helper()
	rec := &recorder{}
	opts := Options{Server: "test-server", Observer: rec}
	for _, m := range mods {
		m(&opts)
	}
	e, err := New(d, opts)
	if err != nil {
		t.Fatal(err)
	}
	return e, rec
}

// client parses body and hands it to e.Client on c.
func client(t *testing.T, e *Enforcer, c *Conn, body string) Inbound {
	t.Helper()
	msgs, batch, err := mcp.ParseMessages([]byte(body), e.MaxDepth())
	if err != nil {
		t.Fatalf("parse %s: %v", body, err)
	}
	raws, err := Split([]byte(body), batch)
	if err != nil {
		t.Fatal(err)
	}
	return e.Client(context.Background(), c, Caller{Subject: &mcpv1.Subject{Id: "alice"}, SessionID: "s"}, msgs, raws, batch)
}

func decode(t *testing.T, raw json.RawMessage) clientMsg {
	t.Helper()
	var m clientMsg
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	return m
}

func wantErrMsg(t *testing.T, raw json.RawMessage, id string, code int, msg string) {
	t.Helper()
	m := decode(t, raw)
	if string(m.ID) != id || m.Error == nil || m.Error.Code != code || !strings.Contains(m.Error.Message, msg) {
		t.Errorf("got %s, want id %s error %d naming %q", raw, id, code, msg)
	}
	if strings.Contains(string(raw), "SECRET") || strings.Contains(string(raw), "10.9.8.7") {
		t.Errorf("internal error text leaked: %s", raw)
	}
}

func TestEnforcerDeciderFails(t *testing.T) {
	d := &proxyStub{err: errSecret}
	e, rec := newEnforcer(t, d)
	c := e.NewConn()
	in := client(t, e, c, `[`+callOK+`,{"jsonrpc":"2.0","method":"notifications/initialized"}]`)
	if len(in.Forward) != 0 || len(in.Calls) != 0 {
		t.Fatalf("forwarded without a decision: %s", in.Forward)
	}
	if len(in.Answers) != 1 || in.Refused != 1 {
		t.Fatalf("answers %s, refused %d", in.Answers, in.Refused)
	}
	wantErrMsg(t, in.Answers[0], "1", CodeUnavailable, "could not decide")
	if got := rec.actions(); len(got) != 2 || got[0] != "request:failed" || got[1] != "notification:failed" {
		t.Errorf("records %v", got)
	}

	// The client's answer to a real server request: the server gets an
	// error instead, so it is not left waiting.
	if out := e.Server(context.Background(), c, json.RawMessage(`{"jsonrpc":"2.0","id":"s1","method":"roots/list"}`)); out == nil {
		t.Fatal("server request dropped")
	}
	in = client(t, e, c, `{"jsonrpc":"2.0","id":"s1","result":{"roots":[{"uri":"file:///SECRET"}]}}`)
	if len(in.Forward) != 1 {
		t.Fatalf("forward %s", in.Forward)
	}
	wantErrMsg(t, in.Forward[0], `"s1"`, mcp.CodeDenied, "refused")
}

func TestEnforcerResultCheckFails(t *testing.T) {
	for _, tc := range []struct {
		method, params, result, msg string
	}{
		{"tools/list", `{}`, `{"tools":[]}`, "could not filter"},
		{"tools/call", `{"name":"ok"}`, textOK, "could not check"},
		{"resources/read", `{"uri":"file:///x"}`, `{"contents":[]}`, "could not check"},
		{"prompts/get", `{"name":"p"}`, `{"messages":[]}`, "could not check"},
	} {
		t.Run(tc.method, func(t *testing.T) {
			d := &proxyStub{}
			e, _ := newEnforcer(t, d)
			c := e.NewConn()
			in := client(t, e, c, `{"jsonrpc":"2.0","id":1,"method":"`+tc.method+`","params":`+tc.params+`}`)
			if len(in.Forward) != 1 {
				t.Fatalf("not forwarded: %s", in.Answers)
			}
			d.mu.Lock()
			d.err = errSecret
			d.mu.Unlock()
			out := e.Server(context.Background(), c, json.RawMessage(`{"jsonrpc":"2.0","id":1,"result":`+tc.result+`}`))
			wantErrMsg(t, out, "1", CodeUnavailable, tc.msg)
		})
	}
}

func TestEnforcerDenyWithoutError(t *testing.T) {
	d := &overrideDecider{check: func(*mcpv1.CheckRequest) (*mcpv1.CheckResponse, error) {
		return &mcpv1.CheckResponse{
			Decision:        mcpv1.Decision_DECISION_DENY,
			RateLimitStatus: &mcpv1.RateLimitStatus{RetryAfter: durationpb.New(1500 * time.Millisecond)},
		}, nil
	}}
	e, _ := newEnforcer(t, d)
	in := client(t, e, e.NewConn(), callOK)
	if len(in.Answers) != 1 || len(in.Forward) != 0 {
		t.Fatalf("answers %s forward %s", in.Answers, in.Forward)
	}
	wantErrMsg(t, in.Answers[0], "1", mcp.CodeDenied, "denied by policy")
	if in.RetryAfter != 1500*time.Millisecond {
		t.Errorf("RetryAfter %v", in.RetryAfter)
	}
	// Anything but an explicit allow is a refusal.
	d.check = func(*mcpv1.CheckRequest) (*mcpv1.CheckResponse, error) { return &mcpv1.CheckResponse{}, nil }
	if in := client(t, e, e.NewConn(), callOK); len(in.Forward) != 0 {
		t.Errorf("an unspecified decision was forwarded")
	}
}

func TestEnforcerMaxPending(t *testing.T) {
	e, _ := newEnforcer(t, &proxyStub{}, func(o *Options) { o.MaxPending = 2 })
	c := e.NewConn()
	in := client(t, e, c, `[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"ping"},{"jsonrpc":"2.0","id":3,"method":"ping"}]`)
	if len(in.Forward) != 2 || len(in.Answers) != 1 {
		t.Fatalf("forward %s answers %s", in.Forward, in.Answers)
	}
	wantErrMsg(t, in.Answers[0], "3", CodeUnavailable, "too many requests")
}

func TestEnforcerServerRequests(t *testing.T) {
	e, rec := newEnforcer(t, &proxyStub{}, func(o *Options) { o.MaxPending = 2 })
	c := e.NewConn()
	ctx := context.Background()
	for _, tc := range []struct {
		msg  string
		pass bool
	}{
		{`{"jsonrpc":"2.0","id":"a","method":"roots/list"}`, true},
		{`{"jsonrpc":"2.0","id":"a","method":"sampling/createMessage"}`, false}, // the same id again
		{`{"jsonrpc":"2.0","id":1,"method":"roots/list"}`, true},                // a number is another id
		{`{"jsonrpc":"2.0","id":"b","method":"roots/list"}`, false},             // over MaxPending
		{`{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}`, true},
		{`{"jsonrpc":"2.0","id":"c","result":{}}`, false}, // an answer to nothing
		{`{"jsonrpc":"2.0","id":"c","method":"ping","id":"d"}`, false},
		{`not json`, false},
		{`{"jsonrpc":"2.0","id":true,"method":"ping"}`, false},
	} {
		out := e.Server(ctx, c, json.RawMessage(tc.msg))
		if (out != nil) != tc.pass {
			t.Errorf("%s: passed %v, want %v", tc.msg, out != nil, tc.pass)
		}
		if out != nil && string(out) != tc.msg {
			t.Errorf("%s changed to %s", tc.msg, out)
		}
	}
	// The client answers "a" once; the second answer is dropped.
	in := client(t, e, c, `[{"jsonrpc":"2.0","id":"a","result":{"roots":[]}},{"jsonrpc":"2.0","id":"a","result":{"roots":[]}},{"jsonrpc":"2.0","id":"zz","error":{"code":1,"message":"x"}}]`)
	if len(in.Forward) != 1 || in.Refused != 2 {
		t.Errorf("forward %s refused %d", in.Forward, in.Refused)
	}
	if got := rec.actions(); got[len(got)-1] != "response:dropped" {
		t.Errorf("records %v", got)
	}
}

func TestEnforcerUnanswered(t *testing.T) {
	e, rec := newEnforcer(t, &proxyStub{})
	c := e.NewConn()
	in := client(t, e, c, `[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":"x","method":"tools/list"},{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"deny_y"}}]`)
	if len(in.Calls) != 2 {
		t.Fatalf("calls %v", in.Calls)
	}
	// One is answered; the other is not.
	if out := e.Server(context.Background(), c, json.RawMessage(`{"jsonrpc":"2.0","id":1,"result":{}}`)); out == nil {
		t.Fatal("answer dropped")
	}
	out := e.Unanswered(c, append(in.Calls, "n3", "n404"), "the stream ended")
	if len(out) != 1 {
		t.Fatalf("unanswered %s", out)
	}
	wantErrMsg(t, out[0], `"x"`, CodeUnavailable, "the stream ended")
	if c.Pending(in.Calls[1]) {
		t.Error("still pending after Unanswered")
	}
	if again := e.Unanswered(c, in.Calls, "again"); len(again) != 0 {
		t.Errorf("answered twice: %s", again)
	}
	// A late answer is dropped: the client already has its error.
	if late := e.Server(context.Background(), c, json.RawMessage(`{"jsonrpc":"2.0","id":"x","result":{"tools":[]}}`)); late != nil {
		t.Errorf("late answer passed: %s", late)
	}
	got := rec.actions()
	if got[len(got)-2] != "response:failed" || got[len(got)-1] != "response:dropped" {
		t.Errorf("records %v", got)
	}
	// The id may be used again.
	if in := client(t, e, c, `{"jsonrpc":"2.0","id":"x","method":"tools/list"}`); len(in.Forward) != 1 {
		t.Errorf("id not freed: %s", in.Answers)
	}
}

func TestEnforcerServerBody(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		body string
		want []string // ids (or methods) of the messages passed, in order
	}{
		{"empty", "", nil},
		{"blank", " \n\t", nil},
		{"one", `{"jsonrpc":"2.0","id":1,"result":{}}`, []string{"1"}},
		{"batch", `[{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"a"},{"name":"hidden_x"}]}},{"jsonrpc":"2.0","id":1,"result":{}}]`, []string{"2", "1"}},
		{"batch with strays", `[{"jsonrpc":"2.0","id":9,"result":{}},{"jsonrpc":"2.0","id":1,"result":{}},{"jsonrpc":"2.0","id":"1","result":{}},{"jsonrpc":"2.0","id":1,"result":{}}]`, []string{"1"}},
		{"batch with a request and a notification", ` [{"jsonrpc":"2.0","method":"notifications/message","params":{}},{"jsonrpc":"2.0","id":"s","method":"ping"},{"jsonrpc":"2.0","id":1,"error":{"code":-1,"message":"no"}}] `, []string{"notifications/message", "ping", "1"}},
		{"nested batch", `[[{"jsonrpc":"2.0","id":1,"result":{}}],{"jsonrpc":"2.0","id":2,"result":{"tools":[]}}]`, []string{"2"}},
		{"batch of junk", `[1,"x",null,{},{"jsonrpc":"1.0","id":1,"result":{}}]`, nil},
		{"empty batch", `[]`, nil},
		{"invalid batch", `[{"jsonrpc":"2.0","id":1,"result":{}}`, nil},
		{"trailing data", `{"jsonrpc":"2.0","id":1,"result":{}} {"jsonrpc":"2.0","id":2,"result":{}}`, nil},
		{"duplicate member", `{"jsonrpc":"2.0","id":1,"result":{},"id":2}`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, _ := newEnforcer(t, &proxyStub{})
			c := e.NewConn()
			_ = client(t, e, c, `[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"tools/list"}]`)
			out := e.ServerBody(ctx, c, []byte(tc.body))
			var got []string
			for _, raw := range out {
				m := decode(t, raw)
				if m.Method != "" {
					got = append(got, m.Method)
				} else {
					got = append(got, string(m.ID))
				}
				if strings.Contains(string(raw), "hidden") {
					t.Errorf("a hidden tool passed: %s", raw)
				}
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("passed %v, want %v", got, tc.want)
			}
		})
	}
}

func TestEnforcerUncheckedResults(t *testing.T) {
	d := &proxyStub{}
	e, _ := newEnforcer(t, d)
	c := e.NewConn()
	_ = client(t, e, c, `[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"ok"}}]`)
	// ping's result is not checked; the error answer to tools/call has its
	// message checked as the call's result, and goes on as it was.
	for _, msg := range []string{
		`{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"SECRET"}]}}`,
		`{"jsonrpc":"2.0","id":2,"error":{"code":-32000,"message":"failed"}}`,
	} {
		if out := e.Server(context.Background(), c, json.RawMessage(msg)); string(out) != msg {
			t.Errorf("%s became %s", msg, out)
		}
	}
	if len(d.results) != 1 || len(d.filters) != 0 {
		t.Errorf("checked %d results, %d lists; want the error's message checked once", len(d.results), len(d.filters))
	}
}

func TestInboundBodies(t *testing.T) {
	a, b := json.RawMessage(`{"a":1}`), json.RawMessage(`{"b":2}`)
	for _, tc := range []struct {
		in   Inbound
		body string
	}{
		{Inbound{Forward: []json.RawMessage{a}}, `{"a":1}`},
		{Inbound{Forward: []json.RawMessage{a}, Batch: true}, `[{"a":1}]`},
		{Inbound{Forward: []json.RawMessage{a, b}, Batch: true}, `[{"a":1},{"b":2}]`},
	} {
		if got := string(tc.in.Body()); got != tc.body {
			t.Errorf("Body %s, want %s", got, tc.body)
		}
		tc.in.Answers, tc.in.Forward = tc.in.Forward, nil
		if got := string(tc.in.AnswerBody()); got != tc.body {
			t.Errorf("AnswerBody %s, want %s", got, tc.body)
		}
	}
}

func TestEnforcerIDs(t *testing.T) {
	e, _ := newEnforcer(t, &proxyStub{})
	c := e.NewConn()
	in := client(t, e, c, `[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":"1","method":"ping"},{"jsonrpc":"2.0","id":"n1","method":"ping"},{"jsonrpc":"2.0","id":1.0,"method":"ping"}]`)
	// 1 and "1" and "n1" are three ids; 1.0 is 1 again, as the SDKs echo it.
	if len(in.Forward) != 3 || len(in.Answers) != 1 || !strings.Contains(string(in.Answers[0]), "twice") {
		t.Fatalf("forward %d, answers %s", len(in.Forward), in.Answers)
	}
	if out := e.Server(context.Background(), c, json.RawMessage(`{"jsonrpc":"2.0","id":"n1","result":{}}`)); out == nil || !strings.Contains(string(out), `"n1"`) {
		t.Errorf("answer to \"n1\": %s", out)
	}
	if c.Pending("n1") == false || c.Pending(`s1`) == false {
		t.Error("the number 1 or the string \"1\" was answered by \"n1\"")
	}
}
