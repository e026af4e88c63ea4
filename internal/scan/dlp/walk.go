package dlp

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"maps"
	"sort"
	"strings"
	"unicode/utf8"
)

type state struct {
	s         *Scanner
	rewrite   bool
	counts    []int
	block     bool
	skipped   Skipped
	bytesLeft int
	phoneLeft int
	firstPass bool
	spans     []span
}

func (s *Scanner) newState(rewrite bool) *state {
	return &state{s: s, rewrite: rewrite, counts: make([]int, len(s.dets)), bytesLeft: s.maxValue, phoneLeft: s.maxPhone}
}

func (st *state) findings() []Finding {
	var out []Finding
	for i, n := range st.counts {
		if n > 0 {
			out = append(out, Finding{Detector: st.s.dets[i].name, Count: n})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Detector < out[j].Detector })
	return out
}

// value returns v rewritten (v itself when unchanged), whether it changed,
// and whether v must be dropped from its parent.
func (st *state) value(v any) (any, bool, bool) {
	switch x := v.(type) {
	case string:
		out, drop := st.str(x)
		return out, out != x, drop
	case json.Number:
		out, drop := st.str(string(x))
		if out == string(x) {
			return v, false, drop
		}
		return out, true, drop
	case []any:
		var out []any
		for i, e := range x {
			ne, changed, drop := st.value(e)
			if out == nil && (changed || drop) && st.rewrite {
				out = make([]any, i, len(x))
				copy(out, x[:i])
			}
			if out != nil && !drop {
				out = append(out, ne)
			}
		}
		if out == nil {
			return v, false, false
		}
		return out, true, false
	case map[string]any:
		return st.object(x)
	default:
		return v, false, false
	}
}

func (st *state) object(x map[string]any) (any, bool, bool) {
	type member struct {
		key, newKey string
		val         any
		drop        bool
	}
	var changed []member
	for k, e := range x {
		nk, kdrop := st.str(k)
		ne, vchanged, vdrop := st.value(e)
		if kdrop || vdrop || vchanged || nk != k {
			changed = append(changed, member{key: k, newKey: nk, val: ne, drop: kdrop || vdrop})
		}
	}
	if len(changed) == 0 || !st.rewrite {
		return x, false, false
	}
	out := maps.Clone(x)
	for _, m := range changed {
		delete(out, m.key)
	}
	// Rewritten keys go in last, in order, so a key that now collides with
	// another is dropped the same way every time.
	sort.Slice(changed, func(i, j int) bool { return changed[i].key < changed[j].key })
	for _, m := range changed {
		if _, taken := out[m.newKey]; m.drop || taken {
			continue
		}
		out[m.newKey] = m.val
	}
	return out, true, false
}

// str scans one string and returns it rewritten and whether it must be
// dropped.
func (st *state) str(s string) (string, bool) {
	limit := min(len(s), st.s.maxString, max(st.bytesLeft, 0))
	for limit > 0 && limit < len(s) && !utf8.RuneStart(s[limit]) {
		limit--
	}
	st.bytesLeft -= limit
	st.skipped.Bytes += len(s) - limit
	if limit == 0 {
		return s, false
	}
	head, tail := s[:limit], s[limit:]
	out, drop := st.pass(head, true)
	if !st.rewrite {
		return s, false
	}
	for i := 1; i < maxPasses && !drop && out != head && st.s.anyRewrites; i++ {
		head = out
		out, drop = st.pass(head, false)
	}
	if out == s[:limit] {
		return s, drop
	}
	return out + tail, drop
}

type span struct {
	start, end int
	det        int
}

// pass runs every detector over s once. Detectors that do not rewrite are
// counted on every match; rewriting ones compete for the text, the leftmost
// match winning and priority breaking ties. Later passes only look for new
// rewriting matches.
func (st *state) pass(s string, first bool) (string, bool) {
	st.firstPass = first
	spans := st.spans[:0]
	for i, d := range st.s.dets {
		if !d.mode.rewrites() {
			if !first {
				continue
			}
			n := 0
			d.find(st, s, func(int, int) { n++ })
			st.counts[i] += n
			if n > 0 && d.mode == Block {
				st.block = true
			}
			continue
		}
		d.find(st, s, func(a, b int) { spans = append(spans, span{a, b, i}) })
	}
	st.spans = spans
	if len(spans) == 0 {
		return s, false
	}
	sort.SliceStable(spans, func(i, j int) bool {
		if spans[i].start != spans[j].start {
			return spans[i].start < spans[j].start
		}
		return spans[i].det < spans[j].det
	})
	var b strings.Builder
	drop, last := false, 0
	for _, sp := range spans {
		if sp.start < last {
			continue
		}
		d := st.s.dets[sp.det]
		st.counts[sp.det]++
		if d.mode == Drop {
			drop = true
		}
		if !st.rewrite {
			last = sp.end
			continue
		}
		b.WriteString(s[last:sp.start])
		if d.mode == Hash {
			b.WriteString("[HASH:" + d.name + ":" + st.s.hash(d.name, s[sp.start:sp.end]) + "]")
		} else {
			b.WriteString("[REDACTED:" + d.name + "]")
		}
		last = sp.end
	}
	if !st.rewrite {
		return s, drop
	}
	b.WriteString(s[last:])
	return b.String(), drop
}

func (s *Scanner) hash(name, m string) string {
	h := hmac.New(sha256.New, s.hashKey)
	h.Write([]byte(canonical(name, m)))
	return hex.EncodeToString(h.Sum(nil)[:8])
}

func canonical(name, m string) string {
	switch name {
	case CardNumber, USSSN, IBAN, Phone:
		return strings.ToUpper(alnum(m))
	case Email:
		return strings.ToLower(m)
	}
	return m
}

func alnum(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if c := s[i]; isDigit(c) || isLetter(c) {
			b.WriteByte(c)
		}
	}
	return b.String()
}

func isDigit(c byte) bool  { return c >= '0' && c <= '9' }
func isLetter(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }
func isWord(c byte) bool   { return isDigit(c) || isLetter(c) || c == '_' }
