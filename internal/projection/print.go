package projection

import "github.com/open-policy-agent/opa/v1/ast"

// printOnly finds the expressions that exist only for print: the compiler
// turns print(x) into `v = {y | y = x}; internal.print([v])`. What they read
// never changes a decision.
func printOnly(body ast.Body) map[*ast.Expr]bool {
	var skip map[*ast.Expr]bool
	for _, x := range body {
		call, ok := x.Terms.([]*ast.Term)
		if !ok || !isOp(call, ast.InternalPrint.Name) || len(x.With) > 0 {
			continue
		}
		if skip == nil {
			skip = map[*ast.Expr]bool{}
		}
		skip[x] = true
		for v := range ast.NewVarSet(varsOf(call[1:])...) {
			def := printTemp(body, v)
			if def != nil && occurrences(body, v) == 2 {
				skip[def] = true
			}
		}
	}
	return skip
}

func isOp(call []*ast.Term, name string) bool {
	op, ok := call[0].Value.(ast.Ref)
	return ok && op.String() == name
}

// printTemp returns the expression `v = <comprehension>` of body, if any.
func printTemp(body ast.Body, v ast.Var) *ast.Expr {
	for _, x := range body {
		call, ok := x.Terms.([]*ast.Term)
		if !ok || !isOp(call, ast.Equality.Name) || len(call) != 3 || call[1].Value.Compare(v) != 0 {
			continue
		}
		switch call[2].Value.(type) {
		case *ast.SetComprehension, *ast.ArrayComprehension, *ast.ObjectComprehension:
			return x
		}
	}
	return nil
}

func varsOf(terms []*ast.Term) []ast.Var {
	var out []ast.Var
	for _, t := range terms {
		ast.WalkVars(t, func(v ast.Var) bool { out = append(out, v); return false })
	}
	return out
}

// occurrences counts the expressions of body (nested ones included) that
// mention v.
func occurrences(body ast.Body, v ast.Var) int {
	n := 0
	for _, x := range body {
		found := false
		ast.WalkVars(x, func(w ast.Var) bool {
			found = found || w.Equal(v)
			return found
		})
		if found {
			n++
		}
	}
	return n
}
