// Package gateway is Verdict's reference MCP enforcement point: it sits
// between an MCP client and server and asks the native MCP API about every
// message before it passes.
//
//   - Every client request, notification and answer is decided (Check)
//     before it is forwarded; a refused request is answered with the
//     JSON-RPC error the decision carries (an approval is MCP's URL-mode
//     elicitation, -32042), and nothing undecided reaches the server.
//   - Every server answer is matched to a request the client sent on the
//     same connection (others are dropped); list results are filtered
//     (FilterTools) and tool, resource and prompt results checked
//     (CheckResult: pass, redact or block).
//   - Server requests (sampling, elicitation, roots) and notifications pass
//     through; the client's answers go back only to requests the server
//     actually sent.
//
// The Enforcer is transport-free. Proxy carries it over MCP's Streamable
// HTTP transport (2025-06-18 and 2025-11-25 sessions with SSE streams,
// 2026-07-28 stateless requests with Mcp-* headers); Stdio wraps a local
// server process. Every failure to decide or to deliver is answered with
// an error: the gateway fails closed.
package gateway
