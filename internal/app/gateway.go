package app

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/verdictpdp/verdict/internal/audit"
	"github.com/verdictpdp/verdict/internal/config"
	"github.com/verdictpdp/verdict/internal/gateway"
	"github.com/verdictpdp/verdict/internal/identity"
	"github.com/verdictpdp/verdict/internal/mcp"
	"github.com/verdictpdp/verdict/internal/metrics"
	"github.com/verdictpdp/verdict/internal/pipeline"
	mcpv1 "github.com/verdictpdp/verdict/proto/verdict/mcp/v1"
)

const gatewayUsage = `Usage:
  pdp gateway [flags] --server NAME --upstream URL     proxy an MCP server over Streamable HTTP
  pdp gateway [flags] --server NAME --stdio -- COMMAND [ARGS...]
                                                       wrap a local MCP server launched over stdio

Every client message is decided before it is forwarded; list results are
filtered and tool, resource and prompt results checked before the client
sees them. The decision core runs in this process (with every pdp serve
flag: --bundle, --config, ...) unless --pdp names a remote Verdict.

Flags:
`

// gatewayPath is the audit path of the gateway's message records.
const gatewayPath = "verdict/gateway"

func cmdGateway(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pdp gateway", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, gatewayUsage); fs.PrintDefaults() }
	flags, gflags := config.BindGatewayFlags(fs)
	if err := config.ParseArgsAndEnv(fs, args); err != nil {
		return 2
	}
	command := fs.Args()
	if !gflags.Stdio && len(command) > 0 {
		fmt.Fprintf(stderr, "pdp gateway: unexpected argument %q (a server command needs --stdio -- COMMAND)\n", command[0])
		return 2
	}
	if gflags.Stdio && len(command) == 0 {
		fmt.Fprintln(stderr, "pdp gateway: --stdio needs the server command after --")
		return 2
	}
	explicit := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
	cfg, err := flags.Resolve()
	if err == nil {
		if gflags.Stdio {
			stdioDefaults(&cfg, explicit)
		}
		err = cfg.ValidateGateway(gflags.Stdio)
	}
	if err == nil && cfg.Gateway.PDP.Addr != "" && auditConfigured(cfg.Audit) {
		err = errors.New("audit: a gateway asking a remote Verdict (gateway.pdp) writes no audit log of its own: the decisions are audited by that Verdict; remove the audit settings")
	}
	if err == nil && gflags.Stdio && cfg.Audit.Console {
		err = errors.New("audit.console: a stdio gateway's standard output is the MCP stream: log decisions to a file or a collector")
	}
	if err != nil {
		fmt.Fprintf(stderr, "pdp gateway: invalid configuration:\n%v\n", err)
		return 1
	}
	logger := NewLogger(stderr, cfg.Log)
	run := func(ctx context.Context, gw *gatewayDeps) error {
		if gflags.Stdio {
			return runStdio(ctx, cfg, gw, command, logger, stdioStreams{in: os.Stdin, out: stdout, err: stderr})
		}
		return runHTTPGateway(ctx, cfg, gw, logger)
	}
	if err := withDecider(ctx, cfg, logger, run); err != nil {
		logger.Error("pdp gateway failed", "err", err)
		fmt.Fprintf(stderr, "pdp gateway: %v\n", err)
		return exitCode(err)
	}
	return 0
}

func auditConfigured(a config.Audit) bool {
	return a.Console || a.File.Path != "" || a.HTTP.URL != ""
}

// stdioDefaults: a stdio gateway is launched by a client, often several at
// once: its own listeners take free loopback ports unless set.
func stdioDefaults(cfg *config.Config, explicit map[string]bool) {
	if !explicit["grpc-addr"] && cfg.GRPC.Addr == config.Default().GRPC.Addr {
		cfg.GRPC.Addr = "127.0.0.1:0"
	}
	if !explicit["http-addr"] && cfg.HTTP.Addr == config.Default().HTTP.Addr {
		cfg.HTTP.Addr = "127.0.0.1:0"
	}
}

