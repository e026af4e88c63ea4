package containment

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/verdictpdp/verdict/internal/engine"
)

// Signal is what a rule measures.
type Signal string

// Signals.
const (
	// DenyRate is denied calls over calls (tools/call, resources/read,
	// prompts/get, …), once there are at least min_calls.
	DenyRate Signal = "deny_rate"
	// Findings counts data-loss detector matches in checked results.
	Findings Signal = "findings"
	// Destructive counts calls the policy asked a human to approve.
	Destructive Signal = "destructive"
	// Poisoned counts list entries hidden because they look poisoned.
	Poisoned Signal = "poisoned"
)

// Scope is whose behaviour a rule measures, and what it quarantines.
type Scope string

// Scopes.
const (
	// ScopeSubject counts a caller (tenant and subject id) across its
	// sessions; crossing quarantines the subject.
	ScopeSubject Scope = "subject"
	// ScopeSession counts one MCP session of a caller; crossing
	// quarantines that session only.
	ScopeSession Scope = "session"
)

// Bounds on the rules bundle data may give.
const (
	MaxRules           = 64
	MaxWindow          = 24 * time.Hour
	MaxQuarantine      = 30 * 24 * time.Hour
	maxDetectors       = 32
	maxCount           = 1 << 30
	maxRuleIDBytes     = 64
	maxDetectorIDBytes = 63
)

// Rule is one threshold.
type Rule struct {
	ID     string
	Signal Signal
	Scope  Scope
	Window time.Duration
	// MinCalls is the least number of calls in the window before a deny
	// rate counts (deny_rate only).
	MinCalls int
	// Threshold is reached when the measure is at least this: a rate in
	// (0, 1] for deny_rate, a count (≥ 1) otherwise.
	Threshold float64
	// Detectors restricts findings to these detectors (nil: every one).
	Detectors []string
}

// Rules are the compiled data.mcp.containment.
type Rules struct {
	Rules []Rule
	// QuarantineFor is how long a quarantine set by a rule lasts; zero
	// means until an approver releases it.
	QuarantineFor time.Duration
}

// Empty reports whether there is nothing to watch.
func (r *Rules) Empty() bool { return r == nil || len(r.Rules) == 0 }

var (
	ruleID     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	detectorID = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
)

// Parse compiles the value of data.mcp.containment (JSON values as
// encoding/json or OPA give them: map[string]any, []any, json.Number or
// float64, string, bool). Anything unknown or out of bounds is an error
// naming where it is: a bundle that asks for containment Verdict cannot
// give is refused.
func Parse(v any) (*Rules, error) {
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("containment is %s, not an object", typeName(v))
	}
	if err := onlyKeys(obj, "rules", "quarantine_seconds"); err != nil {
		return nil, err
	}
	out := &Rules{}
	if qv, ok := obj["quarantine_seconds"]; ok {
		n, err := integer(qv, 0, int64(MaxQuarantine/time.Second))
		if err != nil {
			return nil, fmt.Errorf("quarantine_seconds: %w", err)
		}
		out.QuarantineFor = time.Duration(n) * time.Second
	}
	rv, ok := obj["rules"]
	if !ok {
		return out, nil
	}
	list, ok := rv.([]any)
	if !ok {
		return nil, fmt.Errorf("rules is %s, not an array", typeName(rv))
	}
	if len(list) > MaxRules {
		return nil, fmt.Errorf("rules: %d rules, at most %d", len(list), MaxRules)
	}
	seen := map[string]bool{}
	for i, item := range list {
		r, err := parseRule(item)
		if err != nil {
			return nil, fmt.Errorf("rules[%d]: %w", i, err)
		}
		if seen[r.ID] {
			return nil, fmt.Errorf("rules[%d]: id %q is used twice", i, r.ID)
		}
		seen[r.ID] = true
		out.Rules = append(out.Rules, r)
	}
	return out, nil
}

