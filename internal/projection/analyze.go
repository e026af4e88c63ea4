package projection

import (
	"fmt"
	"slices"

	"github.com/open-policy-agent/opa/v1/ast"
)

// aliases are the input paths a value may be (nil: not from the input).
type aliases []ast.Ref

// env binds a body's variables to the input paths they alias. Every variable
// seen is bound: the compiler orders bodies so a variable's first occurrence
// binds it, and any later occurrence only reads it.
type env struct {
	vars map[ast.Var]aliases
	// fromData marks variables whose value comes from bundle data (or
	// constants) alone, whatever input chose which part of it.
	fromData map[ast.Var]bool
	parent   *env
}

func newEnv(parent *env) *env {
	return &env{vars: map[ast.Var]aliases{}, fromData: map[ast.Var]bool{}, parent: parent}
}

func (e *env) isFromData(v ast.Var) bool {
	for ; e != nil; e = e.parent {
		if _, ok := e.vars[v]; ok {
			return e.fromData[v]
		}
	}
	return false
}

func (e *env) lookup(v ast.Var) (aliases, bool) {
	for ; e != nil; e = e.parent {
		if al, ok := e.vars[v]; ok {
			return al, true
		}
	}
	return nil, false
}

func (e *env) bound(v ast.Var) bool { _, ok := e.lookup(v); return ok }

type analyzer struct {
	c        *ast.Compiler
	opts     Options
	reads    map[string]Path
	whole    string
	nondet   map[string]bool
	bodies   map[*ast.Rule]*env    // analysed rule bodies
	dataRule map[*ast.Rule]bool    // complete rules whose value comes from data
	values   map[*ast.Rule]aliases // complete rules' values
	used     map[*ast.Rule]bool    // rules whose head terms were read in full
	funcs    map[string]aliases    // function results by arguments
	visiting map[*ast.Rule]bool
	// sawWith is set when a reachable expression has a with modifier: it can
	// replace data (reviving rules pruned as dead, replacing a schema) or a
	// function, so the analysis is run again without Live and LocalSchemas.
	sawWith bool
}

func (a *analyzer) setWhole(reason string) {
	if a.whole == "" {
		a.whole = reason
	}
}

func (a *analyzer) read(p ast.Ref, k Kind) {
	switch {
	case len(p) == 0 && k != Full:
		return // the input is always an object
	case len(p) == 0:
		a.setWhole("the policy reads the whole input")
		return
	}
	// One entry per path and kind: a type read must never replace a full
	// read of the same path (covered() later drops what a full read pins).
	key := p.String() + string(rune('0'+k))
	a.reads[key] = Path{Ref: p, Kind: k}
}

func (a *analyzer) useAliases(al aliases, k Kind) {
	for _, p := range al {
		a.read(p, k)
	}
}

// use reads a term's value in full.
func (a *analyzer) use(e *env, t *ast.Term) { a.useAliases(a.alias(e, t), Full) }

// alias returns what t may alias, recording the reads needed to compute it.
func (a *analyzer) alias(e *env, t *ast.Term) aliases {
	switch v := t.Value.(type) {
	case ast.Var:
		if v.Equal(ast.InputRootDocument.Value) {
			return aliases{ast.Ref{}}
		}
		if v.Equal(ast.DefaultRootDocument.Value) {
			return a.dataRef(e, ast.Ref{t})
		}
		al, _ := e.lookup(v)
		return al
	case ast.Ref:
		return a.ref(e, v)
	case ast.Call:
		return a.call(e, v, false)
	case *ast.ArrayComprehension:
		a.comprehension(e, v.Body, v.Term)
	case *ast.SetComprehension:
		a.comprehension(e, v.Body, v.Term)
	case *ast.ObjectComprehension:
		a.comprehension(e, v.Body, v.Key, v.Value)
	case *ast.Array:
		v.Foreach(func(x *ast.Term) { a.use(e, x) })
	case ast.Set:
		v.Foreach(func(x *ast.Term) { a.use(e, x) })
	case ast.Object:
		v.Foreach(func(k, x *ast.Term) { a.use(e, k); a.use(e, x) })
	case ast.String, ast.Number, ast.Boolean, ast.Null:
	default:
		a.unknown(fmt.Sprintf("%T", v))
	}
	return nil
}

