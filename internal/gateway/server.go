package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/verdictpdp/verdict/internal/mcp"
	mcpv1 "github.com/verdictpdp/verdict/proto/verdict/mcp/v1"
)

// Server inspects one message the upstream sent to the client and returns
// what to send the client instead: the message itself, a filtered,
// redacted or blocked answer, or nil when it must be dropped (invalid, or
// an answer to nothing the client asked on this connection).
func (e *Enforcer) Server(ctx context.Context, c *Conn, raw json.RawMessage) json.RawMessage {
	rec := &Record{Direction: FromServer}
	defer e.observe(rec)
	msgs, batch, err := mcp.ParseSizedMessages(raw, e.opts.MaxDepth)
	if err != nil || batch {
		e.opts.Logger.Warn("gateway: upstream sent a message that is not one JSON-RPC message: dropped")
		rec.Kind, rec.Action = "invalid", ActionDropped
		return nil
	}
	m := msgs[0]
	rec.Method = m.Method
	switch {
	case m.Response:
		rec.Kind, rec.ID = "response", string(idJSON(m.ID))
		return e.serverResponse(ctx, c, m, raw, rec)
	case m.HasID:
		rec.Kind, rec.ID = "request", string(idJSON(m.ID))
		key, ok := idKey(m.ID)
		if !ok || !c.ask(key, m.Method) {
			rec.Action = ActionDropped
			return nil
		}
	default:
		rec.Kind = "notification"
	}
	rec.Action = ActionForwarded
	return lineSafe(raw)
}

func (e *Enforcer) serverResponse(ctx context.Context, c *Conn, m mcp.Message, raw json.RawMessage, rec *Record) json.RawMessage {
	var cl *call
	key, ok := idKey(m.ID)
	if ok {
		cl, ok = c.take(key)
	}
	if !ok {
		e.opts.Logger.Warn("gateway: upstream answered a request id the client did not send on this connection: dropped")
		rec.Action = ActionDropped
		return nil
	}
	rec.Method = cl.method
	rec.Session, rec.Subject = cl.req.GetSessionId(), cl.req.GetSubject().GetId()
	// The answer goes on rebuilt from its exact members: the client, whose
	// parser may match names without case or keep members the gateway did
	// not read, gets only the id it sent and the result (or error) that
	// was checked.
	var env map[string]json.RawMessage
	if err := json.Unmarshal(raw, &env); err != nil {
		rec.Action = ActionBlocked
		return errorResponse(cl.id, CodeUnavailable, "the server's answer is not a JSON object", nil)
	}
	resultRaw, hasResult := env["result"]
	checked := mcp.IsListMethod(cl.method)
	switch cl.method {
	case mcp.MethodToolsCall, mcp.MethodResourcesRead, mcp.MethodPromptsGet, methodTasksResult:
		checked = true
	}
	if !hasResult {
		rec.Action = ActionForwarded
		if !checked {
			return rebuilt(cl.id, "error", env["error"])
		}
		ctx, cancel := context.WithTimeout(ctx, e.opts.DecisionTimeout)
		defer cancel()
		return e.checkError(ctx, c, cl, env["error"], rec)
	}
	raw = rebuilt(cl.id, "result", resultRaw)
	if cl.method == "initialize" {
		var init map[string]json.RawMessage
		var v string
		if json.Unmarshal(resultRaw, &init) == nil && json.Unmarshal(init["protocolVersion"], &v) == nil {
			c.setVersion(v)
		}
	}
	if !checked {
		rec.Action = ActionForwarded
		return raw
	}
	// The result as the parse above decoded it (exact member names).
	obj, _ := m.Result.(map[string]any)
	result, err := toStruct(obj, false)
	if obj == nil || err != nil {
		rec.Action = ActionBlocked
		return errorResponse(cl.id, CodeUnavailable, "the server's result is not a JSON object the gateway can check", nil)
	}
	ctx, cancel := context.WithTimeout(ctx, e.opts.DecisionTimeout)
	defer cancel()
	if mcp.IsListMethod(cl.method) {
		return e.filter(ctx, cl, result, raw, rec)
	}
	req, ok := e.resultRequest(c, cl)
	if !ok {
		rec.Action = ActionBlocked
		return errorResponse(cl.id, CodeUnavailable, "the gateway did not see this task created on this connection: its result cannot be checked", nil)
	}
	if cl.method == mcp.MethodToolsCall {
		if id := createdTask(result); id != "" {
			c.addTask(id, cl.req)
		}
	}
	return e.checkResult(ctx, cl, req, result, raw, rec)
}

