package mcp

import (
	"errors"

	"github.com/verdictpdp/verdict/internal/audit"
	"github.com/verdictpdp/verdict/internal/engine"
)

// AuditEntry describes the outcome for the audit log. in is the MCP input
// (the same on every transport), nil when the request never became input.
func (o *Outcome) AuditEntry(kind audit.Kind, path string, in map[string]any) *audit.Entry {
	e := &audit.Entry{
		DecisionID: o.DecisionID,
		Kind:       kind,
		Path:       path,
		Bundles:    o.Bundles,
		Result:     o.Result,
		Decision:   o.Decision.Verdict().String(),
		Cached:     o.Cached,
		EvalTook:   o.EvalTook,
		Took:       o.Took,
		Request:    auditRequest(in),
		TraceID:    o.TraceID,
		SpanID:     o.SpanID,
	}
	if o.Input != nil {
		e.Input = o.Input
	}
	if sub, ok := in["subject"].(map[string]any); ok {
		e.Subject, _ = sub["id"].(string)
	}
	for _, r := range o.Decision.Reasons {
		e.Reasons = append(e.Reasons, audit.Reason{Code: r.Code, Message: r.Message})
	}
	if c := o.Challenge; c != nil {
		e.Reasons = append(e.Reasons, audit.Reason{Code: c.Code(), Message: c.Header})
	}
	ob := &o.Decision.Obligations
	if o.Err == nil {
		e.Obligations = ob
	}
	e.Classification, e.RetentionDays, e.Redact = ob.Classification, ob.RetentionDays, ob.Redact
	if o.Err != nil {
		e.Err = auditError(o.Err)
	}
	return e
}

func auditError(err error) *audit.ErrorInfo {
	if _, ok := errors.AsType[*RequestError](err); ok {
		return &audit.ErrorInfo{Code: ReasonInvalidRequest, Message: "request is not a valid MCP request"}
	}
	if _, ok := errors.AsType[*engine.Error](err); ok || errors.Is(err, ErrInvalidDecision) {
		code, msg := failureReason(err)
		return &audit.ErrorInfo{Code: code, Message: msg}
	}
	return &audit.ErrorInfo{Code: ReasonInvalidRequest, Message: "request is not a valid MCP request"}
}

func auditRequest(in map[string]any) *audit.Request {
	if in == nil {
		return nil
	}
	r := &audit.Request{}
	r.Method, _ = in["method"].(string)
	if s, ok := in["server"].(map[string]any); ok {
		r.Server, _ = s["name"].(string)
	}
	if t, ok := in["tool"].(map[string]any); ok {
		r.Tool, _ = t["name"].(string)
	}
	if res, ok := in["resource"].(map[string]any); ok {
		r.Resource, _ = res["uri"].(string)
	}
	if p, ok := in["prompt"].(map[string]any); ok {
		r.Prompt, _ = p["name"].(string)
	}
	return r
}
