// Package extauthz is the Envoy ext_authz v3 adapter: it turns a
// CheckRequest into the input opa-envoy-plugin policies expect, asks the
// decision core, and turns the decision into a CheckResponse.
//
// It holds no policy logic and does not reach into the engine's internals: it
// depends only on the Evaluator interface and the engine's error codes.
package extauthz

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/open-policy-agent/opa/v1/ast"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/genproto/googleapis/rpc/code"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/verdictpdp/verdict/internal/audit"
	"github.com/verdictpdp/verdict/internal/challenge"
	"github.com/verdictpdp/verdict/internal/enforce"
	"github.com/verdictpdp/verdict/internal/engine"
	"github.com/verdictpdp/verdict/internal/identity"
	"github.com/verdictpdp/verdict/internal/mcp"
	"github.com/verdictpdp/verdict/internal/tracing"
)

// DefaultPath is the decision path opa-envoy-plugin uses by default.
const DefaultPath = "envoy/authz/allow"

// Evaluator is the decision core as this adapter sees it.
type Evaluator interface {
	Decide(ctx context.Context, entrypoint string, in engine.Input, derive engine.Derive) (engine.Decision, error)
}

// Options configure the adapter.
type Options struct {
	// Path is the decision's entrypoint (canonical slash form).
	Path string
	// DryRun decides and logs, but always allows.
	DryRun bool
	// FailOpen allows when no decision can be made (no bundle, evaluation
	// error or timeout, undefined or malformed decision). Malformed requests
	// are still refused.
	FailOpen bool
	Input    InputOptions
	// MCP, when set, decides the POSTs of routes the operator marked as
	// MCP at the MCP entrypoint instead of Path (see MCPOptions).
	MCP *MCPOptions
	// Audit, when set, records every decision.
	Audit *audit.Recorder
	// Tracer, when set, starts a span per decision.
	Tracer *tracing.Tracer
	// Verifier, when set, verifies the bearer token of every request:
	// input.subject and input.verified_claims are added, and a denied
	// request without a valid token is answered with a 401 challenge.
	Verifier *identity.Verifier
	// Enforce applies rate limits and challenges after the decision.
	Enforce mcp.Enforcement
}

// Server implements envoy.service.auth.v3.Authorization.
type Server struct {
	authv3.UnimplementedAuthorizationServer

	eval   Evaluator
	opts   Options
	logger *slog.Logger
}

var _ authv3.AuthorizationServer = (*Server)(nil)

// NewServer returns an ext_authz server deciding with eval.
func NewServer(eval Evaluator, opts Options, logger *slog.Logger) *Server {
	if opts.Path == "" {
		opts.Path = DefaultPath
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if m := opts.MCP; m != nil {
		c := *m
		if c.Now == nil {
			c.Now = time.Now
		}
		c.Routes = make([]MCPRoute, len(m.Routes))
		for i, r := range m.Routes {
			r.Host = strings.TrimSuffix(strings.ToLower(r.Host), ".")
			c.Routes[i] = r
		}
		opts.MCP = &c
	}
	return &Server{eval: eval, opts: opts, logger: logger}
}

// Outcome is everything one decision produced, for logs and `pdp eval`.
type Outcome struct {
	DecisionID string
	// Input is the policy input when it was built as Go values (MCP
	// requests); InputValue when it was built straight from the request.
	// Neither is set when the cache answered without building it, nor when
	// the policy was evaluated on only the members it reads (InputJSON
	// then builds it).
	Input      map[string]any
	InputValue ast.Value
	// Cached is set when the decision cache answered.
	Cached bool
	// Result is the policy's value at the decision path (nil on error).
	Result   any
	Revision string
	Bundles  map[string]engine.BundleInfo
	// EvalTook is the policy evaluation's time (zero for a cache hit).
	EvalTook time.Duration
	// Err is why no policy decision was used: an *InputError, an
	// *engine.Error, or an error wrapping ErrInvalidDecision.
	Err      error
	Response *authv3.CheckResponse
	Took     time.Duration
	// MCP holds one outcome per JSON-RPC message when the request was
	// decided as MCP.
	MCP []mcp.Outcome

	// TraceID and SpanID name the decision's span when tracing is on.
	TraceID, SpanID string

	// RateLimit is set when a rate limit applied to a decision at Path;
	// Challenge when a denied request was answered with one.
	RateLimit *enforce.Status
	Challenge *challenge.Challenge

	// in builds the input for the audit log when the cache answered.
	in *envoyInput
}

// Check implements the ext_authz v3 Check RPC. It never returns a gRPC
// error: every failure is an explicit CheckResponse, so Envoy's
// failure_mode_allow cannot turn a policy error into an allow.
func (s *Server) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	var span trace.Span
	if s.opts.Tracer.Enabled() {
		ctx, span = s.opts.Tracer.Start(ctx, "verdict.ext_authz.Check", req.GetAttributes().GetRequest().GetHttp().GetHeaders())
	}
	out := s.Decide(ctx, req)
	if span != nil {
		result := audit.Deny
		if out.Response.GetStatus().GetCode() == int32(code.Code_OK) {
			result = audit.Allow
		}
		out.TraceID, out.SpanID = tracing.End(span, out.DecisionID, s.opts.Path, result, out.Cached)
	}
	s.log(ctx, out)
	s.record(req, &out)
	return out.Response, nil
}

