// Package mcpapi is the gRPC adapter for the native MCP API
// (verdict.mcp.v1.MCPPolicy): it maps proto requests onto internal/mcp
// requests, asks the MCP decider (which runs the shared pipeline: cache,
// policy, rate limits, audit), and maps outcomes back to proto.
//
// It holds no policy logic. Malformed gRPC requests (no method, no server,
// params nested too deep) get InvalidArgument; everything else gets an
// answer, and every failure to decide is a deny with a reason.
package mcpapi

import (
	"context"
	"maps"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/verdictpdp/verdict/internal/audit"
	"github.com/verdictpdp/verdict/internal/challenge"
	"github.com/verdictpdp/verdict/internal/enforce"
	"github.com/verdictpdp/verdict/internal/identity"
	"github.com/verdictpdp/verdict/internal/mcp"
	"github.com/verdictpdp/verdict/internal/pipeline"
	mcpv1 "github.com/verdictpdp/verdict/proto/verdict/mcp/v1"
)

// MaxBatchItems bounds a CheckBatch request.
const MaxBatchItems = 100

// Options configure the server.
type Options struct {
	// MaxDepth bounds the nesting of params and results (default
	// mcp.DefaultMaxDepth).
	MaxDepth int
	// Now is the clock for requests without a time (default time.Now).
	Now func() time.Time
	// Verifier verifies CheckRequest.bearer_token (nil: a request with a
	// token gets an unauthenticated subject, reason token_unverifiable).
	Verifier *identity.Verifier
}

// Server implements verdict.mcp.v1.MCPPolicy.
type Server struct {
	mcpv1.UnimplementedMCPPolicyServer

	decider *mcp.Decider
	opts    Options
}

var _ mcpv1.MCPPolicyServer = (*Server)(nil)

// NewServer returns the native MCP API deciding with decider.
func NewServer(decider *mcp.Decider, opts Options) *Server {
	if opts.MaxDepth <= 0 {
		opts.MaxDepth = mcp.DefaultMaxDepth
	}
	if opts.Now != nil {
		decider = decider.WithClock(opts.Now)
	}
	return &Server{decider: decider, opts: opts}
}

// Check implements MCPPolicy.Check.
func (s *Server) Check(ctx context.Context, req *mcpv1.CheckRequest) (*mcpv1.CheckResponse, error) {
	r, err := s.request(ctx, req)
	if err != nil {
		return nil, err
	}
	o := s.decider.Check(ctx, audit.KindMCP, &r, nil)
	s.decider.Finish(ctx, &o)
	return checkResponse(&o), nil
}

// Decide runs one Check without the gRPC framing and without the stateful
// checks or the audit log, for `pdp eval`.
func (s *Server) Decide(ctx context.Context, req *mcpv1.CheckRequest) (pipeline.Outcome, *mcpv1.CheckResponse, error) {
	r, err := s.request(ctx, req)
	if err != nil {
		return pipeline.Outcome{}, nil, err
	}
	o := s.decider.Evaluate(ctx, audit.KindMCP, &r, nil)
	s.decider.Pipeline().EndSpan(&o)
	return o, checkResponse(&o), nil
}

// CheckBatch implements MCPPolicy.CheckBatch.
func (s *Server) CheckBatch(ctx context.Context, req *mcpv1.CheckBatchRequest) (*mcpv1.CheckBatchResponse, error) {
	items := req.GetItems()
	if len(items) == 0 {
		return nil, status.Error(codes.InvalidArgument, "items is empty: a JSON-RPC batch has at least one element")
	}
	if len(items) > MaxBatchItems {
		return nil, status.Errorf(codes.InvalidArgument, "items has %d elements; the limit is %d", len(items), MaxBatchItems)
	}
	out := &mcpv1.CheckBatchResponse{Answers: make([]*mcpv1.BatchAnswer, 0, len(items))}
	worst := mcp.Allow
	for i, it := range items {
		r, err := s.request(ctx, &mcpv1.CheckRequest{
			Subject: req.GetSubject(), Server: req.GetServer(), Method: it.GetMethod(), Params: it.GetParams(),
			SessionId: req.GetSessionId(), ProtocolVersion: req.GetProtocolVersion(), Context: req.GetContext(),
			BearerToken: req.GetBearerToken(),
		})
		if err != nil {
			st, _ := status.FromError(err)
			return nil, status.Errorf(codes.InvalidArgument, "items[%d]: %s", i, st.Message())
		}
		o := s.decider.Check(ctx, audit.KindMCP, &r, nil)
		s.decider.Finish(ctx, &o)
		worst = max(worst, o.Verdict)
		out.Answers = append(out.Answers, &mcpv1.BatchAnswer{Id: it.GetId(), Response: checkResponse(&o)})
	}
	out.Decision = verdictProto(worst)
	return out, nil
}

