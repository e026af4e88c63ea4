package projection

import (
	"slices"

	"github.com/open-policy-agent/opa/v1/ast"
)

// exclusive reports whether no two definitions can both succeed: each pair
// has a condition in one body that the other negates (`req := input.mcp if
// input.mcp` and `req := input if not input.mcp`). Only conditions on input
// and data alone count, since a local variable means something else in each
// body; definitions with else branches never count.
func exclusive(rules []*ast.Rule) bool {
	var defs []*ast.Rule
	for _, r := range rules {
		if r.Default {
			continue
		}
		if r.Else != nil {
			return false
		}
		defs = append(defs, r)
	}
	for i := range defs {
		for j := i + 1; j < len(defs); j++ {
			if !negates(defs[i].Body, defs[j].Body) && !negates(defs[j].Body, defs[i].Body) {
				return false
			}
		}
	}
	return true
}

// negates reports whether b negates a condition of a.
func negates(a, b ast.Body) bool {
	for _, x := range a {
		if x.Negated || len(x.With) > 0 || !rootsOnly(x) {
			continue
		}
		for _, y := range b {
			if y.Negated && len(y.With) == 0 && sameTerms(x.Terms, y.Terms) {
				return true
			}
		}
	}
	return false
}

func sameTerms(a, b any) bool {
	switch a := a.(type) {
	case *ast.Term:
		bt, ok := b.(*ast.Term)
		return ok && a.Equal(bt)
	case []*ast.Term:
		bt, ok := b.([]*ast.Term)
		return ok && slices.EqualFunc(a, bt, (*ast.Term).Equal)
	}
	return false
}

// rootsOnly reports whether the only variables x mentions are input and data.
func rootsOnly(x *ast.Expr) bool {
	ok := true
	ast.WalkVars(x, func(v ast.Var) bool {
		ok = ok && isRoot(v)
		return !ok
	})
	return ok
}

// definitions counts the rules that can conflict with one another: every
// definition but the default one, whose value is used only when no other
// definition succeeds.
func definitions(rules []*ast.Rule) int {
	n := 0
	for _, r := range rules {
		if !r.Default {
			n++
		}
	}
	return n
}
