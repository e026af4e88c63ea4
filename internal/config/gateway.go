package config

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
)

// Gateway configures `pdp gateway`, the reference MCP gateway: an MCP
// endpoint (Streamable HTTP, or stdio around a local server) that decides
// every message before it reaches the upstream server.
type Gateway struct {
	// Listen is the gateway's MCP listener (default 127.0.0.1:8787).
	Listen string `json:"listen"`
	// Path is where MCP is served (default /mcp).
	Path string `json:"path"`
	// Server is the upstream's name in the tool catalog (input.server.name).
	Server string `json:"server"`
	// Upstream is the MCP server's Streamable HTTP URL.
	Upstream string `json:"upstream"`
	// UpstreamHeaders are the gateway's own credentials for the upstream,
	// read from files or the environment: the client's token never goes
	// upstream.
	UpstreamHeaders []UpstreamHeader `json:"upstream_headers"`
	// PDP is a remote Verdict's gRPC address; empty runs the decision core
	// in this process.
	PDP PDPClient `json:"pdp"`
	// Resource is this gateway's public URL: the audience tokens must be
	// issued for, and the resource of its RFC 9728 metadata.
	Resource string `json:"resource"`
	// AuthorizationServers and ScopesSupported are published in the
	// metadata document.
	AuthorizationServers []string `json:"authorization_servers"`
	ScopesSupported      []string `json:"scopes_supported"`
	// Subject is who every caller is when tokens are not verified
	// (identity.jwt unset), such as the one user of a stdio server.
	Subject *GatewaySubject `json:"subject,omitempty"`
	// Purpose and Region are the circumstances of every request through
	// this gateway (input.context.purpose and .region), for rules such as
	// GDPR's purpose limitation.
	Purpose string `json:"purpose"`
	Region  string `json:"region"`
	// MaxMessageBytes bounds a client body, an upstream answer and one
	// event of a stream (default 4 MiB).
	MaxMessageBytes int64 `json:"max_message_bytes"`
	// UpstreamTimeout bounds how long the upstream may take to answer one
	// POST's requests (default 5m).
	UpstreamTimeout Duration `json:"upstream_timeout"`
	// MaxSessions and SessionTTL bound the sessions held (default 10000,
	// 1h idle).
	MaxSessions int      `json:"max_sessions"`
	SessionTTL  Duration `json:"session_ttl"`
}

// UpstreamHeader is one header the gateway sends upstream, its value read
// from a file (trimmed) or an environment variable.
type UpstreamHeader struct {
	Name      string `json:"name"`
	ValueFile string `json:"value_file"`
	ValueEnv  string `json:"value_env"`
}

// PDPClient is how the gateway reaches a remote Verdict.
type PDPClient struct {
	Addr string `json:"addr"`
	// CAFile verifies the Verdict's certificate; CertFile and KeyFile are
	// the gateway's client certificate (mTLS). Without CAFile the
	// connection is plaintext, which only a loopback address may use.
	CAFile     string `json:"ca_file"`
	CertFile   string `json:"cert_file"`
	KeyFile    string `json:"key_file"`
	ServerName string `json:"server_name"`
}

// GatewaySubject is a configured caller.
type GatewaySubject struct {
	ID        string   `json:"id"`
	Roles     []string `json:"roles"`
	Groups    []string `json:"groups"`
	Scopes    []string `json:"scopes"`
	Tenant    string   `json:"tenant"`
	Clearance string   `json:"clearance"`
}

// DefaultGatewayListen is the gateway's default listener: loopback only.
const DefaultGatewayListen = "127.0.0.1:8787"

// ValidateGateway checks the gateway settings for `pdp gateway`; stdio
// wraps a local command instead of an upstream URL.
func (c *Config) ValidateGateway(stdio bool) error {
	g := &c.Gateway
	var errs []error
	if g.Listen == "" {
		g.Listen = DefaultGatewayListen
	}
	if g.Path == "" {
		g.Path = "/mcp"
	}
	if !strings.HasPrefix(g.Path, "/") || strings.ContainsAny(g.Path, "?# ") {
		errs = append(errs, errors.New("gateway.path: must be a URL path starting with /"))
	}
	if g.Server == "" {
		errs = append(errs, errors.New("gateway.server: required: the upstream's name in the tool catalog (data.mcp.servers)"))
	}
	switch {
	case stdio && g.Upstream != "":
		errs = append(errs, errors.New("gateway.upstream: a stdio gateway runs its server command; leave upstream unset"))
	case !stdio:
		if err := checkAddr(g.Listen); err != nil {
			errs = append(errs, fmt.Errorf("gateway.listen: %w", err))
		}
		u, err := url.Parse(g.Upstream)
		if g.Upstream == "" {
			errs = append(errs, errors.New("gateway.upstream: required: the MCP server's Streamable HTTP URL (or run with --stdio -- COMMAND)"))
		} else if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, errors.New("gateway.upstream: must be an http(s) URL"))
		} else if u.User != nil {
			errs = append(errs, errors.New("gateway.upstream: must not carry credentials: use upstream_headers"))
		}
	}
	for i, h := range g.UpstreamHeaders {
		if h.Name == "" || strings.ContainsAny(h.Name, " :\r\n") {
			errs = append(errs, fmt.Errorf("gateway.upstream_headers[%d].name: must be a header name", i))
		}
		if (h.ValueFile == "") == (h.ValueEnv == "") {
			errs = append(errs, fmt.Errorf("gateway.upstream_headers[%d]: set one of value_file and value_env", i))
		}
	}
	if g.Resource != "" {
		u, err := url.Parse(g.Resource)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			errs = append(errs, errors.New("gateway.resource: must be an absolute http(s) URL without query or fragment"))
		}
	}
	// A stdio client presents no token: identity.jwt then only
	// authenticates approvers on the admin API.
	if c.Identity.JWT.Enabled() && !stdio {
		if g.Resource == "" {
			errs = append(errs, errors.New("gateway.resource: required with identity.jwt: tokens must be issued for this gateway (their audience), and clients find it in the metadata"))
		} else if len(c.Identity.JWT.Audiences) == 0 {
			c.Identity.JWT.Audiences = []string{g.Resource}
		} else if !slices.Contains(c.Identity.JWT.Audiences, g.Resource) {
			errs = append(errs, errors.New("identity.jwt.audiences: must include gateway.resource: a token issued for another resource must not be accepted here"))
		}
		if g.Subject != nil {
			errs = append(errs, errors.New("gateway.subject: tokens are verified (identity.jwt): the caller comes from the token"))
		}
	}
	if s := g.Subject; s != nil && s.ID == "" {
		errs = append(errs, errors.New("gateway.subject.id: required"))
	}
	if g.PDP.Addr != "" {
		if err := checkAddr(g.PDP.Addr); err != nil {
			errs = append(errs, fmt.Errorf("gateway.pdp.addr: %w", err))
		} else if host, _, _ := net.SplitHostPort(g.PDP.Addr); g.PDP.CAFile == "" && !loopbackHost(host) {
			errs = append(errs, errors.New("gateway.pdp: a remote Verdict that is not on loopback needs TLS (ca_file)"))
		}
		if (g.PDP.CertFile == "") != (g.PDP.KeyFile == "") {
			errs = append(errs, errors.New("gateway.pdp: cert_file and key_file must be set together"))
		}
	}
	if g.MaxMessageBytes < 0 || g.MaxSessions < 0 || g.UpstreamTimeout < 0 || g.SessionTTL < 0 {
		errs = append(errs, errors.New("gateway: limits must not be negative"))
	}
	return errors.Join(errs...)
}

func loopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// GatewayFlags are the flags of `pdp gateway` beyond the configuration
// flags of `pdp serve`.
type GatewayFlags struct {
	fs      *flag.FlagSet
	g       Gateway
	subject GatewaySubject
	roles   stringList
	scopes  stringList
	Stdio   bool
}

// BindGatewayFlags registers the flags of `pdp gateway` on fs: every
// configuration flag of `pdp serve`, and the gateway's own.
func BindGatewayFlags(fs *flag.FlagSet) (*Flags, *GatewayFlags) {
	f := bindAll(fs)
	gf := &GatewayFlags{fs: fs}
	fs.StringVar(&gf.g.Upstream, "upstream", "", "the MCP server's Streamable HTTP `URL`")
	fs.StringVar(&gf.g.Listen, "listen", DefaultGatewayListen, "the gateway's MCP listen `address`")
	fs.StringVar(&gf.g.Path, "path", "/mcp", "the `path` the gateway serves MCP at")
	fs.StringVar(&gf.g.Server, "server", "", "the upstream's `name` in the tool catalog (data.mcp.servers)")
	fs.StringVar(&gf.g.PDP.Addr, "pdp", "", "ask a remote Verdict at this gRPC `address` (default: decide in this process)")
	fs.StringVar(&gf.g.Resource, "resource", "", "this gateway's public `URL`: the audience of its tokens and the resource of its RFC 9728 metadata")
	fs.StringVar(&gf.subject.ID, "subject", "", "the caller's `id` when tokens are not verified (a local stdio server's one user)")
	fs.Var(&gf.roles, "subject-roles", "the --subject's `roles`, comma-separated")
	fs.Var(&gf.scopes, "subject-scopes", "the --subject's OAuth `scopes`, comma-separated")
	fs.StringVar(&gf.subject.Tenant, "subject-tenant", "", "the --subject's `tenant`")
	fs.StringVar(&gf.subject.Clearance, "subject-clearance", "", "the --subject's `clearance` (public, internal, confidential, restricted)")
	fs.StringVar(&gf.g.Purpose, "purpose", "", "the purpose of use every request is made for (input.context.purpose), such as support")
	fs.StringVar(&gf.g.Region, "region", "", "the region data is processed in (input.context.region), such as eu")
	fs.BoolVar(&gf.Stdio, "stdio", false, "wrap a local MCP server: pdp gateway --stdio [flags] -- COMMAND [ARGS...]")
	f.prepare = func(cfg *Config) {
		gf.Apply(cfg)
		// Tokens are issued for this gateway: its resource is the
		// audience unless audiences are configured.
		if cfg.Identity.JWT.Enabled() && len(cfg.Identity.JWT.Audiences) == 0 && cfg.Gateway.Resource != "" {
			cfg.Identity.JWT.Audiences = []string{cfg.Gateway.Resource}
		}
	}
	return f, gf
}

// Apply sets the gateway flags given on the command line over cfg.
func (gf *GatewayFlags) Apply(cfg *Config) {
	gf.fs.Visit(func(fl *flag.Flag) {
		switch fl.Name {
		case "upstream":
			cfg.Gateway.Upstream = gf.g.Upstream
		case "listen":
			cfg.Gateway.Listen = gf.g.Listen
		case "path":
			cfg.Gateway.Path = gf.g.Path
		case "server":
			cfg.Gateway.Server = gf.g.Server
		case "pdp":
			cfg.Gateway.PDP.Addr = gf.g.PDP.Addr
		case "resource":
			cfg.Gateway.Resource = gf.g.Resource
		case "purpose":
			cfg.Gateway.Purpose = gf.g.Purpose
		case "region":
			cfg.Gateway.Region = gf.g.Region
		case "subject":
			s := gf.subject
			s.Roles, s.Scopes = []string(gf.roles), []string(gf.scopes)
			cfg.Gateway.Subject = &s
		}
	})
}
