package app

import (
	"log/slog"
	"net"
	"net/http"

	"github.com/verdictpdp/verdict/internal/adapter/toolhive"
	"github.com/verdictpdp/verdict/internal/config"
	"github.com/verdictpdp/verdict/internal/guard"
	"github.com/verdictpdp/verdict/internal/mcp"
	"github.com/verdictpdp/verdict/internal/pipeline"
)

// withToolHive serves ToolHive's httpv1 authorizer at
// POST <toolhive.path_prefix>/decision next to the admin endpoints of h,
// unless toolhive.enabled is off.
func withToolHive(cfg config.Config, p *pipeline.Pipeline, obs mcp.Observer, logger *slog.Logger, h http.Handler) http.Handler {
	t := cfg.ToolHive
	if !t.On() {
		return h
	}
	l := cfg.Limits
	th := toolhive.NewHandler(newMCPDecider(cfg, p, obs), toolhive.Options{
		MaxBodyBytes: t.MaxBodyBytes,
		JSON: guard.JSONLimits{
			MaxElements: l.JSONMaxElements, MaxStringBytes: l.JSONMaxStringBytes, MaxMembers: l.JSONMaxMembers,
		},
		MaxDepth:         mcpMaxDepth(cfg),
		ListsWithoutArgs: t.ListsWithoutArgs(),
	})
	mux := http.NewServeMux()
	mux.Handle(t.PathPrefix+toolhive.DecisionPath, th)
	mux.Handle("/", h)
	mode := config.CallsWithoutArgsCall
	if t.ListsWithoutArgs() {
		mode = config.CallsWithoutArgsList
	}
	logger.Info("serving ToolHive's httpv1 authorizer", "path", t.PathPrefix+toolhive.DecisionPath, "calls_without_args", mode)
	if !loopback(cfg.HTTP.Addr) {
		// Whoever reaches the endpoint asserts any principal, as ToolHive
		// does, and spends that principal's rate limits.
		logger.Warn("the ToolHive endpoint is served beyond loopback: allow only ToolHive to reach it, or set toolhive.enabled: false",
			"addr", cfg.HTTP.Addr, "path", t.PathPrefix+toolhive.DecisionPath)
	}
	return mux
}

// loopback reports whether addr listens on loopback only.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
