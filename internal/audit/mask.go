package audit

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/verdictpdp/verdict/internal/engine"
	"github.com/verdictpdp/verdict/internal/redact"
)

// Entrypoints of the decision log's policy rules, as in OPA.
const (
	MaskPath = "system/log/mask"
	DropPath = "system/log/drop"
)

// doc is an event's masked parts: input and result as JSON-like Go values.
// Changes copy what they touch: inputs and results are shared with the
// cache and with the other messages of a batch.
type doc struct {
	input, result any
	hasInput      bool
	hasResult     bool
	erased        []string
	masked        []string
}

func (d *doc) root(seg string) (*any, *bool) {
	switch seg {
	case "input":
		return &d.input, &d.hasInput
	case "result":
		return &d.result, &d.hasResult
	}
	return nil, nil
}

// resolve splits pointer and returns the event part it starts in.
func (d *doc) resolve(pointer string) (segs []string, v *any, has *bool, err error) {
	segs, err = redact.ParsePointer(pointer)
	if err != nil {
		return nil, nil, nil, err
	}
	if len(segs) == 0 {
		return nil, nil, nil, errors.New("the empty pointer names the whole event")
	}
	v, has = d.root(segs[0])
	if v == nil {
		return nil, nil, nil, fmt.Errorf("pointer %q must start with /input or /result", pointer)
	}
	return segs, v, has, nil
}

// erase removes the value at pointer; it reports whether there was one.
func (d *doc) erase(pointer string) (bool, error) {
	segs, v, has, err := d.resolve(pointer)
	if err != nil || !*has {
		return false, err
	}
	if len(segs) == 1 {
		*v, *has = nil, false
		d.erased = append(d.erased, pointer)
		return true, nil
	}
	nv, ok := eraseAt(*v, segs[1:])
	if ok {
		*v = nv
		d.erased = append(d.erased, pointer)
	}
	return ok, nil
}

// upsert sets the value at pointer when its parent exists.
func (d *doc) upsert(pointer string, value any) (bool, error) {
	segs, v, has, err := d.resolve(pointer)
	if err != nil {
		return false, err
	}
	if len(segs) == 1 {
		*v, *has = value, true
		d.masked = append(d.masked, pointer)
		return true, nil
	}
	if !*has {
		return false, nil
	}
	nv, ok := setAt(*v, segs[1:], value, true)
	if ok {
		*v = nv
		d.masked = append(d.masked, pointer)
	}
	return ok, nil
}

// get returns the value at segs below v.
func get(v any, segs []string) (any, bool) {
	for _, s := range segs {
		switch x := v.(type) {
		case map[string]any:
			c, ok := x[s]
			if !ok {
				return nil, false
			}
			v = c
		case []any:
			i, err := strconv.Atoi(s)
			if err != nil || i < 0 || i >= len(x) {
				return nil, false
			}
			v = x[i]
		default:
			return nil, false
		}
	}
	return v, true
}

// eraseAt returns a copy of v without the value at segs (len(segs) ≥ 1).
func eraseAt(v any, segs []string) (any, bool) {
	head, rest := segs[0], segs[1:]
	switch x := v.(type) {
	case map[string]any:
		c, ok := x[head]
		if !ok {
			return v, false
		}
		out := maps.Clone(x)
		if len(rest) == 0 {
			delete(out, head)
			return out, true
		}
		nc, ok := eraseAt(c, rest)
		if !ok {
			return v, false
		}
		out[head] = nc
		return out, true
	case []any:
		i, err := strconv.Atoi(head)
		if err != nil || i < 0 || i >= len(x) {
			return v, false
		}
		if len(rest) == 0 {
			return slices.Delete(slices.Clone(x), i, i+1), true
		}
		nc, ok := eraseAt(x[i], rest)
		if !ok {
			return v, false
		}
		out := slices.Clone(x)
		out[i] = nc
		return out, true
	}
	return v, false
}

