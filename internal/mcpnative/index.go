package mcpnative

import (
	"slices"
	"strings"
)

// index finds the rules whose patterns of one kind can match a name, so
// that a decision looks at the few rules about its target rather than at
// every rule. It returns a superset: each candidate's patterns are then
// matched in full.
type index struct {
	// exact holds rules by a pattern without glob syntax (which matches
	// only itself).
	exact map[string][]int32
	// byFirst holds rules by the first segment ("crm/") of a pattern whose
	// first segment is literal, with the pattern's literal prefix.
	byFirst map[string][]prefixed
	// rest holds rules whose pattern's first segment has glob syntax.
	rest []prefixed
}

type prefixed struct {
	prefix string
	rule   int32
}

// globMeta are the characters that make a gobwas/glob pattern more than
// literal text.
const globMeta = `*?[]{}\`

func buildIndex(rules []*rule, kind int) index {
	ix := index{exact: map[string][]int32{}, byFirst: map[string][]prefixed{}}
	for i, r := range rules {
		id := int32(i)
		for _, p := range r.patternsRaw[kind] {
			meta := strings.IndexAny(p, globMeta)
			if meta < 0 {
				ix.exact[p] = appendOnce(ix.exact[p], id)
				continue
			}
			prefix := p[:meta]
			if slash := strings.IndexByte(prefix, '/'); slash >= 0 {
				first := prefix[:slash+1]
				ix.byFirst[first] = append(ix.byFirst[first], prefixed{prefix: prefix, rule: id})
				continue
			}
			ix.rest = append(ix.rest, prefixed{prefix: prefix, rule: id})
		}
	}
	return ix
}

func appendOnce(ids []int32, id int32) []int32 {
	if n := len(ids); n > 0 && ids[n-1] == id {
		return ids
	}
	return append(ids, id)
}

// candidates appends to dst the rules that may have a pattern matching
// name, each once, in rule order.
func (ix *index) candidates(dst []int32, name string) []int32 {
	dst = append(dst, ix.exact[name]...)
	if slash := strings.IndexByte(name, '/'); slash >= 0 {
		for _, p := range ix.byFirst[name[:slash+1]] {
			if strings.HasPrefix(name, p.prefix) {
				dst = append(dst, p.rule)
			}
		}
	}
	for _, p := range ix.rest {
		if strings.HasPrefix(name, p.prefix) {
			dst = append(dst, p.rule)
		}
	}
	if len(dst) > 1 {
		slices.Sort(dst)
		dst = slices.Compact(dst)
	}
	return dst
}

// subjectIndex finds the rules that can apply to a subject: each rule is
// filed under the values of its first who-list (roles, then groups, scopes,
// subjects), which a subject must share for the rule to apply; rules
// without a who-list apply to everyone. Like index, it returns a superset.
type subjectIndex struct {
	byWho [4]map[string][]int32
	open  []int32
}

func buildSubjectIndex(rules []*rule) subjectIndex {
	var ix subjectIndex
	for i := range ix.byWho {
		ix.byWho[i] = map[string][]int32{}
	}
	for i, r := range rules {
		id := int32(i)
		anchored := false
		for k, w := range r.who {
			if !w.present {
				continue
			}
			for _, v := range w.values {
				ix.byWho[k][v] = appendOnce(ix.byWho[k][v], id)
			}
			anchored = true
			break
		}
		if !anchored {
			ix.open = append(ix.open, id)
		}
	}
	return ix
}

// candidates appends to dst the rules that may apply to r's subject, each
// once, in rule order.
func (ix *subjectIndex) candidates(dst []int32, r *request) []int32 {
	dst = append(dst, ix.open...)
	for k := range 3 {
		for _, v := range r.who[k] {
			if s, ok := v.(string); ok {
				dst = append(dst, ix.byWho[k][s]...)
			}
		}
	}
	if r.hasID {
		dst = append(dst, ix.byWho[3][r.id]...)
	}
	if len(dst) > 1 {
		slices.Sort(dst)
		dst = slices.Compact(dst)
	}
	return dst
}
