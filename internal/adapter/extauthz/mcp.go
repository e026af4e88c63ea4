package extauthz

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/open-policy-agent/opa/v1/ast"
	"google.golang.org/genproto/googleapis/rpc/code"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/verdictpdp/verdict/internal/audit"
	"github.com/verdictpdp/verdict/internal/challenge"
	"github.com/verdictpdp/verdict/internal/enforce"
	"github.com/verdictpdp/verdict/internal/guard"
	"github.com/verdictpdp/verdict/internal/mcp"
	"github.com/verdictpdp/verdict/internal/pipeline"
)

// Context extension keys (set per route in Envoy's ext_authz filter config,
// so the client cannot choose them) that describe an MCP endpoint.
const (
	ExtensionMCPServer  = "mcp_server"
	ExtensionMCPRegion  = "mcp_region"
	ExtensionMCPPurpose = "mcp_purpose"
)

// JWTFilterNamespace is where Envoy's jwt_authn filter puts verified token
// payloads (payload_in_metadata); the first payload found becomes the MCP
// subject.
const JWTFilterNamespace = "envoy.filters.http.jwt_authn"

// MCPOptions turn on MCP over Envoy: the POSTs of routes the operator
// marked as MCP (the route's mcp_server context extension, or Routes) are
// decided at the MCP entrypoint; everything else at Options.Path.
type MCPOptions struct {
	Decider *mcp.Decider
	// Routes mark routes as MCP for proxies that cannot set the
	// mcp_server context extension per route.
	Routes   []MCPRoute
	MaxDepth int
	Now      func() time.Time
}

// InputEnvoy is the member of the MCP input that holds, for a request that
// came through ext_authz, the opa-envoy-plugin input of the request.
const InputEnvoy = "envoy"

// decideMCP decides a POST to a route marked as MCP for server: it is an MCP
// message, or it is refused. Each message is decided at the MCP entrypoint
// with the MCP input the native API builds, plus the request's
// opa-envoy-plugin input under input.envoy.
func (s *Server) decideMCP(ctx context.Context, out *Outcome, req *authv3.CheckRequest, server string, lean LeanInput, id *requestIdentity) {
	httpReq := req.GetAttributes().GetRequest().GetHttp()
	var parsed any
	if t := lean.Value.Get(kTruncatedBody); t != nil && !t.Equal(ast.InternedTerm(true)) && strings.Contains(httpReq.GetHeaders()["content-type"], "application/json") {
		parsed = lean.ParsedBody // decoded once by BuildValue
	}
	env, err := mcp.FromHTTP(s.mcpHTTPRequest(httpReq, parsed))
	if err != nil {
		s.rejectMCP(out, err)
		return
	}

	// The MCP decider keys and evaluates Go values: the Envoy input goes
	// with them, converted once and shared (never modified) by every
	// message of the request.
	envoy, err := envoyJSON(lean.Value)
	if err != nil {
		s.rejectMCP(out, err)
		return
	}
	subject := envoySubject(req)
	if id != nil && id.verifying {
		subject = id.subject
	}
	base := mcp.Request{
		Subject:         subject,
		Server:          server,
		SessionID:       env.SessionID,
		ProtocolVersion: env.ProtocolVersion,
		Context:         envoyContext(req),
	}
	if id != nil && id.peer.Verified {
		base.Peer = id.peer.Input()
	}
	now := s.opts.MCP.Now()
	dc := s.opts.MCP.Decider
	ids := make([]any, len(env.Messages))
	out.MCP = make([]pipeline.Outcome, len(env.Messages))
	for i, m := range env.Messages {
		r := base
		r.Method, r.Params, r.Response = m.Method, m.Params, m.Response
		ids[i] = m.ID
		id := ""
		if len(env.Messages) == 1 {
			id = out.DecisionID
		}
		o := dc.Start(audit.KindMCPOverEnvoy, &r, id)
		in, err := r.Input(now)
		if err != nil {
			dc.Reject(&o, err)
			out.MCP[i] = o
			continue
		}
		if env.FromHeaders {
			in["from_headers"] = true
			if t, ok := in["tool"].(map[string]any); ok {
				t["arguments"] = env.HeaderParams
			}
		}
		in[InputEnvoy] = envoy
		dc.Decide(ctx, &o, in)
		dc.Enforce(ctx, &o)
		out.MCP[i] = o
	}
	s.summarizeMCP(out)
	out.InputValue = lean.Value // a batch's: each message's is in out.MCP
	out.Response = s.mcpResponse(out.DecisionID, out.MCP, ids, env.Batch)
}

