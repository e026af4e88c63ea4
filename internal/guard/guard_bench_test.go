package guard

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
)

// mcpToolsCallBody returns a typical MCP tools/call request of 4 KiB: a
// JSON-RPC envelope, a tool name, nested arguments with escapes and
// non-ASCII text, and _meta.
func mcpToolsCallBody() []byte {
	var notes strings.Builder
	for i := 0; notes.Len() < 2800; i++ {
		if i > 0 {
			notes.WriteByte(',')
		}
		notes.WriteString(`{"id":"note-` + strconv.Itoa(i) + `","author":"jos\u00e9@example.com",` +
			`"text":"Quarterly r\u00e9sum\u00e9: revenue up 4.2%, see \"Appendix B\"\nNext steps: review the contract draft.",` +
			`"tags":["finance","q3"],"score":0.87,"pinned":false}`)
	}
	body := `{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{` +
		`"name":"crm_search_notes",` +
		`"arguments":{"query":"contract renewal ACME Corp","limit":25,"include_archived":false,` +
		`"filters":{"from":"2025-07-01T00:00:00Z","to":"2025-09-30T23:59:59Z","owners":["alice","bob","carol"]},` +
		`"notes":[` + notes.String() + `]},` +
		`"_meta":{"progressToken":"7f3c9a2e-1b4d-4e8f-9a6b-2c1d0e9f8a7b","traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}}`
	// Fill up to exactly 4 KiB with a free-text instruction.
	const size = 4 << 10
	if pad := size - len(body) - len(`"instructions":"",`); pad > 0 {
		text := strings.Repeat("Summarise the renewal terms and flag any clause that changes pricing. ", pad/70+1)[:pad]
		body = strings.Replace(body, `"arguments":{`, `"arguments":{"instructions":"`+text+`",`, 1)
	}
	return []byte(body)
}

func TestMCPToolsCallBody(t *testing.T) {
	b := mcpToolsCallBody()
	if len(b) != 4<<10 || !json.Valid(b) {
		t.Fatalf("benchmark body: %d bytes, valid %v", len(b), json.Valid(b))
	}
	if v := ScanJSON(b, JSONLimits{RejectDuplicateKeys: true}); v != nil {
		t.Fatal(v)
	}
}

func BenchmarkScanJSON(b *testing.B) {
	body := mcpToolsCallBody()
	b.Run("guard", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			if v := ScanJSON(body, JSONLimits{}); v != nil {
				b.Fatal(v)
			}
		}
	})
	b.Run("guard-reject-duplicates", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			if v := ScanJSON(body, JSONLimits{RejectDuplicateKeys: true}); v != nil {
				b.Fatal(v)
			}
		}
	})
	b.Run("encoding-json-Valid", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			if !json.Valid(body) {
				b.Fatal("invalid")
			}
		}
	})
}

func BenchmarkScanJSONDepthBomb(b *testing.B) {
	bomb := []byte(strings.Repeat("[", 1<<20))
	b.ReportAllocs()
	for b.Loop() {
		if v := ScanJSON(bomb, JSONLimits{}); v == nil || v.Code != CodeTooDeep {
			b.Fatal(v)
		}
	}
}

func BenchmarkNormalizePath(b *testing.B) {
	for _, bc := range []struct{ name, path string }{
		{"canonical", "/api/v1/users/42/orders"},
		{"query", "/api/v1/users/42/orders?limit=50&cursor=eyJpZCI6NDJ9"},
		{"mcp", "/mcp"},
		{"escapes", "/files/My%20Documents/caf%C3%A9/report%5Fq3.pdf"},
		{"dot-segments", "/static//js/../css/./site.css"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, v := NormalizePath(bc.path); v != nil {
					b.Fatal(v)
				}
			}
		})
	}
}

func BenchmarkCheckPath(b *testing.B) {
	const path = "/api/v1/users/42/orders?limit=50&cursor=eyJpZCI6NDJ9"
	b.ReportAllocs()
	for b.Loop() {
		if v := CheckPath(path, PathLimits{}); v != nil {
			b.Fatal(v)
		}
	}
}

func BenchmarkCheckHeaders(b *testing.B) {
	h := map[string]string{
		":authority":      "api.example.com",
		":method":         "POST",
		":path":           "/mcp",
		":scheme":         "https",
		"accept":          "application/json, text/event-stream",
		"authorization":   "Bearer eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl",
		"content-type":    "application/json",
		"content-length":  "4096",
		"mcp-session-id":  "7f3c9a2e-1b4d-4e8f-9a6b-2c1d0e9f8a7b",
		"user-agent":      "mcp-client/1.8.0",
		"x-forwarded-for": "203.0.113.7",
		"x-request-id":    "a1b2c3d4-e5f6-7890-abcd-ef1234567890",
	}
	b.ReportAllocs()
	for b.Loop() {
		if v := CheckHeaders(h, HeaderLimits{}); v != nil {
			b.Fatal(v)
		}
	}
}