// methodTasksResult fetches the result of a task-augmented request
// (2025-11-25): for a tools/call, the call's result.
const methodTasksResult = "tasks/result"

// resultRequest is the request a result answers, for CheckResult: the
// call itself, or for tasks/result the tools/call that created the task
// on this connection.
func (e *Enforcer) resultRequest(c *Conn, cl *call) (*mcpv1.CheckRequest, bool) {
	if cl.method != methodTasksResult {
		return cl.req, true
	}
	return c.task(cl.task)
}

// taskParam is the task id a tasks/* request names.
func taskParam(m mcp.Message) string {
	if !strings.HasPrefix(m.Method, "tasks/") {
		return ""
	}
	id, _ := m.Params["taskId"].(string)
	return id
}

// createdTask is the task id of a CreateTaskResult ({"task": {"taskId"}}).
func createdTask(result *structpb.Struct) string {
	return result.GetFields()["task"].GetStructValue().GetFields()["taskId"].GetStringValue()
}

// checkError passes on the error answer to a checked call with only its
// code and message, the message checked as the call's result would be:
// an error can carry what a result would have (a row in its message, the
// whole result in its data).
func (e *Enforcer) checkError(ctx context.Context, c *Conn, cl *call, rawErr json.RawMessage, rec *Record) json.RawMessage {
	var members map[string]json.RawMessage
	var code int
	var msg string
	if json.Unmarshal(rawErr, &members) != nil || json.Unmarshal(members["code"], &code) != nil {
		rec.Action = ActionBlocked
		return errorResponse(cl.id, CodeUnavailable, "the server's error answer is malformed", nil)
	}
	_ = json.Unmarshal(members["message"], &msg)
	if mcp.IsListMethod(cl.method) || msg == "" {
		return errorResponse(cl.id, code, msg, nil)
	}
	req, ok := e.resultRequest(c, cl)
	if !ok {
		rec.Action = ActionBlocked
		return errorResponse(cl.id, CodeUnavailable, "the gateway did not see this task created on this connection: its result cannot be checked", nil)
	}
	asResult, _ := structpb.NewStruct(map[string]any{"content": []any{map[string]any{"type": "text", "text": msg}}, "isError": true})
	resp, err := e.d.CheckResult(ctx, &mcpv1.CheckResultRequest{Request: req, Result: asResult})
	if err != nil {
		e.opts.Logger.Warn("gateway: result check failed: error answer withheld", "method", cl.method, "err", err)
		rec.Action = ActionFailed
		return errorResponse(cl.id, CodeUnavailable, "the policy decision point could not check this answer", nil)
	}
	rec.DecisionID, rec.Reasons = resp.GetDecisionId(), reasonCodes(resp.GetReasons())
	switch resp.GetAction() {
	case mcpv1.ResultAction_RESULT_ACTION_PASS:
		return errorResponse(cl.id, code, msg, nil)
	case mcpv1.ResultAction_RESULT_ACTION_REDACT:
		rec.Action = ActionRedacted
		content := resp.GetResult().GetFields()["content"].GetListValue().GetValues()
		if len(content) == 1 {
			return errorResponse(cl.id, code, content[0].GetStructValue().GetFields()["text"].GetStringValue(), nil)
		}
		return errorResponse(cl.id, code, "[REDACTED]", nil)
	default:
		rec.Action = ActionBlocked
		return errorResponse(cl.id, mcp.CodeDenied, "the answer was blocked by policy", nil)
	}
}