func (a *analyzer) ref(e *env, r ast.Ref) aliases {
	head := r[0]
	switch {
	case head.Equal(ast.InputRootDocument):
		return a.extend(e, aliases{ast.Ref{}}, r[1:])
	case head.Equal(ast.DefaultRootDocument):
		return a.dataRef(e, r)
	default:
		return a.extend(e, a.alias(e, head), r[1:])
	}
}

// extend selects rest from every path of base. A non-scalar element (a
// variable, a nested ref) means any key may be read: the paths so far are
// read in full and the result aliases nothing.
func (a *analyzer) extend(e *env, base aliases, rest ast.Ref) aliases {
	for i, t := range rest {
		if isScalar(t) {
			continue
		}
		for _, x := range rest[i:] {
			if !isScalar(x) {
				a.use(e, x)
			}
		}
		for _, p := range base {
			a.read(append(slices.Clip(p), rest[:i]...), Full)
		}
		return nil
	}
	if len(base) == 0 || len(rest) == 0 {
		return base
	}
	out := make(aliases, len(base))
	for i, p := range base {
		out[i] = append(slices.Clip(p), rest...)
	}
	return out
}

func isScalar(t *ast.Term) bool {
	switch t.Value.(type) {
	case ast.String, ast.Number, ast.Boolean, ast.Null:
		return true
	}
	return false
}

// dataRef follows a reference under data to the rules that can produce it.
// A reference to one complete rule aliases the rule's value; anything else
// (partial rules, a prefix of many rules, a dynamic key) reads the rules'
// values in full.
func (a *analyzer) dataRef(e *env, r ast.Ref) aliases {
	for _, t := range r[1:] {
		if !isScalar(t) {
			a.use(e, t)
		}
	}
	rules := a.c.GetRulesDynamicWithOpts(r, ast.RulesOptions{IncludeHiddenModules: true})
	if len(rules) == 0 {
		return nil // base documents: bundle data, the same for every input
	}
	if path, ok := a.singleComplete(rules, r); ok {
		return a.extend(e, a.ruleValue(rules), r[len(path):])
	}
	for _, rule := range rules {
		if len(rule.Head.Args) > 0 {
			a.setWhole("a function is referenced without being called")
			continue
		}
		a.useRule(rule)
	}
	return nil
}

// singleComplete reports whether rules are the definitions of one complete
// rule whose ground path is a prefix of r.
func (a *analyzer) singleComplete(rules []*ast.Rule, r ast.Ref) (ast.Ref, bool) {
	path := rules[0].Ref()
	if !path.IsGround() || len(path) > len(r) || !path.Equal(r[:len(path)]) {
		return nil, false
	}
	for _, rule := range rules {
		if rule.Head.RuleKind() != ast.SingleValue || len(rule.Head.Args) > 0 || !rule.Ref().Equal(path) {
			return nil, false
		}
	}
	return path, true
}

// ruleValue returns what a complete rule's value may alias, over all its
// definitions and else branches. When more than one definition can produce
// a value, their values are read in full: two definitions that succeed with
// different values are a conflict (an evaluation error), so equal and
// different values must never share a key.
func (a *analyzer) ruleValue(rules []*ast.Rule) aliases {
	var out aliases
	conflicts := definitions(rules) > 1 && !exclusive(rules)
	for _, rule := range rules {
		for r := rule; r != nil; r = r.Else {
			al, ok := a.values[r]
			if !ok {
				if e := a.body(r); e != nil {
					al = a.alias(e, r.Head.Value)
				}
				a.values[r] = al
			}
			if conflicts {
				a.useAliases(al, Full)
			}
			out = append(out, al...)
		}
	}
	return out
}

// useRule analyses a rule whose value is read as a whole.
func (a *analyzer) useRule(rule *ast.Rule) {
	for r := rule; r != nil; r = r.Else {
		if a.used[r] {
			continue
		}
		a.used[r] = true
		e := a.body(r)
		if e == nil {
			continue
		}
		for _, t := range r.Head.Ref()[1:] {
			if !isScalar(t) {
				a.use(e, t)
			}
		}
		if r.Head.Key != nil {
			a.use(e, r.Head.Key)
		}
		if r.Head.Value != nil {
			a.use(e, r.Head.Value)
		}
	}
}

