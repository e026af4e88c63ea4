package mcp

import (
	"context"

	"github.com/verdictpdp/verdict/internal/challenge"
	"github.com/verdictpdp/verdict/internal/enforce"
)

// Enforcement is what follows a policy decision on every request, cached or
// not: rate limits, and the authorization challenge a denied request gets.
type Enforcement struct {
	// Limiter applies rate_limit obligations (nil: none).
	Limiter *enforce.Limiter
	// ResourceMetadata is the RFC 9728 metadata URL put in challenges.
	ResourceMetadata string
}

// Enforce applies e to the decided outcome o for subject. An allowed
// request over its rate limit becomes a deny with reason rate_limited; a
// denied request gets a challenge: 403 insufficient_scope when the policy
// names required scopes and the subject is authenticated, 401 when the
// subject is not authenticated.
func (e *Enforcement) Enforce(ctx context.Context, entrypoint string, o *Outcome, subject Subject) {
	if e == nil {
		return
	}
	if o.Decision.Verdict() == Allow && o.Err == nil {
		if rl := o.Decision.Obligations.RateLimit; rl != nil {
			st, ok := e.Limiter.Take(ctx, entrypoint, &enforce.RateLimit{Key: rl.Key, Limit: rl.Limit, PeriodSeconds: rl.PeriodSeconds, Burst: rl.Burst})
			if ok {
				o.RateLimit = &st
				if st.Refused {
					// The decision may be shared with the cache: replace, never modify.
					d := o.Decision
					d.Allow = false
					d.Reasons = []Reason{{Code: st.Code, Message: st.Message}}
					o.Decision = d
				}
			}
		}
		return
	}
	// Only the policy's own deny gets a challenge: a malformed request
	// (400) or a failure to decide is not the client's credentials' fault.
	if o.Decision.Verdict() != Deny || o.RateLimit != nil || o.Err != nil {
		return
	}
	switch {
	case !subject.Authenticated:
		desc := ""
		if subject.TokenPresented() {
			desc = subject.AuthError.Message
		}
		c := challenge.Unauthorized(e.ResourceMetadata, subject.TokenPresented(), desc)
		o.Challenge = &c
	case len(o.Decision.RequiredScopes) > 0:
		desc := ""
		if len(o.Decision.Reasons) > 0 {
			desc = o.Decision.Reasons[0].Message
		}
		c := challenge.InsufficientScope(e.ResourceMetadata, o.Decision.RequiredScopes, desc)
		o.Challenge = &c
	}
}
