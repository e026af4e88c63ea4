// Package app wires the service together: configuration → bundle sources →
// engine → adapters → listeners, and runs it until its context ends. It is
// the only package that knows every other one; none of them import it.
package app

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"

	"github.com/verdictpdp/verdict"
	"github.com/verdictpdp/verdict/internal/adapter/controlapi"
	"github.com/verdictpdp/verdict/internal/adapter/extauthz"
	"github.com/verdictpdp/verdict/internal/adapter/mcpapi"
	"github.com/verdictpdp/verdict/internal/admin"
	"github.com/verdictpdp/verdict/internal/audit"
	"github.com/verdictpdp/verdict/internal/bundle"
	"github.com/verdictpdp/verdict/internal/cache"
	"github.com/verdictpdp/verdict/internal/config"
	"github.com/verdictpdp/verdict/internal/engine"
	"github.com/verdictpdp/verdict/internal/grpcserver"
	"github.com/verdictpdp/verdict/internal/identity"
	"github.com/verdictpdp/verdict/internal/mcp"
	"github.com/verdictpdp/verdict/internal/mcpnative"
	"github.com/verdictpdp/verdict/internal/metrics"
	"github.com/verdictpdp/verdict/internal/pipeline"
	"github.com/verdictpdp/verdict/internal/source"
	"github.com/verdictpdp/verdict/internal/status"
	"github.com/verdictpdp/verdict/internal/tlsconfig"
	controlv1 "github.com/verdictpdp/verdict/proto/verdict/control/v1"
	mcpv1 "github.com/verdictpdp/verdict/proto/verdict/mcp/v1"
)

// Version is set at build time with -ldflags "-X .../internal/app.Version=...".
var Version = "dev"

// shutdownGrace bounds how long in-flight calls may finish at shutdown.
const shutdownGrace = 10 * time.Second

// NewLogger builds the service logger from the log settings.
func NewLogger(w io.Writer, c config.Log) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(strings.ToUpper(c.Level))) // validated by config; default info
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// Ready is called once the listeners are bound, with their addresses.
type Ready func(grpcAddr, httpAddr net.Addr)

// Serve runs the service until ctx ends. It returns an error when the
// configuration, a local bundle or a listener cannot be set up.
func Serve(ctx context.Context, cfg config.Config, logger *slog.Logger, ready Ready) error {
	return serve(ctx, cfg, logger, ready, nil)
}

// core is what an in-process user of a running service (`pdp gateway`)
// shares with it.
type core struct {
	mcp      *mcpapi.Server
	metrics  *metrics.Metrics
	audit    *audit.Recorder
	verifier *identity.Verifier
}