// FilterTools implements MCPPolicy.FilterTools.
func (s *Server) FilterTools(ctx context.Context, req *mcpv1.FilterToolsRequest) (*mcpv1.FilterToolsResponse, error) {
	if req.GetRequest() == nil {
		return nil, status.Error(codes.InvalidArgument, "request is required: the list request with subject and server")
	}
	method := req.GetRequest().GetMethod()
	if method == "" {
		method = mcp.MethodToolsList
	}
	if !mcp.IsListMethod(method) {
		return nil, status.Errorf(codes.InvalidArgument, "request.method must be tools/list, resources/list, resources/templates/list or prompts/list, not %q", method)
	}
	r, err := s.request(ctx, req.GetRequest(), method)
	if err != nil {
		return nil, err
	}
	result, err := s.structMap("result", req.GetResult())
	if err != nil {
		return nil, err
	}
	o, listing := s.decider.Filter(ctx, audit.KindMCP, &r, method, result)
	s.decider.Finish(ctx, &o)
	resp := &mcpv1.FilterToolsResponse{
		Decision:   verdictProto(o.Verdict),
		Reasons:    reasonsProto(o.Reasons),
		DecisionId: o.DecisionID,
		Revision:   o.Revision,
	}
	if o.Verdict != mcp.Allow {
		// A listing cannot wait for approval: anything but allow hides all.
		resp.Decision = mcpv1.Decision_DECISION_DENY
		resp.Result = &structpb.Struct{Fields: map[string]*structpb.Value{}}
		resp.JsonrpcError = errorProto(&o)
		return resp, nil
	}
	if resp.Result, err = structpb.NewStruct(listing.Result); err != nil {
		return nil, status.Error(codes.Internal, "filtered result cannot be encoded")
	}
	for _, rm := range listing.Removed {
		resp.Removed = append(resp.Removed, &mcpv1.RemovedEntry{Name: rm.Name, Reason: &mcpv1.Reason{Code: rm.Reason.Code, Message: rm.Reason.Message}})
	}
	return resp, nil
}

// CheckResult implements MCPPolicy.CheckResult.
func (s *Server) CheckResult(ctx context.Context, req *mcpv1.CheckResultRequest) (*mcpv1.CheckResultResponse, error) {
	switch m := req.GetRequest().GetMethod(); m {
	case mcp.MethodToolsCall, mcp.MethodResourcesRead, mcp.MethodPromptsGet:
	default:
		return nil, status.Errorf(codes.InvalidArgument, "request.method must be tools/call, resources/read or prompts/get, not %q", m)
	}
	r, err := s.request(ctx, req.GetRequest())
	if err != nil {
		return nil, err
	}
	result, err := s.structMap("result", req.GetResult())
	if err != nil {
		return nil, err
	}
	o, checked := s.decider.CheckResult(ctx, audit.KindMCP, &r, result)
	s.decider.Finish(ctx, &o)
	resp := &mcpv1.CheckResultResponse{
		Reasons:     reasonsProto(o.Reasons),
		Obligations: obligationsProto(&mcp.DecisionOf(&o).Obligations),
		DecisionId:  o.DecisionID,
		Revision:    o.Revision,
		Findings:    findingsProto(checked.Findings),
	}
	switch checked.Action {
	case mcp.ResultBlock:
		resp.Action = mcpv1.ResultAction_RESULT_ACTION_BLOCK
		resp.JsonrpcError = errorProto(&o)
	case mcp.ResultRedact:
		resp.Action = mcpv1.ResultAction_RESULT_ACTION_REDACT
		for _, rd := range checked.Redacted {
			resp.Redacted = append(resp.Redacted, &mcpv1.RedactionCount{Redaction: redactionProto(rd.Rule), Count: int32(min(rd.Count, 1<<31-1))}) //nolint:gosec // clamped
		}
		if resp.Result, err = structpb.NewStruct(checked.Result); err != nil {
			return nil, status.Error(codes.Internal, "redacted result cannot be encoded")
		}
	default:
		resp.Action = mcpv1.ResultAction_RESULT_ACTION_PASS
	}
	return resp, nil
}

