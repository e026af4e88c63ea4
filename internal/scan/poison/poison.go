// Package poison scans MCP tool, prompt and resource definitions for signs of
// tool poisoning: instructions aimed at the model hidden in descriptions,
// prompt-format tags, invisible Unicode, confusable or shadowing names,
// references to other servers' tools, exfiltration instructions, encoded blobs,
// sensitive file paths and oversized descriptions.
//
// It works on plain values (strings and the map[string]any / []any trees of
// decoded JSON) and knows nothing about policy, the MCP SDK or transports; it
// must not import other internal packages. Every check runs in time linear in
// the input (Go's RE2 regexp and single passes), and the input scanned is
// bounded: see MaxStringBytes, MaxTotalBytes and MaxStrings.
package poison

import (
	"cmp"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
)

// Bounds on the work one Scan does. Past them the rest is not scanned and a
// RuleScanIncomplete finding says so.
const (
	// MaxStringBytes is how much of one string is scanned.
	MaxStringBytes = 64 << 10
	// MaxTotalBytes is how much text one definition may have scanned in all.
	MaxTotalBytes = 1 << 20
	// MaxStrings is how many strings of one definition are scanned.
	MaxStrings = 4096
	// MaxDepth is how deep the schema and annotations are walked.
	MaxDepth = 64
	// DefaultMaxDescriptionBytes is Options.MaxDescriptionBytes when unset.
	DefaultMaxDescriptionBytes = 4096
	// MaxEvidenceBytes bounds Finding.Evidence.
	MaxEvidenceBytes = 80
	// MaxPointerBytes bounds Finding.Where.
	MaxPointerBytes = 256
)

// Definition is one tool, prompt or resource as a server lists it.
type Definition struct {
	Kind        string // tool, prompt or resource
	Server      string
	Name        string
	Title       string
	Description string
	// Schema is the tool's inputSchema (or a prompt's arguments) as decoded
	// JSON: map[string]any, []any, string, json.RawMessage or []byte.
	Schema any
	// Annotations is the definition's annotations, in the same forms.
	Annotations any
}

// Options tune a scan. The zero value is usable.
type Options struct {
	// KnownTools lists, per server, the tool names the caller knows of; it
	// drives the shadowing and cross-server reference rules.
	KnownTools map[string][]string
	// MaxDescriptionBytes is the longest description not reported as
	// excessive (default DefaultMaxDescriptionBytes).
	MaxDescriptionBytes int
}

// Finding is one rule's hit in one place of a definition.
type Finding struct {
	Rule     string   `json:"rule"`
	Severity Severity `json:"severity"`
	// Where is a JSON pointer into the definition as MCP lists it, e.g.
	// "/description" or "/inputSchema/properties/path/description". Unsafe
	// characters in keys are escaped as in Evidence (\u200b), and it is cut
	// at MaxPointerBytes.
	Where string `json:"where"`
	// Evidence is a short excerpt, safe to log and show: control, bidi and
	// invisible characters are escaped and it is at most MaxEvidenceBytes.
	Evidence string `json:"evidence"`
}

// fieldKind says which rules apply to a string.
type fieldKind int

const (
	kindName fieldKind = iota // the definition's name
	kindText                  // title, descriptions, enum values and other schema strings
	kindLong                  // a description: also checked for excessive length
	kindKey                   // an object key in the schema or annotations
)

type field struct {
	where string
	text  string
	kind  fieldKind
	order int
}

// Scan reports what d looks poisoned by, sorted by place in the definition,
// then rule, then evidence.
func Scan(d Definition, opts Options) []Finding {
	if opts.MaxDescriptionBytes <= 0 {
		opts.MaxDescriptionBytes = DefaultMaxDescriptionBytes
	}
	s := scanner{opts: opts, def: d}
	fields := collect(d, &s.incomplete)
	for _, f := range fields {
		s.field(f)
	}
	s.names()
	return s.finish()
}