// rejectMCP refuses a POST to an MCP route that is not an MCP message.
func (s *Server) rejectMCP(out *Outcome, err error) {
	dc := s.opts.MCP.Decider
	o := dc.Start(audit.KindMCPOverEnvoy, &mcp.Request{}, out.DecisionID)
	o.Request = nil
	dc.Reject(&o, err)
	out.MCP = []pipeline.Outcome{o}
	s.summarizeMCP(out)
	out.Response = s.mcpResponse(out.DecisionID, out.MCP, []any{nil}, false)
}

// summarizeMCP gives the request's outcome what its messages decided: the
// worst verdict, and for one message its input, result and failure.
func (s *Server) summarizeMCP(out *Outcome) {
	out.Path = s.opts.MCP.Decider.Path()
	out.Verdict = pipeline.Allow
	for i := range out.MCP {
		out.Verdict = max(out.Verdict, out.MCP[i].Verdict)
	}
	if len(out.MCP) > 0 {
		out.Revision = out.MCP[0].Revision
	}
	if len(out.MCP) == 1 {
		m := &out.MCP[0]
		out.Input, out.Result, out.Err, out.Failure = m.Input, m.Result, m.Err, m.Failure
		out.Cached, out.Bundles, out.EvalTook = m.Cached, m.Bundles, m.EvalTook
	}
}

// mcpHTTPRequest is the part of an ext_authz request MCP detection reads.
// The body is complete unless Envoy said it cut it (x-envoy-auth-partial-body)
// or content-length is larger than what it sent.
func (s *Server) mcpHTTPRequest(httpReq *authv3.AttributeContext_HttpRequest, parsed any) mcp.HTTPRequest {
	body := []byte(httpReq.GetBody())
	if len(body) == 0 {
		body = httpReq.GetRawBody()
	}
	headers := httpReq.GetHeaders()
	complete := headers[HeaderPartialBody] != "true"
	if cl, err := strconv.ParseInt(headers["content-length"], 10, 64); err == nil && cl > int64(len(body)) {
		complete = false
	}
	return mcp.HTTPRequest{
		Headers: headers, Body: body, Parsed: parsed,
		BodyComplete: complete, MaxDepth: s.opts.MCP.MaxDepth,
	}
}

// refuseMCPBody answers as MCP (a JSON-RPC error) a request whose input was
// refused for a duplicate JSON member name when the request is an MCP
// message: MCP always refuses duplicates, and its clients get the same
// JSON-RPC answer whatever the ext_authz options. It reports whether it
// answered.
func (s *Server) refuseMCPBody(out *Outcome, req *authv3.CheckRequest, err error) bool {
	if ie, ok := errors.AsType[*InputError](err); !ok || ie.Code != guard.CodeDuplicateKey {
		return false
	}
	_, merr := mcp.FromHTTP(s.mcpHTTPRequest(req.GetAttributes().GetRequest().GetHttp(), nil))
	if _, ok := errors.AsType[*mcp.RequestError](merr); !ok {
		return false
	}
	s.rejectMCP(out, merr)
	return true
}

// envoyJSON converts the built input to the Go values the MCP decider takes.
func envoyJSON(v ast.Object) (map[string]any, error) {
	x, err := ast.JSON(v)
	if err != nil {
		return nil, err
	}
	m, ok := x.(map[string]any)
	if !ok {
		return nil, errors.New("input is not an object")
	}
	return m, nil
}

