package mcp

import (
	"context"
	"strings"

	"github.com/verdictpdp/verdict/internal/audit"
	"github.com/verdictpdp/verdict/internal/pipeline"
	"github.com/verdictpdp/verdict/internal/redact"
)

// Listing is the answer to a list result: the result with only the entries
// the caller may see.
type Listing struct {
	// Result is the filtered result; empty when the listing was denied.
	Result  map[string]any
	Removed []Removed
}

// Filter decides a list result (tools/list, resources/list,
// resources/templates/list, prompts/list) for r and keeps only the entries
// the policy lets the caller see. Anything but an allow hides every entry:
// a listing cannot wait for approval. The caller finishes the outcome.
func (d *Decider) Filter(ctx context.Context, kind audit.Kind, r *Request, method string, result map[string]any) (pipeline.Outcome, Listing) {
	o := d.Evaluate(ctx, kind, r, func(in map[string]any) error { return AddListInput(in, method, result) })
	l := d.listing(&o, method, result)
	d.observe(ctx, &o, StageList, nil, poisoned(l.Removed))
	return o, l
}

// poisoned counts the entries hidden because their definitions look
// poisoned.
func poisoned(removed []Removed) int {
	n := 0
	for _, r := range removed {
		if r.Reason.Code == ReasonListSuspicious {
			n++
		}
	}
	return n
}

func (d *Decider) listing(o *pipeline.Outcome, method string, result map[string]any) Listing {
	if (o.Err == nil || o.Verdict == Allow) && d.controls.Quarantining() && d.quarantine(o) {
		return Listing{Result: map[string]any{}} // the caller or the server is quarantined
	}
	if o.Verdict != Allow {
		// A require_approval stays one (its JSON-RPC error is -32003) but
		// hides every entry like a deny.
		return Listing{Result: map[string]any{}}
	}
	filtered, removed := FilterList(method, result, DecisionOf(o))
	if method == MethodToolsList && d.controls.Quarantining() {
		filtered, removed = d.hideQuarantined(o, filtered, removed)
	}
	return Listing{Result: filtered, Removed: removed}
}

// hideQuarantined removes quarantined tools from a filtered tools/list
// result (a copy FilterList made).
func (d *Decider) hideQuarantined(o *pipeline.Outcome, result map[string]any, removed []Removed) (map[string]any, []Removed) {
	server := ""
	if o.Request != nil {
		server = o.Request.Server
	}
	session := sessionOf(o)
	items, _ := result["tools"].([]any)
	kept := items[:0:0]
	for _, it := range items {
		entry, _ := it.(map[string]any)
		name, _ := entry["name"].(string)
		if q := d.controls.Quarantined(o.Subject.ID, server, name, session); q != nil {
			removed = append(removed, Removed{Name: name, Reason: Reason{Code: ReasonQuarantined, Message: quarantineMessage(q)}})
			continue
		}
		kept = append(kept, it)
	}
	result["tools"] = kept
	return result, removed
}

// ReasonListSuspicious hides a list entry whose definition looks poisoned.
const ReasonListSuspicious = "list.suspicious"

// ResultAction is what happens to a result.
type ResultAction int

// Result actions.
const (
	ResultPass ResultAction = iota + 1
	ResultRedact
	ResultBlock
)

// Redaction counts what one of the policy's redactions replaced.
type Redaction struct {
	// Rule is the redaction as the policy wrote it: a detector name or a
	// JSON pointer under /result.
	Rule  string
	Count int
}

// Checked is the answer to a result check.
type Checked struct {
	Action ResultAction
	// Result is the redacted result (ResultRedact only).
	Result   map[string]any
	Redacted []Redaction
}

// CheckResult decides a tools/call, resources/read or prompts/get result
// for r: input.result is the result and input.findings what the built-in
// detectors found in it. A deny blocks it; an allow applies the decision's
// redactions that address the result (detectors and pointers under
// /result). A redaction that cannot be applied blocks (fail closed). The
// caller finishes the outcome.
func (d *Decider) CheckResult(ctx context.Context, kind audit.Kind, r *Request, result map[string]any) (pipeline.Outcome, Checked) {
	found := redact.Scan(result)
	o, c := d.checkResult(ctx, kind, r, result, found)
	d.observe(ctx, &o, StageResult, found, 0)
	return o, c
}

func (d *Decider) checkResult(ctx context.Context, kind audit.Kind, r *Request, result map[string]any, found map[string]int) (pipeline.Outcome, Checked) {
	o := d.Evaluate(ctx, kind, r, func(in map[string]any) error {
		in["result"] = result
		in["findings"] = findingsInput(found)
		return nil
	})
	if (o.Err == nil || o.Verdict == Allow) && d.controls.Quarantining() && d.quarantine(&o) {
		return o, Checked{Action: ResultBlock}
	}
	if o.Verdict != Allow {
		return o, Checked{Action: ResultBlock}
	}
	rules, named := resultRules(DecisionOf(&o).Obligations.Redact)
	redacted, counts, err := redact.Apply(result, rules)
	if err != nil {
		// The policy asked for a redaction that cannot be performed: block,
		// and tell the operator which rule is broken.
		d.p.Warn(ctx, &o, "result blocked: redaction cannot be applied", err)
		o.Verdict = Deny
		o.Reasons = []Reason{{Code: ReasonInvalidDecision, Message: "the policy asked for a redaction that cannot be applied"}}
		return o, Checked{Action: ResultBlock}
	}
	c := Checked{Action: ResultPass}
	for i, n := range counts {
		if n.Count > 0 {
			c.Redacted = append(c.Redacted, Redaction{Rule: named[i], Count: n.Count})
		}
	}
	if len(c.Redacted) > 0 {
		c.Action = ResultRedact
		c.Result, _ = redacted.(map[string]any)
	}
	return o, c
}

// resultRules keeps the redactions that apply to a result: detectors, and
// pointers under /result (made relative to the result). named holds each
// kept rule as the policy wrote it.
func resultRules(rules []string) (out, named []string) {
	for _, r := range rules {
		switch {
		case r == "/result":
			out, named = append(out, ""), append(named, r)
		case strings.HasPrefix(r, "/result/"):
			out, named = append(out, strings.TrimPrefix(r, "/result")), append(named, r)
		case !strings.HasPrefix(r, "/"):
			out, named = append(out, r), append(named, r)
		}
	}
	return out, named
}

func findingsInput(f map[string]int) map[string]any {
	out := make(map[string]any, len(f))
	for k, v := range f {
		out[k] = v
	}
	return out
}
