package mcp

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/verdictpdp/verdict/internal/pipeline"
)

// Verdict is the outcome of an MCP decision: the pipeline's.
type Verdict = pipeline.Verdict

// Verdicts, from most to least permissive.
const (
	Allow           = pipeline.Allow
	RequireApproval = pipeline.RequireApproval
	Deny            = pipeline.Deny
)

// Reason explains a decision.
type Reason = pipeline.Reason

// RateLimit is a rate limit the policy asks for.
type RateLimit struct {
	Key           string `json:"key"`
	Limit         int64  `json:"limit"`
	PeriodSeconds int64  `json:"period_seconds"`
	Burst         int64  `json:"burst,omitempty"`
}

// Obligations are the conditions attached to a decision.
type Obligations struct {
	Classification string            `json:"classification,omitempty"`
	RetentionDays  int               `json:"retention_days,omitempty"`
	Redact         []string          `json:"redact,omitempty"`
	RateLimit      *RateLimit        `json:"rate_limit,omitempty"`
	Controls       []string          `json:"controls,omitempty"`
	Labels         map[string]string `json:"labels,omitempty"`
	// ApprovalTTLSeconds is how long an approval the decision asks for
	// waits (0: the configured default).
	ApprovalTTLSeconds int64 `json:"approval_ttl_seconds,omitempty"`
	// DataCategories are the categories of data the target holds
	// (personal_data, phi, …), as the catalog says.
	DataCategories []string `json:"data_categories,omitempty"`
}

// Decision is the policy's MCP decision, read from the object at the MCP
// entrypoint.
type Decision struct {
	Allow           bool
	RequireApproval bool
	Reasons         []Reason
	Obligations     Obligations
	// Visible and Hidden filter list results: an entry is kept only when
	// its key is in Visible and not in Hidden.
	Visible map[string]bool
	Hidden  map[string]Reason
	// RequiredScopes are the OAuth scopes the request needs: on a deny, an
	// authenticated subject is asked to step up (403 insufficient_scope).
	RequiredScopes []string
}

// Verdict returns the decision's outcome: approval wins over allow.
func (d *Decision) Verdict() Verdict {
	switch {
	case d.RequireApproval:
		return RequireApproval
	case d.Allow:
		return Allow
	default:
		return Deny
	}
}

// ErrInvalidDecision is wrapped when the value at the MCP entrypoint does
// not have the shape of an MCP decision.
var ErrInvalidDecision = pipeline.ErrInvalidDecision

func invalidDecision(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidDecision, fmt.Sprintf(format, args...))
}

// ParseStringList reads a policy value that must be a list of strings
// (nil when absent); field names it in the error.
func ParseStringList(v any, field string) ([]string, error) { return stringList(v, field) }

// ParseDecision reads the policy's value. Unknown keys are ignored; known
// keys with the wrong type make the whole decision invalid, so a typo in a
// policy cannot silently drop an obligation.
func ParseDecision(v any) (Decision, error) {
	var d Decision
	obj, ok := v.(map[string]any)
	if !ok {
		return d, invalidDecision("decision must be an object, got %s", TypeName(v))
	}
	var err error
	if d.Allow, err = optBool(obj, "allow"); err != nil {
		return d, err
	}
	if d.RequireApproval, err = optBool(obj, "require_approval"); err != nil {
		return d, err
	}
	if d.Reasons, err = reasons(obj["reasons"], "reasons"); err != nil {
		return d, err
	}
	if ob, ok := obj["obligations"]; ok && ob != nil {
		if d.Obligations, err = obligations(ob); err != nil {
			return d, err
		}
	}
	if d.RequiredScopes, err = stringList(obj["required_scopes"], "required_scopes"); err != nil {
		return d, err
	}
	if vis, ok := obj["visible"]; ok && vis != nil {
		names, err := stringList(vis, "visible")
		if err != nil {
			return d, err
		}
		d.Visible = make(map[string]bool, len(names))
		for _, n := range names {
			d.Visible[n] = true
		}
	}
	if hid, ok := obj["hidden"]; ok && hid != nil {
		m, ok := hid.(map[string]any)
		if !ok {
			return d, invalidDecision(`"hidden" must be an object of name to reason, got %s`, TypeName(hid))
		}
		d.Hidden = make(map[string]Reason, len(m))
		for name, rv := range m {
			r, err := reason(rv, "hidden."+name)
			if err != nil {
				return d, err
			}
			d.Hidden[name] = r
		}
	}
	return d, nil
}

