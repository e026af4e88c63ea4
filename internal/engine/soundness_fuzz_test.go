package engine_test

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/verdictpdp/verdict/internal/projection"
)

// FuzzCacheSoundness checks the cache's invariant on every policy of
// testdata/cache-soundness: two inputs with the same key get the same
// decision. From a fuzzed input it derives a second one that differs in
// every way the projection says cannot matter (members it does not read
// replaced, added or removed; a presence read's value swapped for another
// that is also defined and not false; a type read's value for another of the
// same type), checks the keys agree, and requires the same uncached
// decision. A third input, changed anywhere at random, must decide alike
// whenever its key (from the value or from Go values) happens to agree.
func FuzzCacheSoundness(f *testing.F) {
	cases, _ := fuzzEngines(f)
	for i, c := range cases {
		for j, in := range c.Inputs {
			raw, err := json.Marshal(in)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(uint8(i), uint64(j), raw)
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, seed uint64, raw []byte) {
		cases, engines := fuzzEngines(t)
		c, e := cases[int(which)%len(cases)], engines[int(which)%len(cases)]
		p := e.Snapshot().Projection(c.Entrypoint)
		if !p.Cacheable() {
			return
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var a map[string]any
		if dec.Decode(&a) != nil || a == nil {
			return
		}
		if _, err := ast.InterfaceToValue(a); err != nil {
			return
		}
		rnd := rand.New(rand.NewPCG(seed, seed>>7^0x9e3779b97f4a7c15))
		m := mutator{paths: p.Paths, rnd: rnd}
		b := a
		if !p.Whole {
			b, _ = m.value(a, nil).(map[string]any)
		}
		ka, kb := astKey(t, p, a), astKey(t, p, b)
		if !bytes.Equal(ka, kb) {
			t.Fatalf("%s: the mutation changed the key (a test bug)\na: %v\nb: %v", describe(c, p), a, b)
		}
		oa := outcome(e.Decide(t.Context(), c.Entrypoint, astInput{a}, identity))
		ob := outcome(e.Decide(t.Context(), c.Entrypoint, astInput{b}, identity))
		if oa != ob {
			t.Fatalf("%s: equal keys, different decisions\na: %v -> %s\nb: %v -> %s", describe(c, p), a, oa, b, ob)
		}

		// Anything may change: equal keys must still mean equal decisions.
		wild := mutator{rnd: rnd, wild: true}
		w, _ := wild.value(a, nil).(map[string]any)
		if w == nil {
			return
		}
		ow := ""
		decided := func() string {
			if ow == "" {
				ow = outcome(e.Decide(t.Context(), c.Entrypoint, astInput{w}, identity))
			}
			return ow
		}
		if bytes.Equal(ka, astKey(t, p, w)) && decided() != oa {
			t.Fatalf("%s: equal keys (value), different decisions\na: %v -> %s\nw: %v -> %s", describe(c, p), a, oa, w, ow)
		}
		ga, okA := p.AppendGoKey(nil, a)
		gw, okW := p.AppendGoKey(nil, w)
		if okA && okW && bytes.Equal(ga, gw) && decided() != oa {
			t.Fatalf("%s: equal keys (Go values), different decisions\na: %v -> %s\nw: %v -> %s", describe(c, p), a, oa, w, ow)
		}
	})
}

func astKey(tb testing.TB, p *projection.Projection, v any) []byte {
	tb.Helper()
	x, err := ast.InterfaceToValue(v)
	if err != nil {
		tb.Fatal(err)
	}
	return p.AppendKey(nil, x)
}

// mutator rewrites a JSON value. Unless wild, it keeps what the projection
// pins: values under a Full path, the structure leading to any path, the
// presence class and type of Presence and Type paths.
type mutator struct {
	paths []projection.Path
	rnd   *rand.Rand
	wild  bool
}

type relation struct {
	pinned   bool // under (or at) a Full path
	presence bool
	typ      bool
	leads    bool // a strict prefix of some path
}

func (m *mutator) relate(at ast.Ref) relation {
	var r relation
	for _, p := range m.paths {
		switch {
		case p.Kind == projection.Full && at.HasPrefix(p.Ref):
			r.pinned = true
		case len(p.Ref) == len(at) && p.Ref.Equal(at):
			r.presence = r.presence || p.Kind == projection.Presence
			r.typ = r.typ || p.Kind == projection.Type
		case len(p.Ref) > len(at) && p.Ref.HasPrefix(at):
			r.leads = true
		}
	}
	return r
}

func (m *mutator) value(v any, at ast.Ref) any {
	if m.wild {
		if m.rnd.IntN(4) == 0 {
			return m.random(2)
		}
		return m.children(v, at)
	}
	r := m.relate(at)
	switch {
	case r.pinned:
		return v
	case r.leads:
		return m.children(v, at) // same type, same presence class
	case r.typ:
		return m.sameType(v, r.presence)
	case r.presence:
		if v == false {
			return v
		}
		for {
			if x := m.random(2); x != false {
				return x
			}
		}
	}
	return m.random(2)
}

// children rewrites the members of an object or the elements of an array,
// keeping the container's type (and an array's length: indexes are read).
func (m *mutator) children(v any, at ast.Ref) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x)+1)
		for k, e := range x {
			child := append(at[:len(at):len(at)], ast.StringTerm(k))
			if m.free(child) && m.rnd.IntN(4) == 0 {
				continue // removed
			}
			out[k] = m.value(e, child)
		}
		if m.rnd.IntN(2) == 0 {
			k := m.key()
			if _, taken := x[k]; !taken && m.free(append(at[:len(at):len(at)], ast.StringTerm(k))) {
				out[k] = m.random(2)
			}
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = m.value(e, append(at[:len(at):len(at)], ast.IntNumberTerm(i)))
		}
		return out
	}
	return v
}

