package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/verdictpdp/verdict/internal/mcp"
	mcpv1 "github.com/verdictpdp/verdict/proto/verdict/mcp/v1"
)

// CodeUnavailable answers a request the gateway cannot decide or deliver:
// the decision point or the upstream server failed (JSON-RPC's internal
// error, with a message that names no internals).
const CodeUnavailable = -32603

// Defaults of Options.
const (
	DefaultMaxPending      = 256
	DefaultDecisionTimeout = 10 * time.Second
)

// Actions a gateway takes on a message, as audit and metrics name them.
const (
	ActionForwarded = "forwarded"
	ActionDenied    = "denied"
	ActionFiltered  = "filtered"
	ActionRedacted  = "redacted"
	ActionBlocked   = "blocked"
	ActionDropped   = "dropped"
	ActionFailed    = "failed"
)

// Directions of a message.
const (
	FromClient = "client"
	FromServer = "server"
)

// Record is what the gateway did with one message, for the audit log: the
// message is described, never copied (no params, arguments or results).
type Record struct {
	Direction string
	// Kind is request, notification or response.
	Kind   string
	Method string
	// ID is the JSON-RPC id as JSON text ("" for a notification).
	ID      string
	Action  string
	Session string
	Subject string
	// DecisionID links to the decision's own audit event; empty when no
	// decision was asked (server notifications, requests to the client).
	DecisionID string
	Reasons    []string
}

// Observer receives what the gateway does; it must not block.
type Observer interface {
	Message(r *Record)
}

// Options configure an Enforcer.
type Options struct {
	// Server is the upstream server's name in the catalog (input.server.name).
	Server string
	// MaxDepth bounds the nesting of messages (default mcp.DefaultMaxDepth).
	MaxDepth int
	// MaxPending bounds the client requests in flight on one connection
	// and the server requests awaiting the client's answer.
	MaxPending int
	// DecisionTimeout bounds one question to the decision point.
	DecisionTimeout time.Duration
	Logger          *slog.Logger
	Observer        Observer
}

// Enforcer decides every message between an MCP client and server. It is
// transport-free: the HTTP proxy and the stdio wrapper hand it messages.
type Enforcer struct {
	d    Decider
	opts Options
}

// New returns an enforcer asking d.
func New(d Decider, opts Options) (*Enforcer, error) {
	if d == nil {
		return nil, errors.New("gateway: no decider")
	}
	if err := mcp.ValidName("server", opts.Server); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	if opts.MaxDepth <= 0 {
		opts.MaxDepth = mcp.DefaultMaxDepth
	}
	if opts.MaxPending <= 0 {
		opts.MaxPending = DefaultMaxPending
	}
	if opts.DecisionTimeout <= 0 {
		opts.DecisionTimeout = DefaultDecisionTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Enforcer{d: d, opts: opts}, nil
}

// MaxDepth is the nesting limit messages are parsed with.
func (e *Enforcer) MaxDepth() int { return e.opts.MaxDepth }

// Caller is who sends the client messages and on which session.
type Caller struct {
	// Subject is the verified caller (nil: unauthenticated).
	Subject         *mcpv1.Subject
	SessionID       string
	ProtocolVersion string
	SourceIP        string
	// Purpose and Region are the gateway's configured circumstances.
	Purpose, Region string
}

func (c *Caller) context() *mcpv1.RequestContext {
	return &mcpv1.RequestContext{SourceIp: c.SourceIP, Purpose: c.Purpose, Region: c.Region}
}

// Inbound is a client body, decided.
type Inbound struct {
	// Forward are the messages to send upstream, in the client's order.
	Forward []json.RawMessage
	// Batch is set when the client sent a JSON-RPC batch.
	Batch bool
	// Answers are the gateway's own responses for requests it did not
	// forward.
	Answers []json.RawMessage
	// Calls are the forwarded requests' ids, whose answers are awaited.
	Calls []string
	// Refused counts notifications and responses that were not forwarded
	// (they have no id to answer).
	Refused int
	// Challenge, when set, is the HTTP authorization challenge to answer
	// the whole request with (401, or 403 step-up).
	Challenge *mcpv1.AuthChallenge
	// RetryAfter is set when a request was refused by a rate limit.
	RetryAfter time.Duration
}

// Body is the forwarded messages as one JSON-RPC body: the message, or a
// batch of the allowed ones.
func (in *Inbound) Body() []byte {
	if !in.Batch && len(in.Forward) == 1 {
		return in.Forward[0]
	}
	return joinBatch(in.Forward)
}

// AnswerBody is the gateway's answers as one body: the answer, or a batch.
func (in *Inbound) AnswerBody() []byte {
	if !in.Batch && len(in.Answers) == 1 {
		return in.Answers[0]
	}
	return joinBatch(in.Answers)
}

func joinBatch(msgs []json.RawMessage) []byte {
	var b bytes.Buffer
	b.WriteByte('[')
	for i, m := range msgs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(m)
	}
	b.WriteByte(']')
	return b.Bytes()
}

