package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/verdictpdp/verdict/internal/challenge"
	"github.com/verdictpdp/verdict/internal/identity"
	"github.com/verdictpdp/verdict/internal/mcp"
	mcpv1 "github.com/verdictpdp/verdict/proto/verdict/mcp/v1"
)

// Defaults of ProxyOptions.
const (
	DefaultMaxBodyBytes    = 4 << 20
	DefaultUpstreamTimeout = 5 * time.Minute
	DefaultPath            = "/mcp"
)

// msgTimeout answers the requests of a POST the upstream did not answer
// within UpstreamTimeout.
const msgTimeout = "the MCP server did not answer in time"

// VerifyFunc verifies a bearer token (without "Bearer ") and returns the
// subject it proves, or an identity error whose message is safe to send.
type VerifyFunc func(ctx context.Context, token string) (*mcpv1.Subject, *identity.Error)

// ProxyOptions configure a Proxy.
type ProxyOptions struct {
	// Upstream is the MCP server's Streamable HTTP endpoint.
	Upstream *url.URL
	// Client calls the upstream (default: a client without a total
	// timeout; UpstreamTimeout bounds each POST).
	Client *http.Client
	// UpstreamHeaders are added to every upstream request: the gateway's
	// own credentials for the server. The client's Authorization header is
	// never forwarded.
	UpstreamHeaders http.Header
	// Path is where the gateway serves MCP (default /mcp).
	Path string
	// Verify verifies bearer tokens; nil means the gateway takes no tokens
	// and every caller is Subject.
	Verify VerifyFunc
	// Subject is the caller when Verify is nil (nil: unauthenticated).
	Subject *mcpv1.Subject
	// Metadata is the RFC 9728 document; served when Metadata.Resource is
	// set, and named in every challenge.
	Metadata ResourceMetadata
	// MaxBodyBytes bounds a client's POST body and an upstream's JSON
	// answer; MaxEventBytes one SSE event (both default 4 MiB).
	MaxBodyBytes  int64
	MaxEventBytes int
	// UpstreamTimeout bounds how long the upstream may take to answer the
	// requests of one POST (default 5m).
	UpstreamTimeout time.Duration
	// Purpose and Region are the circumstances of every request
	// (input.context).
	Purpose, Region string
	// AllowedHosts are the host names (without port) clients may address
	// the gateway by, in Host and, when sent, Origin: a browser page on
	// another site cannot reach a gateway on loopback through DNS
	// rebinding. Empty allows any host.
	AllowedHosts []string
	// MaxSessions and SessionTTL bound the session table.
	MaxSessions int
	SessionTTL  time.Duration
	Logger      *slog.Logger
}

// Proxy is the Streamable HTTP transport of the gateway: an MCP endpoint
// that decides every message with its Enforcer and relays the allowed
// ones to the upstream server.
type Proxy struct {
	e            *Enforcer
	opts         ProxyOptions
	sessions     *sessions
	metaPath     string
	metaURL      string
	metaDocument []byte
}

// NewProxy returns the proxy.
func NewProxy(e *Enforcer, opts ProxyOptions) (*Proxy, error) {
	if opts.Upstream == nil || (opts.Upstream.Scheme != "http" && opts.Upstream.Scheme != "https") || opts.Upstream.Host == "" {
		return nil, errors.New("gateway: the upstream must be an http(s) URL")
	}
	if opts.Client == nil {
		opts.Client = &http.Client{Transport: defaultTransport()}
	}
	if opts.Path == "" {
		opts.Path = DefaultPath
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.MaxEventBytes <= 0 {
		opts.MaxEventBytes = int(min(opts.MaxBodyBytes, 1<<30))
	}
	if opts.UpstreamTimeout <= 0 {
		opts.UpstreamTimeout = DefaultUpstreamTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Proxy{e: e, opts: opts, sessions: newSessions(opts.MaxSessions, opts.SessionTTL)}
	if opts.Metadata.Resource != "" {
		path, u, err := MetadataPaths(opts.Metadata.Resource)
		if err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
		p.metaPath, p.metaURL, p.metaDocument = path, u, opts.Metadata.encode()
	}
	return p, nil
}

func defaultTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 64
	return t
}

// Run forgets idle sessions until ctx ends.
func (p *Proxy) Run(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			p.sessions.sweep(now)
		}
	}
}

