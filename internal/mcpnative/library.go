// Package mcpnative decides MCP requests by the semantics of the shipped
// policy library (policies/verdict/mcp) without evaluating Rego: at each
// activation it compiles the library's data (the catalog in
// data.mcp.servers, the rules in data.mcp.rules, data.mcp.settings) into Go
// structures (an index of rules by target, compiled globs, regular
// expressions and schemas, messages formatted once), and answers
// data.verdict.mcp.decision with the value a Rego evaluation returns.
//
// The Rego library stays the specification. The compiler refuses, and the
// engine then evaluates in Rego, whenever it cannot promise the same answer:
// a bundle whose library differs from the shipped one by a byte, rules that
// write into data.mcp, data of a shape the library would read differently
// (an unknown operator, a bad glob, regular expression or schema, a value of
// the wrong type), and, per request, an input of a shape the adapters do not
// build. Built-ins whose exact behaviour matters (json.match_schema, the
// time functions, net.cidr_contains, sprintf's formatting of Rego values)
// are OPA's own, called directly.
package mcpnative

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"

	"github.com/verdictpdp/verdict"
)

// Entrypoint is the entrypoint the native evaluator answers.
const Entrypoint = "verdict/mcp/decision"

// LibraryFingerprint is the SHA-256 of the library modules (sorted by file
// name, each name, a NUL, its bytes and a NUL) this package reproduces. A
// change to policies/verdict/mcp changes it and fails TestFingerprint until
// this package is brought in line with the change and the constant updated.
const LibraryFingerprint = "201d5aa1a428"

var (
	libraryPath = ast.MustParseRef("data.verdict.mcp")
	dataPath    = ast.MustParseRef("data.mcp")
)

// library is the shipped library as the compiler checks bundles against it.
type library struct {
	// modules are the SHA-256 digests of the library's module files.
	modules map[[32]byte]string
	// required are the digests every activation must carry (all modules
	// but tests).
	required map[[32]byte]string
	// err, when set, says why the library cannot be evaluated natively.
	err error
}

// loadLibrary reads the library's .rego files from fsys under dir.
func loadLibrary(fsys fs.FS, dir string) *library {
	lib := &library{modules: map[[32]byte]string{}, required: map[[32]byte]string{}}
	var names []string
	files := map[string][]byte{}
	err := fs.WalkDir(fsys, dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".rego") {
			return err
		}
		raw, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		names = append(names, path.Base(p))
		files[path.Base(p)] = raw
		return nil
	})
	if err == nil && len(names) == 0 {
		err = errors.New("no library modules")
	}
	if err != nil {
		lib.err = fmt.Errorf("the shipped library cannot be read: %w", err)
		return lib
	}
	slices.Sort(names)
	for _, n := range names {
		sum := sha256.Sum256(files[n])
		lib.modules[sum] = n
		if !strings.HasSuffix(n, "_test.rego") {
			lib.required[sum] = n
		}
	}
	if fp := Fingerprint(fsys, dir); fp != LibraryFingerprint {
		lib.err = fmt.Errorf("the shipped library (fingerprint %s) is not the one this evaluator reproduces (%s)", fp, LibraryFingerprint)
	}
	return lib
}

// Fingerprint returns the library fingerprint (see LibraryFingerprint) of
// the .rego files in fsys under dir, or "" when they cannot be read.
func Fingerprint(fsys fs.FS, dir string) string {
	var names []string
	_ = fs.WalkDir(fsys, dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".rego") {
			names = append(names, p)
		}
		return nil
	})
	slices.SortFunc(names, func(a, b string) int { return strings.Compare(path.Base(a), path.Base(b)) })
	h := sha256.New()
	for _, p := range names {
		raw, err := fs.ReadFile(fsys, p)
		if err != nil {
			return ""
		}
		h.Write([]byte(path.Base(p)))
		h.Write([]byte{0})
		h.Write(raw)
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// check reports why the activated bundles do not run the shipped library
// unchanged: every module that defines a rule at or under data.verdict.mcp
// must be one of the library's files, byte for byte (test modules of the
// bundle's own may add test_ rules), every library file must be there, no
// rule may define anything under data.mcp (the library reads it as plain
// data), and no data may sit under data.verdict.mcp.
func (lib *library) check(bundles map[string]*bundle.Bundle) error {
	if lib.err != nil {
		return lib.err
	}
	seen := map[[32]byte]bool{}
	for _, name := range sortedKeys(bundles) {
		b := bundles[name]
		for _, mf := range b.Modules {
			m := mf.Parsed
			if m == nil {
				return fmt.Errorf("bundle %s: module %s is not parsed", name, mf.Path)
			}
			touchesLib, touchesData, onlyTests := false, false, true
			for _, r := range m.Rules {
				p := rulePath(m, r)
				if overlaps(p, libraryPath) {
					touchesLib = true
					if !strings.HasPrefix(ruleName(r), "test_") {
						onlyTests = false
					}
				}
				if overlaps(p, dataPath) {
					touchesData = true
				}
			}
			if touchesData {
				return fmt.Errorf("bundle %s: module %s defines rules in data.mcp, which the library reads as plain data", name, mf.Path)
			}
			if !touchesLib {
				continue
			}
			sum := sha256.Sum256(mf.Raw)
			if _, ok := lib.modules[sum]; ok {
				seen[sum] = true
				continue
			}
			if !onlyTests {
				return fmt.Errorf("bundle %s: module %s changes the MCP library (data.verdict.mcp): only the shipped library, unchanged, is evaluated natively", name, mf.Path)
			}
		}
		if hasDataAt(b.Data, "verdict", "mcp") {
			return fmt.Errorf("bundle %s: data under verdict/mcp would be merged with the library", name)
		}
	}
	for sum, n := range lib.required {
		if !seen[sum] {
			return fmt.Errorf("the active bundles do not carry the library module %s unchanged", n)
		}
	}
	return nil
}

// rulePath is the full path of the document a rule defines, up to its
// first non-constant segment.
func rulePath(m *ast.Module, r *ast.Rule) ast.Ref {
	p := m.Package.Path.Copy()
	for _, t := range r.Head.Ref() {
		switch v := t.Value.(type) {
		case ast.Var:
			if len(p) == len(m.Package.Path) {
				p = append(p, ast.StringTerm(string(v)))
				continue
			}
			return p
		case ast.String:
			p = append(p, t)
		default:
			return p
		}
	}
	return p
}

func ruleName(r *ast.Rule) string {
	ref := r.Head.Ref()
	if len(ref) == 0 {
		return ""
	}
	switch v := ref[0].Value.(type) {
	case ast.Var:
		return string(v)
	case ast.String:
		return string(v)
	}
	return ""
}

// overlaps reports whether one of a and b is a prefix of the other.
func overlaps(a, b ast.Ref) bool {
	n := min(len(a), len(b))
	return a[:n].Equal(b[:n])
}

func hasDataAt(data map[string]any, keys ...string) bool {
	var cur any = data
	for _, k := range keys {
		m, ok := cur.(map[string]any)
		if !ok {
			return false
		}
		if cur, ok = m[k]; !ok {
			return false
		}
	}
	return true
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Builtin returns a compiler for the library embedded in this binary (the
// built-in bundle's policies/verdict/mcp).
func Builtin() *Compiler {
	return New(verdict.DefaultBundles()[verdict.MCPBundle], "verdict/mcp")
}
