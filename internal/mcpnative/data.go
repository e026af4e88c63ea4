package mcpnative

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/storage"

	"github.com/verdictpdp/verdict/internal/mcp"
)

// Reading bundle data of the shapes the library expects.

// readData reads data.mcp as JSON-like Go values (nil when absent).
func readData(ctx context.Context, store storage.Store) (map[string]any, error) {
	v, err := storage.ReadOne(ctx, store, storage.MustParsePath("/mcp"))
	if storage.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("data.mcp cannot be read: %w", err)
	}
	if av, ok := v.(ast.Value); ok {
		if v, err = ast.JSON(av); err != nil {
			return nil, fmt.Errorf("data.mcp: %w", err)
		}
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("data.mcp is %s, not an object", mcp.TypeName(v))
	}
	return m, nil
}

// localRefs reports whether every "$ref" and "$id" in a schema (a value, or
// JSON text) is a local "#..." fragment: compiling the schema then reads no
// other document.
func localRefs(v any) bool {
	switch v := v.(type) {
	case string:
		var doc any
		dec := json.NewDecoder(strings.NewReader(v))
		dec.UseNumber()
		if err := dec.Decode(&doc); err != nil {
			return !strings.Contains(v, "ref") && !strings.Contains(v, `\u`)
		}
		return localRefs(doc)
	case map[string]any:
		for k, x := range v {
			if k == "$ref" || k == "$id" {
				// A remote $id would make local references resolve
				// against another document.
				if s, ok := x.(string); !ok || !strings.HasPrefix(s, "#") {
					return false
				}
			}
			if _, isStr := x.(string); isStr {
				continue
			}
			if !localRefs(x) {
				return false
			}
		}
	case []any:
		for _, x := range v {
			if _, isStr := x.(string); !isStr && !localRefs(x) {
				return false
			}
		}
	}
	return true
}

// Helpers reading bundle data of the expected shape.

func objectOr(m map[string]any, key string) (map[string]any, error) {
	v, ok := m[key]
	if !ok {
		return map[string]any{}, nil
	}
	o, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s is %s, not an object", key, mcp.TypeName(v))
	}
	return o, nil
}

func stringsOr(m map[string]any, key string, def []string) ([]string, error) {
	v, ok := m[key]
	if !ok {
		return def, nil
	}
	list, err := stringList(v)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return list, nil
}

func stringList(v any) ([]string, error) {
	arr, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("is %s, not an array of strings", mcp.TypeName(v))
	}
	out := make([]string, len(arr))
	for i, x := range arr {
		s, ok := x.(string)
		if !ok {
			return nil, fmt.Errorf("[%d] is %s, not a string", i, mcp.TypeName(x))
		}
		out[i] = s
	}
	return out, nil
}

func boolOr(m map[string]any, key string, def bool) (bool, error) {
	v, ok := m[key]
	if !ok {
		return def, nil
	}
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("%s is %s, not a boolean", key, mcp.TypeName(v))
	}
	return b, nil
}

// formatV is the function formatV, remembered per list.
func (cc *compiler) formatV(list []string) (string, error) {
	key := fmt.Sprintf("%q", list)
	if s, ok := cc.formatted[key]; ok {
		return s, nil
	}
	s, err := formatV(list)
	if err == nil {
		cc.formatted[key] = s
	}
	return s, err
}

// formatV is Rego's sprintf("%v", [list]).
func formatV(list []string) (string, error) {
	terms := make([]*ast.Term, len(list))
	for i, s := range list {
		terms[i] = ast.StringTerm(s)
	}
	return sprintf("%v", ast.NewArray(terms...))
}

func stringsAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func sortedCopy(ss []string) []string {
	out := slices.Clone(ss)
	slices.Sort(out)
	return out
}