// Split returns the raw elements of a JSON-RPC body (one, or each element
// of a batch), in order. body must already have parsed as JSON-RPC.
func Split(body []byte, batch bool) ([]json.RawMessage, error) {
	if !batch {
		return []json.RawMessage{bytes.TrimSpace(body)}, nil
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(body, &elems); err != nil {
		return nil, err
	}
	return elems, nil
}

// Client decides the messages of one client body (msgs as parsed, raws
// their bytes) and records the forwarded requests on c. Nothing reaches
// Forward without an allow from the decision point.
func (e *Enforcer) Client(ctx context.Context, c *Conn, who Caller, msgs []mcp.Message, raws []json.RawMessage, batch bool) Inbound {
	in := Inbound{Batch: batch}
	c.touch()
	if who.ProtocolVersion == "" {
		who.ProtocolVersion = c.protocolVersion()
	}
	seen := map[string]bool{}
	for i, m := range msgs {
		raw := raws[i]
		rec := &Record{Direction: FromClient, Method: m.Method, Session: who.SessionID, Subject: who.Subject.GetId()}
		switch {
		case m.Response:
			rec.Kind = "response"
			e.clientResponse(ctx, c, who, m, raw, &in, rec)
		case m.HasID:
			rec.Kind = "request"
			key, _ := idKey(m.ID)
			rec.ID = string(idJSON(m.ID))
			if seen[key] {
				e.answer(&in, rec, m.ID, mcp.CodeInvalidRequest, "the batch uses this id twice", nil)
				break
			}
			seen[key] = true
			e.clientRequest(ctx, c, who, m, raw, &in, rec)
		default:
			rec.Kind = "notification"
			e.clientNotification(ctx, who, m, raw, &in, rec)
		}
		e.observe(rec)
	}
	return in
}

func (e *Enforcer) clientRequest(ctx context.Context, c *Conn, who Caller, m mcp.Message, raw json.RawMessage, in *Inbound, rec *Record) {
	key, ok := idKey(m.ID)
	if !ok {
		e.answer(in, rec, m.ID, mcp.CodeInvalidRequest, "a numeric id must be an integer within ±2^53 (MCP ids are strings or integers)", nil)
		return
	}
	// The id is taken before the decision: a concurrent request with the
	// same id on this session cannot slip in while this one is decided.
	switch c.reserve(key) {
	case reserveInUse:
		e.answer(in, rec, m.ID, mcp.CodeInvalidRequest, "a request with this id is still in flight on this session", nil)
		return
	case reserveFull:
		e.answer(in, rec, m.ID, CodeUnavailable, "too many requests in flight on this session", nil)
		rec.Action = ActionFailed
		return
	case reserved:
	}
	req, err := e.checkRequest(who, m)
	if err != nil {
		c.release(key)
		e.answer(in, rec, m.ID, mcp.CodeInvalidParams, err.Error(), nil)
		return
	}
	resp, err := e.check(ctx, req)
	if err != nil {
		c.release(key)
		e.opts.Logger.Warn("gateway: decision failed: request refused", "method", m.Method, "err", err)
		rec.Action = ActionFailed
		in.Answers = append(in.Answers, errorResponse(idJSON(m.ID), CodeUnavailable, "the policy decision point could not decide this request", nil))
		return
	}
	rec.DecisionID, rec.Reasons = resp.GetDecisionId(), reasonCodes(resp.GetReasons())
	if resp.GetDecision() != mcpv1.Decision_DECISION_ALLOW {
		c.release(key)
		e.refuse(in, rec, m.ID, resp)
		return
	}
	if m.Method == "initialize" {
		if v, ok := m.Params["protocolVersion"].(string); ok {
			c.setVersion(v)
		}
	}
	c.fill(key, &call{id: idJSON(m.ID), method: m.Method, req: req, task: taskParam(m)})
	rec.Action = ActionForwarded
	in.Forward = append(in.Forward, lineSafe(raw))
	in.Calls = append(in.Calls, key)
}

func (e *Enforcer) clientNotification(ctx context.Context, who Caller, m mcp.Message, raw json.RawMessage, in *Inbound, rec *Record) {
	req, err := e.checkRequest(who, m)
	if err != nil {
		rec.Action = ActionDenied
		in.Refused++
		return
	}
	resp, err := e.check(ctx, req)
	if err != nil {
		e.opts.Logger.Warn("gateway: decision failed: notification refused", "method", m.Method, "err", err)
		rec.Action = ActionFailed
		in.Refused++
		return
	}
	rec.DecisionID, rec.Reasons = resp.GetDecisionId(), reasonCodes(resp.GetReasons())
	if resp.GetDecision() != mcpv1.Decision_DECISION_ALLOW {
		rec.Action = ActionDenied
		in.Refused++
		if ch := resp.GetChallenge(); ch != nil && in.Challenge == nil {
			in.Challenge = ch
		}
		return
	}
	rec.Action = ActionForwarded
	in.Forward = append(in.Forward, lineSafe(raw))
}

// clientResponse decides a client's answer to a server request. An answer
// to a request the server never sent is dropped; a refused one is replaced
// by an error, so the server is not left waiting.
func (e *Enforcer) clientResponse(ctx context.Context, c *Conn, who Caller, m mcp.Message, raw json.RawMessage, in *Inbound, rec *Record) {
	rec.ID = string(idJSON(m.ID))
	askedKey, _ := idKey(m.ID)
	method, ok := c.takeAsked(askedKey)
	rec.Method = method
	if !ok {
		rec.Action = ActionDropped
		in.Refused++
		return
	}
	resp, err := e.check(ctx, &mcpv1.CheckRequest{
		Subject: who.Subject, Server: e.opts.Server, Response: true,
		SessionId: who.SessionID, ProtocolVersion: who.ProtocolVersion,
		Context: who.context(),
	})
	switch {
	case err != nil:
		e.opts.Logger.Warn("gateway: decision failed: response refused", "err", err)
		rec.Action = ActionFailed
	case resp.GetDecision() == mcpv1.Decision_DECISION_ALLOW:
		rec.DecisionID, rec.Action = resp.GetDecisionId(), ActionForwarded
		in.Forward = append(in.Forward, lineSafe(raw))
		return
	default:
		rec.DecisionID, rec.Reasons, rec.Action = resp.GetDecisionId(), reasonCodes(resp.GetReasons()), ActionDenied
	}
	in.Refused++
	in.Forward = append(in.Forward, errorResponse(idJSON(m.ID), mcp.CodeDenied, "the client's answer was refused by policy", nil))
}

// refuse answers a request the decision did not allow with the error it
// carries.
func (e *Enforcer) refuse(in *Inbound, rec *Record, id any, resp *mcpv1.CheckResponse) {
	if ch := resp.GetChallenge(); ch != nil && in.Challenge == nil {
		in.Challenge = ch
	}
	if st := resp.GetRateLimitStatus(); st.GetRetryAfter() != nil {
		in.RetryAfter = max(in.RetryAfter, st.GetRetryAfter().AsDuration())
	}
	je := resp.GetJsonrpcError()
	code, msg := int(je.GetCode()), je.GetMessage()
	if code == 0 {
		code, msg = mcp.CodeDenied, "denied by policy"
	}
	e.answer(in, rec, id, code, msg, je.GetData())
}

func (e *Enforcer) answer(in *Inbound, rec *Record, id any, code int, msg string, data *structpb.Struct) {
	rec.Action = ActionDenied
	in.Answers = append(in.Answers, errorResponse(idJSON(id), code, msg, data))
}

// checkRequest is the native API request for a client message.
func (e *Enforcer) checkRequest(who Caller, m mcp.Message) (*mcpv1.CheckRequest, error) {
	params, err := toStruct(m.Params, true)
	if err != nil {
		return nil, fmt.Errorf("params: %w", err)
	}
	return &mcpv1.CheckRequest{
		Subject: who.Subject, Server: e.opts.Server, Method: m.Method, Params: params,
		SessionId: who.SessionID, ProtocolVersion: who.ProtocolVersion,
		Context: who.context(),
	}, nil
}

func (e *Enforcer) check(ctx context.Context, req *mcpv1.CheckRequest) (*mcpv1.CheckResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, e.opts.DecisionTimeout)
	defer cancel()
	return e.d.Check(ctx, req)
}

