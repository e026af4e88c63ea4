package extauthz

import (
	"context"
	"strings"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/open-policy-agent/opa/v1/ast"
	"google.golang.org/genproto/googleapis/rpc/code"

	"github.com/verdictpdp/verdict/internal/audit"
	"github.com/verdictpdp/verdict/internal/pipeline"
)

// AuditInput implements audit.InputSource: the input is built on the audit
// worker when the cache answered without it.
func (in *envoyInput) AuditInput() (ast.Value, error) {
	v, err := in.Value()
	if err != nil {
		return nil, err
	}
	return v, nil
}

// finish logs and records the decision: one audit event for the request,
// or one per JSON-RPC message when it was decided as MCP.
func (s *Server) finish(ctx context.Context, req *authv3.CheckRequest, out *Outcome) {
	out.HTTPStatus = answeredStatus(out.Response)
	out.RequestedBy = req.GetAttributes().GetSource().GetAddress().GetSocketAddress().GetAddress()
	if len(out.MCP) > 0 {
		for i := range out.MCP {
			o := &out.MCP[i]
			o.HTTPStatus, o.RequestedBy, o.DryRun = out.HTTPStatus, out.RequestedBy, s.opts.DryRun
			if len(out.MCP) == 1 {
				o.Took = out.Took
			}
		}
		s.p.FinishParts(ctx, &out.Outcome, out.MCP)
		return
	}
	h := req.GetAttributes().GetRequest().GetHttp()
	out.Request = &audit.Request{Method: h.GetMethod(), Path: pathOnly(h.GetPath()), Host: h.GetHost()}
	out.Verdict = pipeline.Deny
	if out.Response.GetStatus().GetCode() == int32(code.Code_OK) {
		out.Verdict = pipeline.Allow
	}
	// An ext_authz decision has no reasons of its own: the audit event
	// names only the stateful checks' refusals.
	out.Reasons = nil
	if st := out.RateLimit; st != nil && st.Refused {
		out.Reasons = []pipeline.Reason{{Code: st.Code, Message: st.Message}}
	}
	switch {
	case out.InputValue != nil:
		out.Input = out.InputValue
	case out.in != nil && (out.Err == nil || out.in.pruned):
		// Built on the audit worker: the cache answered, or the policy
		// was evaluated on only the members it reads (a request Value
		// accepts, even when the evaluation then failed).
		out.Input = out.in
	}
	if out.in != nil {
		out.Subject.ID = out.in.Subject()
	}
	s.p.Finish(ctx, &out.Outcome)
}

// httpStatus is the status Envoy answers the client with.
func answeredStatus(resp *authv3.CheckResponse) int {
	if d := resp.GetDeniedResponse(); d != nil {
		if c := int(d.GetStatus().GetCode()); c != 0 {
			return c
		}
		return 403
	}
	if resp.GetStatus().GetCode() == int32(code.Code_OK) {
		return 200
	}
	return 403
}

// pathOnly drops the query string: it can carry tokens.
func pathOnly(p string) string {
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		return p[:i]
	}
	return p
}
