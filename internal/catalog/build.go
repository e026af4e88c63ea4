package catalog

import (
	"encoding/json"
	"fmt"
	"slices"
	"unicode/utf8"
)

// Keys import writes on an entry. The library never reads
// claimed_annotations or annotations_review: the annotations a server
// claims (readOnlyHint and the like) are untrusted, so import stores them
// apart and the library keeps its defaults (not read-only, destructive)
// until a person copies the ones they confirm into "annotations".
const (
	KeyClaimedAnnotations = "claimed_annotations"
	KeyAnnotationsReview  = "annotations_review"
	ReviewPending         = "pending"
)

// Server is the imported part of data.mcp.servers.NAME.
type Server struct {
	Tools     map[string]map[string]any
	Prompts   map[string]map[string]any
	Resources []string
}

// Build turns a listing into catalog entries: per tool its description,
// input_schema, claimed annotations and pin; per prompt its description and
// pin; the resource URIs.
func Build(l *Listing) (*Server, error) {
	s := &Server{Tools: map[string]map[string]any{}, Prompts: map[string]map[string]any{}}
	for _, t := range l.Tools {
		name, err := entryName(t, "name", "tool")
		if err != nil {
			return nil, err
		}
		if _, dup := s.Tools[name]; dup {
			return nil, fmt.Errorf("catalog: tool %q is listed twice", name)
		}
		e, err := baseEntry(t, name)
		if err != nil {
			return nil, err
		}
		if sc, ok := t["inputSchema"]; ok {
			if err := boundJSON(sc, MaxSchemaBytes, name, "inputSchema"); err != nil {
				return nil, err
			}
			e["input_schema"] = sc
		}
		if a, ok := t["annotations"].(map[string]any); ok && len(a) > 0 {
			e[KeyClaimedAnnotations] = a
			e[KeyAnnotationsReview] = ReviewPending
		}
		s.Tools[name] = e
	}
	for _, p := range l.Prompts {
		name, err := entryName(p, "name", "prompt")
		if err != nil {
			return nil, err
		}
		if _, dup := s.Prompts[name]; dup {
			return nil, fmt.Errorf("catalog: prompt %q is listed twice", name)
		}
		if err := boundJSON(p["arguments"], MaxSchemaBytes, name, "arguments"); err != nil {
			return nil, err
		}
		e, err := baseEntry(p, name)
		if err != nil {
			return nil, err
		}
		s.Prompts[name] = e
	}
	for _, r := range l.Resources {
		uri, err := entryName(r, "uri", "resource")
		if err != nil {
			return nil, err
		}
		if !slices.Contains(s.Resources, uri) {
			s.Resources = append(s.Resources, uri)
		}
	}
	slices.Sort(s.Resources)
	return s, nil
}

func entryName(e map[string]any, key, kind string) (string, error) {
	name, _ := e[key].(string)
	if name == "" || len(name) > MaxNameBytes || !utf8.ValidString(name) {
		return "", fmt.Errorf("catalog: a %s has no usable %s (a non-empty string of at most %d bytes)", kind, key, MaxNameBytes)
	}
	return name, nil
}

func baseEntry(def map[string]any, name string) (map[string]any, error) {
	e := map[string]any{}
	if d, ok := def["description"].(string); ok && d != "" {
		if len(d) > MaxDescriptionBytes {
			return nil, fmt.Errorf("%w: the description of %q is longer than %d bytes", ErrLimit, name, MaxDescriptionBytes)
		}
		e["description"] = d
	}
	pin, err := Pin(def)
	if err != nil {
		return nil, err
	}
	e["pin_sha256"] = pin
	return e, nil
}

func boundJSON(v any, limit int, name, what string) error {
	if v == nil {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("catalog: %s of %q: %w", what, name, err)
	}
	if len(b) > limit {
		return fmt.Errorf("%w: the %s of %q is larger than %d bytes", ErrLimit, what, name, limit)
	}
	return nil
}

// Op is what happened to one definition.
type Op string

// Ops.
const (
	Added   Op = "added"
	Removed Op = "removed"
	Changed Op = "changed"
)