func (e *Enforcer) filter(ctx context.Context, cl *call, result *structpb.Struct, raw json.RawMessage, rec *Record) json.RawMessage {
	resp, err := e.d.FilterTools(ctx, &mcpv1.FilterToolsRequest{Request: cl.req, Result: result})
	if err != nil {
		e.opts.Logger.Warn("gateway: list filter failed: result withheld", "method", cl.method, "err", err)
		rec.Action = ActionFailed
		return errorResponse(cl.id, CodeUnavailable, "the policy decision point could not filter this list", nil)
	}
	rec.DecisionID, rec.Reasons = resp.GetDecisionId(), reasonCodes(resp.GetReasons())
	if resp.GetDecision() != mcpv1.Decision_DECISION_ALLOW {
		rec.Action = ActionBlocked
		je := resp.GetJsonrpcError()
		if je.GetCode() == 0 {
			return errorResponse(cl.id, mcp.CodeDenied, "denied by policy", nil)
		}
		return errorResponse(cl.id, int(je.GetCode()), je.GetMessage(), je.GetData())
	}
	if len(resp.GetRemoved()) == 0 {
		rec.Action = ActionForwarded
		return raw
	}
	for _, rm := range resp.GetRemoved() {
		rec.Reasons = append(rec.Reasons, rm.GetReason().GetCode())
	}
	rec.Action = ActionFiltered
	return resultResponse(cl.id, resp.GetResult())
}

func (e *Enforcer) checkResult(ctx context.Context, cl *call, req *mcpv1.CheckRequest, result *structpb.Struct, raw json.RawMessage, rec *Record) json.RawMessage {
	resp, err := e.d.CheckResult(ctx, &mcpv1.CheckResultRequest{Request: req, Result: result})
	if err != nil {
		e.opts.Logger.Warn("gateway: result check failed: result withheld", "method", cl.method, "err", err)
		rec.Action = ActionFailed
		return errorResponse(cl.id, CodeUnavailable, "the policy decision point could not check this result", nil)
	}
	rec.DecisionID, rec.Reasons = resp.GetDecisionId(), reasonCodes(resp.GetReasons())
	switch resp.GetAction() {
	case mcpv1.ResultAction_RESULT_ACTION_PASS:
		rec.Action = ActionForwarded
		return raw
	case mcpv1.ResultAction_RESULT_ACTION_REDACT:
		rec.Action = ActionRedacted
		return resultResponse(cl.id, resp.GetResult())
	default:
		rec.Action = ActionBlocked
		je := resp.GetJsonrpcError()
		if je.GetCode() == 0 {
			return errorResponse(cl.id, mcp.CodeDenied, "the result was blocked by policy", nil)
		}
		return errorResponse(cl.id, int(je.GetCode()), je.GetMessage(), je.GetData())
	}
}

// Unanswered removes the calls among keys still awaiting an answer and
// returns an error response for each: the upstream will not answer them
// (its stream ended or failed).
func (e *Enforcer) Unanswered(c *Conn, keys []string, message string) []json.RawMessage {
	var out []json.RawMessage
	for _, k := range keys {
		if cl, ok := c.take(k); ok {
			out = append(out, errorResponse(cl.id, CodeUnavailable, message, nil))
			e.observe(&Record{Direction: FromServer, Kind: "response", Method: cl.method, ID: string(cl.id), Action: ActionFailed,
				Session: cl.req.GetSessionId(), Subject: cl.req.GetSubject().GetId()})
		}
	}
	return out
}

// ServerBody inspects a body the upstream sent (one message, or a batch of
// answers) and returns the messages to send the client, dropped ones left
// out. A body that is not JSON yields nothing.
func (e *Enforcer) ServerBody(ctx context.Context, c *Conn, body []byte) []json.RawMessage {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil
	}
	if body[0] != '[' {
		if out := e.Server(ctx, c, body); out != nil {
			return []json.RawMessage{out}
		}
		return nil
	}
	elems, err := Split(body, true)
	if err != nil {
		e.opts.Logger.Warn("gateway: upstream sent a batch that is not valid JSON: dropped")
		e.observe(&Record{Direction: FromServer, Kind: "invalid", Action: ActionDropped})
		return nil
	}
	out := make([]json.RawMessage, 0, len(elems))
	for _, el := range elems {
		if m := e.Server(ctx, c, el); m != nil {
			out = append(out, m)
		}
	}
	return out
}
