// Package redact removes sensitive data from JSON-like values (the
// map[string]any / []any trees of decoded JSON): values named by JSON
// pointers, and strings that the named detectors of internal/scan/dlp
// recognise (e-mail addresses, payment card numbers, IBANs, secrets, …),
// each match replaced by [REDACTED:<detector>].
//
// It knows nothing about MCP or policy: callers pass the rules a decision
// returned. Values are never modified in place; Apply returns a copy.
package redact

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/verdictpdp/verdict/internal/scan/dlp"
)

// Detector names: those of internal/scan/dlp.
const (
	Email      = dlp.Email
	CardNumber = dlp.CardNumber
	Secret     = dlp.Secret
)

// Mask replaces a value named by a JSON pointer.
const Mask = "[REDACTED]"

// Detectors returns the names of the detectors Apply accepts, sorted: the
// built-in detectors of internal/scan/dlp.
func Detectors() []string {
	return slices.Sorted(slices.Values(dlp.Detectors()))
}

// Selected returns the dlp detectors a list of detector names selects:
// "secret" also selects "private_key" (before the dlp detectors, the
// secret detector matched PEM private keys too). Names that are not
// dlp's built-in detectors are returned in unknown.
func Selected(names []string) (selected, unknown []string) {
	builtin := dlp.DefaultModes()
	seen := map[string]bool{}
	add := func(n string) {
		if !seen[n] {
			seen[n] = true
			selected = append(selected, n)
		}
	}
	for _, n := range names {
		if _, ok := builtin[n]; !ok {
			unknown = append(unknown, n)
			continue
		}
		add(n)
		if n == dlp.Secret {
			add(dlp.PrivateKey)
		}
	}
	return selected, unknown
}

// maskers caches a masking scanner per detector (at most one per
// built-in detector).
var maskers sync.Map // detector name -> *dlp.Scanner

func masker(name string) (*dlp.Scanner, error) {
	if s, ok := maskers.Load(name); ok {
		return s.(*dlp.Scanner), nil
	}
	modes := map[string]dlp.Mode{name: dlp.Mask}
	if name == dlp.Secret {
		modes[dlp.PrivateKey] = dlp.Mask
	}
	s, err := dlp.New(dlp.Options{Detectors: modes})
	if err != nil {
		return nil, err
	}
	maskers.Store(name, s)
	return s, nil
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
			if _, unknown := Selected([]string{rule}); len(unknown) > 0 {
				return nil, nil, fmt.Errorf("unknown redaction %q: use a JSON pointer or one of %s", rule, strings.Join(Detectors(), ", "))
			}
			s, err := masker(rule)
			if err != nil {
				return nil, nil, err
			}
			res := s.Apply(out)
			out = res.Value
			for _, f := range res.Findings {
				n += f.Count
			}
			if res.Skipped != (dlp.Skipped{}) {
				// Part of the value was not scanned: mask all of it.
				out, n = Mask, n+1
			}
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