// Decide runs one decision.
func (s *Server) Decide(ctx context.Context, req *authv3.CheckRequest) (out Outcome) {
	start := time.Now()
	out.DecisionID = engine.NewDecisionID()
	defer func() { out.Took = time.Since(start) }() // out is the named result: the caller sees Took

	sc := &scratch{in: envoyInput{req: req, opts: s.opts.Input, ident: s.identify(ctx, req)}}
	in := &sc.in
	out.in = in
	switch route, server := s.opts.MCP.classify(req); route {
	case routeMCP:
		if _, err := in.Value(); err != nil {
			if s.refuseMCPBody(&out, req, err) {
				return out
			}
			out.Err = err
			out.Response = s.inputErrorResponse(out.DecisionID, err)
			return out
		}
		s.decideMCP(ctx, &out, req, server, in.built, in.ident)
		return out
	case routeAmbiguous:
		out.Err = &InputError{HTTPStatus: typev3.StatusCode_BadRequest, Code: ReasonMCPRouteAmbiguous,
			Reason: "the request path matches an MCP route only in another spelling (dot segments, escapes, case, path parameters): send it in normal form"}
		out.Response = s.inputErrorResponse(out.DecisionID, out.Err)
		return out
	case routeExtAuthz:
		// The route's own policy, below.
	}

	dec, err := s.eval.Decide(ctx, s.opts.Path, in, deriveResponse)
	out.Revision, out.Cached, out.Bundles, out.EvalTook = dec.Revision, dec.Cached, dec.Bundles, dec.EvalTook
	if in.done && in.err == nil {
		out.InputValue = in.built.Value
	}
	if err != nil {
		out.Err = err
		if _, ok := errors.AsType[*InputError](err); ok {
			out.Response = s.inputErrorResponse(out.DecisionID, err)
		} else {
			out.Response = s.failureResponse(out.DecisionID, err)
		}
		return out
	}
	out.Result = dec.Value
	d, _ := dec.Derived.(*derived)
	out.Response = sc.withDecisionID(d.resp, out.DecisionID)
	s.enforce(ctx, &out, in.ident, d)
	if s.opts.DryRun && out.Response.GetStatus().GetCode() != int32(code.Code_OK) {
		out.Response.Status = &rpcstatus.Status{Code: int32(code.Code_OK)}
		out.Response.HttpResponse = &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{}}
	}
	return out
}

// InputJSON returns the policy input as JSON-like Go values, or nil when it
// was never built. When the policy was evaluated on only the members it
// reads, the whole input is built now.
func (o *Outcome) InputJSON() any {
	if o.Input != nil {
		return o.Input
	}
	v := o.InputValue
	if v == nil && o.in != nil && o.in.pruned {
		v, _ = o.in.Value() // PrunedValue builds only for requests Value accepts
	}
	if v != nil {
		js, err := ast.JSON(v)
		if err == nil {
			return js
		}
	}
	return nil
}

// scratch is what one decision allocates, in one allocation: the input the
// engine sees and the response with its decision id.
type scratch struct {
	in   envoyInput
	resp authv3.CheckResponse
	md   structpb.Struct
	id   structpb.Value
	ids  structpb.Value_StringValue
}

// withDecisionID returns a response of its own for one request: the shared
// template's status and HTTP response, and its dynamic metadata plus the
// decision id.
func (sc *scratch) withDecisionID(tmpl *authv3.CheckResponse, id string) *authv3.CheckResponse {
	md := tmpl.GetDynamicMetadata().GetFields()
	fields := make(map[string]*structpb.Value, len(md)+1)
	for k, v := range md {
		fields[k] = v
	}
	sc.ids.StringValue = id
	sc.id.Kind = &sc.ids
	fields["decision_id"] = &sc.id
	sc.md.Fields = fields
	sc.resp.Status = tmpl.GetStatus()
	sc.resp.HttpResponse = tmpl.GetHttpResponse()
	sc.resp.DynamicMetadata = &sc.md
	return &sc.resp
}

func setDecisionID(resp *authv3.CheckResponse, id string) {
	if resp.GetDynamicMetadata() == nil {
		resp.DynamicMetadata = &structpb.Struct{Fields: make(map[string]*structpb.Value, 1)}
	}
	resp.DynamicMetadata.Fields["decision_id"] = structpb.NewStringValue(id)
}

