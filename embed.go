// Package verdict embeds the built-in default bundle: the Rego library in
// policies/ and the data in bundles/default/. `pdp serve` with no --bundle
// serves exactly these files.
package verdict

import (
	"embed"
	"io/fs"
)

//go:embed all:policies
var policiesFS embed.FS

//go:embed all:bundles/default
var defaultDataFS embed.FS

// DefaultBundles returns the built-in bundles by name. Both must be
// activated together: "policies" holds the rules, "default" their data.
func DefaultBundles() map[string]fs.FS {
	pol, err := fs.Sub(policiesFS, "policies")
	if err != nil {
		panic(err) // the embed pattern above guarantees the directory
	}
	data, err := fs.Sub(defaultDataFS, "bundles/default")
	if err != nil {
		panic(err)
	}
	return map[string]fs.FS{"policies": pol, "default": data}
}
