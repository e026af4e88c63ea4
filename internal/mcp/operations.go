package mcp

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/verdictpdp/verdict/internal/audit"
	"github.com/verdictpdp/verdict/internal/enforce"
	"github.com/verdictpdp/verdict/internal/pipeline"
	"github.com/verdictpdp/verdict/internal/redact"
	"github.com/verdictpdp/verdict/internal/scan/dlp"
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
	o := d.Evaluate(ctx, kind, r, func(in map[string]any) error { return d.addListInput(in, r.Server, method, result) })
	l := d.listing(&o, method, result)
	d.observe(ctx, &o, StageList, nil, poisoned(l.Removed))
	return o, l
}

// addListInput adds input.list with the poisoning scanner's findings in
// input.list.findings.
func (d *Decider) addListInput(in map[string]any, server, method string, result map[string]any) error {
	if err := AddListInput(in, method, result); err != nil {
		return err
	}
	l := in["list"].(map[string]any)
	items, _ := l["items"].([]any)
	l["findings"] = d.poisoningScanner().Findings(server, method, items)
	return nil
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
		q, err := d.controls.Quarantined(o.Subject.ID, server, name, session)
		if err != nil {
			removed = append(removed, Removed{Name: name, Reason: Reason{Code: enforce.ReasonStateDown, Message: "the runtime controls cannot be read right now"}})
			continue
		}
		if q != nil {
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
	// Findings counts, per detector, the matches the data-loss detectors
	// found in the result (input.findings): never the matched values.
	Findings map[string]int
}

// Reason codes of result checks.
const (
	// ReasonResultBlocked: a detector in block mode matched, or the
	// policy's block_on did.
	ReasonResultBlocked = "result.blocked"
	// ReasonResultUnscanned: the result is too large to scan whole and
	// the policy asked for redactions.
	ReasonResultUnscanned = "result.unscanned"
)

// CheckResult decides a tools/call, resources/read or prompts/get result
// for r: input.result is the result and input.findings what the data-loss
// detectors (internal/scan/dlp, configured by data.mcp.dlp) found in it,
// prompt-injection markers included. A deny blocks it; an allow applies
// the decision's redactions that address the result: detectors, each in
// the mode data.mcp.dlp gives it (mask, hash, drop, block or report), and
// pointers under /result. A redaction that cannot be applied, a detector
// in block mode that matches, and a result too large to scan whole when
// the policy asks for any redaction all block (fail closed). The caller
// finishes the outcome.
func (d *Decider) CheckResult(ctx context.Context, kind audit.Kind, r *Request, result map[string]any) (pipeline.Outcome, Checked) {
	sc := d.dlpScanner()
	found, skipped := sc.Scan(result)
	o, c := d.checkResult(ctx, kind, r, result, sc, found, skipped)
	c.Findings = found
	o.Findings = found
	// The observer may keep what it is given: a copy of its own, counted
	// as policy counts them (secret includes private keys), so that a
	// flow or containment rule naming secret means what input.findings
	// does.
	allowed := o.Verdict == Allow
	d.observe(ctx, &o, StageResult, policyCounts(found), 0)
	if allowed && o.Verdict != Allow {
		// Its findings could not be recorded (shared session state
		// unavailable): the result is not delivered.
		c = Checked{Action: ResultBlock, Findings: found}
	}
	return o, c
}

func (d *Decider) checkResult(ctx context.Context, kind audit.Kind, r *Request, result map[string]any, sc *DLP, found map[string]int, skipped bool) (pipeline.Outcome, Checked) {
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
	block := func(code, msg string) (pipeline.Outcome, Checked) {
		o.Verdict = Deny
		o.Reasons = []Reason{{Code: code, Message: msg}}
		return o, Checked{Action: ResultBlock}
	}
	// A scan cut short left input.findings incomplete: the policy's
	// answer (block_on, a redaction) may rest on what was not seen.
	if skipped {
		return block(ReasonResultUnscanned, "the result is too large to scan whole: raise data.mcp.dlp max_string_bytes or max_value_bytes for this server")
	}
	rules, named := resultRules(DecisionOf(&o).Obligations.Redact)
	if len(rules) == 0 {
		return o, Checked{Action: ResultPass}
	}
	var detectors, pointers []string
	for _, rule := range rules {
		if rule == "" || strings.HasPrefix(rule, "/") {
			pointers = append(pointers, rule)
		} else {
			detectors = append(detectors, rule)
		}
	}
	var value any = result
	perDetector := map[string]int{}
	if len(detectors) > 0 {
		sel, unknown := sc.selected(detectors)
		if len(unknown) > 0 {
			d.p.Warn(ctx, &o, "result blocked: redaction cannot be applied", fmt.Errorf("unknown detector %q in obligations.redact: not built in and not defined in data.mcp.dlp.custom", unknown[0]))
			return block(ReasonInvalidDecision, "the policy asked for a redaction that cannot be applied")
		}
		s, err := sc.scanner(sel)
		if err != nil {
			d.p.Warn(ctx, &o, "result blocked: redaction cannot be applied", err)
			return block(ReasonInvalidDecision, "the policy asked for a redaction that cannot be applied")
		}
		// The first scan counted every detector, whatever its mode: when
		// none of the selected ones matched, there is nothing to rewrite
		// or block, and the result is not scanned twice.
		if !slices.ContainsFunc(sel, func(n string) bool { return found[n] > 0 }) {
			s = nil
		}
		res := dlp.Result{Value: result}
		if s != nil {
			res = s.Apply(result)
		}
		if res.Skipped != (dlp.Skipped{}) {
			return block(ReasonResultUnscanned, "the result is too large to scan whole for the redactions the policy asks for")
		}
		got := counts(res.Findings)
		if res.Block {
			var hit []string
			for _, n := range sel {
				if sc.ModeOf(n) == dlp.Block && got[n] > 0 {
					hit = append(hit, n)
				}
			}
			return block(ReasonResultBlocked, fmt.Sprintf("the result contains %s data", strings.Join(hit, ", ")))
		}
		for _, n := range sel {
			if m := sc.ModeOf(n); m == dlp.Mask || m == dlp.Hash || m == dlp.Drop {
				perDetector[n] = got[n]
			}
		}
		value = res.Value
	}
	var pointerCounts []redact.Count
	if len(pointers) > 0 {
		redacted, cs, err := redact.Apply(value, pointers)
		if err != nil {
			// The policy asked for a redaction that cannot be performed: block,
			// and tell the operator which rule is broken.
			d.p.Warn(ctx, &o, "result blocked: redaction cannot be applied", err)
			return block(ReasonInvalidDecision, "the policy asked for a redaction that cannot be applied")
		}
		value, pointerCounts = redacted, cs
	}
	c := Checked{Action: ResultPass}
	pi := 0
	for i, rule := range rules {
		n := 0
		if rule == "" || strings.HasPrefix(rule, "/") {
			n = pointerCounts[pi].Count
			pi++
		} else {
			n = perDetector[rule]
			if rule == dlp.Secret {
				n += perDetector[dlp.PrivateKey] // secret selects private keys too
				if slices.Contains(rules, dlp.PrivateKey) {
					n = perDetector[rule]
				}
			}
		}
		if n > 0 {
			c.Redacted = append(c.Redacted, Redaction{Rule: named[i], Count: n})
		}
	}
	if len(c.Redacted) > 0 {
		c.Action = ResultRedact
		c.Result, _ = value.(map[string]any)
		if c.Result == nil {
			c.Result = map[string]any{}
		}
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

// findingsInput is input.findings. secret counts private keys too, as it
// did before private_key was a detector of its own, so that policies
// reading findings.secret (block_on: ["secret"]) still see them.
// policyCounts returns the detectors' counts as policy reads them:
// secret includes private keys, which also count on their own.
func policyCounts(f map[string]int) map[string]int {
	out := maps.Clone(f)
	if n := f[dlp.PrivateKey]; n > 0 {
		if out == nil {
			out = map[string]int{}
		}
		out[dlp.Secret] = f[dlp.Secret] + n
	}
	return out
}

func findingsInput(f map[string]int) map[string]any {
	out := make(map[string]any, len(f))
	for k, v := range f {
		out[k] = v
	}
	if n := f[dlp.PrivateKey]; n > 0 {
		out[dlp.Secret] = f[dlp.Secret] + n
	}
	return out
}
