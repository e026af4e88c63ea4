// Package authzen is the HTTP adapter for the OpenID AuthZEN Authorization
// API 1.0: access evaluation (one and many), subject, resource and action
// search, and the PDP metadata document. It maps AuthZEN requests onto a
// policy input ({subject, action, resource, context}), asks the shared
// decision pipeline (cache, policy, audit) and maps the answers back.
//
// It holds no policy logic and never imports the Envoy or MCP types. A
// request the API refuses gets a 4xx with a JSON body {"error", "code"};
// a decision the policy cannot give is a 500 (or an error in the item of
// an evaluations request), never an allow.
package authzen

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/verdictpdp/verdict/internal/audit"
	"github.com/verdictpdp/verdict/internal/challenge"
	"github.com/verdictpdp/verdict/internal/guard"
	"github.com/verdictpdp/verdict/internal/identity"
	"github.com/verdictpdp/verdict/internal/mcp"
	"github.com/verdictpdp/verdict/internal/pipeline"
)

// DefaultPath is the decision entrypoint of the AuthZEN Todo bundle.
const DefaultPath = "authzen/decision"

// Defaults of the limits in Options.
const (
	DefaultMaxBodyBytes   = 1 << 20
	DefaultMaxEvaluations = 100
	DefaultMaxPageSize    = 100
	DefaultMaxCandidates  = 1000
)

// The API's paths (the HTTPS binding's defaults).
const (
	PathEvaluation     = "/access/v1/evaluation"
	PathEvaluations    = "/access/v1/evaluations"
	PathSearchSubject  = "/access/v1/search/subject"
	PathSearchResource = "/access/v1/search/resource"
	PathSearchAction   = "/access/v1/search/action"
	PathMetadata       = "/.well-known/authzen-configuration"
)

// bodyReadTimeout bounds reading one request body.
const bodyReadTimeout = 10 * time.Second

// maxRequestIDBytes bounds the X-Request-ID echoed back.
const maxRequestIDBytes = 256

// Options configure the server. Every member may be left zero.
type Options struct {
	// Path is the decision entrypoint in canonical slash form (default
	// DefaultPath); the search rules are under its parent (SearchPaths).
	Path string
	// BaseURL is the metadata's policy_decision_point and the base of its
	// endpoints; empty: the request's scheme and Host.
	BaseURL string
	// JSON bounds request bodies; its MaxBytes defaults to
	// DefaultMaxBodyBytes. Duplicate member names are always refused.
	JSON guard.JSONLimits
	// MaxEvaluations bounds the items of an evaluations request,
	// MaxPageSize the results of a search page, MaxCandidates the
	// candidates one search request evaluates.
	MaxEvaluations int
	MaxPageSize    int
	MaxCandidates  int
	// Verifier, with RequireToken, verifies the caller's bearer token;
	// RequiredScope, when set, must be among its scopes.
	Verifier      *identity.Verifier
	RequireToken  bool
	RequiredScope string
	// Defines reports whether the active policy defines an entrypoint:
	// the metadata lists a search endpoint only when it does (nil: always).
	Defines func(path string) bool
	// MCP, when set, decides requests whose resource is an MCP tool,
	// prompt or resource (TypeMCPTool, …) as the native MCP request they
	// describe (see mcpCall); Catalog lists a catalog server's entries
	// for searches of MCP resources (nil: no catalog search).
	MCP     *mcp.Decider
	Catalog func(ctx context.Context, server, member string) ([]string, bool)
	// MCPMaxDepth bounds the nesting of an MCP call's params and of the
	// subject's claims as the native API bounds them (default
	// mcp.DefaultMaxDepth).
	MCPMaxDepth int
	Logger      *slog.Logger
}

// Server serves the AuthZEN API on the shared pipeline.
type Server struct {
	p     *pipeline.Pipeline
	opts  Options
	path  string
	paths map[Kind]string
}

// NewServer returns the AuthZEN API deciding on p.
func NewServer(p *pipeline.Pipeline, opts Options) *Server {
	if opts.Path == "" {
		opts.Path = DefaultPath
	}
	if opts.JSON.MaxBytes <= 0 {
		opts.JSON.MaxBytes = DefaultMaxBodyBytes
	}
	opts.JSON.RejectDuplicateKeys = true
	opts.MaxEvaluations = orDefault(opts.MaxEvaluations, DefaultMaxEvaluations)
	opts.MaxPageSize = orDefault(opts.MaxPageSize, DefaultMaxPageSize)
	opts.MaxCandidates = orDefault(opts.MaxCandidates, DefaultMaxCandidates)
	opts.MCPMaxDepth = orDefault(opts.MCPMaxDepth, mcp.DefaultMaxDepth)
	opts.BaseURL = strings.TrimRight(opts.BaseURL, "/")
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{p: p, opts: opts, path: opts.Path, paths: map[Kind]string{}}
	for _, k := range kinds {
		s.paths[k] = searchPath(opts.Path, k)
	}
	return s
}

