package projection

import "github.com/open-policy-agent/opa/v1/ast"

// Tree is a projection's paths as a tree of members, for an adapter that
// builds only the part of the input a decision can read: an input that
// holds, at every path of the projection, exactly what the whole input
// holds there (the same value, or nothing where the whole input has
// nothing) gets the same decision as the whole input, as it gets the same
// cache key. Kinds are not kept: a path's whole value is always included.
type Tree struct {
	// Whole is set when a path ends at this node: the value here may be read
	// whole, and Members is empty.
	Whole bool
	// Members are the members read below this node, each under a path
	// element (a string names an object member, a number an array index),
	// in the order of the projection's paths.
	Members []Member
}

// Member is one member of a Tree.
type Member struct {
	Key ast.Value
	*Tree
}

// Tree returns the projection's paths as a tree (built on first use), or
// nil when the projection is Whole. A path of no elements (the input itself)
// makes the root Whole.
func (p *Projection) Tree() *Tree {
	p.treeOnce.Do(func() {
		if p.Whole {
			return
		}
		root := &Tree{}
		for _, path := range p.Paths {
			root.add(path.Ref)
		}
		p.tree = root
	})
	return p.tree
}

func (t *Tree) add(ref ast.Ref) {
	for _, elem := range ref {
		if t.Whole {
			return
		}
		t = t.member(elem.Value)
	}
	t.Whole, t.Members = true, nil
}

// member returns the member under key, adding it if there is none.
func (t *Tree) member(key ast.Value) *Tree {
	for _, m := range t.Members {
		if m.Key.Compare(key) == 0 {
			return m.Tree
		}
	}
	m := Member{Key: key, Tree: &Tree{}}
	t.Members = append(t.Members, m)
	return m.Tree
}
