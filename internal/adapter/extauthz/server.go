// Package extauthz is the Envoy ext_authz v3 adapter: it turns a
// CheckRequest into the input opa-envoy-plugin policies expect, runs it
// through the shared decision pipeline (cache, policy, rate limits,
// challenges, audit), and turns the outcome into a CheckResponse.
//
// It holds no policy logic and does not reach into the engine's internals.
package extauthz

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/open-policy-agent/opa/v1/ast"
	"google.golang.org/genproto/googleapis/rpc/code"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/verdictpdp/verdict/internal/audit"
	"github.com/verdictpdp/verdict/internal/identity"
	"github.com/verdictpdp/verdict/internal/pipeline"
)

// DefaultPath is the decision path opa-envoy-plugin uses by default.
const DefaultPath = "envoy/authz/allow"

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
	// Verifier, when set, verifies the bearer token of every request:
	// input.subject and input.verified_claims are added, and a denied
	// request without a valid token is answered with a 401 challenge.
	Verifier *identity.Verifier
}

// Server implements envoy.service.auth.v3.Authorization.
type Server struct {
	authv3.UnimplementedAuthorizationServer

	p    *pipeline.Pipeline
	opts Options
}

var _ authv3.AuthorizationServer = (*Server)(nil)

// NewServer returns an ext_authz server deciding on p.
func NewServer(p *pipeline.Pipeline, opts Options) *Server {
	if opts.Path == "" {
		opts.Path = DefaultPath
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
	return &Server{p: p, opts: opts}
}

// Outcome is everything one decision produced, for logs and `pdp eval`:
// the pipeline's outcome and the answer Envoy gets.
type Outcome struct {
	pipeline.Outcome

	// InputValue is the input when it was built straight from the
	// request; Outcome.Input holds the MCP input of a one-message MCP
	// request. Neither is set when the cache answered without building it,
	// nor when the policy was evaluated on only the members it reads
	// (InputJSON then builds it).
	InputValue ast.Value
	Response   *authv3.CheckResponse
	// MCP holds one outcome per JSON-RPC message when the request was
	// decided as MCP.
	MCP []pipeline.Outcome

	// in builds the input for the audit log when the cache answered.
	in *envoyInput
}

// Check implements the ext_authz v3 Check RPC. It never returns a gRPC
// error: every failure is an explicit CheckResponse, so Envoy's
// failure_mode_allow cannot turn a policy error into an allow.
func (s *Server) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	ctx, out := s.start(ctx, req)
	s.decide(ctx, req, &out)
	s.finish(ctx, req, &out)
	return out.Response, nil
}

// Decide runs one decision with its stateful checks, without logging or
// recording it (`pdp eval`).
func (s *Server) Decide(ctx context.Context, req *authv3.CheckRequest) Outcome {
	ctx, out := s.start(ctx, req)
	s.decide(ctx, req, &out)
	s.p.EndSpan(&out.Outcome)
	return out
}

func (s *Server) start(ctx context.Context, req *authv3.CheckRequest) (context.Context, Outcome) {
	ctx, o := s.p.Start(ctx, audit.KindEnvoy, s.opts.Path, "verdict.ext_authz.Check", req.GetAttributes().GetRequest().GetHttp().GetHeaders())
	o.DryRun = s.opts.DryRun
	return ctx, Outcome{Outcome: o}
}

func (s *Server) decide(ctx context.Context, req *authv3.CheckRequest, out *Outcome) {
	start := time.Now()
	defer func() { out.Took = time.Since(start) }()

	sc := &scratch{in: envoyInput{req: req, opts: s.opts.Input, ident: s.identify(ctx, req)}}
	in := &sc.in
	out.in = in
	switch route, server := s.opts.MCP.classify(req); route {
	case routeMCP:
		if _, err := in.Value(); err != nil {
			if s.refuseMCPBody(out, req, err) {
				return
			}
			s.refuse(out, err)
			return
		}
		s.decideMCP(ctx, out, req, server, in.built, in.ident)
		return
	case routeAmbiguous:
		s.refuse(out, &InputError{HTTPStatus: typev3.StatusCode_BadRequest, Code: ReasonMCPRouteAmbiguous,
			Reason: "the request path matches an MCP route only in another spelling (dot segments, escapes, case, path parameters): send it in normal form"})
		return
	case routeExtAuthz:
		// The route's own policy, below.
	}

	if id := in.ident; id != nil && id.verifying {
		out.Subject = pipeline.Subject{
			ID: id.subject.ID, Authenticated: id.subject.Authenticated,
			TokenPresented: id.subject.TokenPresented(), Challengeable: true,
		}
		if id.subject.AuthError != nil {
			out.Subject.AuthError = id.subject.AuthError.Message
		}
	}
	ok := s.p.Decide(ctx, &out.Outcome, in, deriveResponse, s.opts.FailOpen, inputFailure)
	if in.done && in.err == nil {
		out.InputValue = in.built.Value
	}
	if !ok {
		if out.Failure.Request {
			out.Response = s.inputErrorResponse(out.DecisionID, out.Err)
		} else {
			out.Response = s.failureResponse(out.DecisionID, out.Err)
		}
		return
	}
	d, _ := out.Derived.(*derived)
	out.Response = sc.withDecisionID(d.resp, out.DecisionID)
	out.Verdict = pipeline.Deny
	if out.Response.GetStatus().GetCode() == int32(code.Code_OK) {
		out.Verdict = pipeline.Allow
	}
	s.enforce(ctx, out, d)
	if s.opts.DryRun && out.Response.GetStatus().GetCode() != int32(code.Code_OK) {
		out.Response.Status = &rpcstatus.Status{Code: int32(code.Code_OK)}
		out.Response.HttpResponse = &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{}}
	}
}

// refuse answers a request that cannot become input.
func (s *Server) refuse(out *Outcome, err error) {
	f, _ := inputFailure(err)
	s.p.Refuse(&out.Outcome, err, f)
	out.Response = s.inputErrorResponse(out.DecisionID, err)
}

// inputFailure is the caller-safe failure of a request the adapter could
// not turn into input.
func inputFailure(err error) (pipeline.Failure, bool) {
	ie, ok := errors.AsType[*InputError](err)
	if !ok {
		return pipeline.Failure{}, false
	}
	c := ie.Code
	if c == "" {
		c = ReasonBadRequest
	}
	return pipeline.Failure{Code: c, Message: ie.Reason, WireCode: int(ie.HTTPStatus)}, true
}

// InputJSON returns the policy input as JSON-like Go values, or nil when it
// was never built. When the policy was evaluated on only the members it
// reads, the whole input is built now.
func (o *Outcome) InputJSON() any {
	if o.Input != nil {
		if m, ok := o.Input.(map[string]any); ok {
			return m
		}
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
	ReasonInvalidDecision = pipeline.ReasonInvalidDecision
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
	f := pipeline.FailureOf(err)
	return f.Code, f.Message
}
