package mcpgen

import (
	"fmt"

	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	mcpv1 "github.com/verdictpdp/verdict/proto/verdict/mcp/v1"
)

// CheckRequest returns the request as a gateway sends it to the native API
// (verdict.mcp.v1.MCPPolicy/Check).
func (r *Request) CheckRequest() (*mcpv1.CheckRequest, error) {
	params, err := structpb.NewStruct(map[string]any{"name": r.Tool, "arguments": r.Arguments})
	if err != nil {
		return nil, fmt.Errorf("mcpgen: params of %s/%s: %w", r.Server, r.Tool, err)
	}
	return &mcpv1.CheckRequest{
		Subject: &mcpv1.Subject{
			Id: r.Subject.ID, Roles: r.Subject.Roles, Groups: r.Subject.Groups, Scopes: r.Subject.Scopes,
			Tenant: r.Subject.Tenant, Clearance: r.Subject.Clearance,
		},
		Server:          r.Server,
		Method:          "tools/call",
		Params:          params,
		SessionId:       r.SessionID,
		ProtocolVersion: protocolVersion,
		Context: &mcpv1.RequestContext{
			SourceIp: r.Context.SourceIP,
			Purpose:  r.Context.Purpose,
			Region:   r.Context.Region,
			Time:     timestamppb.New(r.Context.Time),
		},
	}, nil
}
