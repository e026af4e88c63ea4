package app

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/verdictpdp/verdict/internal/adapter/authzen"
	"github.com/verdictpdp/verdict/internal/config"
	"github.com/verdictpdp/verdict/internal/engine"
	"github.com/verdictpdp/verdict/internal/guard"
	"github.com/verdictpdp/verdict/internal/identity"
	"github.com/verdictpdp/verdict/internal/mcp"
	"github.com/verdictpdp/verdict/internal/pipeline"
)

// authzenPath is authzen.path in canonical form ("" when AuthZEN is off).
func authzenPath(cfg config.Config) string {
	if !cfg.AuthZEN.On() {
		return ""
	}
	path, err := engine.NormalizeEntrypoint(cfg.AuthZEN.Path)
	if err != nil {
		return cfg.AuthZEN.Path // engine.New refuses it, naming it
	}
	return path
}

// authzenEntrypoints are the AuthZEN decision and search entrypoints. The
// engine prepares them only when the active policy defines them, so a
// service that serves no AuthZEN policy reports no undefined entrypoint.
func authzenEntrypoints(cfg config.Config) []string {
	path := authzenPath(cfg)
	if path == "" {
		return nil
	}
	return append([]string{path}, authzen.SearchPaths(path)...)
}

// serveAuthZEN adds the AuthZEN API to the HTTP listener's handler, or,
// when authzen.addr is set, serves it on a listener of its own (without
// the admin endpoints) until the returned function is called.
func serveAuthZEN(ctx context.Context, cfg config.Config, p *pipeline.Pipeline, obs mcp.Observer, eng *engine.Engine, v *identity.Verifier, logger *slog.Logger, hs *http.Server) (stop func(), err error) {
	stop = func() {}
	if !cfg.AuthZEN.On() {
		return stop, nil
	}
	a := cfg.AuthZEN
	l := cfg.Limits
	opts := authzen.Options{
		Path:    authzenPath(cfg),
		BaseURL: a.BaseURL,
		JSON: guard.JSONLimits{
			MaxBytes: a.MaxBodyBytes, MaxDepth: l.JSONMaxDepth, MaxElements: l.JSONMaxElements,
			MaxStringBytes: l.JSONMaxStringBytes, MaxMembers: l.JSONMaxMembers,
		},
		MaxEvaluations: a.MaxEvaluations,
		MaxPageSize:    a.MaxPageSize,
		MaxCandidates:  a.MaxCandidates,
		MCPMaxDepth:    mcpMaxDepth(cfg),
		Verifier:       v,
		RequireToken:   a.RequireToken,
		RequiredScope:  a.RequiredScope,
		Defines: func(path string) bool {
			snap := eng.Snapshot()
			return snap != nil && snap.Defines(path)
		},
		Logger: logger,
	}
	if a.MCPOn() {
		opts.MCP = newMCPDecider(cfg, p, obs)
		opts.Catalog = func(ctx context.Context, server, member string) ([]string, bool) {
			snap := eng.Snapshot()
			if snap == nil {
				return nil, false
			}
			return snap.Keys(ctx, "mcp", "servers", server, member)
		}
	}
	srv := authzen.NewServer(p, opts)
	if addr := cmp.Or(a.Addr, cfg.HTTP.Addr); !a.RequireToken && !loopback(addr) {
		// Whoever reaches the API asks about any subject, and searches.
		logger.Warn("the AuthZEN API is served beyond loopback without authzen.require_token: allow only your PEPs to reach it, or require their tokens",
			"addr", addr)
	}
	if a.Addr == "" {
		mux := http.NewServeMux()
		mux.Handle("/", hs.Handler)
		srv.Register(mux)
		hs.Handler = mux
		logger.Info("authzen serving on the HTTP listener", "path", authzenPath(cfg), "require_token", a.RequireToken)
		return stop, nil
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", a.Addr)
	if err != nil {
		return stop, fmt.Errorf("authzen listener: %w", err)
	}
	as := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := as.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("authzen server stopped", "err", err)
		}
	})
	logger.Info("authzen serving", "addr", ln.Addr().String(), "path", authzenPath(cfg), "require_token", a.RequireToken)
	return func() {
		sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		defer cancel()
		_ = as.Shutdown(sctx)
		wg.Wait()
	}, nil
}
