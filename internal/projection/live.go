package projection

import (
	"context"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
)

// DataPrefix returns the leading expressions of a rule's body that read only
// bundle data (base documents, never input or other rules) through
// deterministic built-ins, or nil when there are none. The prefix is a
// closed query: when it has no solution with the bundle's data, the rule's
// body can never succeed, and what the rest of the body reads is not a
// dependency. Functions have no such prefix (their parameters are unbound).
func DataPrefix(c *ast.Compiler, r *ast.Rule) ast.Body {
	if len(r.Head.Args) > 0 {
		return nil
	}
	var prefix ast.Body
	readsData := false
	for _, x := range r.Body {
		ok, data := dataOnly(c, x)
		if !ok {
			break
		}
		readsData = readsData || data
		prefix = append(prefix, x)
	}
	if !readsData {
		return nil
	}
	return prefix
}

// dataOnly reports whether x reads nothing but base documents, and whether
// it reads any.
func dataOnly(c *ast.Compiler, x *ast.Expr) (ok, data bool) {
	if len(x.With) > 0 {
		return false, false
	}
	switch t := x.Terms.(type) {
	case *ast.Term:
	case []*ast.Term:
		op, isRef := t[0].Value.(ast.Ref)
		if !isRef {
			return false, false
		}
		b := ast.BuiltinMap[op.String()]
		if b == nil || b.Nondeterministic || clockBuiltins[b.Name] || b.Name == ast.Print.Name || b.Name == ast.InternalPrint.Name {
			return false, false
		}
	default:
		return false, false
	}
	ok = true
	vis := ast.NewGenericVisitor(func(n any) bool {
		if !ok {
			return true
		}
		switch n := n.(type) {
		case ast.Var:
			if n.Equal(ast.InputRootDocument.Value) {
				ok = false
			}
		case ast.Ref:
			if !n[0].Equal(ast.DefaultRootDocument) {
				return false
			}
			if len(c.GetRulesDynamicWithOpts(n, ast.RulesOptions{IncludeHiddenModules: true})) > 0 {
				ok = false
				return true
			}
			data = true
		case ast.Call, *ast.ArrayComprehension, *ast.SetComprehension, *ast.ObjectComprehension, *ast.Every:
			ok = false
			return true
		}
		return false
	})
	if call, isCall := x.Terms.([]*ast.Term); isCall {
		for _, t := range call[1:] {
			vis.Walk(t)
		}
	} else {
		vis.Walk(x.Terms)
	}
	return ok, data
}

// LiveWithData returns an Options.Live that evaluates each rule's DataPrefix
// against store once. An evaluation that fails or runs out of time counts as
// live: pruning only ever narrows the projection when it is sure.
func LiveWithData(ctx context.Context, c *ast.Compiler, store storage.Store, timeout time.Duration) func(*ast.Rule) bool {
	memo := map[*ast.Rule]bool{}
	return func(r *ast.Rule) bool {
		if live, ok := memo[r]; ok {
			return live
		}
		live := true
		if prefix := DataPrefix(c, r); prefix != nil {
			live = satisfiable(ctx, c, store, prefix, timeout)
		}
		memo[r] = live
		return live
	}
}

func satisfiable(ctx context.Context, c *ast.Compiler, store storage.Store, q ast.Body, timeout time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	rs, err := rego.New(rego.ParsedQuery(q), rego.Compiler(c), rego.Store(store)).Eval(ctx)
	return err != nil || len(rs) > 0
}
