package app_test

import (
	"context"
	"encoding/json"
	"maps"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/verdictpdp/verdict/internal/gateway"
	"github.com/verdictpdp/verdict/internal/mcp"
	extmcp "github.com/verdictpdp/verdict/proto/agentgateway/dev/ext_mcp"
	mcpv1 "github.com/verdictpdp/verdict/proto/verdict/mcp/v1"
)

// gatewayTwin: pdp gateway carries the whole call as its JSON-RPC message,
// the subject it verified (or was configured with), the session, the
// protocol version and its configured purpose and region, plus the
// client's address; not a time.
func gatewayTwin(check map[string]any) (map[string]any, bool) {
	twin := maps.Clone(check)
	if c := member(check, "context"); c != nil {
		ctx := maps.Clone(c)
		delete(ctx, "time")
		twin["context"] = ctx
	}
	return twin, true
}

// askGateway sends the call as a JSON-RPC request through the gateway's
// enforcer, asking the pdp over gRPC as `pdp gateway --pdp` does: allowed
// when the enforcer forwards it.
func askGateway(ctx context.Context, t *testing.T, p *pdp, _ extmcp.ExtMcpClient, check map[string]any) bool {
	t.Helper()
	js, err := json.Marshal(check)
	if err != nil {
		t.Fatal(err)
	}
	var req mcpv1.CheckRequest
	if err := protojson.Unmarshal(js, &req); err != nil {
		t.Fatalf("corpus case is not a CheckRequest: %v", err)
	}
	e, err := gateway.New(gateway.Remote(mcpv1.NewMCPPolicyClient(p.dial(t))), gateway.Options{Server: req.GetServer()})
	if err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": req.GetMethod(), "params": req.GetParams().AsMap()})
	if err != nil {
		t.Fatal(err)
	}
	msgs, batch, err := mcp.ParseMessages(body, 0)
	if err != nil {
		t.Fatalf("the call is not a JSON-RPC request: %v", err)
	}
	raws, err := gateway.Split(body, batch)
	if err != nil {
		t.Fatal(err)
	}
	who := gateway.Caller{
		Subject: req.GetSubject(), SessionID: req.GetSessionId(), ProtocolVersion: req.GetProtocolVersion(),
		SourceIP: req.GetContext().GetSourceIp(), Purpose: req.GetContext().GetPurpose(), Region: req.GetContext().GetRegion(),
	}
	in := e.Client(ctx, e.NewConn(), who, msgs, raws, batch)
	return len(in.Forward) == 1
}
