package extauthz

import (
	"context"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"

	"github.com/verdictpdp/verdict/internal/challenge"
	"github.com/verdictpdp/verdict/internal/enforce"
	"github.com/verdictpdp/verdict/internal/engine"
	"github.com/verdictpdp/verdict/internal/mcp"
	"github.com/verdictpdp/verdict/internal/pipeline"
)

// derived is the policy's decision as the cache keeps it: the response
// template plus what the steps after the cache need. Shared between
// requests; nothing may modify it.
type derived struct {
	resp *authv3.CheckResponse
	// explicit is set when the policy chose the denied answer's status or
	// its WWW-Authenticate header: no challenge replaces them.
	explicit bool
	// scopes are the decision's required_scopes (step-up).
	scopes []string
	// rateLimit is the decision's rate_limit.
	rateLimit *enforce.RateLimit
}

// deriveResponse turns the policy's value into a CheckResponse once per
// evaluation. The cache shares it between requests: withDecisionID copies
// its top level and never changes what it points to. Besides the
// opa-envoy-plugin members, an object decision may carry required_scopes
// and rate_limit (see docs/policies.md).
func deriveResponse(r engine.Result) (any, error) {
	resp, err := responseFor(r.Value)
	if err != nil {
		return nil, err
	}
	d := &derived{resp: resp}
	obj, ok := r.Value.(map[string]any)
	if !ok {
		return d, nil
	}
	_, d.explicit = obj["http_status"]
	for _, h := range resp.GetDeniedResponse().GetHeaders() {
		if strings.EqualFold(h.GetHeader().GetKey(), "www-authenticate") {
			d.explicit = true
		}
	}
	if d.scopes, err = mcp.ParseStringList(obj["required_scopes"], "required_scopes"); err != nil {
		return nil, err // wraps ErrInvalidDecision
	}
	if v, ok := obj["rate_limit"]; ok && v != nil {
		rl, err := mcp.ParseRateLimit(v)
		if err != nil {
			return nil, err // wraps ErrInvalidDecision
		}
		d.rateLimit = &enforce.RateLimit{Key: rl.Key, Limit: rl.Limit, PeriodSeconds: rl.PeriodSeconds, Burst: rl.Burst}
	}
	return d, nil
}

// enforce runs the pipeline's stateful checks for a decision made at
// Path and carries their answer into the response: the rate limit of an
// allowed request (429, or its x-ratelimit headers), and the challenge of a
// denied one when this service verifies tokens.
func (s *Server) enforce(ctx context.Context, out *Outcome, d *derived) {
	s.p.Enforce(ctx, &out.Outcome, pipeline.Checks{RateLimit: d.rateLimit, RequiredScopes: d.scopes, NoChallenge: d.explicit})
	if st := out.RateLimit; st != nil {
		if st.Refused {
			out.Response = rateLimitedResponse(out.DecisionID, *st)
			return
		}
		out.Response.HttpResponse = withResponseHeaders(out.Response.GetOkResponse(), st.Headers())
		return
	}
	if c := out.Challenge; c != nil {
		out.Response.HttpResponse = withChallenge(out.Response.GetDeniedResponse(), *c)
	}
}

// withResponseHeaders returns a copy of ok (a shared template) that also
// adds headers to the upstream's response.
func withResponseHeaders(ok *authv3.OkHttpResponse, headers [][2]string) *authv3.CheckResponse_OkResponse {
	c := &authv3.OkHttpResponse{}
	if ok != nil {
		c.Headers, c.HeadersToRemove, c.QueryParametersToSet, c.QueryParametersToRemove =
			ok.GetHeaders(), ok.GetHeadersToRemove(), ok.GetQueryParametersToSet(), ok.GetQueryParametersToRemove()
		c.ResponseHeadersToAdd = append(c.ResponseHeadersToAdd, ok.GetResponseHeadersToAdd()...)
	}
	for _, h := range headers {
		c.ResponseHeadersToAdd = append(c.ResponseHeadersToAdd, headerValue(h[0], h[1]))
	}
	return &authv3.CheckResponse_OkResponse{OkResponse: c}
}

// withChallenge returns a copy of denied (a shared template) with the
// challenge's status and WWW-Authenticate header.
func withChallenge(denied *authv3.DeniedHttpResponse, c challenge.Challenge) *authv3.CheckResponse_DeniedResponse {
	headers := make([]*corev3.HeaderValueOption, 0, len(denied.GetHeaders())+1)
	headers = append(headers, denied.GetHeaders()...)
	headers = append(headers, headerValue("www-authenticate", c.Header))
	return &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
		Status:  &typev3.HttpStatus{Code: typev3.StatusCode(int32(c.Status))}, //nolint:gosec // 401 or 403
		Headers: headers,
		Body:    denied.GetBody(),
	}}
}

// rateLimitedResponse is the 429 of a request over its rate limit (or 403
// when the limit could not be checked: fail closed).
func rateLimitedResponse(decisionID string, st enforce.Status) *authv3.CheckResponse {
	status := typev3.StatusCode_TooManyRequests
	if st.Code != enforce.ReasonRateLimited {
		status = typev3.StatusCode_Forbidden
	}
	resp := deniedWithReason(decisionID, status, st.Code, st.Message)
	denied := resp.GetDeniedResponse()
	for _, h := range st.Headers() {
		denied.Headers = append(denied.Headers, headerValue(h[0], h[1]))
	}
	return resp
}