func orDefault(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

// Register adds the API's routes to mux: its five endpoints, the metadata
// document, and JSON 404s for the rest of /access/v1/.
func (s *Server) Register(mux *http.ServeMux) {
	mux.Handle(PathEvaluation, s.post(s.evaluation))
	mux.Handle(PathEvaluations, s.post(s.evaluations))
	mux.Handle(PathSearchSubject, s.post(s.searcher(SearchSubject)))
	mux.Handle(PathSearchResource, s.post(s.searcher(SearchResource)))
	mux.Handle(PathSearchAction, s.post(s.searcher(SearchAction)))
	mux.HandleFunc(PathMetadata, s.metadata)
	mux.HandleFunc("/access/v1/", func(w http.ResponseWriter, r *http.Request) {
		echoRequestID(w, r)
		writeError(w, &requestError{Status: http.StatusNotFound, Code: CodeNotFound, Message: "no such AuthZEN endpoint"})
	})
}

// Handler returns a handler serving only the API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	s.Register(mux)
	return mux
}

// handler answers a POST whose body is a JSON object.
type handler func(ctx context.Context, w http.ResponseWriter, r *http.Request, body map[string]any, c caller)

// post checks what every POST endpoint shares, in this order: the method
// (405), the caller's token (401, 403), the content type (415) and the
// body (400), then hands the body to h.
func (s *Server) post(h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		echoRequestID(w, r)
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			writeError(w, &requestError{Status: http.StatusMethodNotAllowed, Code: CodeMethodNotAllowed, Message: "use POST"})
			return
		}
		c, ok := s.authenticate(w, r)
		if !ok {
			return
		}
		if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
			writeError(w, &requestError{Status: http.StatusUnsupportedMediaType, Code: CodeUnsupportedMediaType, Message: "the body must be sent as application/json"})
			return
		}
		// A client that stalls its body must not hold a connection and a
		// goroutine for good (the admin listener has no read timeout).
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(bodyReadTimeout)) // not every writer supports it
		raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(s.opts.JSON.MaxBytes)))
		if err != nil {
			if _, tooLarge := errors.AsType[*http.MaxBytesError](err); tooLarge {
				s.refuse(r, w, &requestError{Status: http.StatusBadRequest, Code: guard.CodeTooLarge, Message: "the body is over the size limit"})
				return
			}
			s.refuse(r, w, &requestError{Status: http.StatusBadRequest, Code: guard.CodeInvalidJSON, Message: "the body could not be read"})
			return
		}
		body, rerr := decodeBody(raw, s.opts.JSON)
		if rerr != nil {
			s.refuse(r, w, rerr)
			return
		}
		h(r.Context(), w, r, body, c)
	})
}

// refuse answers a request the API refuses before any decision, and logs
// the caller-safe reason.
func (s *Server) refuse(r *http.Request, w http.ResponseWriter, e *requestError) {
	s.opts.Logger.LogAttrs(r.Context(), slog.LevelDebug, "authzen request refused",
		slog.String("path", r.URL.Path), slog.Int("status", e.Status), slog.String("code", e.Code), slog.String("reason", e.Message))
	writeError(w, e)
}