// ServeHTTP serves the MCP endpoint and the protected resource metadata.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == p.opts.Path:
		if !p.hostAllowed(r) {
			writeError(w, http.StatusForbidden, mcp.CodeInvalidRequest, "this gateway is not served under that host or origin")
			return
		}
	case p.metaPath != "" && (r.URL.Path == p.metaPath || r.URL.Path == WellKnownMetadata):
		p.serveMetadata(w, r)
		return
	default:
		http.NotFound(w, r)
		return
	}
	switch r.Method {
	case http.MethodPost:
		p.post(w, r)
	case http.MethodGet:
		p.get(w, r)
	case http.MethodDelete:
		p.delete(w, r)
	default:
		w.Header().Set("Allow", "GET, POST, DELETE")
		writeError(w, http.StatusMethodNotAllowed, mcp.CodeInvalidRequest, "the MCP endpoint takes POST, GET and DELETE")
	}
}

func (p *Proxy) serveMetadata(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "max-age=300")
	_, _ = w.Write(p.metaDocument)
}

// authenticate returns the caller's subject, or writes the 401 challenge.
func (p *Proxy) authenticate(w http.ResponseWriter, r *http.Request) (*mcpv1.Subject, bool) {
	if p.opts.Verify == nil {
		return p.opts.Subject, true
	}
	tok, ierr := identity.BearerToken(r.Header.Get("Authorization"))
	if ierr == nil && tok == "" {
		p.challenge(w, challenge.Unauthorized(p.metaURL, false, ""), "authentication required: send a bearer token for this server")
		return nil, false
	}
	if ierr == nil {
		var sub *mcpv1.Subject
		sub, ierr = p.opts.Verify(r.Context(), tok)
		if ierr == nil {
			return sub, true
		}
	}
	p.challenge(w, challenge.Unauthorized(p.metaURL, true, ierr.Code), "the bearer token was refused: "+ierr.Message)
	return nil, false
}

func (p *Proxy) challenge(w http.ResponseWriter, c challenge.Challenge, msg string) {
	w.Header().Set("WWW-Authenticate", c.Header)
	writeError(w, c.Status, mcp.CodeDenied, msg)
}

// post relays one client POST: decide every message, forward the allowed
// ones, check what comes back.
func (p *Proxy) post(w http.ResponseWriter, r *http.Request) {
	sub, ok := p.authenticate(w, r)
	if !ok {
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, mcp.CodeInvalidRequest, "an MCP POST carries Content-Type: application/json")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, p.opts.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, mcp.CodeInvalidRequest, fmt.Sprintf("the message is larger than %d bytes", p.opts.MaxBodyBytes))
			return
		}
		writeError(w, http.StatusBadRequest, mcp.CodeParseError, "the request body could not be read")
		return
	}
	sid := r.Header.Get("Mcp-Session-Id")
	conn, owner, ok := p.conn(w, sid, sub)
	if !ok {
		return
	}
	env, err := mcp.FromHTTP(mcp.HTTPRequest{Headers: lowerHeaders(r.Header), Body: body, BodyComplete: true, MaxDepth: p.e.MaxDepth(), Sized: true})
	if err != nil {
		var rerr *mcp.RequestError
		if !errors.As(err, &rerr) {
			rerr = &mcp.RequestError{JSONRPCCode: mcp.CodeInvalidRequest, Reason: "the request is not an MCP message"}
		}
		writeError(w, http.StatusBadRequest, rerr.JSONRPCCode, rerr.Reason)
		return
	}
	if env.FromHeaders {
		// The gateway forwards what it decided: a body, never headers alone.
		writeError(w, http.StatusBadRequest, mcp.CodeInvalidRequest, "an MCP POST to the gateway carries its JSON-RPC body")
		return
	}
	raws, err := Split(body, env.Batch)
	if err != nil || len(raws) != len(env.Messages) {
		writeError(w, http.StatusBadRequest, mcp.CodeParseError, "the JSON-RPC batch could not be split")
		return
	}
	who := Caller{
		Subject: sub, SessionID: sid, ProtocolVersion: r.Header.Get("MCP-Protocol-Version"), SourceIP: sourceIP(r),
		Purpose: p.opts.Purpose, Region: p.opts.Region,
	}
	in := p.e.Client(r.Context(), conn, who, env.Messages, raws, env.Batch)
	if in.Challenge != nil {
		p.e.Unanswered(conn, in.Calls, "refused")
		p.writeChallenge(w, in)
		return
	}
	if len(in.Forward) == 0 {
		p.answerOnly(w, &in)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), p.opts.UpstreamTimeout)
	defer cancel()
	up, err := p.upstream(ctx, r, http.MethodPost, in.Body(), sid)
	if err != nil {
		p.opts.Logger.Warn("gateway: upstream request failed", "err", redactURLError(err))
		msg := "the MCP server could not be reached"
		if ctx.Err() != nil {
			msg = msgTimeout
		}
		p.failCalls(w, conn, &in, http.StatusBadGateway, msg)
		return
	}
	defer func() { _ = up.Body.Close() }()
	p.relayAnswer(ctx, w, up, conn, &in, sid, owner)
}

