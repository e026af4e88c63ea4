package pipeline_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/verdictpdp/verdict/internal/audit"
	"github.com/verdictpdp/verdict/internal/enforce"
	"github.com/verdictpdp/verdict/internal/engine"
	"github.com/verdictpdp/verdict/internal/engine/enginetest"
	"github.com/verdictpdp/verdict/internal/pipeline"
	"github.com/verdictpdp/verdict/internal/projection"
	"github.com/verdictpdp/verdict/internal/ratelimit"
)

const path = "test/decision"

const policy = `package test

decision := {"allow": true} if input.who == "alice"
decision := {"allow": false} if input.who == "bob"
decision := "not an object" if input.who == "mallory"
decision := {"allow": true} if input.who == "carol"
decision := {"allow": false} if input.who == "carol"
`

// mapInput is the plainest engine.Input: Go values converted when asked.
type mapInput map[string]any

func (in mapInput) Value() (ast.Value, error) { return ast.InterfaceToValue(map[string]any(in)) }
func (mapInput) AppendKey(dst []byte, _ *projection.Projection) ([]byte, bool) {
	return dst, false
}
func (mapInput) Subject() string { return "" }

var errInput = errors.New("input refused")

type badInput struct{ mapInput }

func (badInput) Value() (ast.Value, error) { return nil, errInput }

func derive(r engine.Result) (any, error) {
	m, ok := r.Value.(map[string]any)
	if !ok {
		return nil, pipeline.ErrInvalidDecision
	}
	allow, _ := m["allow"].(bool)
	return allow, nil
}

func inputErr(err error) (pipeline.Failure, bool) {
	if errors.Is(err, errInput) {
		return pipeline.Failure{Code: "request.invalid", Message: "bad request", WireCode: 400}, true
	}
	return pipeline.Failure{}, false
}

func TestDecide(t *testing.T) {
	t.Parallel()
	eng := enginetest.Engine(t, path, policy, nil)
	idle, err := engine.New(engine.Deps{Entrypoints: []string{path}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		eval     pipeline.Evaluator
		in       engine.Input
		failOpen bool
		ok       bool
		verdict  pipeline.Verdict
		code     string
		request  bool
	}{
		{name: "decided", eval: eng, in: mapInput{"who": "alice"}, ok: true},
		{name: "no bundle", eval: idle, in: mapInput{}, verdict: pipeline.Deny, code: string(engine.CodeNoBundle)},
		{name: "no bundle, fail open", eval: idle, in: mapInput{}, failOpen: true, verdict: pipeline.Allow, code: string(engine.CodeNoBundle)},
		{name: "undefined", eval: eng, in: mapInput{"who": "dave"}, verdict: pipeline.Deny, code: string(engine.CodeUndefined)},
		{name: "malformed decision", eval: eng, in: mapInput{"who": "mallory"}, verdict: pipeline.Deny, code: pipeline.ReasonInvalidDecision},
		{name: "evaluation error", eval: eng, in: mapInput{"who": "carol"}, verdict: pipeline.Deny, code: string(engine.CodeEvalError)},
		{name: "refused input", eval: eng, in: badInput{}, verdict: pipeline.Deny, code: "request.invalid", request: true},
		{name: "refused input, fail open", eval: eng, in: badInput{}, failOpen: true, verdict: pipeline.Deny, code: "request.invalid", request: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := pipeline.New(tc.eval, pipeline.Options{})
			_, o := p.Start(context.Background(), audit.KindMCP, path, "test", nil)
			if o.DecisionID == "" {
				t.Fatal("no decision id")
			}
			ok := p.Decide(context.Background(), &o, tc.in, derive, tc.failOpen, inputErr)
			if ok != tc.ok {
				t.Fatalf("Decide = %v, want %v (err %v)", ok, tc.ok, o.Err)
			}
			if tc.ok {
				if o.Derived != true || o.Failure != nil || o.Revision == "" {
					t.Fatalf("outcome %+v", o)
				}
				return
			}
			if o.Verdict != tc.verdict || o.Failure == nil || o.Failure.Code != tc.code || o.Failure.Request != tc.request {
				t.Fatalf("verdict %v failure %+v, want %v %s request=%v", o.Verdict, o.Failure, tc.verdict, tc.code, tc.request)
			}
			if o.Reasons[0].Code != tc.code {
				t.Fatalf("reasons %v", o.Reasons)
			}
			if tc.failOpen && !tc.request && (len(o.Reasons) != 2 || o.Reasons[1].Code != pipeline.ReasonFailOpen) {
				t.Fatalf("fail open reasons %v", o.Reasons)
			}
		})
	}
}

