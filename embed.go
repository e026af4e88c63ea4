// Package verdict embeds the built-in bundles: the Rego library in
// policies/ and the data in bundles/default/. `pdp serve` with no --bundle
// serves exactly these files, as two bundles that can each give way to a
// user bundle claiming the same roots (see DefaultBundles).
package verdict

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"testing/fstest" // an in-memory fs.FS; nothing of package testing
)

//go:embed all:policies
var policiesFS embed.FS

//go:embed all:bundles/default
var defaultDataFS embed.FS

// Names of the built-in bundles.
const (
	// EnvoyBundle is the default Envoy policy (policies/envoy) with the
	// routes it allows (bundles/default/data.json).
	EnvoyBundle = "builtin-envoy"
	// MCPBundle is the MCP policy library and the approvals policy
	// (policies/verdict).
	MCPBundle = "builtin-mcp"
)

// builtin describes one built-in bundle: the directories of policies/ it
// serves, the data files it adds, and the roots it claims.
type builtin struct {
	name  string
	dirs  []string // under policies/
	data  []string // paths in defaultDataFS, merged at the bundle's root
	roots []string
}

var builtins = []builtin{
	{name: EnvoyBundle, dirs: []string{"envoy"}, data: []string{"bundles/default/data.json"}, roots: []string{"envoy", "verdict/default"}},
	{name: MCPBundle, dirs: []string{"verdict"}, roots: []string{"verdict/mcp", "verdict/approvals"}},
}

// DefaultBundles returns the built-in bundles by name, each a bundle file
// system with its own .manifest. The Envoy default and the MCP library
// claim disjoint roots, so a user bundle that replaces one (package
// envoy.authz, roots ["envoy"]) leaves the other serving. Both carry the
// library's revision from policies/.manifest.
func DefaultBundles() map[string]fs.FS {
	var lib struct {
		Revision    string `json:"revision"`
		RegoVersion int    `json:"rego_version"`
	}
	raw, err := policiesFS.ReadFile("policies/.manifest")
	if err != nil {
		panic(err) // the embed pattern above guarantees the file
	}
	if err := json.Unmarshal(raw, &lib); err != nil {
		panic(fmt.Sprintf("policies/.manifest: %v", err))
	}
	out := make(map[string]fs.FS, len(builtins))
	for _, b := range builtins {
		out[b.name] = b.fs(lib.Revision, lib.RegoVersion)
	}
	return out
}

// fs assembles the bundle: the module files of its directories (paths
// kept, so policy locations read as in the repository), its data files and
// a manifest naming its roots.
func (b builtin) fs(revision string, regoVersion int) fs.FS {
	files := fstest.MapFS{}
	for _, dir := range b.dirs {
		err := fs.WalkDir(policiesFS, path.Join("policies", dir), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			raw, err := policiesFS.ReadFile(p)
			if err != nil {
				return err
			}
			files[p[len("policies/"):]] = &fstest.MapFile{Data: raw, Mode: 0o444}
			return nil
		})
		if err != nil {
			panic(err) // embedded files are always readable
		}
	}
	for _, p := range b.data {
		raw, err := defaultDataFS.ReadFile(p)
		if err != nil {
			panic(err)
		}
		files[path.Base(p)] = &fstest.MapFile{Data: raw, Mode: 0o444}
	}
	manifest, err := json.Marshal(map[string]any{"revision": revision, "roots": b.roots, "rego_version": regoVersion})
	if err != nil {
		panic(err)
	}
	files[".manifest"] = &fstest.MapFile{Data: manifest, Mode: 0o444}
	return files
}

// CatalogSchema is the JSON Schema (draft 2020-12) of the MCP catalog,
// data.mcp, that `pdp check` validates bundles' data against.
//
//go:embed policies/verdict/mcp/catalog.schema.json
var CatalogSchema []byte