// conn returns the connection state for a request on session sid: the
// session's (owned by sub) or, without a session, one for this request.
func (p *Proxy) conn(w http.ResponseWriter, sid string, sub *mcpv1.Subject) (*Conn, string, bool) {
	owner := ownerKey(sub)
	if sid == "" {
		return p.e.NewConn(), owner, true
	}
	if !validSessionID(sid) {
		writeError(w, http.StatusBadRequest, mcp.CodeInvalidRequest, "Mcp-Session-Id must be visible ASCII, at most 256 bytes")
		return nil, "", false
	}
	c, ok := p.sessions.get(sid, owner)
	if !ok {
		// Unknown, expired, or someone else's: to the caller, all the same.
		writeError(w, http.StatusNotFound, mcp.CodeInvalidRequest, "session not found: start a new session with initialize")
		return nil, "", false
	}
	return c, owner, true
}

func (p *Proxy) writeChallenge(w http.ResponseWriter, in Inbound) {
	ch := in.Challenge
	var c challenge.Challenge
	if ch.GetHttpStatus() == http.StatusForbidden {
		c = challenge.InsufficientScope(p.metaURL, ch.GetScopes(), "")
	} else {
		c = challenge.Unauthorized(p.metaURL, ch.GetError() != "", "")
	}
	w.Header().Set("WWW-Authenticate", c.Header)
	if len(in.Answers) == 0 {
		writeError(w, c.Status, mcp.CodeDenied, "authorization required")
		return
	}
	writeJSON(w, c.Status, in.AnswerBody())
}

// answerOnly answers a POST none of whose messages were forwarded.
func (p *Proxy) answerOnly(w http.ResponseWriter, in *Inbound) {
	if in.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((in.RetryAfter+time.Second-1)/time.Second)))
	}
	if len(in.Answers) > 0 {
		writeJSON(w, http.StatusOK, in.AnswerBody())
		return
	}
	writeError(w, http.StatusForbidden, mcp.CodeDenied, "the message was refused by policy")
}

// upstream sends a request to the MCP server with the client's MCP headers
// and the gateway's own credentials.
func (p *Proxy) upstream(ctx context.Context, r *http.Request, method string, body []byte, sid string) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, p.opts.Upstream.String(), rd)
	if err != nil {
		return nil, err
	}
	for k, vs := range r.Header {
		if forwardHeader(k) {
			req.Header[k] = vs
		}
	}
	if sid != "" {
		req.Header.Set("Mcp-Session-Id", sid)
	}
	for k, vs := range p.opts.UpstreamHeaders {
		req.Header[http.CanonicalHeaderKey(k)] = vs
	}
	return p.opts.Client.Do(req)
}

// forwardHeader reports whether a client header goes upstream: MCP's own
// and content negotiation, never credentials or cookies.
func forwardHeader(name string) bool {
	switch http.CanonicalHeaderKey(name) {
	case "Content-Type", "Accept", "Last-Event-Id", "Mcp-Protocol-Version", "Traceparent", "Tracestate", "User-Agent":
		return true
	}
	return strings.HasPrefix(strings.ToLower(name), "mcp-") && !strings.EqualFold(name, "Mcp-Session-Id")
}

