// Package config reads the service configuration from a YAML file,
// VERDICT_ environment variables and command-line flags (flags win, then
// the environment) and validates it. It knows the shape of the settings,
// not what the services do with them.
package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// Defaults that operators and scripts rely on.
const (
	DefaultGRPCAddr     = "127.0.0.1:9191"
	DefaultHTTPAddr     = "127.0.0.1:8181"
	DefaultExtAuthzPath = "envoy/authz/allow"
	DefaultMCPPath      = "verdict/mcp/decision"
)

// Duration is a time.Duration written as "250ms", "10s" in YAML.
type Duration time.Duration

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration must be a string such as \"500ms\" or \"10s\"")
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q", s)
	}
	if v < 0 {
		return fmt.Errorf("duration %q is negative", s)
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// Config is the whole service configuration.
type Config struct {
	GRPC         GRPC          `json:"grpc"`
	HTTP         HTTP          `json:"http"`
	Bundles      []Bundle      `json:"bundles"`
	Verification *Verification `json:"bundle_verification,omitempty"`
	BundleLimits BundleLimits  `json:"bundle_limits"`
	// PersistDir keeps the last good archive of each remote bundle; empty
	// disables persistence.
	PersistDir string   `json:"persist_dir"`
	Decision   Decision `json:"decision"`
	ExtAuthz   ExtAuthz `json:"extauthz"`
	MCP        MCP      `json:"mcp"`
	// Library serves the built-in bundles (the Envoy default and the MCP
	// library) next to the configured bundles; each is left out when one
	// of them claims its roots. Nil means on.
	Library *bool `json:"library,omitempty"`
	Cache   Cache `json:"cache"`
	// Identity verifies who a decision is about: bearer tokens and the
	// calling gateway's mTLS identity.
	Identity Identity `json:"identity"`
	// RateLimit enforces the rate_limit obligations policies return.
	RateLimit RateLimit `json:"rate_limit"`
	// Limits bound hostile input before it is parsed for policy.
	Limits  Limits  `json:"limits"`
	Audit   Audit   `json:"audit"`
	Tracing Tracing `json:"tracing"`
	Log     Log     `json:"log"`
	// AuthZEN serves the OpenID AuthZEN Authorization API.
	AuthZEN AuthZEN `json:"authzen"`
	// ToolHive serves ToolHive's httpv1 authorizer on the HTTP listener.
	ToolHive ToolHive `json:"toolhive"`
	// Approvals configures human approvals, grants and quarantines.
	Approvals Approvals `json:"approvals"`
	// Sessions keeps what each MCP session did, for flow rules.
	Sessions Sessions `json:"sessions"`
	// State is state shared between replicas (state.redis).
	State State `json:"state"`
	// Gateway configures `pdp gateway` (ignored by `pdp serve`).
	Gateway Gateway `json:"gateway"`
}

// Identity configures verified identities.
type Identity struct {
	JWT JWT `json:"jwt"`
	// AllowedPeers, when not empty, are the mTLS peer identities allowed to
	// call any RPC: SPIFFE IDs ("spiffe://td/ns/x/sa/y"), SPIFFE prefixes
	// ending in "/*", or certificate subject DNs ("CN=gateway,O=acme").
	// Needs grpc.tls.client_ca_file.
	AllowedPeers []string `json:"allowed_peers"`
	// ResourceMetadata is the URL of this protected resource's RFC 9728
	// metadata, sent as resource_metadata in WWW-Authenticate challenges.
	ResourceMetadata string `json:"resource_metadata"`
}

// JWT configures bearer token verification; off unless JWKS is set.
type JWT struct {
	// JWKS is a JWKS file or an http(s) URL.
	JWKS      string   `json:"jwks"`
	Issuer    string   `json:"issuer"`
	Audiences []string `json:"audiences"`
	// Algorithms is the allow-list (default: RS*, PS*, ES*, EdDSA).
	Algorithms []string `json:"algorithms"`
	// Leeway is the clock skew allowed on exp, nbf and iat (default 30s).
	Leeway Duration `json:"leeway"`
	// RefreshInterval re-fetches a URL JWKS (default 15m);
	// MinRefreshInterval bounds refreshes triggered by unknown key ids
	// (default 10s).
	RefreshInterval    Duration `json:"refresh_interval"`
	MinRefreshInterval Duration `json:"min_refresh_interval"`
	// MaxTokenBytes refuses longer tokens before parsing (default 8192).
	MaxTokenBytes int `json:"max_token_bytes"`
}

// Enabled reports whether bearer tokens are verified.
func (j JWT) Enabled() bool { return j.JWKS != "" }

// RateLimit configures the in-memory rate limit store.
type RateLimit struct {
	// Enabled turns enforcement on. Nil means on.
	Enabled *bool `json:"enabled,omitempty"`
	// MaxKeys bounds the keys held (default 262144); idle keys are
	// dropped first, then the keys closest to a full budget.
	MaxKeys int `json:"max_keys"`
}

// On reports whether rate limits are enforced.
func (r RateLimit) On() bool { return r.Enabled == nil || *r.Enabled }

// Limits bound request input (0 means the default).
type Limits struct {
	// JSON bodies: nesting depth (default 64), values in the document
	// (default 100000), bytes of one string (default 256 KiB), members of
	// one object or array (default 10000).
	JSONMaxDepth       int `json:"json_max_depth"`
	JSONMaxElements    int `json:"json_max_elements"`
	JSONMaxStringBytes int `json:"json_max_string_bytes"`
	JSONMaxMembers     int `json:"json_max_members"`
	// Headers: how many (default 100), bytes of one value (default 8 KiB),
	// bytes in all (default 64 KiB).
	MaxHeaders          int `json:"max_headers"`
	MaxHeaderValueBytes int `json:"max_header_value_bytes"`
	MaxHeaderBytes      int `json:"max_header_bytes"`
	// MaxPathBytes bounds the request path with its query (default 8 KiB).
	MaxPathBytes int `json:"max_path_bytes"`
}

// Audit configures the decision log. With no sink set, no events are kept.
type Audit struct {
	File AuditFile `json:"file"`
	HTTP AuditHTTP `json:"http"`
	// Console writes events to standard output, for development.
	Console bool `json:"console"`
	// QueueSize bounds the events waiting to be written (default 16384);
	// MaxBlock bounds how long a decision waits for room in a full queue
	// before its event is dropped and counted (default 5ms).
	QueueSize int      `json:"queue_size"`
	MaxBlock  Duration `json:"max_block"`
	// Labels are written with every event (OPA's labels); id and version
	// are added unless set.
	Labels map[string]string `json:"labels"`
	// RetentionDays is the default retention of a record whose decision
	// has no retention_days (default 365); RetentionByClassification
	// overrides it per data classification.
	RetentionDays             int            `json:"retention_days"`
	RetentionByClassification map[string]int `json:"retention_by_classification"`
}

// AuditFile is the tamper-evident file sink.
type AuditFile struct {
	// Path names the log; segments are written next to it.
	Path string `json:"path"`
	// MaxBytes and MaxAge rotate a segment (default 64 MiB, 24h).
	MaxBytes int64    `json:"max_bytes"`
	MaxAge   Duration `json:"max_age"`
	// SigningKeyFile is an Ed25519 private key (PKCS#8 PEM) that signs
	// every checkpoint.
	SigningKeyFile string `json:"signing_key_file"`
	// Sync fsyncs after every batch of events.
	Sync bool `json:"sync"`
	// CheckpointInterval is the longest time between checkpoints while
	// events are written (default 1m).
	CheckpointInterval Duration `json:"checkpoint_interval"`
}

// AuditHTTP is the OPA decision-log compatible upload.
type AuditHTTP struct {
	URL string `json:"url"`
	// SpoolDir holds events until the collector has them (default: a
	// directory next to the file sink's log, else under the system's
	// temporary directory). SpoolMaxBytes bounds it (default 256 MiB).
	SpoolDir      string `json:"spool_dir"`
	SpoolMaxBytes int64  `json:"spool_max_bytes"`
	// MaxBatchBytes bounds one upload before compression (default 1 MiB).
	MaxBatchBytes int `json:"max_batch_bytes"`
	// BearerTokenFile holds a token sent as Authorization: Bearer.
	BearerTokenFile string `json:"bearer_token_file"`
}

// Tracing configures OpenTelemetry tracing; off unless Endpoint is set.
type Tracing struct {
	// Endpoint is the OTLP/gRPC collector's host:port.
	Endpoint string `json:"endpoint"`
	// Insecure sends spans without TLS (a collector on loopback).
	Insecure bool `json:"insecure"`
	// SampleRatio is the share of new traces sampled (default 1); a
	// parent's sampling decision is followed.
	SampleRatio *float64 `json:"sample_ratio,omitempty"`
}

// Cache configures the decision cache.
type Cache struct {
	// Enabled turns the cache on. Nil means on.
	Enabled *bool `json:"enabled,omitempty"`
	// MaxEntries and MaxBytes bound it (0 means the default: 100,000 entries,
	// 128 MiB); the oldest decisions are evicted first.
	MaxEntries int   `json:"max_entries"`
	MaxBytes   int64 `json:"max_bytes"`
	// TTL bounds how long a decision is served from the cache (default 1m).
	TTL Duration `json:"ttl"`
}

// On reports whether the decision cache is on.
func (c Cache) On() bool { return c.Enabled == nil || *c.Enabled }

// MCP configures the MCP decisions: the native API and MCP over Envoy.
type MCP struct {
	// Path is the MCP decision's entrypoint.
	Path string `json:"path"`
	// OverEnvoy decides the POSTs of ext_authz routes marked as MCP (the
	// route's mcp_server context extension, or Routes) at Path. Nil means
	// on.
	OverEnvoy *bool `json:"over_envoy,omitempty"`
	// Routes mark ext_authz routes as MCP routes where the proxy cannot
	// set the mcp_server context extension per route (Istio CUSTOM).
	Routes []MCPRoute `json:"routes,omitempty"`
	// MaxDepth bounds the nesting of MCP params and results (default 64).
	MaxDepth int `json:"max_depth"`
	// Native decides at verdict/mcp/decision without evaluating Rego when
	// the active bundles run the shipped MCP library unchanged (same
	// answers, compiled from the bundle's data at activation). Nil means on.
	Native *bool `json:"native,omitempty"`
	// DLPHashKeyFile holds the key (at least 16 bytes) of the data-loss
	// detectors' hash mode (data.mcp.dlp), so that every replica and
	// restart hashes a value the same. Empty: a random key per process.
	DLPHashKeyFile string `json:"dlp_hash_key_file,omitempty"`
}

// MCPRoute marks the requests to one host and path prefix as MCP traffic
// for one server.
type MCPRoute struct {
	// Host is the request's host without a port: "crm.internal",
	// "*.crm.internal" for its subdomains, "" for any host.
	Host string `json:"host"`
	// PathPrefix is a path in normal form ("/mcp"), matched by whole
	// segments.
	PathPrefix string `json:"path_prefix"`
	// Server names the MCP server in the policy input (input.server.name).
	Server string `json:"server"`
}

// ParseMCPRouteArg reads an --mcp-route value: "[HOST]/PATH_PREFIX=SERVER".
func ParseMCPRouteArg(arg string) (MCPRoute, error) {
	i := strings.LastIndex(arg, "=")
	j := strings.Index(arg, "/")
	if i < 0 || j < 0 || j > i {
		return MCPRoute{}, fmt.Errorf("MCP route %q is not [HOST]/PATH_PREFIX=SERVER", arg)
	}
	return MCPRoute{Host: arg[:j], PathPrefix: arg[j:i], Server: arg[i+1:]}, nil
}

func (r MCPRoute) validate() error {
	if err := checkRouteHost(r.Host); err != nil {
		return fmt.Errorf("host %q: %w", r.Host, err)
	}
	if err := checkRoutePrefix(r.PathPrefix); err != nil {
		return fmt.Errorf("path_prefix %q: %w", r.PathPrefix, err)
	}
	if r.Server == "" || len(r.Server) > 1024 || strings.IndexFunc(r.Server, func(c rune) bool { return c < 0x20 || c == 0x7f }) >= 0 {
		return fmt.Errorf("server %q: must be a name without control characters", r.Server)
	}
	return nil
}

func checkRouteHost(h string) error {
	name := strings.TrimPrefix(h, "*.")
	if h != "" && name == "" || strings.Contains(name, "*") {
		return errors.New(`"*" is allowed only as the first label ("*.example.com")`)
	}
	for _, c := range []byte(name) {
		if c <= ' ' || c >= 0x7f || strings.IndexByte(":/?#@[]\\%", c) >= 0 {
			return errors.New("must be a host name without a port")
		}
	}
	return nil
}

// checkRoutePrefix accepts paths in normal form only: a prefix with dot
// segments, escapes or path parameters would match requests in one spelling
// and not another.
func checkRoutePrefix(p string) error {
	if !strings.HasPrefix(p, "/") {
		return errors.New(`must start with "/"`)
	}
	for _, c := range []byte(p) {
		if c <= ' ' || c >= 0x7f || strings.IndexByte("%?#;\\", c) >= 0 {
			return errors.New("must be a path in normal form: no escapes, query, fragment, path parameters, spaces or control characters")
		}
	}
	for _, seg := range strings.Split(strings.TrimSuffix(p[1:], "/"), "/") {
		if p != "/" && (seg == "" || seg == "." || seg == "..") {
			return errors.New("must be a path in normal form: no empty, . or .. segments")
		}
	}
	return nil
}

// NativeEnabled reports whether the MCP library may be evaluated natively.
func (m MCP) NativeEnabled() bool { return m.Native == nil || *m.Native }

// OverEnvoyEnabled reports whether MCP over Envoy is on.
func (m MCP) OverEnvoyEnabled() bool { return m.OverEnvoy == nil || *m.OverEnvoy }

// LibraryEnabled reports whether the built-in bundles are served next to
// the configured ones.
func (c Config) LibraryEnabled() bool { return c.Library == nil || *c.Library }

// GRPC configures the gRPC listener.
type GRPC struct {
	Addr            string `json:"addr"`
	MaxRecvMsgBytes int    `json:"max_recv_msg_bytes"`
	Reflection      *bool  `json:"reflection,omitempty"`
	TLS             TLS    `json:"tls"`
}

// TLS names PEM files; ClientCAFile turns on mTLS.
type TLS struct {
	CertFile     string `json:"cert_file"`
	KeyFile      string `json:"key_file"`
	ClientCAFile string `json:"client_ca_file"`
}

// HTTP configures the admin listener.
type HTTP struct {
	Addr string `json:"addr"`
}

// Bundle is one bundle source: a directory, a .tar.gz file or an HTTP(S) URL.
type Bundle struct {
	Name    string  `json:"name"`
	Source  string  `json:"source"`
	Polling Polling `json:"polling"`
}

// IsURL reports whether the source is fetched over HTTP(S).
func (b Bundle) IsURL() bool {
	return strings.HasPrefix(b.Source, "http://") || strings.HasPrefix(b.Source, "https://")
}

// Polling bounds the delay between polls of a remote bundle.
type Polling struct {
	MinDelay Duration `json:"min_delay"`
	MaxDelay Duration `json:"max_delay"`
}

// Verification configures bundle signature checks.
type Verification struct {
	KeyID         string   `json:"key_id"`
	PublicKeyFile string   `json:"public_key_file"`
	Algorithm     string   `json:"algorithm"`
	Scope         string   `json:"scope"`
	ExcludeFiles  []string `json:"exclude_files"`
	// PublicKey is read from PublicKeyFile by Validate.
	PublicKey string `json:"-"`
}

// BundleLimits bound the cost of reading a bundle (0 means the default).
type BundleLimits struct {
	MaxCompressedBytes   int64 `json:"max_compressed_bytes"`
	MaxUncompressedBytes int64 `json:"max_uncompressed_bytes"`
	MaxFileBytes         int64 `json:"max_file_bytes"`
}

// Decision configures evaluation.
type Decision struct {
	EvalTimeout Duration `json:"eval_timeout"`
	// FailOpen allows requests when no decision can be made. Off by default.
	FailOpen bool `json:"fail_open"`
}

// ExtAuthz configures the Envoy adapter.
type ExtAuthz struct {
	Path                 string `json:"path"`
	DryRun               bool   `json:"dry_run"`
	SkipRequestBodyParse bool   `json:"skip_request_body_parse"`
	MaxBodyBytes         int    `json:"max_body_bytes"`
	// AllowDuplicateKeys accepts JSON bodies that name a member twice, the
	// last one winning, as opa-envoy-plugin does. Off by default: such
	// bodies are refused (duplicate_key), because an upstream that keeps
	// the first one acts on a value the policy never saw. MCP bodies are
	// refused either way.
	AllowDuplicateKeys bool `json:"allow_duplicate_keys"`
}

// Log configures the service log.
type Log struct {
	Level  string `json:"level"`
	Format string `json:"format"`
}

// Default returns the configuration used when nothing is given.
func Default() Config {
	return Config{
		GRPC:      GRPC{Addr: DefaultGRPCAddr},
		HTTP:      HTTP{Addr: DefaultHTTPAddr},
		ExtAuthz:  ExtAuthz{Path: DefaultExtAuthzPath},
		MCP:       MCP{Path: DefaultMCPPath},
		Log:       Log{Level: "info", Format: "text"},
		AuthZEN:   AuthZEN{Path: DefaultAuthZENPath},
		Approvals: Approvals{Path: DefaultApprovalsPath},
	}
}

// Load reads a YAML file over the defaults. Unknown keys are errors, so a
// typo does not silently fall back to a default.
// Errors name the file, line, column and key path (see checkFile).
func Load(path string) (Config, error) {
	cfg, _, err := load(path)
	return cfg, err
}

func load(path string) (Config, positions, error) {
	cfg := Default()
	raw, err := os.ReadFile(path)
	if err != nil {
		return cfg, nil, fmt.Errorf("config file %s: %w", path, err)
	}
	pos, err := checkFile(path, raw)
	var fe *fileError
	if errors.As(err, &fe) && fe.yamlSyntax && yaml.UnmarshalStrict(raw, &cfg) == nil {
		return cfg, nil, nil // the decoder reads it: no positions, no error
	}
	if err != nil {
		return cfg, nil, err
	}
	if err := yaml.UnmarshalStrict(raw, &cfg); err != nil {
		return cfg, nil, fmt.Errorf("config file %s: %w", path, err)
	}
	return cfg, pos, nil
}

// Validate checks the configuration and resolves derived values (bundle
// names, the verification key). Errors name the setting at fault.
func (c *Config) Validate() error {
	var errs []error
	if err := checkAddr(c.GRPC.Addr); err != nil {
		errs = append(errs, fmt.Errorf("grpc.addr: %w", err))
	}
	if err := checkAddr(c.HTTP.Addr); err != nil {
		errs = append(errs, fmt.Errorf("http.addr: %w", err))
	}
	if t := c.GRPC.TLS; (t.CertFile == "") != (t.KeyFile == "") {
		errs = append(errs, errors.New("grpc.tls: cert_file and key_file must be set together"))
	} else if t.ClientCAFile != "" && t.CertFile == "" {
		errs = append(errs, errors.New("grpc.tls: client_ca_file (mTLS) needs cert_file and key_file"))
	}
	if strings.TrimSpace(c.ExtAuthz.Path) == "" {
		errs = append(errs, errors.New("extauthz.path: must not be empty"))
	}
	if strings.TrimSpace(c.MCP.Path) == "" {
		errs = append(errs, errors.New("mcp.path: must not be empty"))
	}
	for i, r := range c.MCP.Routes {
		if err := r.validate(); err != nil {
			errs = append(errs, fmt.Errorf("mcp.routes[%d]: %w", i, err))
		}
	}
	if c.Cache.MaxEntries < 0 || c.Cache.MaxBytes < 0 {
		errs = append(errs, errors.New("cache: max_entries and max_bytes must not be negative"))
	}
	if c.ExtAuthz.MaxBodyBytes < 0 || c.GRPC.MaxRecvMsgBytes < 0 || c.MCP.MaxDepth < 0 {
		errs = append(errs, errors.New("size limits must not be negative"))
	}
	if l := c.Limits; l.JSONMaxDepth < 0 || l.JSONMaxElements < 0 || l.JSONMaxStringBytes < 0 || l.JSONMaxMembers < 0 ||
		l.MaxHeaders < 0 || l.MaxHeaderValueBytes < 0 || l.MaxHeaderBytes < 0 || l.MaxPathBytes < 0 || c.RateLimit.MaxKeys < 0 {
		errs = append(errs, errors.New("limits and rate_limit.max_keys must not be negative"))
	}
	errs = append(errs, c.Identity.validate(c.GRPC.TLS)...)
	errs = append(errs, c.AuthZEN.validate(c.Identity)...)
	errs = append(errs, c.ToolHive.validate()...)
	errs = append(errs, c.Approvals.validate()...)
	errs = append(errs, c.Sessions.validate()...)
	errs = append(errs, c.State.Redis.validate(c.Approvals)...)
	if a := c.Audit; a.QueueSize < 0 || a.RetentionDays < 0 || a.File.MaxBytes < 0 || a.HTTP.SpoolMaxBytes < 0 || a.HTTP.MaxBatchBytes < 0 {
		errs = append(errs, errors.New("audit: sizes and retention_days must not be negative"))
	}
	for class, days := range c.Audit.RetentionByClassification {
		if days <= 0 {
			errs = append(errs, fmt.Errorf("audit.retention_by_classification.%s: must be a positive number of days", class))
		}
	}
	if u := c.Audit.HTTP.URL; u != "" && !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		errs = append(errs, errors.New("audit.http.url: must be an http:// or https:// URL"))
	}
	if r := c.Tracing.SampleRatio; r != nil && (*r < 0 || *r > 1) {
		errs = append(errs, errors.New("tracing.sample_ratio: must be between 0 and 1"))
	}
	switch strings.ToLower(c.Log.Level) {
	case "debug", "info", "warn", "error", "":
	default:
		errs = append(errs, fmt.Errorf("log.level: %q is not one of debug, info, warn, error", c.Log.Level))
	}
	switch c.Log.Format {
	case "text", "json", "":
	default:
		errs = append(errs, fmt.Errorf("log.format: %q is not one of text, json", c.Log.Format))
	}
	seen := map[string]bool{}
	for i := range c.Bundles {
		b := &c.Bundles[i]
		if b.Source == "" {
			errs = append(errs, fmt.Errorf("bundles[%d]: source is empty", i))
			continue
		}
		if b.Name == "" {
			b.Name = deriveName(b.Source)
		}
		if seen[b.Name] {
			errs = append(errs, fmt.Errorf("bundles[%d]: name %q is used twice: name each bundle (NAME=SOURCE on the command line)", i, b.Name))
		}
		seen[b.Name] = true
		if !b.IsURL() {
			if _, err := os.Stat(b.Source); err != nil {
				errs = append(errs, fmt.Errorf("bundles[%d] (%s): %w", i, b.Name, err))
			}
		}
		if b.Polling.MaxDelay != 0 && b.Polling.MaxDelay < b.Polling.MinDelay {
			errs = append(errs, fmt.Errorf("bundles[%d]: polling.max_delay is below min_delay", i))
		}
	}
	if v := c.Verification; v != nil {
		if v.PublicKeyFile == "" {
			errs = append(errs, errors.New("bundle_verification.public_key_file: required when verification is configured"))
		} else if key, err := os.ReadFile(v.PublicKeyFile); err != nil {
			errs = append(errs, fmt.Errorf("bundle_verification.public_key_file: %w", err))
		} else {
			v.PublicKey = string(key)
		}
	}
	return errors.Join(errs...)
}

