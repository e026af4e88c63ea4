package config

import (
	"flag"
	"fmt"
	"strings"
	"time"
)

type bundleList []Bundle

func (b *bundleList) String() string {
	parts := make([]string, len(*b))
	for i, x := range *b {
		parts[i] = x.Source
	}
	return strings.Join(parts, ",")
}

func (b *bundleList) Set(v string) error {
	if strings.TrimSpace(v) == "" {
		return fmt.Errorf("empty bundle")
	}
	*b = append(*b, ParseBundleArg(v))
	return nil
}

// Flags are the serve command's flags. Bind them, parse, then Apply.
type Flags struct {
	fs         *flag.FlagSet
	ConfigFile string
	bundles    bundleList
	over       Config
	evalTO     time.Duration
	verifyKey  string
	verifyID   string
	verifyAlg  string
	verifyScp  string
	mcpNative  bool
	mcpEnvoy   bool
	mcpRoutes  routeList
	library    bool
	cacheOn    bool
	cacheTTL   time.Duration
	audiences  stringList
	peers      stringList
	jwtLeeway  time.Duration
	rateLimit  bool
	authzen    bool
	approvals  bool
	// prepare, when set, completes the configuration before it is
	// validated (`pdp gateway` applies its own flags).
	prepare func(*Config)
}

// routeList is the repeatable --mcp-route flag.
type routeList []MCPRoute

func (l *routeList) String() string {
	parts := make([]string, len(*l))
	for i, r := range *l {
		parts[i] = r.Host + r.PathPrefix + "=" + r.Server
	}
	return strings.Join(parts, ",")
}

func (l *routeList) Set(v string) error {
	r, err := ParseMCPRouteArg(v)
	if err != nil {
		return err
	}
	*l = append(*l, r)
	return nil
}

// stringList is a repeatable flag; commas also separate values.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// BindFlags registers the serve command's flags (every configuration flag)
// on fs.
func BindFlags(fs *flag.FlagSet) *Flags { return bindAll(fs) }

// BindServeFlags registers the flags of `pdp serve` on fs: every
// configuration flag.
func BindServeFlags(fs *flag.FlagSet) *Flags { return bindAll(fs) }

// policyFlags are the configuration flags that say which policy is loaded
// and how a decision is made from it, without the listeners, sinks and
// limits of a running service: what `pdp eval` and `pdp check` take.
var policyFlags = []string{
	"config", "bundle", "library",
	"extauthz-path", "mcp-path", "authzen-path",
	"mcp-native", "mcp-over-envoy", "mcp-route",
	"verification-key", "verification-key-id", "verification-alg", "verification-scope",
}

// decideFlags are the flags that change one decision, which `pdp eval`
// takes on top of policyFlags.
var decideFlags = []string{
	"eval-timeout", "fail-open", "dry-run",
	"skip-body-parse", "allow-duplicate-keys", "max-body-bytes",
	"jwks", "jwt-issuer", "jwt-audience", "jwt-leeway", "resource-metadata",
}

// BindEvalFlags registers the configuration flags of `pdp eval` on fs.
func BindEvalFlags(fs *flag.FlagSet) *Flags {
	return bindSubset(fs, append(append([]string(nil), policyFlags...), decideFlags...))
}

// BindCheckFlags registers the configuration flags of `pdp check` on fs.
func BindCheckFlags(fs *flag.FlagSet) *Flags { return bindSubset(fs, policyFlags) }

// bindSubset registers only the named configuration flags on fs; Resolve
// reads them as it does for serve.
func bindSubset(fs *flag.FlagSet, names []string) *Flags {
	all := flag.NewFlagSet(fs.Name(), flag.ContinueOnError)
	f := bindAll(all)
	f.fs = fs
	for _, n := range names {
		fl := all.Lookup(n)
		if fl == nil {
			panic("config: no flag " + n)
		}
		fs.Var(fl.Value, fl.Name, fl.Usage)
	}
	return f
}

