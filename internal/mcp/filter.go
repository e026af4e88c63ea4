package mcp

import (
	"fmt"
	"maps"
)

// listShape says where a list result keeps its entries and which member of
// an entry identifies it.
type listShape struct {
	kind, member, key string
}

var listShapes = map[string]listShape{
	MethodToolsList:            {kind: "tools", member: "tools", key: "name"},
	MethodPromptsList:          {kind: "prompts", member: "prompts", key: "name"},
	MethodResourcesList:        {kind: "resources", member: "resources", key: "uri"},
	"resources/templates/list": {kind: "resource_templates", member: "resourceTemplates", key: "uriTemplate"},
}

// IsListMethod reports whether method returns a list FilterList can filter.
func IsListMethod(method string) bool {
	_, ok := listShapes[method]
	return ok
}

// ListMember returns, for a list method, the result member that holds the
// entries ("tools") and the entry member that names one ("name").
func ListMember(method string) (member, key string, ok bool) {
	shape, ok := listShapes[method]
	return shape.member, shape.key, ok
}

// Removed is an entry taken out of a list result.
type Removed struct {
	Name   string
	Reason Reason
}

// AddListInput adds input.list = {"kind", "items"} for a list result, so the
// policy can decide on each entry in one evaluation. Entries without a
// usable key are dropped before the policy sees them and reported by
// FilterList.
func AddListInput(in map[string]any, method string, result map[string]any) error {
	shape, ok := listShapes[method]
	if !ok {
		return invalidRequest("%s is not a list method (tools/list, resources/list, resources/templates/list, prompts/list)", method)
	}
	raw, ok := result[shape.member]
	if ok && raw != nil {
		if _, isArr := raw.([]any); !isArr {
			return invalidParams("result.%s must be an array, not %s", shape.member, TypeName(raw))
		}
	}
	items, _ := raw.([]any)
	in["list"] = map[string]any{"kind": shape.kind, "items": items}
	return nil
}

// FilterList returns a copy of result keeping only the entries d makes
// visible: in d.Visible and not in d.Hidden. An entry the policy did not
// mention is removed (fail-closed). Members other than the entry list, such
// as nextCursor, are kept.
func FilterList(method string, result map[string]any, d *Decision) (map[string]any, []Removed) {
	shape := listShapes[method]
	out := maps.Clone(result)
	if out == nil {
		out = map[string]any{}
	}
	items, _ := result[shape.member].([]any)
	kept := make([]any, 0, len(items))
	var removed []Removed
	for i, it := range items {
		entry, _ := it.(map[string]any)
		name, _ := entry[shape.key].(string)
		switch {
		case name == "":
			removed = append(removed, Removed{Name: fmt.Sprintf("#%d", i), Reason: Reason{Code: "list.invalid_entry", Message: fmt.Sprintf("entry has no %s", shape.key)}})
		case d.Hidden[name] != (Reason{}):
			removed = append(removed, Removed{Name: name, Reason: d.Hidden[name]})
		case !d.Visible[name]:
			removed = append(removed, Removed{Name: name, Reason: Reason{Code: "list.not_visible", Message: "the policy does not make this entry visible"}})
		default:
			kept = append(kept, it)
		}
	}
	out[shape.member] = kept
	return out, removed
}
