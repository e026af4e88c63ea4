// Package toolhive is the adapter for ToolHive's httpv1 authorizer
// (stacklok/toolhive pkg/authz/authorizers/http): ToolHive POSTs a PORC
// body (principal, operation, resource, context) to <url>/decision and
// allows the MCP request only on HTTP 200 with {"allow": true}.
//
// Each question is mapped onto the equivalent native MCP request and asked
// of the MCP decider, so that ToolHive gets the answer the native API
// gives for the same call: mcp:tool:call is tools/call, mcp:prompt:get is
// prompts/get, mcp:resource:read is resources/read. ToolHive asks the same
// mcp:tool:call (and mcp:prompt:get) question, without arguments, for each
// entry of a list result; Options.ListsWithoutArgs says how a question
// without arguments is decided (docs/integrations.md, "Questions without
// arguments").
//
// It holds no policy logic and imports neither the engine nor the config:
// internal/app wires it.
package toolhive

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net"
	"net/http"
	"time"

	"github.com/verdictpdp/verdict/internal/audit"
	"github.com/verdictpdp/verdict/internal/guard"
	"github.com/verdictpdp/verdict/internal/mcp"
	"github.com/verdictpdp/verdict/internal/pipeline"
)

// DecisionPath is what ToolHive appends to its configured URL.
const DecisionPath = "/decision"

// DefaultMaxBodyBytes bounds a PORC body unless Options say otherwise.
const DefaultMaxBodyBytes = 1 << 20

// Codes of answers other than 200 that are not about the body's content.
const (
	CodeMethodNotAllowed     = "method_not_allowed"
	CodeUnsupportedMediaType = "unsupported_media_type"
	CodeBodyUnreadable       = "body_unreadable"
)

// ReasonUnsupported is the reason code of a deny for a well-formed
// question about an operation Verdict has no MCP equivalent for.
const ReasonUnsupported = "toolhive.operation_unsupported"

// bodyReadTimeout bounds how long a client may take to send its body.
const bodyReadTimeout = 10 * time.Second

// Options configure the handler.
type Options struct {
	// MaxBodyBytes bounds a request body (default DefaultMaxBodyBytes).
	MaxBodyBytes int
	// JSON bounds the body's JSON (elements, string sizes, members); its
	// MaxBytes and MaxDepth are set from MaxBodyBytes and MaxDepth.
	JSON guard.JSONLimits
	// MaxDepth bounds the nesting of arguments and of the principal
	// (default mcp.DefaultMaxDepth), as the native API bounds params and
	// claims.
	MaxDepth int
	// ListsWithoutArgs answers mcp:tool:call and mcp:prompt:get questions
	// without context.mcp.args from the list-visibility rules (is the entry
	// kept in a tools/list or prompts/list result?). Off, the default, they
	// are decided as the call with no arguments, which never allows more
	// than the native API allows that call.
	ListsWithoutArgs bool
	// Now is the clock for decisions (default time.Now).
	Now func() time.Time
}

// Handler answers ToolHive's POST /decision.
type Handler struct {
	decider *mcp.Decider
	opts    Options
	limits  Limits
}

var _ http.Handler = (*Handler)(nil)

// NewHandler returns the handler deciding with decider.
func NewHandler(decider *mcp.Decider, opts Options) *Handler {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.MaxDepth <= 0 {
		opts.MaxDepth = mcp.DefaultMaxDepth
	}
	if opts.Now != nil {
		decider = decider.WithClock(opts.Now)
	}
	lim := Limits{JSON: opts.JSON, MaxDepth: opts.MaxDepth}
	lim.JSON.MaxBytes = opts.MaxBodyBytes
	return &Handler{decider: decider, opts: opts, limits: lim}
}

// answer is the 200 body. ToolHive reads only "allow" (its decoder
// ignores other members); the decision id and the reasons are for people
// reading ToolHive's debug log or matching Verdict's audit log.
type answer struct {
	Allow      bool              `json:"allow"`
	DecisionID string            `json:"decision_id,omitempty"`
	Reasons    []pipeline.Reason `json:"reasons,omitempty"`
}

// refusal is the body of every other status. ToolHive denies on any
// status but 200 and may log the body.
type refusal struct {
	Error      string `json:"error"`
	Code       string `json:"code"`
	DecisionID string `json:"decision_id,omitempty"`
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, refusal{Error: "use POST", Code: CodeMethodNotAllowed})
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		writeJSON(w, http.StatusUnsupportedMediaType, refusal{Error: "the body must be application/json", Code: CodeUnsupportedMediaType})
		return
	}
	body, rerr := h.readBody(w, r)
	peer := peerHost(r.RemoteAddr)
	if rerr != nil {
		h.refuse(r.Context(), w, peer, rerr)
		return
	}
	q, perr := ParsePORC(body, h.limits)
	if perr != nil {
		h.refuse(r.Context(), w, peer, perr)
		return
	}
	o := h.decide(r.Context(), q)
	o.RequestedBy, o.HTTPStatus = peer, http.StatusOK
	h.decider.Finish(r.Context(), &o)
	a := answer{Allow: o.Verdict == pipeline.Allow, DecisionID: o.DecisionID}
	if !a.Allow {
		a.Reasons = o.Reasons
	}
	writeJSON(w, http.StatusOK, a)
}