// mcpResponse allows when every message is allowed, and otherwise denies the
// whole HTTP request with a JSON-RPC error body: one error response, or for
// a batch one per request (notifications get none).
func (s *Server) mcpResponse(decisionID string, outs []pipeline.Outcome, ids []any, batch bool) *authv3.CheckResponse {
	allowed := true
	invalid := false
	for i := range outs {
		if outs[i].Verdict != mcp.Allow {
			allowed = false
		}
		if errors.As(outs[i].Err, new(*mcp.RequestError)) {
			invalid = true
		}
	}
	if allowed || s.opts.DryRun {
		resp := allowWithoutDecision(decisionID)
		if len(outs) == 1 {
			addMCPMetadata(resp, &outs[0])
			if st := outs[0].RateLimit; st != nil {
				resp.HttpResponse = withResponseHeaders(nil, st.Headers())
			}
		}
		return resp
	}
	responses := make([]any, 0, len(outs))
	for i := range outs {
		var id any
		if i < len(ids) {
			id = ids[i]
		}
		if id == nil && batch {
			continue // a notification gets no response
		}
		e, ok := mcp.RPCError(&outs[i])
		if !ok {
			e = mcp.ErrorObject{Code: mcp.CodeDenied, Message: "Not executed: another request in the batch was denied", Data: map[string]any{"decision_id": outs[i].DecisionID}}
		}
		responses = append(responses, mcp.NewErrorResponse(id, e))
	}
	var payload any = responses
	if !batch && len(responses) == 1 {
		payload = responses[0]
	}
	body, err := json.Marshal(payload)
	if err != nil {
		body = []byte(`{"jsonrpc":"2.0","id":null,"error":{"code":-32001,"message":"Denied by policy"}}`)
	}
	httpCode := typev3.StatusCode_Forbidden
	headers := []*corev3.HeaderValueOption{headerValue("content-type", "application/json")}
	switch limited, ch := s.mcpRefusal(outs); {
	case invalid:
		httpCode = typev3.StatusCode_BadRequest
	case limited != nil:
		httpCode = typev3.StatusCode_TooManyRequests
		for _, h := range limited.Headers() {
			headers = append(headers, headerValue(h[0], h[1]))
		}
	case ch != nil:
		httpCode = typev3.StatusCode(int32(ch.Status)) //nolint:gosec // 401 or 403
		headers = append(headers, headerValue("www-authenticate", ch.Header))
	}
	resp := &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(code.Code_PERMISSION_DENIED), Message: "denied by MCP policy"},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: httpCode},
			Headers: headers,
			Body:    string(body),
		}},
	}
	setDecisionID(resp, decisionID)
	if len(outs) == 1 {
		addMCPMetadata(resp, &outs[0])
	}
	return resp
}

// mcpRefusal picks the HTTP answer of a denied MCP request: the first
// message refused by its rate limit (429), else one challenge for all
// messages: 401 when any lacks a valid token, else 403 naming every scope
// any message needs.
func (s *Server) mcpRefusal(outs []pipeline.Outcome) (*enforce.Status, *challenge.Challenge) {
	var scopes []string
	var unauthorized *challenge.Challenge
	for i := range outs {
		if st := outs[i].RateLimit; st != nil && st.Refused && st.Code == enforce.ReasonRateLimited {
			return st, nil
		}
		if c := outs[i].Challenge; c != nil {
			if c.Status == 401 && unauthorized == nil {
				unauthorized = c
			}
			scopes = append(scopes, c.Scopes...)
		}
	}
	if unauthorized != nil {
		return nil, unauthorized
	}
	if len(scopes) > 0 {
		c := challenge.InsufficientScope(s.p.ResourceMetadata(), scopes, "")
		return nil, &c
	}
	return nil, nil
}

// addMCPMetadata puts the decision's outcome and main obligations into the
// dynamic metadata, for Envoy's access log and later filters.
func addMCPMetadata(resp *authv3.CheckResponse, o *pipeline.Outcome) {
	f := resp.GetDynamicMetadata().GetFields()
	f["mcp_decision"] = structpb.NewStringValue(o.Verdict.String())
	ob := mcp.DecisionOf(o).Obligations
	if ob.Classification != "" {
		f["classification"] = structpb.NewStringValue(ob.Classification)
	}
	if ob.RetentionDays > 0 {
		f["retention_days"] = structpb.NewNumberValue(float64(ob.RetentionDays))
	}
	if len(ob.Controls) > 0 {
		vals := make([]*structpb.Value, len(ob.Controls))
		for i, c := range ob.Controls {
			vals[i] = structpb.NewStringValue(c)
		}
		f["controls"] = structpb.NewListValue(&structpb.ListValue{Values: vals})
	}
}

// envoySubject reads the subject from a token payload that Envoy's
// jwt_authn filter verified. Without one the subject is unauthenticated.
func envoySubject(req *authv3.CheckRequest) mcp.Subject {
	md := req.GetAttributes().GetMetadataContext().GetFilterMetadata()[JWTFilterNamespace]
	for _, name := range slices.Sorted(maps.Keys(md.GetFields())) {
		payload := md.GetFields()[name].GetStructValue()
		if payload == nil {
			continue
		}
		if s, ok := mcp.SubjectFromClaims(payload.AsMap(), mcp.SourceJWTAuthn); ok {
			return s
		}
	}
	return mcp.Subject{}
}

func envoyContext(req *authv3.CheckRequest) mcp.Context {
	a := req.GetAttributes()
	c := mcp.Context{
		SourceIP: a.GetSource().GetAddress().GetSocketAddress().GetAddress(),
		Region:   a.GetContextExtensions()[ExtensionMCPRegion],
		Purpose:  a.GetContextExtensions()[ExtensionMCPPurpose],
	}
	if t := a.GetRequest().GetTime(); t != nil && t.CheckValid() == nil {
		c.Time = t.AsTime()
	}
	return c
}