// authenticate verifies the caller's bearer token when the service
// requires one, answering 401 (with a challenge) or 403 itself. Without
// RequireToken the caller is named by its address.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (caller, bool) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	c := caller{id: host}
	if !s.opts.RequireToken {
		return c, true
	}
	rm := s.p.ResourceMetadata()
	tok, terr := identity.BearerToken(r.Header.Get("Authorization"))
	var res identity.Result
	switch {
	case terr != nil:
		res.Err = terr
	case tok == "":
		ch := challenge.Unauthorized(rm, false, "")
		w.Header().Set("WWW-Authenticate", ch.Header)
		writeError(w, &requestError{Status: http.StatusUnauthorized, Code: identity.CodeTokenMissing, Message: "a bearer token is required"})
		return c, false
	case s.opts.Verifier == nil:
		res.Err = &identity.Error{Code: "token_unverifiable", Message: "this service is not configured to verify tokens"}
	default:
		res = s.opts.Verifier.Verify(r.Context(), tok)
	}
	if !res.Authenticated {
		e := res.Err
		if e == nil {
			e = &identity.Error{Code: identity.CodeTokenMalformed, Message: "the token is not valid"}
		}
		ch := challenge.Unauthorized(rm, true, e.Code)
		w.Header().Set("WWW-Authenticate", ch.Header)
		writeError(w, &requestError{Status: http.StatusUnauthorized, Code: e.Code, Message: e.Message})
		return c, false
	}
	if sc := s.opts.RequiredScope; sc != "" && !slices.Contains(res.Scopes, sc) {
		ch := challenge.InsufficientScope(rm, []string{sc}, "")
		w.Header().Set("WWW-Authenticate", ch.Header)
		writeError(w, &requestError{Status: http.StatusForbidden, Code: CodeInsufficientScope, Message: "the token lacks the scope this API requires"})
		return c, false
	}
	c.id = res.Subject
	return c, true
}

// traceHeaders are the W3C trace context headers of r, for the decision's
// span.
func traceHeaders(r *http.Request) map[string]string {
	tp := r.Header.Get("Traceparent")
	if tp == "" {
		return nil
	}
	h := map[string]string{"traceparent": tp}
	if ts := r.Header.Get("Tracestate"); ts != "" {
		h["tracestate"] = ts
	}
	return h
}

// decisionJSON is a Decision on the wire: context only when the policy
// gave one, or when the item failed.
type decisionJSON struct {
	Decision bool `json:"decision"`
	Context  any  `json:"context,omitempty"`
}

func decisionOut(d Decision) decisionJSON {
	out := decisionJSON{Decision: d.Decision}
	if d.Context != nil {
		out.Context = d.Context
	}
	return out
}

// itemError is an evaluations item that got no decision: a deny with the
// error in its context.
func itemError(status int, message string) decisionJSON {
	return decisionJSON{Context: map[string]any{"error": map[string]any{"status": status, "message": message}}}
}

// evaluation answers POST /access/v1/evaluation.
func (s *Server) evaluation(ctx context.Context, w http.ResponseWriter, r *http.Request, body map[string]any, c caller) {
	s.single(ctx, w, r, pick(body), c)
}

// single decides one evaluation request and answers 200 with the decision,
// 400 for an invalid request, 500 when no decision could be made.
func (s *Server) single(ctx context.Context, w http.ResponseWriter, r *http.Request, in map[string]any, c caller) {
	if err := checkEvaluation(in); err != nil {
		s.refuse(r, w, err)
		return
	}
	ctx, o := s.p.Start(ctx, audit.KindAuthZEN, s.path, "verdict.authzen.evaluation", traceHeaders(r))
	describe(&o, r.URL.Path, in, c)
	d, f := s.decide(ctx, &o, in)
	if f != nil {
		o.HTTPStatus = f.status
		s.p.Finish(ctx, &o)
		writeError(w, &requestError{Status: f.status, Code: f.code, Message: f.message})
		return
	}
	o.HTTPStatus = http.StatusOK
	s.p.Finish(ctx, &o)
	writeJSON(w, http.StatusOK, decisionOut(d))
}

// evaluations answers POST /access/v1/evaluations: each item, with the
// defaults merged in, is one decision with its own audit event; an item
// that is invalid or gets no decision is answered in place with a deny
// carrying the error. Without items the request is one evaluation.
func (s *Server) evaluations(ctx context.Context, w http.ResponseWriter, r *http.Request, body map[string]any, c caller) {
	b, err := parseBatch(body, s.opts.MaxEvaluations)
	if err != nil {
		s.refuse(r, w, err)
		return
	}
	if len(b.items) == 0 {
		s.single(ctx, w, r, b.defaults, c)
		return
	}
	ctx, parent := s.p.Start(ctx, audit.KindAuthZEN, s.path, "verdict.authzen.evaluations", traceHeaders(r))
	parts := make([]pipeline.Outcome, 0, len(b.items))
	out := make([]decisionJSON, 0, len(b.items))
	for _, item := range b.items {
		in := merge(b.defaults, item)
		o := s.p.Sub(audit.KindAuthZEN, s.path)
		describe(&o, r.URL.Path, in, c)
		o.HTTPStatus = http.StatusOK
		allowed := false
		if rerr := checkEvaluation(in); rerr != nil {
			s.p.Refuse(&o, rerr, pipeline.Failure{Code: rerr.Code, Message: rerr.Message, WireCode: rerr.Status})
			out = append(out, itemError(rerr.Status, rerr.Message))
		} else if d, f := s.decide(ctx, &o, in); f != nil {
			out = append(out, itemError(f.status, f.message))
		} else {
			allowed = d.Decision
			out = append(out, decisionOut(d))
		}
		parts = append(parts, o)
		if b.semantic.stops(allowed) {
			break
		}
	}
	s.p.FinishParts(ctx, &parent, parts)
	writeJSON(w, http.StatusOK, struct {
		Evaluations []decisionJSON `json:"evaluations"`
	}{out})
}