func parseRule(v any) (Rule, error) {
	obj, ok := v.(map[string]any)
	if !ok {
		return Rule{}, fmt.Errorf("a rule is %s, not an object", typeName(v))
	}
	if err := onlyKeys(obj, "id", "signal", "scope", "window_seconds", "min_calls", "threshold", "detectors"); err != nil {
		return Rule{}, err
	}
	var r Rule
	id, err := str(obj, "id")
	if err != nil {
		return Rule{}, err
	}
	if len(id) > maxRuleIDBytes || !ruleID.MatchString(id) {
		return Rule{}, fmt.Errorf("id %q: at most %d letters, digits, '.', '_' and '-'", truncate(id), maxRuleIDBytes)
	}
	r.ID = id
	signal, err := str(obj, "signal")
	if err != nil {
		return Rule{}, fmt.Errorf("rule %q: %w", id, err)
	}
	r.Signal = Signal(signal)
	switch r.Signal {
	case DenyRate, Findings, Destructive, Poisoned:
	default:
		return Rule{}, fmt.Errorf("rule %q: signal %q is not one of deny_rate, findings, destructive, poisoned", id, truncate(signal))
	}
	scope, err := str(obj, "scope")
	if err != nil {
		return Rule{}, fmt.Errorf("rule %q: %w", id, err)
	}
	r.Scope = Scope(scope)
	if r.Scope != ScopeSubject && r.Scope != ScopeSession {
		return Rule{}, fmt.Errorf("rule %q: scope %q is not subject or session", id, truncate(scope))
	}
	wv, ok := obj["window_seconds"]
	if !ok {
		return Rule{}, fmt.Errorf("rule %q: window_seconds is required", id)
	}
	w, err := integer(wv, 1, int64(MaxWindow/time.Second))
	if err != nil {
		return Rule{}, fmt.Errorf("rule %q: window_seconds: %w", id, err)
	}
	r.Window = time.Duration(w) * time.Second
	tv, ok := obj["threshold"]
	if !ok {
		return Rule{}, fmt.Errorf("rule %q: threshold is required", id)
	}
	if r.Signal == DenyRate {
		f, err := number(tv)
		if err != nil || f <= 0 || f > 1 {
			return Rule{}, fmt.Errorf("rule %q: threshold: a deny rate is a number in (0, 1]", id)
		}
		r.Threshold = f
		r.MinCalls = 1
		if mv, ok := obj["min_calls"]; ok {
			n, err := integer(mv, 1, maxCount)
			if err != nil {
				return Rule{}, fmt.Errorf("rule %q: min_calls: %w", id, err)
			}
			r.MinCalls = int(n)
		}
	} else {
		if _, ok := obj["min_calls"]; ok {
			return Rule{}, fmt.Errorf("rule %q: min_calls is for deny_rate rules only", id)
		}
		n, err := integer(tv, 1, maxCount)
		if err != nil {
			return Rule{}, fmt.Errorf("rule %q: threshold: %w", id, err)
		}
		r.Threshold = float64(n)
	}
	if dv, ok := obj["detectors"]; ok {
		if r.Signal != Findings {
			return Rule{}, fmt.Errorf("rule %q: detectors are for findings rules only", id)
		}
		if r.Detectors, err = detectors(dv); err != nil {
			return Rule{}, fmt.Errorf("rule %q: detectors: %w", id, err)
		}
	}
	return r, nil
}

func detectors(v any) ([]string, error) {
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%s, not an array", typeName(v))
	}
	if len(list) == 0 || len(list) > maxDetectors {
		return nil, fmt.Errorf("1 to %d detector names (leave detectors out for every detector)", maxDetectors)
	}
	out := make([]string, 0, len(list))
	for _, x := range list {
		s, ok := x.(string)
		if !ok || len(s) > maxDetectorIDBytes || !detectorID.MatchString(s) {
			return nil, fmt.Errorf("%s is not a detector name (lower-case letters, digits and underscores)", describe(x))
		}
		if slices.Contains(out, s) {
			return nil, fmt.Errorf("%q is named twice", s)
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out, nil
}

func onlyKeys(obj map[string]any, known ...string) error {
	var unknown []string
	for k := range obj {
		if !slices.Contains(known, k) {
			unknown = append(unknown, truncate(k))
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	return fmt.Errorf("unknown member %q (known: %s)", unknown[0], strings.Join(known, ", "))
}

func str(obj map[string]any, key string) (string, error) {
	v, ok := obj[key]
	if !ok {
		return "", fmt.Errorf("%s is required", key)
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("%s is %s, not a string", key, typeName(v))
	}
	return s, nil
}

var errNotNumber = errors.New("not a number")

// number reads a JSON number.
func number(v any) (float64, error) {
	var f float64
	switch n := v.(type) {
	case json.Number:
		var err error
		if f, err = n.Float64(); err != nil {
			return 0, errNotNumber
		}
	case float64:
		f = n
	case int:
		f = float64(n)
	case int64:
		f = float64(n)
	default:
		return 0, errNotNumber
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, errNotNumber
	}
	return f, nil
}

// integer reads a whole JSON number in [lo, hi].
func integer(v any, lo, hi int64) (int64, error) {
	f, err := number(v)
	if err != nil || f != math.Trunc(f) || f < float64(lo) || f > float64(hi) {
		return 0, fmt.Errorf("%s is not a whole number from %d to %d", describe(v), lo, hi)
	}
	return int64(f), nil
}

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case json.Number, float64, int, int64:
		return "a number"
	}
	return fmt.Sprintf("%T", v)
}

// describe names a value in a message without repeating much of it.
func describe(v any) string {
	switch x := v.(type) {
	case string:
		return fmt.Sprintf("%q", truncate(x))
	case json.Number:
		return truncate(string(x))
	case float64, int, int64:
		return fmt.Sprint(x)
	}
	return typeName(v)
}

func truncate(s string) string {
	if len(s) <= 64 {
		return s
	}
	return s[:64] + "…"
}

// Compile reads and compiles data.mcp.containment from a snapshot's
// bundle data: nil when there is none.
func Compile(ctx context.Context, data engine.DataReader) (*Rules, error) {
	v, ok, err := data.Data(ctx, "mcp", "containment")
	if err != nil {
		return nil, fmt.Errorf("reading data.mcp.containment: %w", err)
	}
	if !ok {
		return nil, nil
	}
	r, err := Parse(v)
	if err != nil {
		return nil, fmt.Errorf("data.mcp.containment: %w", err)
	}
	return r, nil
}