// serve is Serve, handing attach (when not nil) the service's core once it
// is built, before the listeners serve.
func serve(ctx context.Context, cfg config.Config, logger *slog.Logger, ready Ready, attach func(core)) error {
	decisions, err := newCache(cfg)
	if err != nil {
		return err
	}
	defer decisions.Close()
	eng, err := newEngine(cfg, logger, decisions)
	if err != nil {
		return err
	}

	reader := NewBundleReader(cfg)
	sources, err := buildSources(cfg, reader, logger)
	if err != nil {
		return err
	}
	registry := status.NewRegistry()
	obs, err := newObservability(ctx, cfg, eng, decisions, registry, logger)
	if err != nil {
		return err
	}
	defer func() {
		// After the servers stopped: every decision made is in the queue.
		sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		defer cancel()
		if err := obs.close(sctx); err != nil {
			logger.Error("audit log not flushed", "err", err)
		}
	}()
	mgr, err := newManager(eng, registry, logger, sources)
	if err != nil {
		return err
	}
	if err := activateLocal(ctx, sources, mgr); err != nil {
		return err
	}

	rds, err := openRedis(ctx, cfg, obs.metrics, logger)
	if err != nil {
		return err
	}
	defer rds.close()
	g, err := newGuards(ctx, cfg, rds, obs.metrics, logger)
	if err != nil {
		return err
	}
	defer g.close()
	controls, err := newControls(ctx, cfg, eng, obs, logger)
	if err != nil {
		return err
	}
	defer func() {
		// Before the audit log closes: the webhook's last deliveries and
		// the store's last writes are done.
		sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		defer cancel()
		controls.close(sctx)
	}()
	sessions, err := newSessions(cfg, rds, obs)
	if err != nil {
		return err
	}
	// The observers of final MCP decisions: session state (which policy
	// reads back as input.session) and automated containment.
	var observers mcp.Observers
	if sessions != nil {
		observers = append(observers, sessions.state)
	}
	contain := newContainment(eng, controls, obs, logger)
	if contain != nil {
		observers = append(observers, contain)
	}
	gopts := grpcserver.Options{
		MaxRecvMsgBytes: cfg.GRPC.MaxRecvMsgBytes,
		Logger:          logger,
		Reflection:      cfg.GRPC.Reflection == nil || *cfg.GRPC.Reflection,
		Unary:           []grpc.UnaryServerInterceptor{g.peers.UnaryInterceptor()},
		Stream:          []grpc.StreamServerInterceptor{g.peers.StreamInterceptor()},
	}
	files := tlsconfig.Files(cfg.GRPC.TLS)
	if files.Enabled() {
		rl, err := tlsconfig.New(files, logger)
		if err != nil {
			return err
		}
		gopts.TLS = rl.Config()
	}
	gs := grpcserver.New(gopts)
	// One pipeline for every adapter: the same cache, rate limits,
	// challenges and audit log whatever the wire protocol.
	popts := pipeline.Options{
		Limiter: g.limiter, ResourceMetadata: cfg.Identity.ResourceMetadata,
		Audit: obs.audit, Tracer: obs.tracer, Logger: logger,
	}
	if controls != nil {
		popts.Controls = controls.Controls
	}
	if len(observers) > 0 {
		popts.Observer = observers
	}
	popts.SessionsFailOpen = cfg.State.Redis.Enabled() && cfg.State.Redis.FailsOpen(config.FailOpenSessions)
	pipe := pipeline.New(eng, popts)
	opts := extauthzOptions(cfg, pipe)
	opts.Verifier = g.verifier
	authv3.RegisterAuthorizationServer(gs.Server, extauthz.NewServer(pipe, opts))
	mcpServer := mcpapi.NewServer(newMCPDecider(cfg, pipe), mcpapi.Options{
		MaxDepth: mcpMaxDepth(cfg), Verifier: g.verifier,
	})
	mcpv1.RegisterMCPPolicyServer(gs.Server, mcpServer)
	if attach != nil {
		attach(core{mcp: mcpServer, metrics: obs.metrics, audit: obs.audit, verifier: g.verifier})
	}
	registerExtMCP(gs.Server, cfg, pipe, g.verifier)
	if controls != nil && cfg.Approvals.GRPCOn() {
		controlv1.RegisterControlServiceServer(gs.Server, &controlapi.Service{
			Controls: controls.Controls, Auth: controlapi.Authenticator{Verifier: g.verifier, RequiredScope: cfg.Approvals.Scope()},
		})
	}

	var shuttingDown atomic.Bool
	var healthMu sync.Mutex
	setServing := func(serving bool) {
		healthMu.Lock()
		defer healthMu.Unlock()
		gs.SetServing(serving && !shuttingDown.Load())
	}
	eng.OnActivate(func(*engine.Snapshot) { setServing(true) })
	setServing(eng.Snapshot() != nil)

	var lc net.ListenConfig
	gl, err := lc.Listen(ctx, "tcp", cfg.GRPC.Addr)
	if err != nil {
		return fmt.Errorf("grpc listener: %w", err)
	}
	hl, err := lc.Listen(ctx, "tcp", cfg.HTTP.Addr)
	if err != nil {
		_ = gl.Close()
		return fmt.Errorf("admin listener: %w", err)
	}
	deps := admin.Deps{
		Engine: eng, Sources: registry, Cache: decisions, Audit: obs.audit, Metrics: obs.metrics.Handler(),
		Version: Version, ShuttingDown: &shuttingDown, RateLimits: g.limits, Verifier: g.verifier,
		RateLimitsShared: g.shared,
	}
	if rds != nil {
		deps.Redis = rds.health.status
	}
	if controls != nil {
		deps.Controls = controls.Controls
	}
	if sessions != nil {
		deps.Sessions, deps.SessionsShared = sessions.memory, sessions.shared != nil
	}
	hs := &http.Server{
		Handler:           admin.Handler(deps),
		ReadHeaderTimeout: 5 * time.Second,
		// A recovered handler panic is logged like everything else.
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelError),
		// Decision endpoints (AuthZEN, ToolHive) read bodies here too:
		// a client that stalls must not hold a connection for good.
		ReadTimeout: 30 * time.Second,
		IdleTimeout: 2 * time.Minute,
	}
	hs.Handler = withToolHive(cfg, pipe, logger, hs.Handler)
	if controls != nil {
		controls.setAddr(cfg, hl.Addr().String())
		mux := http.NewServeMux()
		api := &controlapi.API{Controls: controls.Controls, Auth: controlapi.Authenticator{Verifier: g.verifier, RequiredScope: cfg.Approvals.Scope()}, Logger: logger}
		api.Register(mux)
		mux.Handle("/", hs.Handler)
		hs.Handler = mux
	}
	stopAuthZEN, err := serveAuthZEN(ctx, cfg, pipe, eng, g.verifier, logger, hs)
	if err != nil {
		_, _ = gl.Close(), hl.Close()
		return err
	}
	defer stopAuthZEN()

	runCtx, stopSources := context.WithCancel(ctx)
	defer stopSources()
	var wg sync.WaitGroup
	wg.Go(func() { source.Run(runCtx, sources, mgr) })
	if controls != nil {
		wg.Go(func() { controls.Run(runCtx) })
	}
	if sessions != nil {
		wg.Go(func() { sessions.run(runCtx) })
	}
	if contain != nil {
		wg.Go(func() { contain.Run(runCtx) })
	}
	errc := make(chan error, 2)
	wg.Go(func() {
		if err := gs.Serve(gl); err != nil {
			errc <- fmt.Errorf("grpc server: %w", err)
		}
	})
	wg.Go(func() {
		if err := hs.Serve(hl); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("admin server: %w", err)
		}
	})
	logger.Info("verdict serving",
		"version", Version, "grpc", gl.Addr().String(), "http", hl.Addr().String(),
		"tls", files.Enabled(), "mtls", files.ClientCAFile != "", "decision_path", opts.Path, "mcp_path", mcpPath(cfg),
		"dry_run", cfg.ExtAuthz.DryRun, "fail_open", cfg.Decision.FailOpen, "cache", decisions.Stats().Enabled,
		"audit_sinks", len(obs.audit.Sinks()), "tracing", obs.tracer.Enabled(),
		"jwt", g.verifier != nil, "allowed_peers", len(cfg.Identity.AllowedPeers), "rate_limits", g.limiter != nil, "rate_limit_store", rateLimitStore(g))
	if ready != nil {
		ready(gl.Addr(), hl.Addr())
	}

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}

	logger.Info("shutting down")
	shuttingDown.Store(true)
	setServing(false)
	stopSources()
	done := make(chan struct{})
	go func() { gs.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(shutdownGrace):
		gs.Stop()
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	_ = hs.Shutdown(sctx)
	wg.Wait()
	return runErr
}