// searcher answers POST /access/v1/search/<kind>.
func (s *Server) searcher(k Kind) handler {
	return func(ctx context.Context, w http.ResponseWriter, r *http.Request, body map[string]any, c caller) {
		q, err := parseSearch(k, body, s.opts.MaxPageSize)
		if err != nil {
			s.refuse(r, w, err)
			return
		}
		ctx, o := s.p.Start(ctx, audit.KindAuthZEN, s.paths[k], "verdict.authzen.search."+k.String(), traceHeaders(r))
		describe(&o, r.URL.Path, q.query, c)
		if s.isMCP(q.query) {
			o.Input = withoutArguments(q.query)
		}
		res, f, rerr := s.runSearch(ctx, &o, &q)
		switch {
		case rerr != nil:
			s.p.Refuse(&o, rerr, pipeline.Failure{Code: rerr.Code, Message: rerr.Message, WireCode: rerr.Status})
			o.HTTPStatus = rerr.Status
			s.p.Finish(ctx, &o)
			writeError(w, rerr)
		case f != nil:
			if o.Failure == nil {
				o.Failure = &pipeline.Failure{Code: f.code, Message: f.message}
			}
			o.Verdict, o.Reasons = pipeline.Deny, []pipeline.Reason{{Code: f.code, Message: f.message}}
			o.HTTPStatus = f.status
			s.p.Finish(ctx, &o)
			writeError(w, &requestError{Status: f.status, Code: f.code, Message: f.message})
		default:
			o.HTTPStatus = http.StatusOK
			s.p.Finish(ctx, &o)
			writeJSON(w, http.StatusOK, res)
		}
	}
}

// metadata answers GET /.well-known/authzen-configuration. The search
// endpoints are listed only while the active policy defines their rules.
func (s *Server) metadata(w http.ResponseWriter, r *http.Request) {
	echoRequestID(w, r)
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, &requestError{Status: http.StatusMethodNotAllowed, Code: CodeMethodNotAllowed, Message: "use GET"})
		return
	}
	base := s.opts.BaseURL
	if base == "" {
		if !validHost(r.Host) {
			writeError(w, invalid("the Host header is not a valid host"))
			return
		}
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		base = scheme + "://" + r.Host
	}
	doc := map[string]string{
		"policy_decision_point":       base,
		"access_evaluation_endpoint":  base + PathEvaluation,
		"access_evaluations_endpoint": base + PathEvaluations,
	}
	for k, p := range map[Kind]string{SearchSubject: PathSearchSubject, SearchResource: PathSearchResource, SearchAction: PathSearchAction} {
		if s.opts.Defines == nil || s.opts.Defines(s.paths[k]) {
			doc["search_"+k.String()+"_endpoint"] = base + p
		}
	}
	writeJSON(w, http.StatusOK, doc)
}

// validHost accepts a host[:port] Host header: no user info, path, query,
// spaces or control characters.
func validHost(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	for _, c := range []byte(h) {
		if c <= ' ' || c >= 0x7f || strings.IndexByte("/?#@\\\"<>{}|^`%", c) >= 0 {
			return false
		}
	}
	return true
}

// echoRequestID copies the request's X-Request-ID to the response, when it
// is a printable value of reasonable length.
func echoRequestID(w http.ResponseWriter, r *http.Request) {
	id := r.Header.Get("X-Request-ID")
	if id == "" || len(id) > maxRequestIDBytes {
		return
	}
	for _, c := range []byte(id) {
		if c < ' ' || c == 0x7f {
			return
		}
	}
	w.Header().Set("X-Request-ID", id)
}

func writeError(w http.ResponseWriter, e *requestError) {
	writeJSON(w, e.Status, map[string]string{"error": e.Message, "code": e.Code})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	raw, err := json.Marshal(v)
	if err != nil {
		// Decoded JSON and policy values always encode.
		status, raw = http.StatusInternalServerError, []byte(`{"error":"the answer could not be encoded","code":"internal"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(raw, '\n')) // the client went away: nothing to do
}
