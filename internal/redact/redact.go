// Package redact removes sensitive data from JSON-like values (the
// map[string]any / []any trees of decoded JSON): values named by JSON
// pointers, and strings that named detectors recognise (e-mail addresses,
// payment card numbers that pass the Luhn check, secret and API-key shapes).
//
// It knows nothing about MCP or policy: callers pass the rules a decision
// returned. Values are never modified in place; Apply returns a copy.
package redact

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Detector names.
const (
	Email      = "email"
	CardNumber = "card_number"
	Secret     = "secret"
)

// Mask replaces a value named by a JSON pointer.
const Mask = "[REDACTED]"

type detector struct {
	re *regexp.Regexp
	// valid confirms a regexp match (nil: every match counts).
	valid func(string) bool
}

var detectors = map[string]detector{
	Email: {re: regexp.MustCompile(`[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}`)},
	// 13 to 19 digits, optionally grouped by single spaces or dashes.
	CardNumber: {re: regexp.MustCompile(`\b\d(?:[ \-]?\d){12,18}\b`), valid: luhn},
	Secret: {re: regexp.MustCompile(strings.Join([]string{
		`(?:AKIA|ASIA)[0-9A-Z]{16}`,                                         // AWS access key id
		`gh[pousr]_[A-Za-z0-9]{36,255}`,                                     // GitHub tokens
		`github_pat_[A-Za-z0-9_]{22,255}`,                                   // GitHub fine-grained tokens
		`xox[abprs]-[A-Za-z0-9\-]{10,}`,                                     // Slack tokens
		`(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}`,                          // Stripe keys
		`sk-[A-Za-z0-9_\-]{20,}`,                                            // OpenAI-style keys
		`AIza[0-9A-Za-z_\-]{35}`,                                            // Google API keys
		`eyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{10,}`, // JWTs
		`-----BEGIN (?:[A-Z]+ )*PRIVATE KEY-----[\s\S]*?(?:-----END (?:[A-Z]+ )*PRIVATE KEY-----|$)`, // PEM private keys
	}, "|"))},
}

// Detectors returns the names of the built-in detectors, sorted.
func Detectors() []string {
	names := make([]string, 0, len(detectors))
	for n := range detectors {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// luhn reports whether the digits in s pass the Luhn checksum.
func luhn(s string) bool {
	sum, n, double := 0, 0, false
	for i := len(s) - 1; i >= 0; i-- {
		c := s[i]
		if c < '0' || c > '9' {
			continue
		}
		d := int(c - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
		n++
	}
	return n >= 13 && n <= 19 && sum%10 == 0
}

// Scan counts, per detector, the matches in every string of v (keys
// included). Detectors with no match are left out.
func Scan(v any) map[string]int {
	out := map[string]int{}
	walkStrings(v, func(s string) {
		for name, d := range detectors {
			if n := d.count(s); n > 0 {
				out[name] += n
			}
		}
	})
	return out
}

func (d detector) count(s string) int {
	n := 0
	for _, m := range d.re.FindAllString(s, -1) {
		if d.valid == nil || d.valid(m) {
			n++
		}
	}
	return n
}

func (d detector) replace(s, name string) (string, int) {
	n := 0
	out := d.re.ReplaceAllStringFunc(s, func(m string) string {
		if d.valid != nil && !d.valid(m) {
			return m
		}
		n++
		return "[REDACTED:" + name + "]"
	})
	return out, n
}

func walkStrings(v any, fn func(string)) {
	switch x := v.(type) {
	case string:
		fn(x)
	case map[string]any:
		for k, e := range x {
			fn(k)
			walkStrings(e, fn)
		}
	case []any:
		for _, e := range x {
			walkStrings(e, fn)
		}
	}
}

// Count is how many values one rule replaced.
type Count struct {
	Rule  string
	Count int
}

// Apply returns a copy of v with every rule applied, and per-rule counts.
// A rule is a JSON pointer (RFC 6901, with "*" matching every member or
// element) or a detector name. Pointers are resolved against v itself.
// An unknown detector or a malformed pointer is an error: a policy that asks
// for a redaction Verdict cannot perform must not pass data through.
func Apply(v any, rules []string) (any, []Count, error) {
	out := deepCopy(v)
	counts := make([]Count, 0, len(rules))
	for _, rule := range rules {
		var n int
		if strings.HasPrefix(rule, "/") || rule == "" {
			segs, err := ParsePointer(rule)
			if err != nil {
				return nil, nil, err
			}
			out, n = maskPointer(out, segs)
		} else {
			d, ok := detectors[rule]
			if !ok {
				return nil, nil, fmt.Errorf("unknown redaction %q: use a JSON pointer or one of %s", rule, strings.Join(Detectors(), ", "))
			}
			out, n = replaceStrings(out, d, rule)
		}
		counts = append(counts, Count{Rule: rule, Count: n})
	}
	return out, counts, nil
}

// ParsePointer splits an RFC 6901 JSON pointer into unescaped segments.
func ParsePointer(p string) ([]string, error) {
	if p == "" {
		return nil, nil
	}
	if !strings.HasPrefix(p, "/") {
		return nil, fmt.Errorf("JSON pointer %q must start with /", p)
	}
	segs := strings.Split(p[1:], "/")
	for i, s := range segs {
		if strings.Contains(strings.ReplaceAll(strings.ReplaceAll(s, "~0", ""), "~1", ""), "~") {
			return nil, fmt.Errorf("JSON pointer %q has an invalid ~ escape", p)
		}
		segs[i] = strings.ReplaceAll(strings.ReplaceAll(s, "~1", "/"), "~0", "~")
	}
	return segs, nil
}

func maskPointer(v any, segs []string) (any, int) {
	if len(segs) == 0 {
		return Mask, 1
	}
	head, rest := segs[0], segs[1:]
	total := 0
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if head == "*" || head == k {
				var n int
				x[k], n = maskPointer(e, rest)
				total += n
			}
		}
	case []any:
		for i, e := range x {
			if head == "*" || head == fmt.Sprint(i) {
				var n int
				x[i], n = maskPointer(e, rest)
				total += n
			}
		}
	}
	return v, total
}

func replaceStrings(v any, d detector, name string) (any, int) {
	switch x := v.(type) {
	case string:
		return d.replace(x, name)
	case map[string]any:
		total := 0
		for k, e := range x {
			var n int
			x[k], n = replaceStrings(e, d, name)
			total += n
		}
		return x, total
	case []any:
		total := 0
		for i, e := range x {
			var n int
			x[i], n = replaceStrings(e, d, name)
			total += n
		}
		return x, total
	default:
		return v, 0
	}
}

func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = deepCopy(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = deepCopy(e)
		}
		return out
	default:
		return v
	}
}