func optBool(obj map[string]any, key string) (bool, error) {
	v, ok := obj[key]
	if !ok || v == nil {
		return false, nil
	}
	b, ok := v.(bool)
	if !ok {
		return false, invalidDecision("%q must be a boolean, got %s", key, TypeName(v))
	}
	return b, nil
}

func reasons(v any, field string) ([]Reason, error) {
	if v == nil {
		return nil, nil
	}
	arr, ok := v.([]any)
	if !ok {
		return nil, invalidDecision("%q must be an array, got %s", field, TypeName(v))
	}
	out := make([]Reason, 0, len(arr))
	for i, el := range arr {
		r, err := reason(el, fmt.Sprintf("%s[%d]", field, i))
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	// Policies usually build reasons as a set; present them in a stable order.
	slices.SortFunc(out, func(a, b Reason) int {
		return cmp.Or(cmp.Compare(a.Code, b.Code), cmp.Compare(a.Message, b.Message))
	})
	return out, nil
}

// reason accepts {"code": ..., "message": ...} or a bare message string.
func reason(v any, field string) (Reason, error) {
	switch r := v.(type) {
	case string:
		return Reason{Code: "policy", Message: r}, nil
	case map[string]any:
		c, _ := r["code"].(string)
		m, _ := r["message"].(string)
		if c == "" {
			return Reason{}, invalidDecision("%s needs a string \"code\"", field)
		}
		return Reason{Code: c, Message: m}, nil
	default:
		return Reason{}, invalidDecision("%s must be an object or a string, got %s", field, TypeName(v))
	}
}

func obligations(v any) (Obligations, error) {
	var o Obligations
	obj, ok := v.(map[string]any)
	if !ok {
		return o, invalidDecision(`"obligations" must be an object, got %s`, TypeName(v))
	}
	if c, ok := obj["classification"]; ok && c != nil {
		s, ok := c.(string)
		if !ok {
			return o, invalidDecision(`"obligations.classification" must be a string, got %s`, TypeName(c))
		}
		o.Classification = s
	}
	if r, ok := obj["retention_days"]; ok && r != nil {
		n, err := intValue(r, "obligations.retention_days", math.MaxInt32)
		if err != nil {
			return o, err
		}
		o.RetentionDays = int(n)
	}
	if t, ok := obj["approval_ttl_seconds"]; ok && t != nil {
		n, err := intValue(t, "obligations.approval_ttl_seconds", math.MaxInt32)
		if err != nil {
			return o, err
		}
		o.ApprovalTTLSeconds = n
	}
	var err error
	if o.Redact, err = stringList(obj["redact"], "obligations.redact"); err != nil {
		return o, err
	}
	if o.Controls, err = stringList(obj["controls"], "obligations.controls"); err != nil {
		return o, err
	}
	slices.Sort(o.Controls)
	o.Controls = slices.Compact(o.Controls)
	if o.DataCategories, err = stringList(obj["data_categories"], "obligations.data_categories"); err != nil {
		return o, err
	}
	slices.Sort(o.DataCategories)
	o.DataCategories = slices.Compact(o.DataCategories)
	if rl, ok := obj["rate_limit"]; ok && rl != nil {
		if o.RateLimit, err = rateLimit(rl); err != nil {
			return o, err
		}
	}
	if l, ok := obj["labels"]; ok && l != nil {
		m, ok := l.(map[string]any)
		if !ok {
			return o, invalidDecision(`"obligations.labels" must be an object, got %s`, TypeName(l))
		}
		o.Labels = make(map[string]string, len(m))
		for k, lv := range m {
			s, err := labelValue(lv)
			if err != nil {
				return o, invalidDecision("obligations.labels.%s: %v", k, err)
			}
			o.Labels[k] = s
		}
	}
	return o, nil
}

// ParseRateLimit reads a rate_limit obligation: {key, limit,
// period_seconds, burst}.
func ParseRateLimit(v any) (*RateLimit, error) { return rateLimit(v) }

func rateLimit(v any) (*RateLimit, error) {
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, invalidDecision(`"obligations.rate_limit" must be an object, got %s`, TypeName(v))
	}
	var rl RateLimit
	rl.Key, _ = obj["key"].(string)
	var err error
	if rl.Limit, err = intValue(obj["limit"], "obligations.rate_limit.limit", math.MaxInt64); err != nil {
		return nil, err
	}
	if rl.PeriodSeconds, err = intValue(obj["period_seconds"], "obligations.rate_limit.period_seconds", math.MaxInt64); err != nil {
		return nil, err
	}
	if b, ok := obj["burst"]; ok && b != nil {
		if rl.Burst, err = intValue(b, "obligations.rate_limit.burst", math.MaxInt64); err != nil {
			return nil, err
		}
	}
	if rl.Key == "" || rl.Limit <= 0 || rl.PeriodSeconds <= 0 {
		return nil, invalidDecision("obligations.rate_limit needs a key, a positive limit and a positive period_seconds")
	}
	return &rl, nil
}

