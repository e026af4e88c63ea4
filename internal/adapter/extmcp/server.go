// Package extmcp is the gRPC adapter for agentgateway's ExtMcp protocol
// (agentgateway.dev.ext_mcp.ExtMcp): agentgateway's mcpGuardrails remote
// processors call CheckRequest before a JSON-RPC request goes to an MCP
// server and CheckResponse before its result goes back to the client. The
// adapter maps both onto internal/mcp requests and asks the MCP decider,
// which runs the shared pipeline (cache, policy, rate limits, audit): the
// same call gets the verdict the native API (verdict.mcp.v1) gives it.
//
// It holds no policy logic and imports no other adapter. Every request is
// answered with a result, never a gRPC error: one that cannot be decided is
// refused with an INVALID result, which agentgateway sends to the client as
// a JSON-RPC error whatever the processor's failureMode (fail closed).
//
// agentgateway's McpResponse carries the result alone. The request it
// answers (subject, tool, arguments) is remembered in memory under the
// decision id CheckRequest returns in its metadata, which the processor
// sends back in metadata_context (see MetaDecisionID); a result whose
// request is unknown cannot be checked and is blocked.
package extmcp

import (
	"bytes"
	"context"
	"encoding/json"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/verdictpdp/verdict/internal/audit"
	"github.com/verdictpdp/verdict/internal/enforce"
	"github.com/verdictpdp/verdict/internal/identity"
	"github.com/verdictpdp/verdict/internal/mcp"
	"github.com/verdictpdp/verdict/internal/pipeline"
	agw "github.com/verdictpdp/verdict/proto/agentgateway/dev/ext_mcp"
)

// Default size limits of the JSON text in requests and responses.
const (
	DefaultMaxRequestBytes  = 1 << 20
	DefaultMaxResponseBytes = 4 << 20
)

// ReasonResultUnchecked is the reason code of a result blocked because the
// request it answers is unknown.
const ReasonResultUnchecked = "result.unchecked"

