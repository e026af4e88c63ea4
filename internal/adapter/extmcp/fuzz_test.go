package extmcp_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/verdictpdp/verdict/internal/adapter/extmcp"
	"github.com/verdictpdp/verdict/internal/adapter/mcpapi"
	"github.com/verdictpdp/verdict/internal/guard"
	"github.com/verdictpdp/verdict/internal/mcp"
	"github.com/verdictpdp/verdict/internal/pipeline"
	agw "github.com/verdictpdp/verdict/proto/agentgateway/dev/ext_mcp"
	mcpv1 "github.com/verdictpdp/verdict/proto/verdict/mcp/v1"
)

// FuzzCheckRequest sends arbitrary methods, servers, params, headers and
// gateway claims to CheckRequest. It must never panic nor fail the call; it
// must answer with a result; it must never pass params that are not a
// strict JSON object, nor a request the native API (asked the same
// question on the same pipeline) would not allow for each server the
// answer lets through.
func FuzzCheckRequest(f *testing.F) {
	seeds := []struct {
		method, servers string
		params          string
		hasParams       bool
		authorization   string
		sub, roles      string
		purpose         string
	}{
		{"tools/call", "crm", `{"name":"search_contacts","arguments":{"tenant":"acme","query":"smith"}}`, true, "", "alice", "sales", "support"},
		{"tools/call", "crm", `{"name":"search_contacts","arguments":{"tenant":"acme","query":"smith","limit":1e3}}`, true, "", "alice", "sales", "support"},
		{"tools/call", "crm", `{"name":"delete_contact","arguments":{"tenant":"acme","id":"1"}}`, true, "", "carol", "crm_admin", "support"},
		{"tools/call", "crm", `{"name":"search_contacts","name":"x"}`, true, "", "alice", "sales", ""},
		{"tools/call", "crm", `[]`, true, "Bearer abc.def.ghi", "", "", ""},
		{"resources/read", "crm", `{"uri":"crm://reports/q3"}`, true, "", "alice", "sales analyst", "support"},
		{"prompts/get", "crm", `{"name":"summarize_account","arguments":{"a":"b"}}`, true, "", "alice", "sales", ""},
		{"tools/list", "crm,github", "", false, "", "alice", "sales", ""},
		{"tools/list", "crm,crm", "", false, "", "alice", "sales", ""},
		{"initialize", "crm", `{"protocolVersion":"2025-11-25"}`, true, "", "alice", "", ""},
		{"tools/call", "", "{}", true, "Basic x", "", "", ""},
		{"", "crm", "\xff", true, "", "alice", "", ""},
	}
	for _, s := range seeds {
		f.Add(s.method, s.servers, []byte(s.params), s.hasParams, s.authorization, s.sub, s.roles, s.purpose)
	}
	decider := mcp.NewDecider(pipeline.New(newEngine(f, nil, false), pipeline.Options{}), mcp.DefaultPath, false)
	ext := extmcp.NewServer(decider, extmcp.Options{})
	native := mcpapi.NewServer(decider, mcpapi.Options{})
	f.Fuzz(func(t *testing.T, method, servers string, params []byte, hasParams bool, authorization, sub, roles, purpose string) {
		ctx := context.Background()
		req := &agw.McpRequest{Method: method}
		if servers != "" {
			req.ServiceNames = strings.Split(servers, ",")
		}
		if hasParams {
			req.McpRequest = append([]byte{}, params...)
		}
		claims := map[string]any{}
		if sub != "" {
			claims["sub"] = sub
		}
		if roles != "" {
			claims["roles"] = roles
		}
		md := map[string]any{"region": "eu"}
		if len(claims) > 0 {
			md["jwt"] = claims
		}
		if purpose != "" {
			md["purpose"] = purpose
		}
		if st, err := structpb.NewStruct(md); err == nil {
			req.MetadataContext = st
		}
		if authorization != "" {
			req.Headers = []*agw.McpHeader{{Key: "authorization", Value: []byte(authorization)}}
		}

		res, err := ext.CheckRequest(ctx, req)
		if err != nil {
			t.Fatalf("CheckRequest returned an error: %v", err)
		}
		if ae := res.GetError(); ae != nil {
			var obj mcp.ErrorObject
			if json.Unmarshal(ae.GetMcpError(), &obj) != nil || obj.Code == 0 || ae.GetReason() == "" {
				t.Fatalf("error %v: mcp_error is not a JSON-RPC error object", ae)
			}
			return
		}
		if res.GetPass() == nil {
			t.Fatalf("answer %v is neither pass nor error", res)
		}

		// It passed: the params must be a strict JSON object...
		var decoded map[string]any
		if hasParams {
			if _, err := mcp.ParseObject("params", params, guard.JSONLimits{MaxDepth: mcp.DefaultMaxDepth}); err != nil {
				t.Fatalf("passed params the MCP parser refuses (%v): %q", err, params)
			}
			if json.Unmarshal(params, &decoded) != nil {
				t.Fatalf("passed params that are not JSON: %q", params)
			}
		}
		// ...and the native API must allow it for every server let through.
		allowed := req.ServiceNames
		if at := res.GetMetadata().GetFields()["allowed_targets"]; at != nil {
			allowed = nil
			for _, v := range at.GetListValue().GetValues() {
				allowed = append(allowed, v.GetStringValue())
			}
		}
		nreq := &mcpv1.CheckRequest{Method: method, Context: &mcpv1.RequestContext{Purpose: purpose, Region: "eu"}}
		if decoded != nil {
			st, err := structpb.NewStruct(decoded)
			if err != nil {
				return // not expressible as a Struct: the native API cannot be asked
			}
			nreq.Params = st
		}
		// Without identity.jwt (as here) the gateway's claims win over a
		// token; the native API gets whichever ExtMcp went by.
		switch {
		case sub != "":
			nreq.Subject = &mcpv1.Subject{Id: sub, Roles: strings.Fields(roles), Claims: req.GetMetadataContext().GetFields()["jwt"].GetStructValue()}
		case authorization != "":
			tok, _ := strings.CutPrefix(authorization, "Bearer ")
			nreq.BearerToken = tok
		}
		for _, server := range allowed {
			nreq.Server = server
			nat, err := native.Check(ctx, nreq)
			if err != nil || nat.GetDecision() != mcpv1.Decision_DECISION_ALLOW {
				t.Fatalf("ExtMcp passed %s on %s; the native API answers %v %v", method, server, nat.GetDecision(), err)
			}
		}
	})
}
