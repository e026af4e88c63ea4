package app

import (
	"google.golang.org/grpc"

	"github.com/verdictpdp/verdict/internal/adapter/extmcp"
	"github.com/verdictpdp/verdict/internal/config"
	"github.com/verdictpdp/verdict/internal/identity"
	"github.com/verdictpdp/verdict/internal/mcp"
	"github.com/verdictpdp/verdict/internal/pipeline"
	agw "github.com/verdictpdp/verdict/proto/agentgateway/dev/ext_mcp"
)

// registerExtMCP serves agentgateway's ExtMcp protocol on the gRPC listener,
// deciding at the MCP entrypoint on the shared pipeline, with the service's
// token verifier for bearer tokens in the client's headers.
func registerExtMCP(s *grpc.Server, cfg config.Config, p *pipeline.Pipeline, obs mcp.Observer, v *identity.Verifier) {
	agw.RegisterExtMcpServer(s, extmcp.NewServer(newMCPDecider(cfg, p, obs), extmcp.Options{
		MaxDepth: mcpMaxDepth(cfg), Verifier: v,
	}))
}
