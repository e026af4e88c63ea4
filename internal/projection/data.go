package projection

import "github.com/open-policy-agent/opa/v1/ast"

// localSchema reports whether a schema built-in checks a schema that comes
// from bundle data in which no schema refers to another document.
func (a *analyzer) localSchema(e *env, name string, args []*ast.Term) bool {
	if !a.opts.LocalSchemas {
		return false
	}
	switch {
	case name == ast.JSONMatchSchema.Name && len(args) >= 2:
		return a.fromData(e, args[1])
	case name == ast.JSONSchemaVerify.Name && len(args) >= 1:
		return a.fromData(e, args[0])
	}
	return false
}

// fromData reports whether t's value comes from bundle data and constants
// alone (input may have chosen which part of the data).
func (a *analyzer) fromData(e *env, t *ast.Term) bool {
	switch v := t.Value.(type) {
	case ast.String, ast.Number, ast.Boolean, ast.Null:
		return true
	case ast.Var:
		return !isRoot(v) && e.isFromData(v)
	case ast.Ref:
		switch {
		case v[0].Equal(ast.InputRootDocument):
			return false
		case v[0].Equal(ast.DefaultRootDocument):
			rules := a.c.GetRulesDynamicWithOpts(v, ast.RulesOptions{IncludeHiddenModules: true})
			if len(rules) == 0 {
				return true
			}
			if _, ok := a.singleComplete(rules, v); !ok {
				return false
			}
			for _, rule := range rules {
				for r := rule; r != nil; r = r.Else {
					if !a.ruleFromData(r) {
						return false
					}
				}
			}
			return true
		default:
			return a.fromData(e, v[0])
		}
	case *ast.Array, ast.Object, ast.Set:
		// Only a constant composite counts: the engine checked every
		// literal in the policy for a "$ref", but a key or value held in a
		// variable ({k: "https://..."} with k := "$ref") escapes that check.
		return t.IsGround()
	}
	return false
}

func (a *analyzer) ruleFromData(r *ast.Rule) bool {
	if v, ok := a.dataRule[r]; ok {
		return v
	}
	a.dataRule[r] = false // a cycle is not from data
	e := a.body(r)
	v := e == nil || a.fromData(e, r.Head.Value) // a dead body contributes nothing
	a.dataRule[r] = v
	return v
}