// errorBody is what a caller sees when Verdict, not the policy, refused.
type errorBody struct {
	Error      string `json:"error"`
	Code       string `json:"code"`
	DecisionID string `json:"decision_id"`
}

func deniedWithReason(decisionID string, httpCode typev3.StatusCode, reasonCode, reason string) *authv3.CheckResponse {
	body, _ := json.Marshal(errorBody{Error: reason, Code: reasonCode, DecisionID: decisionID}) //nolint:errchkjson // plain strings
	resp := &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(code.Code_PERMISSION_DENIED), Message: reason},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: httpCode},
			Headers: []*corev3.HeaderValueOption{headerValue("content-type", "application/json")},
			Body:    string(body),
		}},
	}
	setDecisionID(resp, decisionID)
	return resp
}

func allowWithoutDecision(decisionID string) *authv3.CheckResponse {
	resp := &authv3.CheckResponse{
		Status:       &rpcstatus.Status{Code: int32(code.Code_OK)},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{}},
	}
	setDecisionID(resp, decisionID)
	return resp
}

// Reason codes for refusals that did not come from the policy.
const (
	ReasonBadRequest      = "invalid_request"
	ReasonInvalidDecision = "invalid_decision"
)

func (s *Server) inputErrorResponse(decisionID string, err error) *authv3.CheckResponse {
	if s.opts.DryRun {
		return allowWithoutDecision(decisionID)
	}
	var ie *InputError
	if !errors.As(err, &ie) {
		ie = &InputError{HTTPStatus: typev3.StatusCode_BadRequest, Reason: "request cannot be parsed"}
	}
	c := ie.Code
	if c == "" {
		c = ReasonBadRequest
	}
	return deniedWithReason(decisionID, ie.HTTPStatus, c, ie.Reason)
}

func (s *Server) failureResponse(decisionID string, err error) *authv3.CheckResponse {
	if s.opts.DryRun || s.opts.FailOpen {
		return allowWithoutDecision(decisionID)
	}
	reasonCode, reason := reasonOf(err)
	return deniedWithReason(decisionID, typev3.StatusCode_Forbidden, reasonCode, reason)
}

// reasonOf returns a stable code and a caller-safe message for a failure.
func reasonOf(err error) (string, string) {
	if e, ok := errors.AsType[*engine.Error](err); ok {
		return string(e.Code), e.Message
	}
	if errors.Is(err, ErrInvalidDecision) {
		return ReasonInvalidDecision, "policy decision is malformed"
	}
	return string(engine.CodeEvalError), "policy evaluation failed"
}

func (s *Server) log(ctx context.Context, out Outcome) {
	if out.Err == nil && !s.logger.Enabled(ctx, slog.LevelDebug) {
		return // the common case pays nothing for logging
	}
	path := s.opts.Path
	if len(out.MCP) > 0 && s.opts.MCP != nil {
		path = s.opts.MCP.Decider.Path()
	}
	attrs := []slog.Attr{
		slog.String("decision_id", out.DecisionID),
		slog.String("path", path),
		slog.String("revision", out.Revision),
		slog.Bool("allowed", out.Response.GetStatus().GetCode() == int32(code.Code_OK)),
		slog.Bool("dry_run", s.opts.DryRun),
		slog.Duration("took", out.Took),
	}
	if out.Err == nil {
		s.logger.LogAttrs(ctx, slog.LevelDebug, "decision", attrs...)
		return
	}
	// A request's own error detail can quote its path or body (tokens in
	// query strings): log only the reason. Engine and decision errors quote
	// policy locations, which operators need.
	if ie, ok := errors.AsType[*InputError](out.Err); ok {
		attrs = append(attrs, slog.String("reason", ie.Reason))
		s.logger.LogAttrs(ctx, slog.LevelInfo, "request refused before evaluation", attrs...)
		return
	}
	if re, ok := errors.AsType[*mcp.RequestError](out.Err); ok {
		attrs = append(attrs, slog.String("reason", re.Reason), slog.Int("jsonrpc_code", re.JSONRPCCode))
		s.logger.LogAttrs(ctx, slog.LevelInfo, "MCP request refused before evaluation", attrs...)
		return
	}
	if errors.Is(out.Err, mcp.ErrInvalidDecision) {
		attrs = append(attrs, slog.String("code", mcp.ReasonInvalidDecision), slog.String("err", out.Err.Error()))
		s.logger.LogAttrs(ctx, slog.LevelWarn, "decision without policy answer", attrs...)
		return
	}
	reasonCode, _ := reasonOf(out.Err)
	attrs = append(attrs, slog.String("code", reasonCode), slog.String("err", out.Err.Error()))
	s.logger.LogAttrs(ctx, slog.LevelWarn, "decision without policy answer", attrs...)
}