func (e *Enforcer) observe(r *Record) {
	if e.opts.Observer != nil {
		e.opts.Observer.Message(r)
	}
}

// idKey is a JSON-RPC id as a map key: strings and numbers never collide,
// and a number is keyed by its integer value (1, 1.0 and 1e0 are one id,
// as the SDKs echo them). ok is false for a number that is not an integer
// within ±2^53, which MCP does not allow as an id.
func idKey(id any) (key string, ok bool) {
	switch v := id.(type) {
	case string:
		return "s" + v, true
	case json.Number:
		f, err := strconv.ParseFloat(v.String(), 64)
		if err != nil || f != math.Trunc(f) || math.Abs(f) > exactInteger {
			return "", false
		}
		return "n" + strconv.FormatInt(int64(f), 10), true
	default:
		return "", false
	}
}

// lineSafe is a message as it is forwarded: compacted, so no carriage
// return or other whitespace outside strings can end a line early for a
// reader that splits on it (stdio readers in universal-newline mode), and
// with U+2028, U+2029 and U+0085 inside strings escaped, as line breaks to
// some readers. Its JSON value is unchanged.
func lineSafe(raw json.RawMessage) json.RawMessage {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return raw // not reached: raw was parsed
	}
	out := b.Bytes()
	if !bytes.ContainsAny(out, "\u2028\u2029\u0085") {
		return out
	}
	out = bytes.ReplaceAll(out, []byte("\u2028"), []byte(`\u2028`))
	out = bytes.ReplaceAll(out, []byte("\u2029"), []byte(`\u2029`))
	return bytes.ReplaceAll(out, []byte("\u0085"), []byte(`\u0085`))
}

