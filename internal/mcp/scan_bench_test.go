package mcp_test

import (
	"context"
	"strings"
	"testing"

	"github.com/verdictpdp/verdict/internal/audit"
	"github.com/verdictpdp/verdict/internal/mcp"
)

// BenchmarkCheckResult: a 2 KiB text result, scanned by every detector,
// with two detectors redacting: clean, and with an e-mail address and a
// card number to redact.
func BenchmarkCheckResult(b *testing.B) {
	d, err := scanDecider(b, map[string]any{"test": map[string]any{"redact": []any{"email", "card_number"}}})
	if err != nil {
		b.Fatal(err)
	}
	prose := strings.Repeat("Quarterly figures for the northern region were flat. ", 38)
	r := &mcp.Request{Subject: mcp.Subject{ID: "alice", Authenticated: true}, Server: "crm", Method: mcp.MethodToolsCall, Params: map[string]any{"name": "search"}}
	ctx := context.Background()
	for _, bc := range []struct {
		name   string
		text   string
		action mcp.ResultAction
	}{
		{"clean", prose, mcp.ResultPass},
		{"redacted", prose + "Contact jane@example.com, card 4111 1111 1111 1111.", mcp.ResultRedact},
	} {
		b.Run(bc.name, func(b *testing.B) {
			result := textResult(bc.text)
			b.ReportAllocs()
			for b.Loop() {
				if _, c := d.CheckResult(ctx, audit.KindMCP, r, result); c.Action != bc.action {
					b.Fatal(c.Action)
				}
			}
		})
	}
}

// BenchmarkFilterPoisoning: a tools/list of 20 tools, each scanned for
// poisoning.
func BenchmarkFilterPoisoning(b *testing.B) {
	d, err := scanDecider(b, map[string]any{"mcp": map[string]any{"servers": map[string]any{
		"mail": map[string]any{"tools": map[string]any{"send_email": map[string]any{}, "read_inbox": map[string]any{}}},
	}}})
	if err != nil {
		b.Fatal(err)
	}
	tools := make([]any, 20)
	for i := range tools {
		tools[i] = map[string]any{
			"name":        "tool_" + string(rune('a'+i)),
			"description": "Searches the customer records by name, e-mail or account number and returns at most limit rows.",
			"inputSchema": map[string]any{"type": "object", "properties": map[string]any{
				"query": map[string]any{"type": "string", "description": "What to look for."},
				"limit": map[string]any{"type": "integer", "description": "How many rows, at most."},
			}},
		}
	}
	result := map[string]any{"tools": tools}
	r := &mcp.Request{Subject: mcp.Subject{ID: "alice", Authenticated: true}, Server: "crm", Method: mcp.MethodToolsList}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		d.Filter(ctx, audit.KindMCP, r, mcp.MethodToolsList, result)
	}
}