// newEngine returns an engine preparing the configured decision paths,
// deciding through decisions when it is not nil.
//
// The engine compiles the MCP scanners (data.mcp.dlp, the catalog's tool
// names) at every activation. The dlp hash mode is keyed by
// mcp.dlp_hash_key_file, else by a random key made at start (a hashed
// value is then stable within one process only).
func newEngine(cfg config.Config, logger *slog.Logger, decisions *cache.Cache) (*engine.Engine, error) {
	optional := []string{audit.MaskPath, audit.DropPath}
	if p := approvalsPath(cfg); p != "" { // "" while approvals are off
		optional = append(optional, p)
	}
	eng, err := engine.New(engine.Deps{
		Logger:      logger,
		Entrypoints: []string{cfg.ExtAuthz.Path, cfg.MCP.Path},
		Optional:    append(optional, authzenEntrypoints(cfg)...),
		EvalTimeout: time.Duration(cfg.Decision.EvalTimeout),
		Cache:       decisions,
		// The native evaluator answers only the library's own entrypoint;
		// an MCP path elsewhere is evaluated in Rego.
		Natives:       map[string]engine.Native{mcpnative.Entrypoint: mcpnative.Builtin()},
		DisableNative: !cfg.MCP.NativeEnabled(),
	})
	if err != nil {
		return nil, err
	}
	key, err := dlpHashKey(cfg)
	if err != nil {
		return nil, err
	}
	mcp.RegisterComponents(eng, key)
	// data.mcp.containment too: pdp check and pdp eval refuse rules that
	// serve would.
	addContainment(cfg, eng, logger)
	return eng, nil
}