func TestEnforce(t *testing.T) {
	t.Parallel()
	limit := &enforce.RateLimit{Key: "alice:t", Limit: 1, PeriodSeconds: 60}
	for _, tc := range []struct {
		name      string
		limiter   bool
		verdict   pipeline.Verdict
		failure   bool
		subject   pipeline.Subject
		checks    pipeline.Checks
		takes     int
		want      pipeline.Verdict
		reason    string
		challenge int
	}{
		{name: "allow under its limit", limiter: true, verdict: pipeline.Allow, checks: pipeline.Checks{RateLimit: limit}, takes: 1, want: pipeline.Allow},
		{name: "allow over its limit", limiter: true, verdict: pipeline.Allow, checks: pipeline.Checks{RateLimit: limit}, takes: 2, want: pipeline.Deny, reason: enforce.ReasonRateLimited},
		{name: "invalid limit", limiter: true, verdict: pipeline.Allow, checks: pipeline.Checks{RateLimit: &enforce.RateLimit{Key: "k"}}, takes: 1, want: pipeline.Deny, reason: enforce.ReasonRateLimitInvalid},
		{name: "limits off", verdict: pipeline.Allow, checks: pipeline.Checks{RateLimit: limit}, takes: 3, want: pipeline.Allow},
		{name: "fail open is not limited", limiter: true, verdict: pipeline.Allow, failure: true, checks: pipeline.Checks{RateLimit: limit}, takes: 3, want: pipeline.Allow},
		{name: "deny without token", verdict: pipeline.Deny, subject: pipeline.Subject{Challengeable: true}, takes: 1, want: pipeline.Deny, challenge: 401},
		{name: "deny, token refused", verdict: pipeline.Deny, subject: pipeline.Subject{Challengeable: true, TokenPresented: true, AuthError: "expired"}, takes: 1, want: pipeline.Deny, challenge: 401},
		{name: "deny, step up", verdict: pipeline.Deny, subject: pipeline.Subject{ID: "a", Authenticated: true, Challengeable: true}, checks: pipeline.Checks{RequiredScopes: []string{"tools:write"}}, takes: 1, want: pipeline.Deny, challenge: 403},
		{name: "deny, authenticated, no scopes", verdict: pipeline.Deny, subject: pipeline.Subject{ID: "a", Authenticated: true, Challengeable: true}, takes: 1, want: pipeline.Deny},
		{name: "deny, policy chose its answer", verdict: pipeline.Deny, subject: pipeline.Subject{Challengeable: true}, checks: pipeline.Checks{NoChallenge: true}, takes: 1, want: pipeline.Deny},
		{name: "deny, not challengeable", verdict: pipeline.Deny, takes: 1, want: pipeline.Deny},
		{name: "failure gets no challenge", verdict: pipeline.Deny, failure: true, subject: pipeline.Subject{Challengeable: true}, takes: 1, want: pipeline.Deny},
		{name: "approval gets no challenge", verdict: pipeline.RequireApproval, subject: pipeline.Subject{Challengeable: true}, takes: 1, want: pipeline.RequireApproval},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			opts := pipeline.Options{ResourceMetadata: "https://pdp.example/.well-known/oauth-protected-resource"}
			if tc.limiter {
				opts.Limiter = enforce.NewLimiter(ratelimit.NewMemory(ratelimit.MemoryOptions{}), nil)
			}
			p := pipeline.New(enginetest.Engine(t, path, policy, nil), opts)
			var o pipeline.Outcome
			for range tc.takes {
				_, o = p.Start(context.Background(), audit.KindMCP, path, "test", nil)
				o.Verdict, o.Subject = tc.verdict, tc.subject
				if tc.failure {
					o.Err, o.Failure = errors.New("x"), &pipeline.Failure{Code: "eval_error"}
				}
				p.Enforce(context.Background(), &o, tc.checks)
			}
			if o.Verdict != tc.want {
				t.Fatalf("verdict %v, want %v", o.Verdict, tc.want)
			}
			if tc.reason != "" && (len(o.Reasons) != 1 || o.Reasons[0].Code != tc.reason) {
				t.Fatalf("reasons %v, want %s", o.Reasons, tc.reason)
			}
			switch {
			case tc.challenge == 0 && o.Challenge != nil:
				t.Fatalf("unexpected challenge %+v", o.Challenge)
			case tc.challenge != 0 && (o.Challenge == nil || o.Challenge.Status != tc.challenge):
				t.Fatalf("challenge %+v, want %d", o.Challenge, tc.challenge)
			}
		})
	}
}