// sessionOf authenticates a GET or DELETE and returns the session it
// names, owned by the caller; otherwise it answered (missing is the
// reason for a request without a session id).
func (p *Proxy) sessionOf(w http.ResponseWriter, r *http.Request, missing string) (string, *Conn, bool) {
	sub, ok := p.authenticate(w, r)
	if !ok {
		return "", nil, false
	}
	sid := r.Header.Get("Mcp-Session-Id")
	if sid == "" {
		writeError(w, http.StatusBadRequest, mcp.CodeInvalidRequest, missing)
		return "", nil, false
	}
	conn, _, ok := p.conn(w, sid, sub)
	return sid, conn, ok
}

// get relays the server's stream of a session (GET), checking each message.
func (p *Proxy) get(w http.ResponseWriter, r *http.Request) {
	sid, conn, ok := p.sessionOf(w, r, "a GET stream needs an Mcp-Session-Id")
	if !ok {
		return
	}
	up, err := p.upstream(r.Context(), r, http.MethodGet, nil, sid)
	if err != nil {
		p.opts.Logger.Warn("gateway: upstream stream request failed", "err", redactURLError(err))
		writeError(w, http.StatusBadGateway, CodeUnavailable, "the MCP server could not be reached")
		return
	}
	defer func() { _ = up.Body.Close() }()
	if up.StatusCode == http.StatusNotFound {
		p.sessions.remove(sid)
	}
	mt, _, _ := mime.ParseMediaType(up.Header.Get("Content-Type"))
	if up.StatusCode != http.StatusOK || mt != "text/event-stream" {
		p.relayFailure(w, up)
		return
	}
	p.relayStream(r.Context(), w, up.Body, conn, &Inbound{Calls: nil}, true)
}

// delete ends a session upstream and here.
func (p *Proxy) delete(w http.ResponseWriter, r *http.Request) {
	sid, _, ok := p.sessionOf(w, r, "DELETE needs the Mcp-Session-Id of the session to end")
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	up, err := p.upstream(ctx, r, http.MethodDelete, nil, sid)
	if err != nil {
		p.opts.Logger.Warn("gateway: upstream session delete failed", "err", redactURLError(err))
		writeError(w, http.StatusBadGateway, CodeUnavailable, "the MCP server could not be reached")
		return
	}
	defer func() { _ = up.Body.Close() }()
	if up.StatusCode < 300 || up.StatusCode == http.StatusNotFound {
		p.sessions.remove(sid)
	}
	if up.StatusCode < 300 {
		w.WriteHeader(up.StatusCode)
		return
	}
	p.relayFailure(w, up)
}

// hostAllowed checks Host and Origin against AllowedHosts.
func (p *Proxy) hostAllowed(r *http.Request) bool {
	if len(p.opts.AllowedHosts) == 0 {
		return true
	}
	if !slices.Contains(p.opts.AllowedHosts, hostname(r.Host)) {
		return false
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && slices.Contains(p.opts.AllowedHosts, hostname(u.Host))
}

// hostname is host without its port, lower case, IPv6 without brackets.
func hostname(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return strings.ToLower(strings.Trim(host, "[]"))
}

func lowerHeaders(h http.Header) map[string]string {
	out := make(map[string]string, len(h))
	for k, vs := range h {
		out[strings.ToLower(k)] = strings.Join(vs, ",")
	}
	return out
}

func sourceIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return ""
	}
	return host
}

// redactURLError keeps an upstream URL (which may carry credentials in its
// query) out of logs.
func redactURLError(err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return fmt.Errorf("%s upstream: %w", uerr.Op, uerr.Err)
	}
	return err
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(body) //nolint:gosec // JSON-RPC for MCP clients, served as application/json with nosniff: never rendered as HTML
}

// writeError answers with a JSON-RPC error without an id (the request's
// messages were not read, or not one of them is the culprit).
func writeError(w http.ResponseWriter, status, code int, msg string) {
	writeJSON(w, status, errorResponse(json.RawMessage("null"), code, msg, nil))
}
