package config

import (
	"fmt"
	"io"
	"maps"
	"net/url"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"
)

// Masked replaces a secret in the printed configuration.
const Masked = "****"

// WriteYAML writes c as YAML, in the config file's format, with secrets
// masked (see maskSecrets): what `pdp serve --print-config` prints.
func WriteYAML(w io.Writer, c Config) error {
	// Switches left unset are on: show them so.
	c.Library = new(c.LibraryEnabled())
	c.Cache.Enabled = new(c.Cache.On())
	c.RateLimit.Enabled = new(c.RateLimit.On())
	c.MCP.Native = new(c.MCP.NativeEnabled())
	c.MCP.OverEnvoy = new(c.MCP.OverEnvoyEnabled())
	c.AuthZEN.Enabled = new(c.AuthZEN.On())
	c.AuthZEN.MCP = new(c.AuthZEN.MCPOn())
	c.ToolHive.Enabled = new(c.ToolHive.On())
	c.GRPC.Reflection = new(c.GRPC.Reflection == nil || *c.GRPC.Reflection)
	c.Approvals.Enabled = new(c.Approvals.On())
	c.Approvals.GRPC = new(c.Approvals.GRPCOn())
	tree := asTree(c)
	maskSecrets(tree)
	out, err := yaml.Marshal(tree)
	if err != nil {
		return fmt.Errorf("print configuration: %w", err)
	}
	_, err = w.Write(out)
	return err
}

// maskSecrets masks, wherever they are in the tree, the user information
// and query values of URLs (bundle sources, the JWKS URL, the audit
// collector: credentials travel there) and strings under keys that name a
// secret (password, token, secret, ...). Paths to files holding secrets
// (key_file, bearer_token_file) are shown: they are not the secret.
func maskSecrets(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if s, ok := e.(string); ok && s != "" && secretKey(k) {
				x[k] = Masked
				continue
			}
			x[k] = maskSecrets(e)
		}
	case []any:
		for i, e := range x {
			x[i] = maskSecrets(e)
		}
	case string:
		return maskURL(x)
	}
	return v
}

func secretKey(k string) bool {
	k = strings.ToLower(k)
	for _, suffix := range []string{"_file", "_dir", "_path", "_bytes", "_id"} {
		if strings.HasSuffix(k, suffix) {
			return false
		}
	}
	for _, word := range []string{"password", "passwd", "secret", "token", "api_key", "apikey", "private_key", "credential"} {
		if strings.Contains(k, word) {
			return true
		}
	}
	return false
}

func maskURL(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || u.User == nil && u.RawQuery == "" {
		return s
	}
	var b strings.Builder
	b.WriteString(u.Scheme + "://")
	if u.User != nil {
		b.WriteString(Masked + "@")
	}
	b.WriteString(u.Host + u.EscapedPath())
	if u.RawQuery != "" {
		sep := "?"
		for _, k := range slices.Sorted(maps.Keys(u.Query())) {
			b.WriteString(sep + url.QueryEscape(k) + "=" + Masked)
			sep = "&"
		}
	}
	if u.Fragment != "" {
		b.WriteString("#" + u.EscapedFragment())
	}
	return b.String()
}
