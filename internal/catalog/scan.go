package catalog

import (
	"cmp"
	"slices"

	"github.com/verdictpdp/verdict/internal/scan/poison"
)

// Finding is a poisoning finding on one definition.
type Finding struct {
	Server string `json:"server"`
	Kind   string `json:"kind"`
	Name   string `json:"name"`
	poison.Finding
}

// KnownTools returns every server's tool names in data, for shadowing and
// cross-server checks.
func KnownTools(data map[string]any) map[string][]string {
	m, _ := data["mcp"].(map[string]any)
	servers, _ := m["servers"].(map[string]any)
	out := map[string][]string{}
	for name, s := range servers {
		srv, _ := s.(map[string]any)
		tools, _ := srv["tools"].(map[string]any)
		out[name] = sortedKeys(tools)
	}
	return out
}

// ScanListing scans what server listed.
func ScanListing(server string, l *Listing, known map[string][]string) []Finding {
	known = withListed(known, server, l)
	opts := poison.Options{KnownTools: known}
	var out []Finding
	for _, t := range l.Tools {
		d := poison.Definition{Kind: "tool", Server: server, Schema: t["inputSchema"], Annotations: t["annotations"]}
		d.Name, _ = t["name"].(string)
		d.Title, _ = t["title"].(string)
		d.Description, _ = t["description"].(string)
		out = appendFindings(out, d, opts)
	}
	for _, p := range l.Prompts {
		d := poison.Definition{Kind: "prompt", Server: server, Schema: p["arguments"]}
		d.Name, _ = p["name"].(string)
		d.Title, _ = p["title"].(string)
		d.Description, _ = p["description"].(string)
		out = appendFindings(out, d, opts)
	}
	for _, r := range l.Resources {
		d := poison.Definition{Kind: "resource", Server: server}
		d.Name, _ = r["uri"].(string)
		d.Title, _ = r["title"].(string)
		d.Description, _ = r["description"].(string)
		out = appendFindings(out, d, opts)
	}
	sortFindings(out)
	return out
}

func withListed(known map[string][]string, server string, l *Listing) map[string][]string {
	out := make(map[string][]string, len(known)+1)
	for k, v := range known {
		out[k] = v
	}
	names := slices.Clone(out[server])
	for _, t := range l.Tools {
		if n, _ := t["name"].(string); n != "" && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	out[server] = names
	return out
}

// ScanData scans every tool and prompt in the catalog data (server is
// empty) or in one of its servers.
func ScanData(data map[string]any, server string) []Finding {
	opts := poison.Options{KnownTools: KnownTools(data)}
	m, _ := data["mcp"].(map[string]any)
	servers, _ := m["servers"].(map[string]any)
	var out []Finding
	for _, sname := range sortedKeys(servers) {
		if server != "" && sname != server {
			continue
		}
		srv, _ := servers[sname].(map[string]any)
		for _, kind := range []string{"tools", "prompts"} {
			entries, _ := srv[kind].(map[string]any)
			for _, name := range sortedKeys(entries) {
				e, _ := entries[name].(map[string]any)
				d := poison.Definition{Kind: kind[:len(kind)-1], Server: sname, Name: name, Schema: e["input_schema"]}
				d.Description, _ = e["description"].(string)
				if a, ok := e[KeyClaimedAnnotations]; ok {
					d.Annotations = a
				} else {
					d.Annotations = e["annotations"]
				}
				out = appendFindings(out, d, opts)
			}
		}
	}
	sortFindings(out)
	return out
}

func appendFindings(out []Finding, d poison.Definition, opts poison.Options) []Finding {
	for _, f := range poison.Scan(d, opts) {
		out = append(out, Finding{Server: d.Server, Kind: d.Kind, Name: d.Name, Finding: f})
	}
	return out
}

func sortFindings(fs []Finding) {
	slices.SortStableFunc(fs, func(a, b Finding) int {
		return cmp.Or(cmp.Compare(b.Severity, a.Severity), cmp.Compare(a.Server, b.Server), cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Name, b.Name))
	})
}
