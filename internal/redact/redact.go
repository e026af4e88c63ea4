// Package redact removes sensitive data from JSON-like values (the
// map[string]any / []any trees of decoded JSON): values named by JSON
// pointers, and strings that the named detectors of internal/scan/dlp
// recognise (e-mail addresses, payment card numbers, IBANs, secrets, …),
// each match replaced by [REDACTED:<detector>].
//
// A value a pointer redacts is also masked wherever the same value is
// copied into a string elsewhere in the tree: an MCP tool result repeats
// its structuredContent as JSON text, and redacting one copy must not leave
// the other.
//
// It knows nothing about MCP or policy: callers pass the rules a decision
// returned. Values are never modified in place; Apply returns a copy.
package redact

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
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
	var copies copiesOf
	for _, rule := range rules {
		var n int
		if strings.HasPrefix(rule, "/") || rule == "" {
			segs, err := ParsePointer(rule)
			if err != nil {
				return nil, nil, err
			}
			out, n = maskPointer(out, segs, &copies)
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
	if !copies.empty() {
		out = copies.mask(out)
	}
	return out, counts, nil
}

// minCopyBytes is the shortest redacted value whose copies inside prose
// are masked: shorter ones would mask unrelated text. Inside JSON text,
// values of any length are masked where they are a whole value.
const minCopyBytes = 4

// copiesOf holds the values pointer rules replaced, to find their copies.
type copiesOf struct {
	// leaves are the scalar values as JSON would write them unquoted.
	leaves map[string]bool
	// subs are the longer ones, raw and JSON-escaped, for prose.
	subs []string
}

func (c *copiesOf) empty() bool { return len(c.leaves) == 0 }

// add records the scalar values of v (a redacted value or subtree).
func (c *copiesOf) add(v any) {
	switch x := v.(type) {
	case string:
		c.text(x)
	case float64:
		c.text(strconv.FormatFloat(x, 'f', -1, 64))
	case json.Number:
		c.text(x.String())
	case map[string]any:
		for _, e := range x {
			c.add(e)
		}
	case []any:
		for _, e := range x {
			c.add(e)
		}
	}
}

func (c *copiesOf) text(s string) {
	if s == "" || s == Mask {
		return
	}
	if c.leaves == nil {
		c.leaves = map[string]bool{}
	}
	c.leaves[s] = true
	if len(s) < minCopyBytes {
		return
	}
	c.subs = append(c.subs, s)
	// Inside JSON text the value appears escaped.
	if b, err := json.Marshal(s); err == nil {
		if esc := string(b[1 : len(b)-1]); esc != s {
			c.subs = append(c.subs, esc)
		}
	}
}

// mask replaces every copy inside the strings of v: a string holding a
// JSON document has each value equal to a redacted one replaced, then
// every string has the longer values replaced wherever they occur.
func (c *copiesOf) mask(v any) any {
	switch x := v.(type) {
	case string:
		x = c.maskJSONText(x)
		for _, s := range c.subs {
			x = strings.ReplaceAll(x, s, Mask)
		}
		return x
	case map[string]any:
		for k, e := range x {
			x[k] = c.mask(e)
		}
	case []any:
		for i, e := range x {
			x[i] = c.mask(e)
		}
	}
	return v
}

func (c *copiesOf) maskJSONText(s string) string {
	t := strings.TrimSpace(s)
	if t == "" || (t[0] != '{' && t[0] != '[') {
		return s
	}
	dec := json.NewDecoder(strings.NewReader(t))
	dec.UseNumber()
	var doc any
	if dec.Decode(&doc) != nil || dec.More() {
		return s
	}
	changed := false
	doc = c.maskLeaves(doc, &changed)
	if !changed {
		return s
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return Mask
	}
	return string(b)
}

func (c *copiesOf) maskLeaves(v any, changed *bool) any {
	switch x := v.(type) {
	case string:
		if c.leaves[x] {
			*changed = true
			return Mask
		}
	case json.Number:
		if c.leaves[x.String()] {
			*changed = true
			return Mask
		}
	case map[string]any:
		for k, e := range x {
			x[k] = c.maskLeaves(e, changed)
		}
	case []any:
		for i, e := range x {
			x[i] = c.maskLeaves(e, changed)
		}
	}
	return v
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

func maskPointer(v any, segs []string, copies *copiesOf) (any, int) {
	if len(segs) == 0 {
		copies.add(v)
		return Mask, 1
	}
	head, rest := segs[0], segs[1:]
	total := 0
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if head == "*" || head == k {
				var n int
				x[k], n = maskPointer(e, rest, copies)
				total += n
			}
		}
	case []any:
		for i, e := range x {
			if head == "*" || head == fmt.Sprint(i) {
				var n int
				x[i], n = maskPointer(e, rest, copies)
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