// collect lists the strings of d to scan, in a stable order.
func collect(d Definition, incomplete *string) []field {
	var fs []field
	add := func(where, text string, kind fieldKind) {
		if len(fs) >= MaxStrings {
			if *incomplete == "" {
				*incomplete = "more than " + strconv.Itoa(MaxStrings) + " strings"
			}
			return
		}
		fs = append(fs, field{where: where, text: text, kind: kind, order: len(fs)})
	}
	add("/name", d.Name, kindName)
	if d.Title != "" {
		add("/title", d.Title, kindText)
	}
	if d.Description != "" {
		add("/description", d.Description, kindLong)
	}
	schemaKey := "/inputSchema"
	if d.Kind == "prompt" {
		schemaKey = "/arguments"
	}
	walk(schemaKey, d.Schema, 0, add, incomplete)
	walk("/annotations", d.Annotations, 0, add, incomplete)
	return fs
}

func walk(where string, v any, depth int, add func(string, string, fieldKind), incomplete *string) {
	if depth > MaxDepth {
		if *incomplete == "" {
			*incomplete = "nesting deeper than " + strconv.Itoa(MaxDepth)
		}
		return
	}
	switch v := v.(type) {
	case json.RawMessage:
		walkJSON(where, v, depth, add, incomplete)
	case []byte:
		walkJSON(where, v, depth, add, incomplete)
	case string:
		kind := kindText
		if strings.HasSuffix(where, "/description") {
			kind = kindLong
		}
		add(where, v, kind)
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			p := where + "/" + escapePointer(k)
			add(p, k, kindKey)
			walk(p, v[k], depth+1, add, incomplete)
		}
	case map[string]string:
		m := make(map[string]any, len(v))
		for k, s := range v {
			m[k] = s
		}
		walk(where, m, depth, add, incomplete)
	case []any:
		for i, e := range v {
			walk(where+"/"+strconv.Itoa(i), e, depth+1, add, incomplete)
		}
	case []string:
		for i, e := range v {
			walk(where+"/"+strconv.Itoa(i), e, depth+1, add, incomplete)
		}
	}
}

func walkJSON(where string, b []byte, depth int, add func(string, string, fieldKind), incomplete *string) {
	if len(b) > MaxTotalBytes {
		if *incomplete == "" {
			*incomplete = where + " larger than " + strconv.Itoa(MaxTotalBytes) + " bytes"
		}
		return
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return
	}
	walk(where, v, depth, add, incomplete)
}

func escapePointer(s string) string {
	if !strings.ContainsAny(s, "~/") {
		return s
	}
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

type hit struct {
	f        Finding
	order    int
	weakKeys int // hidden instructions found only by weak phrases: how many distinct
}

type scanner struct {
	opts       Options
	def        Definition
	hits       []hit
	scanned    int
	incomplete string
}

func (s *scanner) add(f field, rule string, sev Severity, evidence string) {
	s.hits = append(s.hits, hit{
		f:     Finding{Rule: rule, Severity: sev, Where: safePointer(f.where), Evidence: sanitize(evidence)},
		order: f.order,
	})
}

// finish settles weak hidden-instruction hits, adds the incompleteness
// finding, and sorts.
func (s *scanner) finish() []Finding {
	corroborated := false
	for _, h := range s.hits {
		if h.weakKeys == 0 && corroborates(h.f.Rule) {
			corroborated = true
			break
		}
	}
	out := make([]hit, 0, len(s.hits)+1)
	for _, h := range s.hits {
		if h.weakKeys > 0 && h.weakKeys < 2 && !corroborated {
			continue
		}
		out = append(out, h)
	}
	if s.incomplete != "" {
		out = append(out, hit{
			f:     Finding{Rule: RuleScanIncomplete, Severity: High, Where: "", Evidence: sanitize(s.incomplete)},
			order: 1 << 30,
		})
	}
	slices.SortStableFunc(out, func(a, b hit) int {
		return cmp.Or(cmp.Compare(a.order, b.order), cmp.Compare(a.f.Rule, b.f.Rule),
			cmp.Compare(b.f.Severity, a.f.Severity), cmp.Compare(a.f.Evidence, b.f.Evidence))
	})
	// One finding per rule and place.
	out = slices.CompactFunc(out, func(a, b hit) bool { return a.order == b.order && a.f.Rule == b.f.Rule })
	fs := make([]Finding, len(out))
	for i, h := range out {
		fs[i] = h.f
	}
	return fs
}

// corroborates says whether a finding of the rule makes a lone weak
// imperative ("you must", "before using this tool") worth reporting.
func corroborates(rule string) bool {
	switch rule {
	case RuleExcessiveLength, RuleScanIncomplete:
		return false
	}
	return true
}
