// Package projection finds the parts of the input a policy decision can
// depend on, so that the decision cache keys on those parts alone and a
// request id or a timestamp the policy never reads does not defeat it.
//
// It works on the compiled policy only (package ast): it must not import the
// engine, the cache or any adapter.
package projection

import (
	"slices"
	"strings"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Kind says how much of the value at a path a decision depends on.
type Kind uint8

const (
	// Full: the decision may depend on the whole value at the path.
	Full Kind = iota
	// Presence: the decision depends only on whether the path is undefined,
	// false, or anything else (`input.x` as a condition, `x := input.y`).
	Presence
	// Type: the decision depends only on the JSON type of the value at the
	// path (undefined, null, boolean, number, string, array, object, set):
	// object.get(x, k, d) is undefined unless x is an object.
	Type
)

// Path is one part of the input a decision reads.
type Path struct {
	// Ref is relative to input: input.a.b is ["a", "b"]. Every element is a
	// ground scalar (a string for object keys, a number for array indexes).
	Ref  ast.Ref
	Kind Kind
}

func (p Path) String() string {
	var b strings.Builder
	b.WriteString("input")
	for _, t := range p.Ref {
		if s, ok := t.Value.(ast.String); ok && ast.IsVarCompatibleString(string(s)) {
			b.WriteByte('.')
			b.WriteString(string(s))
			continue
		}
		b.WriteByte('[')
		b.WriteString(t.String())
		b.WriteByte(']')
	}
	switch p.Kind {
	case Presence:
		b.WriteString(" (presence)")
	case Type:
		b.WriteString(" (type)")
	case Full:
	}
	return b.String()
}

// Projection is what one entrypoint's decision can depend on.
type Projection struct {
	// Paths is sorted and minimal: no path lies under a Full path. Empty with
	// Whole set means the decision may read the whole input.
	Paths []Path
	// Whole is set when the decision may read the input dynamically
	// (input[x], walk(input), with input as ...); Reason says why.
	Whole  bool
	Reason string
	// Nondeterministic lists the built-ins, reachable from the entrypoint,
	// whose answers change with time or the outside world. A decision that
	// calls one is never cached.
	Nondeterministic []string

	treeOnce sync.Once
	tree     *Tree
}

// Cacheable reports whether decisions at the entrypoint may be cached.
func (p *Projection) Cacheable() bool { return len(p.Nondeterministic) == 0 }

// Strings returns the paths in the form input.a.b, for logs and status.
func (p *Projection) Strings() []string {
	if p.Whole {
		return []string{"input"}
	}
	out := make([]string, len(p.Paths))
	for i, path := range p.Paths {
		out[i] = path.String()
	}
	return out
}

// clockBuiltins read the evaluation's clock although OPA does not mark them
// non-deterministic: a cached answer would outlive the instant it was true
// for (a token's exp, a certificate's validity).
var clockBuiltins = map[string]bool{
	"io.jwt.decode_verify":                                   true,
	"crypto.x509.parse_and_verify_certificates":              true,
	"crypto.x509.parse_and_verify_certificates_with_options": true,
}

// Options tune Analyze.
type Options struct {
	// LocalSchemas says that no JSON schema in the bundle refers to another
	// document ($ref other than "#..."). json.match_schema and
	// json.verify_schema, which OPA marks non-deterministic because they may
	// fetch such documents, are then deterministic for schemas that come
	// from bundle data.
	LocalSchemas bool
	// Live reports whether a rule's body can succeed at all with the bundle's
	// data (see DataPrefix). Rules it reports dead are skipped, so reads in
	// conditions the data never enables (a rule with office hours when no
	// rule has any) do not widen the projection. Nil treats every rule as
	// live.
	Live func(*ast.Rule) bool
}

// Analyze returns what the decision at entrypoint (a ground ref under data)
// can read of the input, following aliases through rules, functions and
// local variables.
func Analyze(c *ast.Compiler, entrypoint ast.Ref, opts Options) *Projection {
	a := &analyzer{
		c:        c,
		opts:     opts,
		reads:    map[string]Path{},
		nondet:   map[string]bool{},
		bodies:   map[*ast.Rule]*env{},
		dataRule: map[*ast.Rule]bool{},
		values:   map[*ast.Rule]aliases{},
		used:     map[*ast.Rule]bool{},
		funcs:    map[string]aliases{},
		visiting: map[*ast.Rule]bool{},
	}
	root := newEnv(nil)
	a.useAliases(a.dataRef(root, entrypoint), Full)
	if a.sawWith && (opts.Live != nil || opts.LocalSchemas) {
		// with can replace data: rules pruned as dead may run, and a
		// schema from data may be replaced by one that is not local.
		return Analyze(c, entrypoint, Options{})
	}
	return a.result()
}

func (a *analyzer) result() *Projection {
	p := &Projection{Nondeterministic: make([]string, 0, len(a.nondet))}
	for name := range a.nondet {
		p.Nondeterministic = append(p.Nondeterministic, name)
	}
	slices.Sort(p.Nondeterministic)
	if a.whole != "" {
		p.Whole, p.Reason = true, a.whole
		return p
	}
	paths := make([]Path, 0, len(a.reads))
	for _, path := range a.reads {
		paths = append(paths, path)
	}
	slices.SortFunc(paths, func(x, y Path) int {
		if c := x.Ref.Compare(y.Ref); c != 0 {
			return c
		}
		return int(x.Kind) - int(y.Kind)
	})
	for _, path := range paths {
		if !covered(paths, path) {
			p.Paths = append(p.Paths, path)
		}
	}
	return p
}

// covered reports whether a Full read of path's prefix (or of path itself,
// for a presence or type read) already pins path's value.
func covered(all []Path, path Path) bool {
	for _, o := range all {
		if o.Kind != Full || len(o.Ref) > len(path.Ref) || !path.Ref.HasPrefix(o.Ref) {
			continue
		}
		if len(o.Ref) < len(path.Ref) || path.Kind != Full {
			return true
		}
	}
	return false
}