// body analyses a rule's body once and returns its bindings, or nil when
// the body can never succeed with the bundle's data.
func (a *analyzer) body(r *ast.Rule) *env {
	if e, ok := a.bodies[r]; ok {
		return e
	}
	a.bodies[r] = nil
	if a.opts.Live != nil && !a.opts.Live(r) {
		return nil
	}
	if a.visiting[r] {
		a.setWhole("recursive rules")
		return nil
	}
	a.visiting[r] = true
	e := newEnv(nil)
	a.exprs(e, r.Body)
	delete(a.visiting, r)
	a.bodies[r] = e
	return e
}

func (a *analyzer) exprs(e *env, body ast.Body) {
	for _, x := range body {
		a.expr(e, x)
	}
}

func (a *analyzer) expr(e *env, x *ast.Expr) {
	if len(x.With) > 0 {
		// with replaces input, data or a function for everything below it:
		// rather than model that, depend on the whole input, and analyse
		// what a replacement function may call.
		a.setWhole("the policy uses with")
		a.sawWith = true
		for _, w := range x.With {
			a.use(e, w.Value)
			a.replacement(w.Value)
		}
	}
	switch t := x.Terms.(type) {
	case *ast.Term:
		a.useAliases(a.alias(e, t), Presence)
	case []*ast.Term:
		// A call as an expression succeeds when its result is defined and
		// not false: what the result aliases is read for presence.
		a.useAliases(a.call(e, t, true), Presence)
	case *ast.SomeDecl:
		for _, s := range t.Symbols {
			a.alias(e, s)
		}
	case *ast.Every:
		a.use(e, t.Domain)
		inner := newEnv(e)
		a.bindAll(inner, t.Key)
		a.bindAll(inner, t.Value)
		a.exprs(inner, t.Body)
	case *ast.Not:
		// not { ... } (future.keywords.not): succeeds when its body fails,
		// which depends on everything the body reads; nothing it binds
		// is visible after it.
		a.exprs(newEnv(e), t.Body)
	case *ast.LogicalAnd:
		a.branches(e, t.Lhs, t.Rhs)
	case *ast.LogicalOr:
		a.branches(e, t.Lhs, t.Rhs)
	default:
		// An expression this analysis does not know could read anything
		// and call anything: never cache the entrypoint.
		a.unknown(fmt.Sprintf("%T", t))
	}
	a.bindAll(e, x)
}

// branches analyses the two bodies of `and` / `or`, each in its own scope;
// a variable either binds aliases what it may alias in either.
func (a *analyzer) branches(e *env, bodies ...ast.Body) {
	bound := map[ast.Var]aliases{}
	for _, b := range bodies {
		inner := newEnv(e)
		a.exprs(inner, b)
		for v, al := range inner.vars {
			if !e.bound(v) {
				bound[v] = append(bound[v], al...)
			}
		}
	}
	for v, al := range bound {
		e.vars[v] = al
	}
}

// unknown makes the entrypoint uncacheable because of a construct the
// analysis cannot follow (a newer OPA's syntax, say). The reason shows in
// the projection's Nondeterministic list and the activation log.
func (a *analyzer) unknown(what string) {
	a.setWhole("the policy uses a construct the analysis does not know: " + what)
	a.nondet["(unanalysed "+what+")"] = true
}

// bindAll marks every variable in x bound (to nothing from the input) unless
// it already is.
func (a *analyzer) bindAll(e *env, x any) {
	if x == nil {
		return
	}
	vis := ast.NewGenericVisitor(func(n any) bool {
		switch n := n.(type) {
		case ast.Var:
			if !e.bound(n) && !n.Equal(ast.InputRootDocument.Value) && !n.Equal(ast.DefaultRootDocument.Value) {
				e.vars[n] = nil
			}
		case *ast.ArrayComprehension, *ast.SetComprehension, *ast.ObjectComprehension, *ast.Every:
			return true // their variables are their own
		}
		return false
	})
	vis.Walk(x)
}

func (a *analyzer) comprehension(e *env, body ast.Body, heads ...*ast.Term) {
	inner := newEnv(e)
	a.exprs(inner, body)
	for _, h := range heads {
		a.use(inner, h)
	}
}
