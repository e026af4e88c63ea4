package extauthz

import (
	"errors"
	"strings"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/open-policy-agent/opa/v1/ast"
	"google.golang.org/genproto/googleapis/rpc/code"

	"github.com/verdictpdp/verdict/internal/audit"
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

// record hands one event per decision to the audit log: one for the
// request, or one per JSON-RPC message when it was decided as MCP.
func (s *Server) record(req *authv3.CheckRequest, out *Outcome) {
	rec := s.opts.Audit
	if !rec.Enabled() {
		return
	}
	now := time.Now()
	status := answeredStatus(out.Response)
	peer := req.GetAttributes().GetSource().GetAddress().GetSocketAddress().GetAddress()
	if len(out.MCP) > 0 {
		path := s.opts.MCP.Decider.Path()
		for i := range out.MCP {
			o := &out.MCP[i]
			e := o.AuditEntry(audit.KindMCPOverEnvoy, path, o.Input)
			e.Time, e.HTTPStatus, e.RequestedBy, e.DryRun = now, status, peer, s.opts.DryRun
			e.TraceID, e.SpanID = out.TraceID, out.SpanID
			if len(out.MCP) == 1 {
				e.Took = out.Took
			}
			rec.Record(e)
		}
		return
	}
	h := req.GetAttributes().GetRequest().GetHttp()
	e := &audit.Entry{
		DecisionID:  out.DecisionID,
		Time:        now,
		Kind:        audit.KindEnvoy,
		Path:        s.opts.Path,
		Bundles:     out.Bundles,
		Result:      out.Result,
		Decision:    audit.Deny,
		HTTPStatus:  status,
		Cached:      out.Cached,
		DryRun:      s.opts.DryRun,
		RequestedBy: peer,
		EvalTook:    out.EvalTook,
		Took:        out.Took,
		TraceID:     out.TraceID,
		SpanID:      out.SpanID,
		Request:     &audit.Request{Method: h.GetMethod(), Path: pathOnly(h.GetPath()), Host: h.GetHost()},
	}
	if out.Response.GetStatus().GetCode() == int32(code.Code_OK) {
		e.Decision = audit.Allow
	}
	if st := out.RateLimit; st != nil && st.Refused {
		e.Reasons = []audit.Reason{{Code: st.Code, Message: st.Message}}
	}
	if c := out.Challenge; c != nil {
		e.Reasons = append(e.Reasons, audit.Reason{Code: c.Code(), Message: c.Header})
	}
	switch {
	case out.InputValue != nil:
		e.Input = out.InputValue
	case out.in != nil && (out.Err == nil || out.in.pruned):
		// Built on the audit worker: the cache answered, or the policy
		// was evaluated on only the members it reads (a request Value
		// accepts, even when the evaluation then failed).
		e.Input = out.in
	}
	if out.in != nil {
		e.Subject = out.in.Subject()
	}
	if out.Err != nil {
		e.Err = auditError(out.Err)
	}
	rec.Record(e)
}

func auditError(err error) *audit.ErrorInfo {
	if ie, ok := errors.AsType[*InputError](err); ok {
		c := ie.Code
		if c == "" {
			c = ReasonBadRequest
		}
		return &audit.ErrorInfo{Code: c, Message: ie.Reason}
	}
	c, msg := reasonOf(err)
	return &audit.ErrorInfo{Code: c, Message: msg}
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