// gatewayDeps are what the gateway uses of a decision core, local or
// remote.
type gatewayDeps struct {
	decider  gateway.Decider
	metrics  *metrics.Metrics
	audit    *audit.Recorder
	verifier *identity.Verifier
}

// withDecider runs fn with the decision core: started in this process, or
// a connection to the remote Verdict of gateway.pdp. The core outlives fn,
// so the gateway's last messages are decided and audited.
func withDecider(ctx context.Context, cfg config.Config, logger *slog.Logger, fn func(context.Context, *gatewayDeps) error) error {
	if cfg.Gateway.PDP.Addr != "" {
		return withRemote(ctx, cfg, logger, fn)
	}
	coreCtx, stopCore := context.WithCancel(context.WithoutCancel(ctx))
	defer stopCore()
	cores := make(chan core, 1)
	served := make(chan error, 1)
	go func() { served <- serve(coreCtx, cfg, logger, nil, func(c core) { cores <- c }) }()
	var c core
	select {
	case c = <-cores:
	case err := <-served:
		if err == nil {
			err = errors.New("the decision core stopped before it started")
		}
		return err
	}
	err := fn(ctx, &gatewayDeps{decider: c.mcp, metrics: c.metrics, audit: c.audit, verifier: c.verifier})
	stopCore()
	if serr := <-served; err == nil {
		err = serr
	}
	return err
}