// idJSON is the id as JSON text (null when unknown).
func idJSON(id any) json.RawMessage {
	switch v := id.(type) {
	case json.Number:
		return json.RawMessage(v.String())
	case string:
		b, _ := json.Marshal(v)
		return b
	default:
		return json.RawMessage("null")
	}
}

// rebuilt is a JSON-RPC response with only id and one member (result or
// error), each as given.
func rebuilt(id json.RawMessage, member string, value json.RawMessage) json.RawMessage {
	var b bytes.Buffer
	b.Grow(len(value) + len(id) + 40)
	b.WriteString(`{"jsonrpc":"2.0","id":`)
	b.Write(id)
	b.WriteString(`,"` + member + `":`)
	b.Write(value)
	b.WriteByte('}')
	return b.Bytes()
}

type wireError struct {
	Code    int            `json:"code"`
	Message string         `json:"message"`
	Data    map[string]any `json:"data,omitempty"`
}

func errorResponse(id json.RawMessage, code int, msg string, data *structpb.Struct) json.RawMessage {
	out := struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   wireError       `json:"error"`
	}{JSONRPC: "2.0", ID: id, Error: wireError{Code: code, Message: msg}}
	if len(data.GetFields()) > 0 {
		out.Error.Data = data.AsMap()
	}
	b, err := json.Marshal(out)
	if err != nil {
		b, _ = json.Marshal(struct {
			JSONRPC string          `json:"jsonrpc"`
			ID      json.RawMessage `json:"id"`
			Error   wireError       `json:"error"`
		}{JSONRPC: "2.0", ID: id, Error: wireError{Code: code, Message: msg}})
	}
	return b
}

func resultResponse(id json.RawMessage, result *structpb.Struct) json.RawMessage {
	res := result.AsMap()
	if res == nil {
		res = map[string]any{}
	}
	b, err := json.Marshal(struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Result  map[string]any  `json:"result"`
	}{JSONRPC: "2.0", ID: id, Result: res})
	if err != nil {
		return errorResponse(id, CodeUnavailable, "the checked result cannot be encoded", nil)
	}
	return b
}

func reasonCodes(rs []*mcpv1.Reason) []string {
	if len(rs) == 0 {
		return nil
	}
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.GetCode()
	}
	return out
}