// Change is one definition that differs between the catalog and the server.
type Change struct {
	Kind   string // tool, prompt or resource
	Name   string
	Op     Op
	Fields []string // for Changed: description, schema, annotations, definition, pin
	// PinKept is set for a changed definition whose old pin stays (no
	// --repin): the library hides it from lists until it is re-pinned.
	PinKept bool
	// Repinned is set when the new pin replaced the old one.
	Repinned bool
	// Was and Now are the old and new descriptions when "description" is
	// among Fields.
	Was, Now string
}

// Merge folds imported into the server object old (nil when the server is
// new) and returns the merged object and the changes, sorted by kind and
// name. Operator-set fields (classification, annotations, rules…) are
// never touched. A changed definition keeps its old entry and pin unless
// repin; a tool the server no longer lists keeps its entry (reported as
// removed). old is not modified.
func Merge(old map[string]any, imported *Server, repin bool) (map[string]any, []Change) {
	out := cloneMap(old)
	var changes []Change
	changes = append(changes, mergeKind(out, "tools", "tool", imported.Tools, repin)...)
	changes = append(changes, mergeKind(out, "prompts", "prompt", imported.Prompts, repin)...)

	var res []any
	if r, ok := out["resources"].([]any); ok {
		res = slices.Clone(r)
	}
	for _, uri := range imported.Resources {
		if covered(res, uri) {
			continue
		}
		res = append(res, map[string]any{"uri_prefix": uri})
		changes = append(changes, Change{Kind: "resource", Name: uri, Op: Added})
	}
	if len(res) > 0 {
		out["resources"] = res
	}
	return out, changes
}

func covered(res []any, uri string) bool {
	for _, r := range res {
		m, _ := r.(map[string]any)
		p, _ := m["uri_prefix"].(string)
		if p != "" && len(uri) >= len(p) && uri[:len(p)] == p {
			return true
		}
	}
	return false
}

func mergeKind(server map[string]any, member, kind string, imported map[string]map[string]any, repin bool) []Change {
	oldEntries, _ := server[member].(map[string]any)
	entries := cloneMap(oldEntries)
	var changes []Change
	for _, name := range sortedKeys(imported) {
		ne := imported[name]
		oe, exists := entries[name].(map[string]any)
		if !exists {
			entries[name] = ne
			changes = append(changes, Change{Kind: kind, Name: name, Op: Added})
			continue
		}
		oldPin, _ := oe["pin_sha256"].(string)
		if oldPin == ne["pin_sha256"] {
			continue
		}
		c := Change{Kind: kind, Name: name, Op: Changed, Fields: changedFields(oe, ne)}
		if slices.Contains(c.Fields, "description") {
			c.Was, _ = oe["description"].(string)
			c.Now, _ = ne["description"].(string)
		}
		merged := cloneMap(oe)
		switch {
		case oldPin == "":
			// Not pinned yet: pinning only narrows what the library shows.
			c.Fields = append(c.Fields, "pin")
			merged["pin_sha256"] = ne["pin_sha256"]
			if _, has := merged["description"]; !has {
				adopt(merged, ne)
			}
			c.Repinned = true
		case repin:
			adopt(merged, ne)
			c.Repinned = true
		default:
			c.PinKept = true
		}
		entries[name] = merged
		changes = append(changes, c)
	}
	for _, name := range sortedKeys(oldEntries) {
		if _, listed := imported[name]; !listed {
			changes = append(changes, Change{Kind: kind, Name: name, Op: Removed})
		}
	}
	if len(entries) > 0 {
		server[member] = entries
	}
	return changes
}

// adopt copies the imported fields of ne into e.
func adopt(e, ne map[string]any) {
	for _, k := range []string{"description", "input_schema", KeyClaimedAnnotations} {
		if v, ok := ne[k]; ok {
			e[k] = v
		} else {
			delete(e, k)
		}
	}
	if _, claimed := e[KeyClaimedAnnotations]; claimed {
		e[KeyAnnotationsReview] = ReviewPending
	} else {
		delete(e, KeyAnnotationsReview)
	}
	e["pin_sha256"] = ne["pin_sha256"]
}

func changedFields(oe, ne map[string]any) []string {
	var f []string
	for _, p := range [][2]string{{"description", "description"}, {"input_schema", "schema"}, {KeyClaimedAnnotations, "annotations"}} {
		if !jsonEqual(oe[p[0]], ne[p[0]]) {
			f = append(f, p[1])
		}
	}
	if len(f) == 0 {
		f = append(f, "definition")
	}
	return f
}

func jsonEqual(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}

func cloneMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