// request maps a proto request onto an mcp.Request, refusing what a gateway
// should never send with InvalidArgument. A non-empty method overrides the
// request's.
func (s *Server) request(ctx context.Context, pb *mcpv1.CheckRequest, method ...string) (mcp.Request, error) {
	m := pb.GetMethod()
	if len(method) > 0 {
		m = method[0]
	}
	if pb.GetResponse() {
		// A client's answer to a server request: decided as MCP over
		// Envoy decides one, on input.response alone.
		if m != "" || len(pb.GetParams().GetFields()) > 0 {
			return mcp.Request{}, status.Error(codes.InvalidArgument, "a response (response: true) has no method and no params")
		}
	} else if err := mcp.ValidName("method", m); err != nil {
		return mcp.Request{}, status.Errorf(codes.InvalidArgument, "method: %v", err)
	}
	if err := mcp.ValidName("server", pb.GetServer()); err != nil {
		return mcp.Request{}, status.Errorf(codes.InvalidArgument, "server: %v", err)
	}
	params, err := s.structMap("params", pb.GetParams())
	if err != nil {
		return mcp.Request{}, err
	}
	claims, err := s.structMap("subject.claims", pb.GetSubject().GetClaims())
	if err != nil {
		return mcp.Request{}, err
	}
	sub := pb.GetSubject()
	r := mcp.Request{
		Subject: mcp.Subject{
			ID: sub.GetId(), Roles: sub.GetRoles(), Groups: sub.GetGroups(), Scopes: sub.GetScopes(),
			Tenant: sub.GetTenant(), Clearance: sub.GetClearance(), Claims: claims,
			// The gateway authenticated the caller; an empty id means it did not.
			Authenticated: sub.GetId() != "",
		},
		Server:          pb.GetServer(),
		Method:          m,
		Params:          params,
		Response:        pb.GetResponse(),
		SessionID:       pb.GetSessionId(),
		ProtocolVersion: pb.GetProtocolVersion(),
		ApprovalID:      pb.GetApprovalId(),
		Context: mcp.Context{
			SourceIP: pb.GetContext().GetSourceIp(),
			Purpose:  pb.GetContext().GetPurpose(),
			Region:   pb.GetContext().GetRegion(),
		},
	}
	if r.Subject.Authenticated {
		r.Subject.Source = mcp.SourceGateway
	}
	if tok := pb.GetBearerToken(); tok != "" {
		if pb.GetSubject() != nil {
			return mcp.Request{}, status.Error(codes.InvalidArgument, "set subject or bearer_token, not both: with a token, the subject comes from its verified claims")
		}
		r.Subject = mcp.SubjectFromToken(ctx, s.opts.Verifier, tok)
	}
	if p := identity.PeerFromContext(ctx); p.Verified {
		r.Peer = p.Input()
	}
	if t := pb.GetContext().GetTime(); t != nil {
		if err := t.CheckValid(); err != nil {
			return mcp.Request{}, status.Error(codes.InvalidArgument, "context.time is not a valid timestamp")
		}
		r.Context.Time = t.AsTime()
	}
	return r, nil
}

// structMap converts a Struct to a map, refusing nesting deeper than the
// configured limit.
func (s *Server) structMap(field string, st *structpb.Struct) (map[string]any, error) {
	if st == nil {
		return map[string]any{}, nil
	}
	m := st.AsMap()
	if err := mcp.CheckValueDepth(m, s.opts.MaxDepth); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "%s: %v", field, err)
	}
	return m, nil
}

