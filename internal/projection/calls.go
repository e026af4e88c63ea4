package projection

import (
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
)

// replacement analyses the value of a with modifier that replaces a
// function: a built-in's non-determinism, or a policy function's body.
func (a *analyzer) replacement(t *ast.Term) {
	r, ok := t.Value.(ast.Ref)
	if !ok {
		return
	}
	if r[0].Equal(ast.DefaultRootDocument) {
		for _, rule := range a.c.GetRulesExact(r) {
			for x := rule; x != nil; x = x.Else {
				if len(x.Head.Args) > 0 {
					a.function(x, make([]aliases, len(x.Head.Args)))
				}
			}
		}
		return
	}
	name := r.String()
	if b := ast.BuiltinMap[name]; b != nil && (b.Nondeterministic || clockBuiltins[name]) {
		a.nondet[name] = true
	}
}

// call analyses a call (operator first) and returns what its result may
// alias. asExpr is set when the call is a body expression: its last
// argument may then be the output.
func (a *analyzer) call(e *env, terms []*ast.Term, asExpr bool) aliases {
	op, ok := terms[0].Value.(ast.Ref)
	if !ok {
		for _, t := range terms {
			a.use(e, t)
		}
		return nil
	}
	args := terms[1:]
	if op[0].Equal(ast.DefaultRootDocument) {
		return a.userCall(e, op, args)
	}
	name := op.String()
	b := ast.BuiltinMap[name]
	if b == nil {
		// A function the analysis does not know may be anything, including
		// non-deterministic.
		a.nondet[name] = true
		for _, t := range args {
			a.use(e, t)
		}
		return nil
	}
	if (b.Nondeterministic && !a.localSchema(e, name, args)) || clockBuiltins[name] {
		a.nondet[name] = true
	}
	var out *ast.Term
	if n := len(b.Decl.FuncArgs().Args); asExpr && len(args) == n+1 && b.Decl.Result() != nil {
		out, args = args[n], args[:n]
	}
	var result aliases
	switch {
	case (name == ast.Equality.Name || name == ast.Assign.Name) && len(args) == 2:
		a.unify(e, args[0], args[1])
		return nil
	case name == ast.ObjectGet.Name && len(args) == 3 && isGroundPath(args[1]):
		// object.get(x, path, d) is x at path, or d; it is undefined (a
		// type error) unless x is an object, so x's type is read too.
		// Which of the two it is depends on whether x.path is defined:
		// that is read for presence, so {} (the default) and
		// {"k": {}} (a value without the member the caller reads next)
		// never share a key.
		base := a.alias(e, args[0])
		a.useAliases(base, Type)
		at := a.extend(e, base, groundPath(args[1]))
		a.useAliases(at, Presence)
		result = append(at, a.alias(e, args[2])...)
	default:
		// print's arguments are evaluated like any other's and can fail
		// the decision (a conflict in a rule they call), so they count.
		for _, t := range args {
			a.use(e, t)
		}
	}
	if out != nil {
		a.bindResult(e, out, result)
		return nil
	}
	return result
}

func isGroundPath(t *ast.Term) bool {
	switch v := t.Value.(type) {
	case ast.String:
		return true
	case *ast.Array:
		ok := v.Len() > 0
		v.Foreach(func(x *ast.Term) { ok = ok && isScalar(x) })
		return ok
	}
	return false
}

func groundPath(t *ast.Term) ast.Ref {
	if arr, ok := t.Value.(*ast.Array); ok {
		var r ast.Ref
		arr.Foreach(func(x *ast.Term) { r = append(r, x) })
		return r
	}
	return ast.Ref{t}
}

// bindResult binds an output variable, or compares with what it already is.
func (a *analyzer) bindResult(e *env, out *ast.Term, result aliases) {
	if v, ok := out.Value.(ast.Var); ok && !e.bound(v) {
		e.vars[v] = result
		return
	}
	a.useAliases(result, Full)
	a.use(e, out)
}

// unify handles x = y: binding a fresh variable makes it an alias (the
// binding succeeds only when the value is defined); anything else compares.
func (a *analyzer) unify(e *env, l, r *ast.Term) {
	for _, side := range [2][2]*ast.Term{{l, r}, {r, l}} {
		if v, ok := side[0].Value.(ast.Var); ok && !e.bound(v) && !isRoot(v) {
			al := a.alias(e, side[1])
			a.useAliases(al, Presence)
			e.vars[v] = al
			e.fromData[v] = a.fromData(e, side[1])
			return
		}
	}
	a.use(e, l)
	a.use(e, r)
}

func isRoot(v ast.Var) bool {
	return v.Equal(ast.InputRootDocument.Value) || v.Equal(ast.DefaultRootDocument.Value)
}

// userCall analyses a call of a policy function with the aliases of its
// arguments bound to its parameters, once per distinct set of aliases.
func (a *analyzer) userCall(e *env, op ast.Ref, args []*ast.Term) aliases {
	rules := a.c.GetRulesExact(op)
	if len(rules) == 0 {
		a.setWhole("a call of an unknown function")
		for _, t := range args {
			a.use(e, t)
		}
		return nil
	}
	n := len(rules[0].Head.Args)
	var out *ast.Term
	if len(args) == n+1 {
		out, args = args[n], args[:n]
	}
	argAl := make([]aliases, len(args))
	var key strings.Builder
	key.WriteString(op.String())
	for i, t := range args {
		argAl[i] = a.alias(e, t)
		key.WriteByte('|')
		for _, p := range argAl[i] {
			key.WriteString(p.String())
			key.WriteByte(',')
		}
	}
	result, ok := a.funcs[key.String()]
	if !ok {
		a.funcs[key.String()] = nil
		for _, rule := range rules {
			for r := rule; r != nil; r = r.Else {
				result = append(result, a.function(r, argAl)...)
			}
		}
		if definitions(rules) > 1 {
			// Two definitions that succeed with different results are a
			// conflict: the results are read in full (see ruleValue).
			a.useAliases(result, Full)
		}
		a.funcs[key.String()] = result
	}
	if out != nil {
		a.bindResult(e, out, result)
		return nil
	}
	return result
}

func (a *analyzer) function(r *ast.Rule, args []aliases) aliases {
	if a.visiting[r] {
		a.setWhole("recursive functions")
		return nil
	}
	a.visiting[r] = true
	defer delete(a.visiting, r)
	e := newEnv(nil)
	for i, p := range r.Head.Args {
		if i >= len(args) {
			break
		}
		if v, ok := p.Value.(ast.Var); ok && !e.bound(v) {
			e.vars[v] = args[i]
			continue
		}
		// A pattern, a constant or a repeated parameter compares: the
		// argument and what the parameter is already bound to count.
		a.useAliases(args[i], Full)
		a.use(e, p)
		a.bindAll(e, p)
	}
	a.exprs(e, r.Body)
	if r.Head.Value == nil {
		return nil
	}
	return a.alias(e, r.Head.Value)
}