// readBody reads at most MaxBodyBytes within bodyReadTimeout.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, *Error) {
	tooLarge := refuse(guard.CodeTooLarge, "the body is over the limit of %d bytes", h.opts.MaxBodyBytes)
	if r.ContentLength > int64(h.opts.MaxBodyBytes) {
		return nil, tooLarge
	}
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(bodyReadTimeout)) // not every writer supports it
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(h.opts.MaxBodyBytes)))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, tooLarge
		}
		return nil, refuse(CodeBodyUnreadable, "the body could not be read")
	}
	return body, nil
}

// refuse answers 400 for a body that never became a question, and records
// the refusal as a deny: ToolHive denies the MCP request.
func (h *Handler) refuse(ctx context.Context, w http.ResponseWriter, peer string, e *Error) {
	o := h.decider.Start(audit.KindMCP, &mcp.Request{}, "")
	o.Request = nil
	h.decider.Pipeline().Refuse(&o, e, pipeline.Failure{Code: e.Code, Message: e.Message})
	o.RequestedBy, o.HTTPStatus = peer, http.StatusBadRequest
	h.decider.Finish(ctx, &o)
	writeJSON(w, http.StatusBadRequest, refusal{Error: e.Message, Code: e.Code, DecisionID: o.DecisionID})
}

// decide decides q as the equivalent native MCP request and returns the
// outcome, which the caller finishes. The verdict is what ToolHive is
// answered: allow only for pipeline.Allow.
func (h *Handler) decide(ctx context.Context, q *Question) pipeline.Outcome {
	r := mcp.Request{Subject: q.Subject, Server: q.Server}
	switch [2]string{q.Feature, q.Operation} {
	case [2]string{FeatureTool, OpCall}:
		if !q.HasArgs && h.opts.ListsWithoutArgs {
			return h.listed(ctx, &r, mcp.MethodToolsList, "tools", q.ID)
		}
		// Without arguments it is a question about a list entry, not a
		// call a person could approve.
		r.NoApproval = !q.HasArgs
		return h.check(ctx, &r, mcp.MethodToolsCall, map[string]any{"name": q.ID, "arguments": q.argsOrEmpty()})
	case [2]string{FeaturePrompt, OpGet}:
		if !q.HasArgs && h.opts.ListsWithoutArgs {
			return h.listed(ctx, &r, mcp.MethodPromptsList, "prompts", q.ID)
		}
		r.NoApproval = !q.HasArgs
		return h.check(ctx, &r, mcp.MethodPromptsGet, map[string]any{"name": q.ID, "arguments": q.argsOrEmpty()})
	case [2]string{FeatureResource, OpRead}:
		return h.check(ctx, &r, mcp.MethodResourcesRead, map[string]any{"uri": q.ID})
	case [2]string{FeatureSkill, OpGet}:
		// ToolHive's skills/get, decided as that method.
		return h.check(ctx, &r, "skills/get", map[string]any{"uri": q.ID})
	case [2]string{FeatureTool, OpList}, [2]string{FeaturePrompt, OpList}, [2]string{FeatureResource, OpList}, [2]string{FeatureSkill, OpList}:
		// ToolHive filters list results entry by entry and does not ask
		// about the list itself; asked, it is the list method.
		return h.check(ctx, &r, q.Feature+"s/list", map[string]any{})
	default:
		o := h.decider.Start(audit.KindMCP, &r, "")
		err := &Error{Code: ReasonUnsupported, Message: "operation mcp:" + q.Feature + ":" + q.Operation + " has no MCP equivalent Verdict decides"}
		h.decider.Pipeline().Refuse(&o, err, pipeline.Failure{Code: err.Code, Message: err.Message})
		return o
	}
}

func (q *Question) argsOrEmpty() map[string]any {
	if q.Args == nil {
		return map[string]any{}
	}
	return q.Args
}

// check decides a call as the native API's Check does: with the stateful
// checks, so a call counts against its rate limit.
func (h *Handler) check(ctx context.Context, r *mcp.Request, method string, params map[string]any) pipeline.Outcome {
	r.Method, r.Params = method, params
	return h.decider.Check(ctx, audit.KindMCP, r, nil)
}

// listed decides whether the entry name of a one-entry list result is kept,
// as the native API's FilterTools does. A removed entry is a deny with the
// reason it was removed for.
func (h *Handler) listed(ctx context.Context, r *mcp.Request, method, member, name string) pipeline.Outcome {
	r.Method, r.Params = method, map[string]any{}
	result := map[string]any{member: []any{map[string]any{"name": name}}}
	o, listing := h.decider.Filter(ctx, audit.KindMCP, r, method, result)
	if o.Verdict != pipeline.Allow {
		return o
	}
	if kept, _ := listing.Result[member].([]any); len(kept) == 1 {
		return o
	}
	o.Verdict = pipeline.Deny
	o.Reasons = []pipeline.Reason{{Code: "list.not_visible", Message: "the policy does not make this entry visible"}}
	if len(listing.Removed) > 0 {
		o.Reasons = []pipeline.Reason{listing.Removed[0].Reason}
	}
	return o
}

func peerHost(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v) // the client went away; nothing to do
}