func bindAll(fs *flag.FlagSet) *Flags {
	f := &Flags{fs: fs}
	d := Default()
	fs.StringVar(&f.ConfigFile, "config", "", "YAML configuration `file` (flags override it)")
	fs.Var(&f.bundles, "bundle", "bundle `[NAME=]PATH_OR_URL`: directory, .tar.gz or http(s) URL; repeatable (default: the built-in bundles only)")
	fs.StringVar(&f.over.GRPC.Addr, "grpc-addr", d.GRPC.Addr, "gRPC listen `address` (ext_authz, health, reflection)")
	fs.StringVar(&f.over.HTTP.Addr, "http-addr", d.HTTP.Addr, "admin HTTP listen `address` (/healthz, /readyz, /v1/status, /metrics)")
	fs.StringVar(&f.over.ExtAuthz.Path, "extauthz-path", d.ExtAuthz.Path, "decision `path` for Envoy ext_authz")
	fs.StringVar(&f.over.MCP.Path, "mcp-path", d.MCP.Path, "decision `path` for MCP (native API and MCP over Envoy)")
	fs.BoolVar(&f.mcpEnvoy, "mcp-over-envoy", true, "decide the POSTs of ext_authz routes marked as MCP (mcp_server context extension or --mcp-route) at --mcp-path")
	fs.BoolVar(&f.mcpNative, "mcp-native", true, "decide with the MCP library compiled to Go when the bundles run it unchanged (same answers; off: always evaluate the Rego)")
	fs.Var(&f.mcpRoutes, "mcp-route", "mark ext_authz requests to `[HOST]/PATH_PREFIX=SERVER` as MCP traffic for SERVER (for proxies that cannot set the mcp_server context extension, such as Istio); repeatable")
	fs.BoolVar(&f.library, "library", true, "serve the built-in bundles (the Envoy default, the MCP library) next to --bundle bundles; each gives way to a bundle claiming its roots")
	fs.BoolVar(&f.cacheOn, "cache", true, "answer repeated decisions from the in-memory decision cache")
	fs.IntVar(&f.over.Cache.MaxEntries, "cache-max-entries", 0, "most decisions the cache holds (default 100000)")
	fs.Int64Var(&f.over.Cache.MaxBytes, "cache-max-bytes", 0, "most memory (`bytes`, approximate) the cache holds (default 128 MiB)")
	fs.DurationVar(&f.cacheTTL, "cache-ttl", 0, "longest a decision is served from the cache (default 1m)")
	fs.BoolVar(&f.over.ExtAuthz.DryRun, "dry-run", false, "decide and log, but always allow")
	fs.BoolVar(&f.over.ExtAuthz.SkipRequestBodyParse, "skip-body-parse", false, "do not parse request bodies into input.parsed_body")
	fs.BoolVar(&f.over.ExtAuthz.AllowDuplicateKeys, "allow-duplicate-keys", false, "accept JSON bodies from Envoy that repeat a member name, the last one winning as in opa-envoy-plugin (default: refuse them; MCP bodies are always refused)")
	fs.IntVar(&f.over.ExtAuthz.MaxBodyBytes, "max-body-bytes", 0, "largest request body (`bytes`) accepted from Envoy (default 1 MiB)")
	fs.IntVar(&f.over.GRPC.MaxRecvMsgBytes, "max-recv-msg-bytes", 0, "largest gRPC request message (`bytes`) (default 4 MiB)")
	fs.BoolVar(&f.over.Decision.FailOpen, "fail-open", false, "allow when no decision can be made (default: deny)")
	fs.DurationVar(&f.evalTO, "eval-timeout", 0, "bound on one policy evaluation (default 1s)")
	fs.StringVar(&f.over.GRPC.TLS.CertFile, "tls-cert", "", "gRPC server certificate PEM `file`")
	fs.StringVar(&f.over.GRPC.TLS.KeyFile, "tls-key", "", "gRPC server private key PEM `file`")
	fs.StringVar(&f.over.GRPC.TLS.ClientCAFile, "tls-client-ca", "", "CA PEM `file` for client certificates (enables mTLS)")
	fs.StringVar(&f.verifyKey, "verification-key", "", "public key PEM `file` that bundle signatures must verify with")
	fs.StringVar(&f.verifyID, "verification-key-id", "default", "key `id` of the verification key")
	fs.StringVar(&f.verifyAlg, "verification-alg", "RS256", "signature `algorithm` of the verification key")
	fs.StringVar(&f.verifyScp, "verification-scope", "", "required signature `scope`")
	fs.StringVar(&f.over.PersistDir, "persist-dir", "", "`directory` keeping the last good remote bundle for restarts")
	fs.StringVar(&f.over.Audit.File.Path, "audit-file", "", "write every decision to a tamper-evident, rotated JSON-lines log named `PATH`")
	fs.StringVar(&f.over.Audit.File.SigningKeyFile, "audit-signing-key", "", "Ed25519 private key PEM `file` signing the audit log's checkpoints")
	fs.StringVar(&f.over.Audit.HTTP.URL, "audit-url", "", "upload every decision to an OPA decision-log service at `URL`")
	fs.StringVar(&f.over.Audit.HTTP.SpoolDir, "audit-spool-dir", "", "`directory` holding decisions until the --audit-url collector has them")
	fs.BoolVar(&f.over.Audit.Console, "audit-console", false, "write every decision to standard output")
	fs.StringVar(&f.over.Tracing.Endpoint, "tracing-endpoint", "", "send OpenTelemetry spans to this OTLP/gRPC `host:port` (tracing is off without it)")
	fs.BoolVar(&f.over.Tracing.Insecure, "tracing-insecure", false, "send spans to --tracing-endpoint without TLS")
	fs.StringVar(&f.over.Identity.JWT.JWKS, "jwks", "", "verify bearer tokens with the keys of this JWKS `FILE_OR_URL`")
	fs.StringVar(&f.over.Identity.JWT.Issuer, "jwt-issuer", "", "required token issuer (`iss`)")
	fs.Var(&f.audiences, "jwt-audience", "accepted token audience (`aud`): the URL of this protected resource; repeatable")
	fs.DurationVar(&f.jwtLeeway, "jwt-leeway", 0, "clock skew allowed on exp, nbf and iat (default 30s)")
	fs.Var(&f.peers, "allowed-peer", "mTLS peer `identity` allowed to call (SPIFFE ID, spiffe://td/prefix/*, or subject DN); repeatable")
	fs.StringVar(&f.over.Identity.ResourceMetadata, "resource-metadata", "", "RFC 9728 protected resource metadata `URL` sent in WWW-Authenticate challenges")
	fs.BoolVar(&f.rateLimit, "rate-limit", true, "enforce the rate_limit obligations of decisions")
	fs.IntVar(&f.over.RateLimit.MaxKeys, "rate-limit-max-keys", 0, "most rate limit keys held in memory (default 262144)")
	fs.StringVar(&f.over.Log.Level, "log-level", d.Log.Level, "log `level`: debug, info, warn, error")
	fs.StringVar(&f.over.Log.Format, "log-format", d.Log.Format, "log `format`: text or json")
	fs.BoolVar(&f.authzen, "authzen", true, "serve the OpenID AuthZEN Authorization API (on the HTTP listener unless --authzen-addr)")
	fs.StringVar(&f.over.AuthZEN.Addr, "authzen-addr", "", "serve the AuthZEN API on its own listen `address` instead of the HTTP listener")
	fs.StringVar(&f.over.AuthZEN.Path, "authzen-path", d.AuthZEN.Path, "decision `path` for AuthZEN (search rules are under its parent's search/)")
	fs.BoolVar(&f.approvals, "approvals", true, "record human approvals, just-in-time grants and quarantines (the kill switch)")
	fs.StringVar(&f.over.Approvals.Dir, "approvals-dir", "", "keep approvals, grants and quarantines in this `directory` across restarts (default: memory only)")
	fs.StringVar(&f.over.Approvals.URL, "approvals-url", "", "the approvals page's `URL` as approvers reach it (default http://<http addr>/approvals)")
	return f
}