func TestAuditEntry(t *testing.T) {
	t.Parallel()
	ob := map[string]any{"classification": "confidential"}
	o := pipeline.Outcome{
		DecisionID: "d1", Kind: audit.KindMCP, Path: path, Verdict: pipeline.Allow,
		Reasons: []pipeline.Reason{{Code: "c", Message: "m"}}, Obligations: ob,
		Classification: "confidential", RetentionDays: 30, Redact: []string{"email"},
		Subject: pipeline.Subject{ID: "alice"}, Request: &audit.Request{Method: "tools/call"},
		HTTPStatus: 200, Cached: true, Took: time.Millisecond,
	}
	now := time.Unix(1, 0)
	e := pipeline.AuditEntry(&o, now)
	if e.DecisionID != "d1" || e.Decision != audit.Allow || e.Subject != "alice" || e.Classification != "confidential" ||
		e.RetentionDays != 30 || !slices.Equal(e.Redact, []string{"email"}) || e.Obligations == nil || !e.Time.Equal(now) ||
		e.Request.Method != "tools/call" || e.HTTPStatus != 200 || !e.Cached || e.Err != nil || len(e.Reasons) != 1 {
		t.Fatalf("entry %+v", e)
	}

	o.Verdict = 0
	o.Err, o.Failure = errors.New("internal detail /etc/x"), &pipeline.Failure{Code: "eval_error", Message: "policy evaluation failed"}
	e = pipeline.AuditEntry(&o, now)
	if e.Decision != audit.Deny || e.Err == nil || e.Err.Message != "policy evaluation failed" || e.Obligations != nil {
		t.Fatalf("failed entry %+v", e)
	}
}

type sink struct {
	mu      sync.Mutex
	records []map[string]any
}

func (s *sink) Name() string { return "mem" }
func (s *sink) Write(_ context.Context, batch []audit.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range batch {
		var m map[string]any
		if err := json.Unmarshal(r.JSON, &m); err != nil {
			return err
		}
		s.records = append(s.records, m)
	}
	return nil
}
func (s *sink) Close(context.Context) error { return nil }
func (s *sink) Status() audit.SinkStatus    { return audit.SinkStatus{Name: "mem", Healthy: true} }

// TestFinish: one audit event per outcome, one per part of a batch and
// none for the batch itself.
func TestFinish(t *testing.T) {
	t.Parallel()
	s := &sink{}
	rec, err := audit.New(audit.Options{Sinks: []audit.Sink{s}})
	if err != nil {
		t.Fatal(err)
	}
	p := pipeline.New(enginetest.Engine(t, path, policy, nil), pipeline.Options{Audit: rec})
	ctx := context.Background()

	_, one := p.Start(ctx, audit.KindMCP, path, "test", nil)
	p.Decide(ctx, &one, mapInput{"who": "alice"}, derive, false, nil)
	one.Verdict = pipeline.Allow
	p.Finish(ctx, &one)
	if one.Took <= 0 {
		t.Fatal("Finish did not time the decision")
	}

	_, parent := p.Start(ctx, audit.KindMCPOverEnvoy, path, "test", nil)
	parts := []pipeline.Outcome{p.Sub(audit.KindMCPOverEnvoy, path), p.Sub(audit.KindMCPOverEnvoy, path)}
	for i, who := range []string{"alice", "bob"} {
		p.Decide(ctx, &parts[i], mapInput{"who": who}, derive, false, nil)
		parts[i].Verdict = pipeline.Deny
	}
	p.FinishParts(ctx, &parent, parts)
	if err := rec.Close(ctx); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range s.records {
		id, _ := r["decision_id"].(string)
		ids = append(ids, id)
	}
	want := []string{one.DecisionID, parts[0].DecisionID, parts[1].DecisionID}
	if !slices.Equal(ids, want) {
		t.Fatalf("recorded %v, want %v", ids, want)
	}
}