// minDLPHashKey is the shortest key mcp.dlp_hash_key_file may hold.
const minDLPHashKey = 16

// dlpHashKey reads mcp.dlp_hash_key_file, or makes a random key when it
// is not set. The key is never logged.
func dlpHashKey(cfg config.Config) ([]byte, error) {
	if cfg.MCP.DLPHashKeyFile == "" {
		return mcp.NewHashKey(), nil
	}
	raw, err := os.ReadFile(cfg.MCP.DLPHashKeyFile)
	if err != nil {
		return nil, fmt.Errorf("mcp.dlp_hash_key_file: %w", err)
	}
	key := bytes.TrimSpace(raw)
	if len(key) < minDLPHashKey {
		return nil, fmt.Errorf("mcp.dlp_hash_key_file: the key has %d bytes, want at least %d", len(key), minDLPHashKey)
	}
	return key, nil
}

// newCache returns the decision cache, or nil when it is off.
func newCache(cfg config.Config) (*cache.Cache, error) {
	if !cfg.Cache.On() {
		return nil, nil
	}
	return cache.New(cache.Limits{
		MaxEntries: cfg.Cache.MaxEntries,
		MaxBytes:   cfg.Cache.MaxBytes,
		TTL:        time.Duration(cfg.Cache.TTL),
	})
}

func mcpPath(cfg config.Config) string {
	path, _ := engine.NormalizeEntrypoint(cfg.MCP.Path) // validated by engine.New
	return path
}

// newMCPDecider returns the MCP decider on p: with the pipeline's
// controls and observers (session state, containment).
func newMCPDecider(cfg config.Config, p *pipeline.Pipeline) *mcp.Decider {
	return mcp.NewDecider(p, mcpPath(cfg), cfg.Decision.FailOpen)
}

func newMCPServer(cfg config.Config, p *pipeline.Pipeline) *mcpapi.Server {
	return mcpapi.NewServer(newMCPDecider(cfg, p), mcpapi.Options{MaxDepth: mcpMaxDepth(cfg)})
}

// extauthzOptions maps the configuration onto the Envoy adapter's options.
func extauthzOptions(cfg config.Config, p *pipeline.Pipeline) extauthz.Options {
	path, _ := engine.NormalizeEntrypoint(cfg.ExtAuthz.Path) // validated by engine.New
	opts := extauthz.Options{
		Path:     path,
		DryRun:   cfg.ExtAuthz.DryRun,
		FailOpen: cfg.Decision.FailOpen,
		Input: extauthz.InputOptions{
			SkipBodyParse:      cfg.ExtAuthz.SkipRequestBodyParse,
			MaxBodyBytes:       cfg.ExtAuthz.MaxBodyBytes,
			AllowDuplicateKeys: cfg.ExtAuthz.AllowDuplicateKeys,
		},
	}
	inputLimits(cfg, &opts.Input)
	if cfg.MCP.OverEnvoyEnabled() {
		opts.MCP = &extauthz.MCPOptions{Decider: newMCPDecider(cfg, p), MaxDepth: mcpMaxDepth(cfg)}
		for _, r := range cfg.MCP.Routes {
			opts.MCP.Routes = append(opts.MCP.Routes, extauthz.MCPRoute{Host: r.Host, PathPrefix: r.PathPrefix, Server: r.Server})
		}
	}
	return opts
}