// free reports whether nothing is read at or under at (so it may be added,
// removed or replaced).
func (m *mutator) free(at ast.Ref) bool {
	if m.wild {
		return true
	}
	r := m.relate(at)
	return !r.pinned && !r.leads && !r.typ && !r.presence
}

func (m *mutator) sameType(v any, presence bool) any {
	switch x := v.(type) {
	case bool:
		if presence {
			return x
		}
		return m.rnd.IntN(2) == 0
	case json.Number:
		return json.Number(strconv.Itoa(m.rnd.IntN(200) - 100))
	case string:
		return m.key()
	case []any:
		out := make([]any, m.rnd.IntN(3))
		for i := range out {
			out[i] = m.random(1)
		}
		return out
	case map[string]any:
		out := map[string]any{}
		for range m.rnd.IntN(3) {
			out[m.key()] = m.random(1)
		}
		return out
	}
	return v // null
}

// keys are drawn from a small set so that random members collide with the
// names policies read.
var fuzzKeys = []string{"a", "b", "action", "args", "mode", "x-tenant", "x-org", "tenant", "user", "admin",
	"role", "roles", "flag", "enabled", "blocked", "items", "list", "ok", "flags", "mcp", "tool", "headers",
	"parsed_body", "peer", "dns_names", "limits", "overrides", "export", "alice", "bob", "root", "yes", "no",
	"search", "delete", "read", "safe", "unsafe", "0", ""}

func (m *mutator) key() string { return fuzzKeys[m.rnd.IntN(len(fuzzKeys))] }

func (m *mutator) random(depth int) any {
	n := 7
	if depth <= 0 {
		n = 5
	}
	switch m.rnd.IntN(n) {
	case 0:
		return nil
	case 1:
		return m.rnd.IntN(2) == 0
	case 2:
		return json.Number(strconv.Itoa(m.rnd.IntN(20) - 5))
	case 3, 4:
		return m.key()
	case 5:
		out := make([]any, m.rnd.IntN(3))
		for i := range out {
			out[i] = m.random(depth - 1)
		}
		return out
	default:
		out := map[string]any{}
		for range m.rnd.IntN(3) {
			out[m.key()] = m.random(depth - 1)
		}
		return out
	}
}
