package mcpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/verdictpdp/verdict/internal/adapter/mcpapi"
	"github.com/verdictpdp/verdict/internal/audit"
	"github.com/verdictpdp/verdict/internal/engine/enginetest"
	"github.com/verdictpdp/verdict/internal/mcp"
	"github.com/verdictpdp/verdict/internal/pipeline"
	mcpv1 "github.com/verdictpdp/verdict/proto/verdict/mcp/v1"
)

const outcomePolicy = `package verdict.mcp

default decision := {"allow": false}

decision := {"require_approval": true, "reasons": [{"code": "approval.needed", "message": "ask a human"}]} if input.method == "tools/list"

decision := {"allow": true, "obligations": {"classification": "restricted", "redact": ["no_such_detector"]}} if input.method == "tools/call"
`

type auditMem struct {
	mu      sync.Mutex
	records []map[string]any
}

func (s *auditMem) Name() string { return "mem" }
func (s *auditMem) Write(_ context.Context, batch []audit.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range batch {
		var m map[string]any
		if err := json.Unmarshal(r.JSON, &m); err != nil {
			return err
		}
		s.records = append(s.records, m)
	}
	return nil
}
func (s *auditMem) Close(context.Context) error { return nil }
func (s *auditMem) Status() audit.SinkStatus    { return audit.SinkStatus{Name: "mem", Healthy: true} }

func outcomeServer(t *testing.T) (*mcpapi.Server, *audit.Recorder, *auditMem, *bytes.Buffer) {
	t.Helper()
	s := &auditMem{}
	rec, err := audit.New(audit.Options{Sinks: []audit.Sink{s}})
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	lg := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	eng := enginetest.Engine(t, mcp.DefaultPath, outcomePolicy, nil)
	p := pipeline.New(eng, pipeline.Options{Audit: rec, Logger: lg})
	return mcpapi.NewServer(mcp.NewDecider(p, mcp.DefaultPath, false), mcpapi.Options{}), rec, s, &logs
}

// A tools/list the policy sends for approval hides every entry and is
// answered DENY, but its JSON-RPC error stays -32003 "Approval required"
// and its audit event says require_approval.
func TestFilterToolsApprovalKeepsItsCode(t *testing.T) {
	srv, rec, s, _ := outcomeServer(t)
	ctx := context.Background()
	result, _ := structpb.NewStruct(map[string]any{"tools": []any{map[string]any{"name": "a"}}})
	resp, err := srv.FilterTools(ctx, &mcpv1.FilterToolsRequest{
		Request: &mcpv1.CheckRequest{Subject: &mcpv1.Subject{Id: "alice"}, Server: "crm", Method: "tools/list"},
		Result:  result,
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = rec.Close(ctx)
	e := resp.GetJsonrpcError()
	if e.GetCode() != mcp.CodeApprovalRequired {
		t.Errorf("jsonrpc_error.code = %d (%q), want %d as before", e.GetCode(), e.GetMessage(), mcp.CodeApprovalRequired)
	}
	if d := e.GetData().AsMap()["decision"]; d != "require_approval" {
		t.Errorf("jsonrpc_error.data.decision = %v, want require_approval", d)
	}
	if len(s.records) != 1 {
		t.Fatalf("%d audit events, want 1", len(s.records))
	}
	if d := s.records[0]["decision"]; d != "require_approval" {
		t.Errorf("audit decision = %v, want require_approval", d)
	}
}

// A result blocked because the policy's redaction cannot be applied is
// logged at WARN with the decision id and the broken rule, and its audit
// event keeps the classification, so the result is masked in the log.
func TestRedactionFailureIsLoggedAndMasked(t *testing.T) {
	srv, rec, s, logs := outcomeServer(t)
	ctx := context.Background()
	params, _ := structpb.NewStruct(map[string]any{"name": "search"})
	result, _ := structpb.NewStruct(map[string]any{"content": []any{map[string]any{"type": "text", "text": "card 4111 1111 1111 1111"}}})
	resp, err := srv.CheckResult(ctx, &mcpv1.CheckResultRequest{
		Request: &mcpv1.CheckRequest{Subject: &mcpv1.Subject{Id: "alice"}, Server: "crm", Method: "tools/call", Params: params},
		Result:  result,
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = rec.Close(ctx)
	if resp.GetAction() != mcpv1.ResultAction_RESULT_ACTION_BLOCK {
		t.Fatalf("action %v, want BLOCK", resp.GetAction())
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "no_such_detector") {
		t.Errorf("no WARN log naming the broken redaction; logs: %q", logs.String())
	}
	if len(s.records) != 1 {
		t.Fatalf("%d audit events, want 1", len(s.records))
	}
	if ev, _ := json.Marshal(s.records[0]); strings.Contains(string(ev), "4111 1111") {
		t.Errorf("the restricted result is in the audit log in clear: %s", ev)
	}
}