// setAt returns a copy of v with value at segs. With create, a missing last
// member of an object is added; otherwise only existing values change.
func setAt(v any, segs []string, value any, create bool) (any, bool) {
	head, rest := segs[0], segs[1:]
	switch x := v.(type) {
	case map[string]any:
		c, ok := x[head]
		if !ok && (len(rest) > 0 || !create) {
			return v, false
		}
		if len(rest) == 0 {
			out := maps.Clone(x)
			out[head] = value
			return out, true
		}
		nc, ok := setAt(c, rest, value, create)
		if !ok {
			return v, false
		}
		out := maps.Clone(x)
		out[head] = nc
		return out, true
	case []any:
		i, err := strconv.Atoi(head)
		if err != nil || i < 0 || i >= len(x) {
			return v, false
		}
		nc := value
		if len(rest) > 0 {
			var ok bool
			if nc, ok = setAt(x[i], rest, value, create); !ok {
				return v, false
			}
		}
		out := slices.Clone(x)
		out[i] = nc
		return out, true
	}
	return v, false
}

// maskHeaders replaces the sensitive request headers of an Envoy input
// found at base (a pointer to the opa-envoy-plugin input).
func (d *doc) maskHeaders(base string) {
	segs := []string{"attributes", "request", "http", "headers"}
	prefix, _ := redact.ParsePointer(base)
	all := append(slices.Clone(prefix[1:]), segs...)
	h, ok := get(d.input, all)
	if !ok {
		return
	}
	headers, _ := h.(map[string]any)
	for _, name := range SensitiveHeaders {
		if _, ok := headers[name]; ok {
			_, _ = d.upsert(base+"/attributes/request/http/headers/"+name, Mask)
		}
	}
}

// policyOps are the changes a data.system.log.mask result asks for.
type policyOp struct {
	remove  bool
	pointer string
	value   any
}

// parseMask reads a mask rule's value: a set (or array) of JSON pointers to
// erase, or of {"op": "remove"|"upsert", "path": ..., "value": ...}.
func parseMask(v any) ([]policyOp, error) {
	items, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("mask must be a set of pointers or operations, got %T", v)
	}
	ops := make([]policyOp, 0, len(items))
	for _, it := range items {
		switch x := it.(type) {
		case string:
			ops = append(ops, policyOp{remove: true, pointer: x})
		case map[string]any:
			p, _ := x["path"].(string)
			op, _ := x["op"].(string)
			switch op {
			case "remove":
				ops = append(ops, policyOp{remove: true, pointer: p})
			case "upsert":
				val, ok := x["value"]
				if !ok {
					return nil, fmt.Errorf("upsert of %q has no value", p)
				}
				ops = append(ops, policyOp{pointer: p, value: val})
			default:
				return nil, fmt.Errorf("mask operation %q is neither remove nor upsert", op)
			}
		default:
			return nil, fmt.Errorf("mask element must be a pointer or an operation, got %T", it)
		}
	}
	// Erasures first, in a stable order; an upsert below an erased member
	// then finds nothing to change.
	slices.SortStableFunc(ops, func(a, b policyOp) int {
		switch {
		case a.remove == b.remove:
			return strings.Compare(a.pointer, b.pointer)
		case a.remove:
			return -1
		default:
			return 1
		}
	})
	return ops, nil
}