func checkAddr(addr string) error {
	if addr == "" {
		return errors.New("must not be empty")
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("%q is not host:port", addr)
	}
	return nil
}

// deriveName names a bundle after its source: the last path element without
// its archive extension.
func deriveName(source string) string {
	s := source
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		s = s[:i]
	}
	s = strings.TrimRight(s, "/")
	base := filepath.Base(filepath.FromSlash(s))
	for _, ext := range []string{".tar.gz", ".tgz"} {
		base = strings.TrimSuffix(base, ext)
	}
	if base == "" || base == "." || base == string(filepath.Separator) {
		return "bundle"
	}
	return base
}

// ParseBundleArg reads a --bundle value: "[NAME=]PATH_OR_URL".
func ParseBundleArg(arg string) Bundle {
	if i := strings.Index(arg, "="); i > 0 {
		name := arg[:i]
		if !strings.ContainsAny(name, "/\\:?&.") {
			return Bundle{Name: name, Source: arg[i+1:]}
		}
	}
	return Bundle{Source: arg}
}

func (id Identity) validate(tls TLS) []error {
	var errs []error
	if len(id.AllowedPeers) > 0 && tls.ClientCAFile == "" {
		errs = append(errs, errors.New("identity.allowed_peers: needs mTLS (grpc.tls.client_ca_file, --tls-client-ca)"))
	}
	if u := id.ResourceMetadata; u != "" && !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") {
		errs = append(errs, errors.New("identity.resource_metadata: must be an http(s) URL"))
	}
	if strings.ContainsAny(id.ResourceMetadata, "\"\\\r\n ") {
		errs = append(errs, errors.New("identity.resource_metadata: must not contain quotes, backslashes or whitespace"))
	}
	j := id.JWT
	if !j.Enabled() {
		if j.Issuer != "" || len(j.Audiences) > 0 {
			errs = append(errs, errors.New("identity.jwt: issuer and audiences need jwks (--jwks)"))
		}
		return errs
	}
	if j.Issuer == "" {
		errs = append(errs, errors.New("identity.jwt.issuer: required with jwks (--jwt-issuer)"))
	}
	if len(j.Audiences) == 0 {
		errs = append(errs, errors.New("identity.jwt.audiences: required with jwks (--jwt-audience): the URL of this protected resource (RFC 8707)"))
	}
	if j.MaxTokenBytes < 0 {
		errs = append(errs, errors.New("identity.jwt.max_token_bytes: must not be negative"))
	}
	return errs
}
