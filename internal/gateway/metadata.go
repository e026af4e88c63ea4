package gateway

import (
	"encoding/json"
	"errors"
	"net/url"
	"strings"
)

// WellKnownMetadata is the RFC 9728 well-known path prefix.
const WellKnownMetadata = "/.well-known/oauth-protected-resource"

// ResourceMetadata is the RFC 9728 protected resource metadata this
// gateway publishes: the MCP client learns from it which authorization
// server issues tokens for the gateway (the token's audience).
type ResourceMetadata struct {
	Resource               string   `json:"resource"`
	AuthorizationServers   []string `json:"authorization_servers,omitempty"`
	ScopesSupported        []string `json:"scopes_supported,omitempty"`
	BearerMethodsSupported []string `json:"bearer_methods_supported"`
	ResourceName           string   `json:"resource_name,omitempty"`
}

// MetadataPaths returns where the metadata of resource (this gateway's
// public URL) is served, and its URL for WWW-Authenticate challenges:
// RFC 9728 inserts the well-known prefix between the host and the path.
func MetadataPaths(resource string) (path, metadataURL string, err error) {
	u, err := url.Parse(resource)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", "", errors.New("resource must be an absolute http(s) URL")
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", "", errors.New("resource must not carry a query, a fragment or user info")
	}
	path = WellKnownMetadata + strings.TrimSuffix(u.EscapedPath(), "/")
	return path, u.Scheme + "://" + u.Host + path, nil
}

func (m ResourceMetadata) encode() []byte {
	if len(m.BearerMethodsSupported) == 0 {
		m.BearerMethodsSupported = []string{"header"}
	}
	b, _ := json.Marshal(m)
	return b
}
