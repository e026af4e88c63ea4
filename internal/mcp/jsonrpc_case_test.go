package mcp

import (
	"strings"
	"testing"
)

// TestParseMessagesCaseVariants: a member spelled like one of JSON-RPC's
// or MCP's in another case is refused, alone or next to the real one; a
// Go server would read it as the real member, which policy never saw.
func TestParseMessagesCaseVariants(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, body, want string
	}{
		{"method twice", `{"jsonrpc":"2.0","id":1,"method":"ping","Method":"tools/call"}`, "duplicate member"},
		{"Params alone", `{"jsonrpc":"2.0","id":1,"method":"tools/call","Params":{"name":"delete"}}`, `"Params" is not JSON-RPC's "params"`},
		{"name twice", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","Name":"delete"}}`, "duplicate member"},
		{"Arguments alone", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","Arguments":{"limit":5000}}}`, `"Arguments" is not MCP's "arguments"`},
		{"long s", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"param\u017f\":{}}", `is not JSON-RPC's "params"`},
		{"ID alone", `{"jsonrpc":"2.0","ID":1,"method":"ping"}`, `"ID" is not JSON-RPC's "id"`},
	} {
		_, _, err := ParseMessages([]byte(tc.body), 0)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.want)
		}
	}
	if _, _, err := ParseMessages([]byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","arguments":{"Name":"x","name":"y-"}}}`), 0); err == nil {
		t.Error("case-variant names inside arguments are duplicates too")
	}
	if _, _, err := ParseMessages([]byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","arguments":{"Limit":1}}}`), 0); err != nil {
		t.Errorf("an argument named in any case is the tool's business: %v", err)
	}
}