// withRemote runs fn asking the remote Verdict of gateway.pdp, with the
// gateway's own metrics on the HTTP listener.
func withRemote(ctx context.Context, cfg config.Config, logger *slog.Logger, fn func(context.Context, *gatewayDeps) error) error {
	creds, err := pdpCredentials(cfg.Gateway.PDP)
	if err != nil {
		return err
	}
	conn, err := grpc.NewClient(cfg.Gateway.PDP.Addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return fmt.Errorf("gateway.pdp: %w", err)
	}
	defer func() { _ = conn.Close() }()
	v, err := newVerifier(ctx, cfg, logger)
	if err != nil {
		return err
	}
	if v != nil {
		defer v.Close()
	}
	m := metrics.New(metrics.Sources{Log: logger})
	var lc net.ListenConfig
	hl, err := lc.Listen(ctx, "tcp", cfg.HTTP.Addr)
	if err != nil {
		return fmt.Errorf("admin listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.Handler())
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = hs.Serve(hl) }()
	defer func() { _ = hs.Close() }()
	return fn(ctx, &gatewayDeps{decider: gateway.Remote(mcpv1.NewMCPPolicyClient(conn)), metrics: m, verifier: v})
}

// pdpCredentials are the transport credentials for the remote Verdict:
// TLS with ca_file (and the client certificate for mTLS), else plaintext
// (validated to be loopback only).
func pdpCredentials(p config.PDPClient) (credentials.TransportCredentials, error) {
	if p.CAFile == "" {
		return insecure.NewCredentials(), nil
	}
	pem, err := os.ReadFile(p.CAFile)
	if err != nil {
		return nil, fmt.Errorf("gateway.pdp.ca_file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errors.New("gateway.pdp.ca_file: no PEM certificate in it")
	}
	tc := &tls.Config{RootCAs: pool, ServerName: p.ServerName, MinVersion: tls.VersionTLS12}
	if p.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(p.CertFile, p.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("gateway.pdp: client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return credentials.NewTLS(tc), nil
}

// newEnforcer builds the gateway's enforcer with its audit and metrics.
func newEnforcer(cfg config.Config, gw *gatewayDeps, logger *slog.Logger) (*gateway.Enforcer, error) {
	return gateway.New(gw.decider, gateway.Options{
		Server:   cfg.Gateway.Server,
		MaxDepth: mcpMaxDepth(cfg),
		Logger:   logger,
		Observer: &messageLog{metrics: gw.metrics, audit: gw.audit},
	})
}

// runHTTPGateway serves the Streamable HTTP proxy until ctx ends.
func runHTTPGateway(ctx context.Context, cfg config.Config, gw *gatewayDeps, logger *slog.Logger) error {
	e, err := newEnforcer(cfg, gw, logger)
	if err != nil {
		return err
	}
	g := cfg.Gateway
	upstream, err := url.Parse(g.Upstream)
	if err != nil {
		return fmt.Errorf("gateway.upstream: %w", err)
	}
	headers, err := upstreamHeaders(g.UpstreamHeaders)
	if err != nil {
		return err
	}
	opts := gateway.ProxyOptions{
		Upstream: upstream, UpstreamHeaders: headers, Path: g.Path, Subject: subjectProto(g.Subject),
		Metadata: gateway.ResourceMetadata{
			Resource: g.Resource, AuthorizationServers: g.AuthorizationServers, ScopesSupported: g.ScopesSupported,
		},
		MaxBodyBytes: g.MaxMessageBytes, UpstreamTimeout: time.Duration(g.UpstreamTimeout),
		MaxSessions: g.MaxSessions, SessionTTL: time.Duration(g.SessionTTL), Logger: logger,
		Purpose: g.Purpose, Region: g.Region, AllowedHosts: allowedHosts(g),
	}
	if gw.verifier != nil {
		opts.Verify = verifyWith(gw.verifier)
	}
	proxy, err := gateway.NewProxy(e, opts)
	if err != nil {
		return err
	}
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", g.Listen)
	if err != nil {
		return fmt.Errorf("gateway listener: %w", err)
	}
	hs := &http.Server{
		Handler:           proxy,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelError),
	}
	var wg sync.WaitGroup
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	wg.Go(func() { proxy.Run(runCtx) })
	errc := make(chan error, 1)
	wg.Go(func() {
		if err := hs.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	})
	logger.Info("verdict gateway serving", "listen", l.Addr().String(), "path", g.Path, "server", g.Server,
		"upstream", upstream.Scheme+"://"+upstream.Host+upstream.EscapedPath(), "pdp", pdpName(g), "tokens", gw.verifier != nil, "resource", g.Resource)
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	stop()
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	_ = hs.Shutdown(sctx)
	wg.Wait()
	return runErr
}

// allowedHosts are the names clients may reach a loopback gateway by: the
// loopback names and its public resource URL's host, against DNS
// rebinding. A gateway on another interface accepts any host (proxies,
// service names and probes reach it by names it cannot know).
func allowedHosts(g config.Gateway) []string {
	if !loopback(g.Listen) {
		return nil
	}
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	if u, err := url.Parse(g.Resource); err == nil && u.Host != "" {
		hosts = append(hosts, strings.ToLower(u.Hostname()))
	}
	return hosts
}

func pdpName(g config.Gateway) string {
	if g.PDP.Addr == "" {
		return "in process"
	}
	return g.PDP.Addr
}

// upstreamHeaders reads the gateway's credentials for the upstream.
func upstreamHeaders(hs []config.UpstreamHeader) (http.Header, error) {
	out := http.Header{}
	for i, h := range hs {
		var v string
		if h.ValueFile != "" {
			raw, err := os.ReadFile(h.ValueFile)
			if err != nil {
				return nil, fmt.Errorf("gateway.upstream_headers[%d].value_file: %w", i, err)
			}
			v = strings.TrimSpace(string(raw))
		} else {
			v = os.Getenv(h.ValueEnv)
			if v == "" {
				return nil, fmt.Errorf("gateway.upstream_headers[%d].value_env: %s is not set", i, h.ValueEnv)
			}
		}
		if strings.ContainsAny(v, "\r\n") {
			return nil, fmt.Errorf("gateway.upstream_headers[%d]: the value holds a line break", i)
		}
		out.Add(h.Name, v)
	}
	return out, nil
}

// verifyWith verifies tokens as the native API does and maps the verified
// subject to the proto the gateway sends.
func verifyWith(v *identity.Verifier) gateway.VerifyFunc {
	return func(ctx context.Context, token string) (*mcpv1.Subject, *identity.Error) {
		res := v.Verify(ctx, token)
		if !res.Authenticated {
			if res.Err != nil {
				return nil, res.Err
			}
			return nil, &identity.Error{Code: identity.CodeTokenMalformed, Message: "the token is not valid"}
		}
		s := mcp.SubjectFromResult(res)
		// Decoded JSON (numbers as json.Number) always converts.
		claims, err := structpb.NewStruct(s.Claims)
		if err != nil {
			return nil, &identity.Error{Code: identity.CodeTokenMalformed, Message: "the token's claims cannot be carried"}
		}
		return &mcpv1.Subject{
			Id: s.ID, Roles: s.Roles, Groups: s.Groups, Scopes: s.Scopes,
			Tenant: s.Tenant, Clearance: s.Clearance, Claims: claims,
		}, nil
	}
}

func subjectProto(s *config.GatewaySubject) *mcpv1.Subject {
	if s == nil {
		return nil
	}
	return &mcpv1.Subject{Id: s.ID, Roles: s.Roles, Groups: s.Groups, Scopes: s.Scopes, Tenant: s.Tenant, Clearance: s.Clearance}
}

// messageLog records every message the gateway handled: a metric, and an
// audit event linked to its decision.
type messageLog struct {
	metrics *metrics.Metrics
	audit   *audit.Recorder
}

func (l *messageLog) Message(r *gateway.Record) {
	l.metrics.ObserveGatewayMessage(r.Direction, r.Method, r.Action)
	if l.audit == nil || !l.audit.Enabled() {
		return
	}
	l.audit.Record(&audit.Entry{
		DecisionID: pipeline.NewDecisionID(),
		Time:       time.Now(),
		Kind:       audit.KindGateway,
		Path:       gatewayPath,
		Decision:   audit.Message,
		Subject:    r.Subject,
		Request:    &audit.Request{Method: r.Method},
		Gateway: &audit.GatewayEvent{
			Direction: r.Direction, Type: r.Kind, ID: r.ID, Action: r.Action,
			Decision: r.DecisionID, Reasons: r.Reasons, Session: sessionDigest(r.Session),
		},
	})
}

// sessionDigest names a session in the audit log without its id, which
// works as a credential for the session.
func sessionDigest(id string) string {
	if id == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:8])
}

// runStdio wraps the server command, speaking MCP over this process's
// standard input and output, until the client closes its side or the
// server exits.
func runStdio(ctx context.Context, cfg config.Config, gw *gatewayDeps, command []string, logger *slog.Logger, streams stdioStreams) error {
	e, err := newEnforcer(cfg, gw, logger)
	if err != nil {
		return err
	}
	// One process is one session: flow rules (input.session) follow what
	// this client did since it launched the server.
	caller := gateway.Caller{
		Subject: subjectProto(cfg.Gateway.Subject), SessionID: "stdio-" + uuid.NewString(),
		Purpose: cfg.Gateway.Purpose, Region: cfg.Gateway.Region,
	}
	logger.Info("verdict gateway wrapping a stdio server", "server", cfg.Gateway.Server, "command", command[0], "pdp", pdpName(cfg.Gateway))
	s := &gateway.Stdio{
		Enforcer: e, Command: command, Caller: caller, Logger: logger,
		MaxLineBytes: int(cfg.Gateway.MaxMessageBytes),
	}
	return s.Run(ctx, streams.in, streams.out, streams.err)
}

// stdioStreams are the client's side of a stdio gateway.
type stdioStreams struct {
	in       io.Reader
	out, err io.Writer
}

// exitCode is the gateway's exit status for err: a wrapped server's own
// non-zero status, else 1.
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() > 0 {
		return ee.ExitCode()
	}
	return 1
}