// Resolve loads the config file (if any) and applies the flags that were set
// on the command line over it, then validates the result.
func (f *Flags) Resolve() (Config, error) {
	cfg := Default()
	var pos positions
	if f.ConfigFile != "" {
		var err error
		if cfg, pos, err = load(f.ConfigFile); err != nil {
			return cfg, err
		}
	}
	fromFile := asTree(cfg)
	f.fs.Visit(func(fl *flag.Flag) {
		switch fl.Name {
		case "bundle":
			cfg.Bundles = append([]Bundle(nil), f.bundles...)
		case "grpc-addr":
			cfg.GRPC.Addr = f.over.GRPC.Addr
		case "http-addr":
			cfg.HTTP.Addr = f.over.HTTP.Addr
		case "extauthz-path":
			cfg.ExtAuthz.Path = f.over.ExtAuthz.Path
		case "mcp-path":
			cfg.MCP.Path = f.over.MCP.Path
		case "mcp-over-envoy":
			cfg.MCP.OverEnvoy = &f.mcpEnvoy
		case "mcp-native":
			cfg.MCP.Native = &f.mcpNative
		case "mcp-route":
			cfg.MCP.Routes = append([]MCPRoute(nil), f.mcpRoutes...)
		case "library":
			cfg.Library = &f.library
		case "cache":
			cfg.Cache.Enabled = &f.cacheOn
		case "cache-max-entries":
			cfg.Cache.MaxEntries = f.over.Cache.MaxEntries
		case "cache-max-bytes":
			cfg.Cache.MaxBytes = f.over.Cache.MaxBytes
		case "jwks":
			cfg.Identity.JWT.JWKS = f.over.Identity.JWT.JWKS
		case "jwt-issuer":
			cfg.Identity.JWT.Issuer = f.over.Identity.JWT.Issuer
		case "jwt-audience":
			cfg.Identity.JWT.Audiences = append([]string(nil), f.audiences...)
		case "jwt-leeway":
			cfg.Identity.JWT.Leeway = Duration(f.jwtLeeway)
		case "allowed-peer":
			cfg.Identity.AllowedPeers = append([]string(nil), f.peers...)
		case "resource-metadata":
			cfg.Identity.ResourceMetadata = f.over.Identity.ResourceMetadata
		case "rate-limit":
			cfg.RateLimit.Enabled = &f.rateLimit
		case "rate-limit-max-keys":
			cfg.RateLimit.MaxKeys = f.over.RateLimit.MaxKeys
		case "cache-ttl":
			cfg.Cache.TTL = Duration(f.cacheTTL)
		case "dry-run":
			cfg.ExtAuthz.DryRun = f.over.ExtAuthz.DryRun
		case "skip-body-parse":
			cfg.ExtAuthz.SkipRequestBodyParse = f.over.ExtAuthz.SkipRequestBodyParse
		case "allow-duplicate-keys":
			cfg.ExtAuthz.AllowDuplicateKeys = f.over.ExtAuthz.AllowDuplicateKeys
		case "max-body-bytes":
			cfg.ExtAuthz.MaxBodyBytes = f.over.ExtAuthz.MaxBodyBytes
		case "max-recv-msg-bytes":
			cfg.GRPC.MaxRecvMsgBytes = f.over.GRPC.MaxRecvMsgBytes
		case "fail-open":
			cfg.Decision.FailOpen = f.over.Decision.FailOpen
		case "eval-timeout":
			cfg.Decision.EvalTimeout = Duration(f.evalTO)
		case "tls-cert":
			cfg.GRPC.TLS.CertFile = f.over.GRPC.TLS.CertFile
		case "tls-key":
			cfg.GRPC.TLS.KeyFile = f.over.GRPC.TLS.KeyFile
		case "tls-client-ca":
			cfg.GRPC.TLS.ClientCAFile = f.over.GRPC.TLS.ClientCAFile
		case "verification-key":
			if cfg.Verification == nil {
				cfg.Verification = &Verification{}
			}
			cfg.Verification.PublicKeyFile = f.verifyKey
		case "persist-dir":
			cfg.PersistDir = f.over.PersistDir
		case "audit-file":
			cfg.Audit.File.Path = f.over.Audit.File.Path
		case "audit-signing-key":
			cfg.Audit.File.SigningKeyFile = f.over.Audit.File.SigningKeyFile
		case "audit-url":
			cfg.Audit.HTTP.URL = f.over.Audit.HTTP.URL
		case "audit-spool-dir":
			cfg.Audit.HTTP.SpoolDir = f.over.Audit.HTTP.SpoolDir
		case "audit-console":
			cfg.Audit.Console = f.over.Audit.Console
		case "tracing-endpoint":
			cfg.Tracing.Endpoint = f.over.Tracing.Endpoint
		case "tracing-insecure":
			cfg.Tracing.Insecure = f.over.Tracing.Insecure
		case "log-level":
			cfg.Log.Level = f.over.Log.Level
		case "log-format":
			cfg.Log.Format = f.over.Log.Format
		case "authzen":
			cfg.AuthZEN.Enabled = &f.authzen
		case "authzen-addr":
			cfg.AuthZEN.Addr = f.over.AuthZEN.Addr
		case "authzen-path":
			cfg.AuthZEN.Path = f.over.AuthZEN.Path
		case "approvals":
			cfg.Approvals.Enabled = &f.approvals
		case "approvals-dir":
			cfg.Approvals.Dir = f.over.Approvals.Dir
		case "approvals-url":
			cfg.Approvals.URL = f.over.Approvals.URL
		}
	})
	if v := cfg.Verification; v != nil {
		f.fs.Visit(func(fl *flag.Flag) {
			switch fl.Name {
			case "verification-key-id":
				v.KeyID = f.verifyID
			case "verification-alg":
				v.Algorithm = f.verifyAlg
			case "verification-scope":
				v.Scope = f.verifyScp
			}
		})
	}
	if f.prepare != nil {
		f.prepare(&cfg)
	}
	final := asTree(cfg)
	return cfg, locate(cfg.Validate(), f.ConfigFile, pos, fromFile, final)
}