func checkResponse(o *pipeline.Outcome) *mcpv1.CheckResponse {
	return &mcpv1.CheckResponse{
		Decision:        verdictProto(o.Verdict),
		Reasons:         reasonsProto(o.Reasons),
		Obligations:     obligationsProto(&mcp.DecisionOf(o).Obligations),
		DecisionId:      o.DecisionID,
		Revision:        o.Revision,
		JsonrpcError:    errorProto(o),
		Challenge:       challengeProto(o.Challenge),
		RateLimitStatus: rateLimitProto(o.RateLimit),
		Approval:        approvalProto(o.Approval),
	}
}

func approvalProto(a *pipeline.Approval) *mcpv1.Approval {
	if a == nil {
		return nil
	}
	p := &mcpv1.Approval{Id: a.ID, Status: a.Status, Url: a.URL}
	if !a.ExpiresAt.IsZero() {
		p.ExpiresAt = timestamppb.New(a.ExpiresAt)
	}
	return p
}

func challengeProto(c *challenge.Challenge) *mcpv1.AuthChallenge {
	if c == nil {
		return nil
	}
	return &mcpv1.AuthChallenge{HttpStatus: int32(c.Status), WwwAuthenticate: c.Header, Error: c.Error, Scopes: c.Scopes} //nolint:gosec // 401 or 403
}

func rateLimitProto(st *enforce.Status) *mcpv1.RateLimitStatus {
	if st == nil {
		return nil
	}
	out := &mcpv1.RateLimitStatus{Key: st.Key, Limit: st.Limit, Remaining: st.Remaining, ResetAfter: durationpb.New(st.Reset)}
	if st.Refused && st.RetryAfter > 0 {
		out.RetryAfter = durationpb.New(st.RetryAfter)
	}
	return out
}

func verdictProto(v mcp.Verdict) mcpv1.Decision {
	switch v {
	case mcp.Allow:
		return mcpv1.Decision_DECISION_ALLOW
	case mcp.RequireApproval:
		return mcpv1.Decision_DECISION_REQUIRE_APPROVAL
	case mcp.Deny:
		return mcpv1.Decision_DECISION_DENY
	default:
		return mcpv1.Decision_DECISION_DENY
	}
}

func reasonsProto(rs []mcp.Reason) []*mcpv1.Reason {
	out := make([]*mcpv1.Reason, len(rs))
	for i, r := range rs {
		out[i] = &mcpv1.Reason{Code: r.Code, Message: r.Message}
	}
	return out
}

func redactionProto(rule string) *mcpv1.Redaction {
	if rule == "" || strings.HasPrefix(rule, "/") {
		return &mcpv1.Redaction{Target: &mcpv1.Redaction_Pointer{Pointer: rule}}
	}
	return &mcpv1.Redaction{Target: &mcpv1.Redaction_Detector{Detector: rule}}
}

func obligationsProto(ob *mcp.Obligations) *mcpv1.Obligations {
	out := &mcpv1.Obligations{
		Classification: ob.Classification,
		RetentionDays:  int32(ob.RetentionDays), //nolint:gosec // bounded by ParseDecision
		Controls:       ob.Controls,
		Labels:         ob.Labels,
	}
	for _, r := range ob.Redact {
		out.Redactions = append(out.Redactions, redactionProto(r))
	}
	if rl := ob.RateLimit; rl != nil {
		out.RateLimit = &mcpv1.RateLimit{Key: rl.Key, Limit: rl.Limit, PeriodSeconds: rl.PeriodSeconds, Burst: rl.Burst}
	}
	return out
}

func errorProto(o *pipeline.Outcome) *mcpv1.JsonRpcError {
	e, ok := mcp.RPCError(o)
	if !ok {
		return nil
	}
	data, err := structpb.NewStruct(e.Data)
	if err != nil {
		data = nil // reasons are strings: cannot happen
	}
	return &mcpv1.JsonRpcError{Code: int32(e.Code), Message: e.Message, Data: data} //nolint:gosec // JSON-RPC codes fit
}

// findingsProto lists the detectors' counts, sorted by detector.
func findingsProto(f map[string]int) []*mcpv1.DetectorCount {
	out := make([]*mcpv1.DetectorCount, 0, len(f))
	for _, d := range slices.Sorted(maps.Keys(f)) {
		out = append(out, &mcpv1.DetectorCount{Detector: d, Count: int32(min(f[d], 1<<31-1))}) //nolint:gosec // clamped
	}
	return out
}
