package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/verdictpdp/verdict/internal/mcp"
	mcpv1 "github.com/verdictpdp/verdict/proto/verdict/mcp/v1"
)

// verify checks, before anything is timed, that every server decides every
// case of its mix as intended: each through its load caller (whose cheap
// answer decoding the timed loops rely on) and through a full decode of the
// answer. For MCP, pdp and opa must also give the same reason codes, and on
// the generated mix the ones the generator expects. Every disagreement is
// reported, not just the first.
func (r *runner) verify(ctx context.Context, targets []*target, ext *corpus, mc *mcpCorpus, gen *genCorpus, opaClient *http.Client, res *results) error {
	var problems []string
	for _, t := range targets {
		call := t.newCaller()
		for _, i := range t.corpus.verifyIdx() {
			got, _, err := call(ctx, i)
			if err != nil {
				return fmt.Errorf("verify %s, case %d: %w", t.name, i, err)
			}
			if want := t.want(i); got != want {
				problems = append(problems, fmt.Sprintf("%s [%s] case %d: %s, want %s", t.name, t.group, i, got, want))
			}
		}
	}
	for _, t := range targets {
		if t.pdp == nil {
			continue
		}
		var err error
		switch t.group {
		case groupExtAuthz:
			err = verifyExtAuthz(ctx, t, ext, &problems)
		case groupMCPMiss:
			err = verifyGenerated(ctx, t, gen, opaClient, res.opaGen, &problems)
		default:
			err = verifyMCP(ctx, t, mc, opaClient, res.opaMCP, &problems)
		}
		if err != nil {
			return err
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("the servers do not decide the mixes as intended; nothing was timed:\n  %s", strings.Join(problems, "\n  "))
	}
	return nil
}

// verifyGenerated asks pdp's native API and opa for each verification
// request of the generated mix and compares both with the decision the
// generator expects, reason codes included.
func verifyGenerated(ctx context.Context, t *target, gc *genCorpus, opaClient *http.Client, opaAddr string, problems *[]string) error {
	conn, err := dialVerify(t.pdp.grpcAddr)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	client := mcpv1.NewMCPPolicyClient(conn)
	for k, i := range gc.native.verify {
		var req mcpv1.CheckRequest
		if err := proto.Unmarshal(gc.native.reqs.at(i), &req); err != nil {
			return fmt.Errorf("verify: generated request %d: %w", i, err)
		}
		resp, err := client.Check(ctx, &req)
		if err != nil {
			return fmt.Errorf("verify %s, generated request %d: %w", t.name, i, err)
		}
		native := nativeDecision(resp)
		fromOPA, err := opaDecision(ctx, opaClient, opaAddr, gc.opaBodies.at(i))
		if err != nil {
			return fmt.Errorf("verify opa, generated request %d: %w", i, err)
		}
		want := decisionSummary{verdict: gc.native.want[i], codes: gc.reasons[k]}
		what := fmt.Sprintf("generated request %d (%s/%s)", i, req.GetServer(), req.GetParams().GetFields()["name"].GetStringValue())
		if native.verdict != want.verdict || !slices.Equal(native.codes, want.codes) {
			*problems = append(*problems, fmt.Sprintf("%s %s: %s %v, the generator expects %s %v", t.name, what, native.verdict, native.codes, want.verdict, want.codes))
		}
		if fromOPA.verdict != native.verdict || !slices.Equal(fromOPA.codes, native.codes) {
			*problems = append(*problems, fmt.Sprintf("%s: pdp says %s %v, opa says %s %v", what, native.verdict, native.codes, fromOPA.verdict, fromOPA.codes))
		}
	}
	return nil
}

// verifyExtAuthz decodes pdp's full CheckResponse for every case.
func verifyExtAuthz(ctx context.Context, t *target, ext *corpus, problems *[]string) error {
	conn, err := dialVerify(t.pdp.grpcAddr)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	client := authv3.NewAuthorizationClient(conn)
	for i, c := range extAuthzCases {
		var req authv3.CheckRequest
		if err := proto.Unmarshal(ext.reqs.at(i), &req); err != nil {
			return fmt.Errorf("verify: ext_authz request %d: %w", i, err)
		}
		resp, err := client.Check(ctx, &req)
		if err != nil {
			return fmt.Errorf("verify %s, case %d: %w", t.name, i, err)
		}
		allowed := resp.GetStatus().GetCode() == 0
		if allowed != c.allow {
			*problems = append(*problems, fmt.Sprintf("%s: %s %s as %q: allowed=%t, want %t (%s)",
				t.name, c.method, c.path, c.roles, allowed, c.allow, resp.GetDeniedResponse().GetBody()))
		}
	}
	return nil
}

// verifyMCP asks pdp's native API and opa for every case and compares both
// with the intended decision and with each other, reason codes included.
func verifyMCP(ctx context.Context, t *target, mc *mcpCorpus, opaClient *http.Client, opaAddr string, problems *[]string) error {
	conn, err := dialVerify(t.pdp.grpcAddr)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	client := mcpv1.NewMCPPolicyClient(conn)
	for i, c := range mcpCases {
		var req mcpv1.CheckRequest
		if err := proto.Unmarshal(mc.native.reqs.at(i), &req); err != nil {
			return fmt.Errorf("verify: mcp request %d: %w", i, err)
		}
		resp, err := client.Check(ctx, &req)
		if err != nil {
			return fmt.Errorf("verify %s, case %d: %w", t.name, i, err)
		}
		native := nativeDecision(resp)
		fromOPA, err := opaDecision(ctx, opaClient, opaAddr, mc.opaBodies.at(i))
		if err != nil {
			return fmt.Errorf("verify opa, case %d: %w", i, err)
		}
		what := fmt.Sprintf("case %d (%s %s %s/%s)", i, c.subject, c.method, c.server, mcpTargetName(c))
		if native.verdict != c.want {
			*problems = append(*problems, fmt.Sprintf("%s %s: %s %v, want %s", t.name, what, native.verdict, native.codes, c.want))
		}
		if fromOPA.verdict != native.verdict || !slices.Equal(fromOPA.codes, native.codes) {
			*problems = append(*problems, fmt.Sprintf("%s: pdp says %s %v, opa says %s %v", what, native.verdict, native.codes, fromOPA.verdict, fromOPA.codes))
		}
	}
	return nil
}

func mcpTargetName(c mcpCase) string {
	if n, ok := c.params["name"].(string); ok {
		return n
	}
	if u, ok := c.params["uri"].(string); ok {
		return u
	}
	return "-"
}

// decisionSummary is what verification compares: the verdict and the
// sorted reason codes.
type decisionSummary struct {
	verdict verdict
	codes   []string
}

func nativeDecision(resp *mcpv1.CheckResponse) decisionSummary {
	d := decisionSummary{}
	switch resp.GetDecision() {
	case mcpv1.Decision_DECISION_ALLOW:
		d.verdict = verdictAllow
	case mcpv1.Decision_DECISION_DENY:
		d.verdict = verdictDeny
	case mcpv1.Decision_DECISION_REQUIRE_APPROVAL:
		d.verdict = verdictApproval
	default:
		d.verdict = verdictUnknown
	}
	for _, r := range resp.GetReasons() {
		d.codes = append(d.codes, r.GetCode())
	}
	slices.Sort(d.codes)
	return d
}

// opaDecision POSTs body to opa and reads the decision the way pdp reads a
// policy's MCP decision (mcp.ParseDecision).
func opaDecision(ctx context.Context, client *http.Client, addr string, body []byte) (decisionSummary, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/v1/data/verdict/mcp/decision", bytes.NewReader(body))
	if err != nil {
		return decisionSummary{}, fmt.Errorf("opa request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return decisionSummary{}, fmt.Errorf("opa: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return decisionSummary{}, fmt.Errorf("opa: %s", resp.Status)
	}
	var answer struct {
		Result any `json:"result"`
	}
	dec := json.NewDecoder(resp.Body)
	dec.UseNumber()
	if err := dec.Decode(&answer); err != nil {
		return decisionSummary{}, fmt.Errorf("opa answer: %w", err)
	}
	if answer.Result == nil {
		return decisionSummary{}, errors.New("opa: the decision is undefined: is the policy library loaded?")
	}
	d, err := mcp.ParseDecision(answer.Result)
	if err != nil {
		return decisionSummary{}, fmt.Errorf("opa answer: %w", err)
	}
	s := decisionSummary{}
	switch d.Verdict() {
	case mcp.Allow:
		s.verdict = verdictAllow
	case mcp.RequireApproval:
		s.verdict = verdictApproval
	case mcp.Deny:
		s.verdict = verdictDeny
	default:
		s.verdict = verdictUnknown
	}
	for _, r := range d.Reasons {
		s.codes = append(s.codes, r.Code)
	}
	slices.Sort(s.codes)
	return s, nil
}

// dialVerify opens a connection with the standard protobuf codec.
func dialVerify(addr string) (*grpc.ClientConn, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	return conn, nil
}