// Options configure the server. Every member may be left zero.
type Options struct {
	// MaxDepth bounds the nesting of params, results and metadata (default
	// mcp.DefaultMaxDepth).
	MaxDepth int
	// MaxRequestBytes bounds mcp_request (default 1 MiB), MaxResponseBytes
	// mcp_response (default 4 MiB).
	MaxRequestBytes  int
	MaxResponseBytes int
	// Verifier verifies a bearer token in the client's Authorization
	// header (nil: such a request gets an unauthenticated subject, reason
	// token_unverifiable).
	Verifier *identity.Verifier
	// PendingEntries, PendingBytes and PendingTTL bound the requests
	// remembered for their responses (defaults 10,000, 64 MiB, 15 minutes).
	PendingEntries int
	PendingBytes   int
	PendingTTL     time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Server implements agentgateway.dev.ext_mcp.ExtMcp.
type Server struct {
	agw.UnimplementedExtMcpServer

	decider *mcp.Decider
	opts    Options
	pending *pending
}

var _ agw.ExtMcpServer = (*Server)(nil)

// NewServer returns the ExtMcp service deciding with decider.
func NewServer(decider *mcp.Decider, opts Options) *Server {
	if opts.MaxDepth <= 0 {
		opts.MaxDepth = mcp.DefaultMaxDepth
	}
	if opts.MaxRequestBytes <= 0 {
		opts.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if opts.MaxResponseBytes <= 0 {
		opts.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if opts.Now == nil {
		opts.Now = time.Now
	} else {
		decider = decider.WithClock(opts.Now)
	}
	return &Server{
		decider: decider,
		opts:    opts,
		pending: newPending(opts.PendingEntries, opts.PendingBytes, opts.PendingTTL, opts.Now),
	}
}

// CheckRequest implements ExtMcp.CheckRequest: it decides the request for
// each MCP server it goes to. A single-target method (tools/call, ...) goes
// to one; a fan-out method (*/list, initialize, ...) to every server
// agentgateway fans out to. It passes when every server allows, and refuses
// with the first denying server's answer otherwise, but for a listing that
// some servers allow: that passes with metadata.allowed_targets naming them,
// which agentgateway fans out to instead of all (a build that ignores it
// still lists the others, whose entries the response check then removes).
func (s *Server) CheckRequest(ctx context.Context, req *agw.McpRequest) (*agw.McpRequestResult, error) {
	method, names := req.GetMethod(), req.GetServiceNames()
	if err := mcp.ValidName("method", method); err != nil {
		return s.refuseRequest(ctx, mcp.Request{}, invalid("method: %v", err)), nil
	}
	if r := services(names); r != nil {
		return s.refuseRequest(ctx, mcp.Request{Method: method}, r), nil
	}
	summary := mcp.Request{Method: method, Server: names[0]}
	hasBody := req.McpRequest != nil
	if len(names) > 1 && (hasBody || singleTarget(method)) {
		return s.refuseRequest(ctx, summary, invalid("%s goes to one MCP server, but service_names lists %d", method, len(names))), nil
	}
	var params map[string]any
	if hasBody {
		var r *refusal
		if params, r = s.parseObject("mcp_request", req.GetMcpRequest(), s.opts.MaxRequestBytes); r != nil {
			return s.refuseRequest(ctx, summary, r), nil
		}
	}
	g, r := s.readMetadata(req.GetMetadataContext())
	if r != nil {
		return s.refuseRequest(ctx, summary, r), nil
	}
	h, r := readHeaders(req.GetHeaders())
	if r != nil {
		return s.refuseRequest(ctx, summary, r), nil
	}
	base := mcp.Request{
		Subject:         s.subject(ctx, h, g),
		Method:          method,
		Params:          params,
		SessionID:       h.sessionID,
		ProtocolVersion: h.protocolVersion,
		Context:         g.context,
	}
	if p := identity.PeerFromContext(ctx); p.Verified {
		base.Peer = p.Input()
	}
	outcomes := make([]pipeline.Outcome, len(names))
	var allowed []string
	for i, name := range names {
		r := base
		r.Server = name
		outcomes[i] = s.decider.Check(ctx, audit.KindMCP, &r, nil)
		s.decider.Finish(ctx, &outcomes[i])
		if outcomes[i].Verdict == mcp.Allow {
			allowed = append(allowed, name)
		}
	}
	if len(allowed) == 0 || len(allowed) < len(names) && !mcp.IsListMethod(method) {
		o := firstDenied(outcomes)
		return &agw.McpRequestResult{Result: &agw.McpRequestResult_Error{Error: authError(o, codeOf(o))}, Metadata: requestMetadata(outcomes, o.Verdict)}, nil
	}
	md := requestMetadata(outcomes, mcp.Allow)
	if len(allowed) < len(names) {
		md.Fields["allowed_targets"] = stringList(allowed)
	}
	if singleTarget(method) || mcp.IsListMethod(method) {
		base.Server = allowed[0]
		s.pending.put(outcomes[0].DecisionID, base, allowed, pendingSize(req))
	}
	return &agw.McpRequestResult{Result: &agw.McpRequestResult_Pass{Pass: &agw.Pass{}}, Metadata: md}, nil
}

func firstDenied(outcomes []pipeline.Outcome) *pipeline.Outcome {
	for i := range outcomes {
		if outcomes[i].Verdict != mcp.Allow {
			return &outcomes[i]
		}
	}
	return &outcomes[0] // not reached: called with a denied outcome
}

// pendingOverhead estimates what a remembered request holds besides its
// params, claims and headers (names, the entry itself).
const pendingOverhead = 2 << 10

// decodedExpansion is how many times its wire size a JSON or Struct value
// takes once decoded into Go maps and interface values (small objects
// reach about 12 times; see TestPendingStoreMemory).
const decodedExpansion = 16

// pendingSize is what remembering req is charged against the store's byte
// budget: its params and metadata (the claims) as decoded values, its
// headers as they came.
func pendingSize(req *agw.McpRequest) int {
	n := pendingOverhead + decodedExpansion*(len(req.GetMcpRequest())+proto.Size(req.GetMetadataContext()))
	for _, h := range req.GetHeaders() {
		n += len(h.GetKey()) + len(h.GetValue())
	}
	return n
}

// CheckResponse implements ExtMcp.CheckResponse: a list result is
// filtered to the entries the subject may see (mutated when one is
// removed); a tools/call, resources/read or prompts/get result is checked
// with the request it answers (mutated when redacted, an error when
// blocked). Other results pass: the policy has nothing to say about them.
func (s *Server) CheckResponse(ctx context.Context, resp *agw.McpResponse) (*agw.McpResponseResult, error) {
	method, names := resp.GetMethod(), resp.GetServiceNames()
	if err := mcp.ValidName("method", method); err != nil {
		return s.refuseResponse(ctx, mcp.Request{}, invalid("method: %v", err)), nil
	}
	if r := services(names); r != nil {
		return s.refuseResponse(ctx, mcp.Request{Method: method}, r), nil
	}
	switch {
	case mcp.IsListMethod(method):
		return s.checkList(ctx, resp), nil
	case singleTarget(method):
		return s.checkResult(ctx, resp), nil
	default:
		return passResponse(), nil
	}
}

// checkResult checks a tools/call, resources/read or prompts/get result
// with the request it answers, which CheckRequest remembered.
func (s *Server) checkResult(ctx context.Context, resp *agw.McpResponse) *agw.McpResponseResult {
	method, names := resp.GetMethod(), resp.GetServiceNames()
	summary := mcp.Request{Method: method, Server: names[0]}
	if len(names) != 1 {
		return s.refuseResponse(ctx, summary, invalid("a %s result comes from one MCP server, but service_names lists %d", method, len(names)))
	}
	result, r := s.parseObject("mcp_response", resp.GetMcpResponse(), s.opts.MaxResponseBytes)
	if r != nil {
		return s.refuseResponse(ctx, summary, r)
	}
	g, r := s.readMetadata(resp.GetMetadataContext())
	if r != nil {
		return s.refuseResponse(ctx, summary, r)
	}
	pr, why := s.request(g.decisionID, method)
	if pr == nil || pr.req.Server != names[0] {
		if pr != nil {
			why = "the request remembered under metadata_context.decision_id went to another MCP server"
		}
		// Without the request (tool, arguments, subject) the policy cannot
		// decide on the result: block it rather than guess.
		o := s.decider.Start(audit.KindMCP, &summary, "")
		s.decider.Pipeline().Refuse(&o, &refusal{code: mcp.CodeDenied, reason: why}, pipeline.Failure{
			Code: ReasonResultUnchecked, Message: "the result cannot be checked: " + why, WireCode: mcp.CodeDenied,
		})
		s.decider.Finish(ctx, &o)
		return responseError(&o, agw.AuthorizationError_PERMISSION_DENIED)
	}
	o, checked := s.decider.CheckResult(ctx, audit.KindMCP, &pr.req, result)
	s.decider.Finish(ctx, &o)
	switch checked.Action {
	case mcp.ResultPass:
		return passResponse()
	case mcp.ResultRedact:
		return mutatedResponse(checked.Result)
	default:
		return responseError(&o, codeOf(&o))
	}
}

// request returns the remembered request with decision id id, or why there
// is none.
func (s *Server) request(id, method string) (*pendingRequest, string) {
	if id == "" {
		return nil, "metadata_context has no decision_id: run the processor on the request too and send mcpGuardrails.decision_id back as metadata decision_id"
	}
	pr, ok := s.pending.take(id)
	switch {
	case !ok:
		return nil, "no request is pending under decision id " + id + " (it expired, was checked already, or another Verdict instance decided it)"
	case pr.req.Method != method:
		return nil, "decision id " + id + " was given to a " + pr.req.Method + " request, not " + method
	}
	return pr, ""
}

// refuseRequest answers a request Verdict cannot decide: INVALID, with an
// audit event of its own.
func (s *Server) refuseRequest(ctx context.Context, summary mcp.Request, r *refusal) *agw.McpRequestResult {
	o := s.refuse(ctx, summary, r)
	return &agw.McpRequestResult{
		Result:   &agw.McpRequestResult_Error{Error: authError(&o, agw.AuthorizationError_INVALID)},
		Metadata: requestMetadata([]pipeline.Outcome{o}, o.Verdict),
	}
}

func (s *Server) refuseResponse(ctx context.Context, summary mcp.Request, r *refusal) *agw.McpResponseResult {
	o := s.refuse(ctx, summary, r)
	return responseError(&o, agw.AuthorizationError_INVALID)
}

// refuse records a deny for a request that never became policy input.
// summary holds only names already validated.
func (s *Server) refuse(ctx context.Context, summary mcp.Request, r *refusal) pipeline.Outcome {
	o := s.decider.Start(audit.KindMCP, &summary, "")
	s.decider.Reject(&o, &mcp.RequestError{JSONRPCCode: r.code, Reason: r.reason})
	s.decider.Finish(ctx, &o)
	return o
}

// codeOf is the AuthorizationError code of a denied outcome: INVALID for a
// request refused before evaluation, RESOURCE_EXHAUSTED over a rate limit,
// PERMISSION_DENIED otherwise (a deny, an approval to wait for, a failure
// to decide).
func codeOf(o *pipeline.Outcome) agw.AuthorizationError_Code {
	switch {
	case o.Failure != nil && o.Failure.Request:
		return agw.AuthorizationError_INVALID
	case o.RateLimit != nil && o.RateLimit.Refused && o.RateLimit.Code == enforce.ReasonRateLimited:
		return agw.AuthorizationError_RESOURCE_EXHAUSTED
	default:
		return agw.AuthorizationError_PERMISSION_DENIED
	}
}

// authError is the error for a denied outcome: reason is the message of
// the JSON-RPC error the native API returns, and mcp_error that whole
// error object, which agentgateway puts in the data member of the error it
// sends the client.
func authError(o *pipeline.Outcome, code agw.AuthorizationError_Code) *agw.AuthorizationError {
	e, ok := mcp.RPCError(o)
	if !ok {
		// An allow never reaches here; deny anyway.
		e = mcp.ErrorObject{Code: mcp.CodeDenied, Message: "Denied by policy", Data: map[string]any{"decision_id": o.DecisionID}}
	}
	js, err := encodeJSON(e)
	if err != nil {
		js = nil // strings and numbers: cannot happen
	}
	return &agw.AuthorizationError{Code: code, Reason: e.Message, McpError: js}
}

// requestMetadata is McpRequestResult.metadata: the first server's
// decision id (the key CheckResponse needs back), the answer's verdict, the
// policy revision, and every decision id when the request went to several
// servers.
func requestMetadata(outcomes []pipeline.Outcome, v mcp.Verdict) *structpb.Struct {
	o := &outcomes[0]
	f := map[string]*structpb.Value{
		"decision_id": structpb.NewStringValue(o.DecisionID),
		"decision":    structpb.NewStringValue(v.String()),
		"revision":    structpb.NewStringValue(o.Revision),
	}
	if len(outcomes) > 1 {
		ids := make([]string, len(outcomes))
		for i := range outcomes {
			ids[i] = outcomes[i].DecisionID
		}
		f["decision_ids"] = stringList(ids)
	}
	return &structpb.Struct{Fields: f}
}

func stringList(ss []string) *structpb.Value {
	vs := make([]*structpb.Value, len(ss))
	for i, s := range ss {
		vs[i] = structpb.NewStringValue(s)
	}
	return structpb.NewListValue(&structpb.ListValue{Values: vs})
}

func passResponse() *agw.McpResponseResult {
	return &agw.McpResponseResult{Result: &agw.McpResponseResult_Pass{Pass: &agw.Pass{}}}
}

func responseError(o *pipeline.Outcome, code agw.AuthorizationError_Code) *agw.McpResponseResult {
	return &agw.McpResponseResult{Result: &agw.McpResponseResult_Error{Error: authError(o, code)}}
}

// mutatedResponse answers with result in place of the server's.
func mutatedResponse(result map[string]any) *agw.McpResponseResult {
	js, err := encodeJSON(result)
	if err != nil {
		// Decoded JSON re-encodes; should it not, the server's result
		// must not go out unchecked.
		return &agw.McpResponseResult{Result: &agw.McpResponseResult_Error{Error: &agw.AuthorizationError{
			Code: agw.AuthorizationError_UNKNOWN, Reason: "the checked result cannot be encoded",
		}}}
	}
	return &agw.McpResponseResult{Result: &agw.McpResponseResult_Mutated{Mutated: js}}
}

// encodeJSON encodes v as compact JSON text, leaving <, > and & as they
// are: a result goes back to the client as its server wrote it, but for
// what the policy removed.
func encodeJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
