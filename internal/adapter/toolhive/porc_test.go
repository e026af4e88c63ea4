package toolhive_test

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/verdictpdp/verdict/internal/adapter/toolhive"
	"github.com/verdictpdp/verdict/internal/mcp"
)

// TestParsePORC reads principals as ToolHive's two claim mappers write
// them, and the question's other parts, into what the MCP input gets.
func TestParsePORC(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		body string
		want toolhive.Question
	}{
		{
			name: "standard mapping with OAuth's scope string",
			body: `{"principal":{"sub":"eve","roles":["dev"],"groups":["eng"],"scope":"openid  github:write"},
				"operation":"mcp:tool:call","resource":"mrn:mcp:github:tool:list_issues",
				"context":{"mcp":{"feature":"tool","operation":"call","resource_id":"list_issues","args":{"repo":"a/b","n":7}}}}`,
			want: toolhive.Question{
				Feature: "tool", Operation: "call", Server: "github", ID: "list_issues",
				Args: map[string]any{"repo": "a/b", "n": json.Number("7")}, HasArgs: true, Mapping: toolhive.MappingStandard,
				Subject: mcp.Subject{ID: "eve", Roles: []string{"dev"}, Groups: []string{"eng"}, Scopes: []string{"openid", "github:write"},
					Authenticated: true, Source: mcp.SourceGateway},
			},
		},
		{
			name: "mpe mapping: m-prefixed roles, groups and clearance win",
			body: `{"principal":{"sub":"ana","mroles":["analyst"],"roles":["admin"],"mgroups":"emea","scopes":["a","b"],
				"mclearance":"internal","clearance":"restricted","mannotations":{"team":"east"},"tenant":"acme"},
				"operation":"mcp:resource:read","resource":"mrn:mcp:crm:resource:crm://contacts/4:2"}`,
			want: toolhive.Question{
				Feature: "resource", Operation: "read", Server: "crm", ID: "crm://contacts/4:2", Mapping: toolhive.MappingMPE,
				Subject: mcp.Subject{ID: "ana", Roles: []string{"analyst"}, Groups: []string{"emea"}, Scopes: []string{"a", "b"},
					Clearance: "internal", Tenant: "acme", Authenticated: true, Source: mcp.SourceGateway},
			},
		},
		{
			name: "mannotations alone is mpe; no sub is no authenticated subject",
			body: `{"principal":{"mannotations":{},"roles":["admin"]},"operation":"mcp:prompt:get","resource":"mrn:mcp:crm:prompt:p","context":{}}`,
			want: toolhive.Question{
				Feature: "prompt", Operation: "get", Server: "crm", ID: "p", Mapping: toolhive.MappingMPE,
			},
		},
		{
			name: "a list has no id; annotations and unknown members are ignored",
			body: `{"principal":{"sub":"x"},"operation":"mcp:tool:list","resource":"mrn:mcp:crm:tool:","extra":1,
				"context":{"mcp":{"annotations":{"readOnlyHint":true}},"other":[]}}`,
			want: toolhive.Question{
				Feature: "tool", Operation: "list", Server: "crm", Mapping: toolhive.MappingStandard,
				Subject: mcp.Subject{ID: "x", Authenticated: true, Source: mcp.SourceGateway},
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			q, err := toolhive.ParsePORC([]byte(c.body), toolhive.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(c.want, *q, cmpopts.IgnoreFields(mcp.Subject{}, "Claims"), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("question (-want +got):\n%s", diff)
			}
			var body map[string]any
			_ = json.Unmarshal([]byte(c.body), &body)
			if len(q.Subject.Claims) != len(body["principal"].(map[string]any)) {
				t.Errorf("claims %v are not the whole principal", q.Subject.Claims)
			}
		})
	}
}