func intValue(v any, field string, limit int64) (int64, error) {
	var n int64
	switch x := v.(type) {
	case json.Number:
		i, err := x.Int64()
		if err != nil {
			return 0, invalidDecision("%s must be an integer, got %s", field, x)
		}
		n = i
	case float64:
		if x != math.Trunc(x) || math.Abs(x) > math.MaxInt64/2 {
			return 0, invalidDecision("%s must be an integer", field)
		}
		n = int64(x)
	case int:
		n = int64(x)
	case int64:
		n = x
	default:
		return 0, invalidDecision("%s must be an integer, got %s", field, TypeName(v))
	}
	if n < 0 || n > limit {
		return 0, invalidDecision("%s is out of range", field)
	}
	return n, nil
}

func stringList(v any, field string) ([]string, error) {
	if v == nil {
		return nil, nil
	}
	arr, ok := v.([]any)
	if !ok {
		return nil, invalidDecision("%q must be an array of strings, got %s", field, TypeName(v))
	}
	out := make([]string, 0, len(arr))
	for i, el := range arr {
		s, ok := el.(string)
		if !ok {
			return nil, invalidDecision("%s[%d] must be a string, got %s", field, i, TypeName(el))
		}
		out = append(out, s)
	}
	return out, nil
}

func labelValue(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case bool:
		return strconv.FormatBool(x), nil
	case json.Number:
		return x.String(), nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	default:
		return "", fmt.Errorf("must be a string, number or boolean, got %s", TypeName(v))
	}
}

// ErrorObject returns the JSON-RPC error a gateway sends for d, or false for
// an allow.
func (d *Decision) ErrorObject(decisionID string) (ErrorObject, bool) {
	return errorObject(d.Verdict(), d.Reasons, decisionID)
}

func errorObject(v Verdict, reasons []Reason, decisionID string) (ErrorObject, bool) {
	var e ErrorObject
	switch v {
	case Allow:
		return e, false
	case RequireApproval:
		e.Code, e.Message = CodeApprovalRequired, "Approval required"
	default:
		e.Code, e.Message = CodeDenied, "Denied by policy"
	}
	if len(reasons) > 0 && reasons[0].Message != "" {
		e.Message += ": " + reasons[0].Message
	}
	rs := make([]any, len(reasons))
	for i, r := range reasons {
		rs[i] = map[string]any{"code": r.Code, "message": r.Message}
	}
	e.Data = map[string]any{"decision_id": decisionID, "decision": v.String(), "reasons": rs}
	return e, true
}