// newManager returns the bundle manager. The built-in bundles are optional:
// each gives way to a user bundle claiming its roots, and the other keeps
// serving.
func newManager(eng *engine.Engine, reg *status.Registry, logger *slog.Logger, sources []source.Source) (*source.Manager, error) {
	mgr, err := source.NewManager(eng, reg, logger, sources)
	if err != nil {
		return nil, err
	}
	for _, s := range sources {
		if strings.HasPrefix(s.Location(), builtinLocation) {
			mgr.MarkOptional(s.Name())
		}
	}
	return mgr, nil
}

// builtinLocation prefixes the location of the bundles compiled into the
// binary.
const builtinLocation = "built-in:"

// NewBundleReader returns a bundle reader with the configured limits and
// signature verification.
func NewBundleReader(cfg config.Config) *bundle.Reader {
	var v *bundle.Verification
	if c := cfg.Verification; c != nil {
		v = &bundle.Verification{KeyID: c.KeyID, PublicKey: c.PublicKey, Algorithm: c.Algorithm, Scope: c.Scope, Exclude: c.ExcludeFiles}
	}
	return bundle.NewReader(bundle.Limits(cfg.BundleLimits), v)
}

func buildSources(cfg config.Config, reader *bundle.Reader, logger *slog.Logger) ([]source.Source, error) {
	out := make([]source.Source, 0, len(cfg.Bundles)+2)
	if len(cfg.Bundles) == 0 || cfg.LibraryEnabled() {
		// The built-in bundles are compiled into the binary and trusted as
		// such: they are read without signature verification. A user bundle
		// of the same name replaces one.
		builtin := bundle.NewReader(bundle.Limits(cfg.BundleLimits), nil)
		fss := verdict.DefaultBundles()
		for _, name := range slices.Sorted(maps.Keys(fss)) {
			if slices.ContainsFunc(cfg.Bundles, func(b config.Bundle) bool { return b.Name == name }) {
				continue
			}
			out = append(out, source.NewStatic(name, builtinLocation+name, fss[name], builtin))
		}
	}
	if len(cfg.Bundles) == 0 {
		return out, nil
	}
	store := bundle.NewStore(cfg.PersistDir)
	for _, b := range cfg.Bundles {
		if b.IsURL() {
			out = append(out, source.NewHTTP(b.Name, b.Source, source.HTTPOptions{
				MinDelay: time.Duration(b.Polling.MinDelay),
				MaxDelay: time.Duration(b.Polling.MaxDelay),
			}, reader, store, logger))
			continue
		}
		out = append(out, source.NewFile(b.Name, b.Source, reader, logger))
	}
	return out, nil
}

// loader is a source that can be read synchronously at start.
type loader interface {
	Load() (*bundle.Bundle, error)
}

// activateLocal reads every local bundle before the listeners open, so that
// an unreadable bundle or a policy that does not compile stops the start
// with a message naming it, instead of a service that never gets ready.
func activateLocal(ctx context.Context, sources []source.Source, mgr *source.Manager) error {
	for _, s := range sources {
		l, ok := s.(loader)
		if !ok {
			continue
		}
		b, err := l.Load()
		if err != nil {
			return fmt.Errorf("bundle %s: %w", s.Name(), err)
		}
		if err := mgr.Update(ctx, s.Name(), b); err != nil {
			return fmt.Errorf("bundle %s: %w", s.Name(), err)
		}
	}
	return nil
}

// rateLimitStore names where rate limits are kept, for the start log.
func rateLimitStore(g *guards) string {
	switch {
	case g.limiter == nil:
		return "off"
	case g.shared:
		return "redis"
	}
	return "memory"
}