func (d *doc) apply(ops []policyOp) error {
	for _, op := range ops {
		var err error
		if op.remove {
			_, err = d.erase(op.pointer)
		} else {
			_, err = d.upsert(op.pointer, op.value)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// eventInput is what data.system.log.mask and drop see as input: the event
// before masking, as in OPA.
func eventInput(e *Entry, d *doc) (ast.Value, error) {
	m := map[string]any{
		"decision_id": e.DecisionID,
		"path":        e.Path,
		"timestamp":   e.Time.UTC().Format("2006-01-02T15:04:05.999999999Z07:00"),
		"decision":    e.Decision,
		"cached":      e.Cached,
	}
	if d.hasInput {
		m["input"] = d.input
	}
	if d.hasResult {
		m["result"] = d.result
	}
	if e.Subject != "" {
		m["subject"] = e.Subject
	}
	if len(e.Bundles) > 0 {
		b := make(map[string]any, len(e.Bundles))
		for n, info := range e.Bundles {
			b[n] = map[string]any{"revision": info.Revision}
		}
		m["bundles"] = b
	}
	return ast.InterfaceToValue(m)
}

// policyMask runs data.system.log.drop and data.system.log.mask on snap.
// It reports whether the event is dropped.
func policyMask(ctx context.Context, snap *engine.Snapshot, e *Entry, d *doc) (drop bool, err error) {
	hasDrop, hasMask := snap.Defines(DropPath), snap.Defines(MaskPath)
	if !hasDrop && !hasMask {
		return false, nil
	}
	in, err := eventInput(e, d)
	if err != nil {
		return false, err
	}
	if hasDrop {
		res, err := snap.Eval(ctx, DropPath, in)
		if err == nil && res.Value == true {
			return true, nil
		}
		if err != nil && !isUndefined(err) {
			return false, fmt.Errorf("drop: %w", err)
		}
	}
	if !hasMask {
		return false, nil
	}
	res, err := snap.Eval(ctx, MaskPath, in)
	if err != nil {
		if isUndefined(err) {
			return false, nil
		}
		return false, fmt.Errorf("mask: %w", err)
	}
	ops, err := parseMask(res.Value)
	if err != nil {
		return false, err
	}
	return false, d.apply(ops)
}

func isUndefined(err error) bool {
	e, ok := errors.AsType[*engine.Error](err)
	return ok && e.Code == engine.CodeUndefined
}

// redactCall applies an MCP decision's redactions to the call at base (the
// MCP input: "/input"): pointers under /arguments to the
// call's arguments, pointers under /result to the result, detectors to
// both. A restricted tool's arguments are masked whole whatever the policy
// says. It reports whether the arguments were changed.
func (d *doc) redactCall(e *Entry, base string) bool {
	baseSegs, _ := redact.ParsePointer(base)
	baseSegs = baseSegs[1:] // below /input
	var argRules, resRules []string
	restricted := e.Classification == "restricted"
	for _, r := range e.Redact {
		switch {
		case r == "/arguments" || strings.HasPrefix(r, "/arguments/"):
			argRules = append(argRules, strings.TrimPrefix(r, "/arguments"))
		case r == "/result" || strings.HasPrefix(r, "/result/"):
			resRules = append(resRules, strings.TrimPrefix(r, "/result"))
		case !strings.HasPrefix(r, "/"):
			argRules = append(argRules, r)
			resRules = append(resRules, r)
		}
	}
	if restricted {
		argRules = []string{""}
	}
	changed := false
	for _, call := range []string{"tool", "prompt"} {
		if d.redactAt(append(slices.Clone(baseSegs), call, "arguments"), argRules) {
			changed = true
		}
	}
	d.redactAt(append(slices.Clone(baseSegs), "result"), resRules)
	return changed
}

// redactAt applies rules to the input's value at segs.
func (d *doc) redactAt(segs []string, rules []string) bool {
	if len(rules) == 0 || !d.hasInput {
		return false
	}
	v, ok := get(d.input, segs)
	if !ok {
		return false
	}
	pointer := "/input"
	for _, s := range segs {
		pointer += "/" + escapePointer(s)
	}
	out, counts, err := redact.Apply(v, rules)
	if err != nil {
		// A redaction Verdict cannot perform: mask the whole value.
		out, counts = Mask, []redact.Count{{Rule: "", Count: 1}}
	}
	n := 0
	for _, c := range counts {
		n += c.Count
	}
	if n == 0 {
		return false
	}
	if nv, ok := setAt(d.input, segs, out, false); ok {
		d.input = nv
		d.masked = append(d.masked, pointer)
	}
	return true
}

// eraseBodies removes the copies of an MCP call that the opa-envoy-plugin
// input at base (input.envoy of an MCP input) holds: the raw and parsed
// body and MCP parameter headers.
func (d *doc) eraseBodies(base string) {
	for _, p := range []string{"/attributes/request/http/body", "/attributes/request/http/raw_body", "/parsed_body"} {
		_, _ = d.erase(base + p)
	}
	segs, _ := redact.ParsePointer(base)
	h, ok := get(d.input, append(segs[1:], "attributes", "request", "http", "headers"))
	if !ok {
		return
	}
	headers, _ := h.(map[string]any)
	for _, name := range slices.Sorted(maps.Keys(headers)) {
		if strings.HasPrefix(name, "mcp-param-") {
			_, _ = d.erase(base + "/attributes/request/http/headers/" + escapePointer(name))
		}
	}
}

// MaskArguments returns a call's arguments masked as the audit log masks
// them for a decision with these redactions and classification (a
// restricted call's arguments whole): what an approver may read. args is
// never modified.
func MaskArguments(args any, redactions []string, classification string) any {
	e := &Entry{Redact: redactions, Classification: classification}
	d := doc{input: map[string]any{"tool": map[string]any{"arguments": args}}, hasInput: true}
	d.redactCall(e, "/input")
	v, _ := get(d.input, []string{"tool", "arguments"})
	return v
}
