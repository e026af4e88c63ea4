package authzen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/verdictpdp/verdict/internal/guard"
)

// The members of an evaluation request, which are also the members of the
// policy input.
const (
	memberSubject  = "subject"
	memberAction   = "action"
	memberResource = "resource"
	memberContext  = "context"
)

var members = [...]string{memberSubject, memberAction, memberResource, memberContext}

// Error codes of refused requests, besides guard's codes for JSON bodies
// (invalid_json, too_large, too_deep, duplicate_key, ...). They are stable.
const (
	CodeInvalidRequest       = "invalid_request"
	CodeTooManyEvaluations   = "too_many_evaluations"
	CodeInvalidPageToken     = "invalid_page_token"
	CodeStalePageToken       = "stale_page_token"
	CodeUnsupportedMediaType = "unsupported_media_type"
	CodeMethodNotAllowed     = "method_not_allowed"
	CodeNotFound             = "not_found"
	CodeSearchUnsupported    = "search_unsupported"
	CodeNoPolicy             = "no_policy"
	CodeInsufficientScope    = "insufficient_scope"
)

// requestError is a refusal: an HTTP status, a stable code and a message
// that is safe to send to the caller (it never quotes member values).
type requestError struct {
	Status  int
	Code    string
	Message string
}

func (e *requestError) Error() string { return e.Code + ": " + e.Message }

func invalid(format string, args ...any) *requestError {
	return &requestError{Status: http.StatusBadRequest, Code: CodeInvalidRequest, Message: fmt.Sprintf(format, args...)}
}

// decodeBody checks body against limits (size, nesting, duplicate member
// names, ...) before decoding it as a JSON object, numbers as json.Number.
func decodeBody(body []byte, limits guard.JSONLimits) (map[string]any, *requestError) {
	if v := guard.ScanJSON(body, limits); v != nil {
		return nil, &requestError{Status: http.StatusBadRequest, Code: v.Code, Message: v.Message}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		// ScanJSON accepts what encoding/json accepts: not reached.
		return nil, &requestError{Status: http.StatusBadRequest, Code: guard.CodeInvalidJSON, Message: "body is not JSON"}
	}
	m, ok := doc.(map[string]any)
	if !ok {
		return nil, invalid("the body must be a JSON object")
	}
	return m, nil
}

// pick returns the members of an evaluation request in m: the others are
// ignored, and a null member is taken as absent.
func pick(m map[string]any) map[string]any {
	out := make(map[string]any, len(members))
	for _, k := range members {
		if v, ok := m[k]; ok && v != nil {
			out[k] = v
		}
	}
	return out
}

// checkEvaluation checks an evaluation request (the policy input): a
// subject and a resource with a type and an id, an action with a name, all
// non-empty strings; properties, when present, and the context are
// objects.
func checkEvaluation(in map[string]any) *requestError {
	if err := checkEntity(in, memberSubject, true); err != nil {
		return err
	}
	if err := checkAction(in); err != nil {
		return err
	}
	if err := checkEntity(in, memberResource, true); err != nil {
		return err
	}
	return checkContext(in)
}

// object returns in[name] as an object, or an error naming it when it is
// missing (and required) or not an object.
func object(in map[string]any, name string, required bool) (map[string]any, *requestError) {
	v, ok := in[name]
	if !ok {
		if required {
			return nil, invalid("%s is required", name)
		}
		return nil, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, invalid("%s must be an object", name)
	}
	return m, nil
}

func checkEntity(in map[string]any, name string, needID bool) *requestError {
	e, err := object(in, name, true)
	if err != nil {
		return err
	}
	if err := nonEmpty(e, name, "type"); err != nil {
		return err
	}
	if needID {
		if err := nonEmpty(e, name, "id"); err != nil {
			return err
		}
	}
	return checkProperties(e, name)
}

func checkAction(in map[string]any) *requestError {
	a, err := object(in, memberAction, true)
	if err != nil {
		return err
	}
	if err := nonEmpty(a, memberAction, "name"); err != nil {
		return err
	}
	return checkProperties(a, memberAction)
}

func checkContext(in map[string]any) *requestError {
	_, err := object(in, memberContext, false)
	return err
}

func nonEmpty(e map[string]any, entity, key string) *requestError {
	s, ok := e[key].(string)
	if !ok || s == "" {
		return invalid("%s.%s must be a non-empty string", entity, key)
	}
	return nil
}

func checkProperties(e map[string]any, entity string) *requestError {
	if v, ok := e["properties"]; ok {
		if _, ok := v.(map[string]any); !ok {
			return invalid("%s.properties must be an object", entity)
		}
	}
	return nil
}

// Semantic is an evaluations request's options.evaluations_semantic.
type Semantic int

// Evaluations semantics.
const (
	ExecuteAll Semantic = iota
	DenyOnFirstDeny
	PermitOnFirstPermit
)

// stops reports whether an evaluations request stops after an item whose
// decision is allowed.
func (s Semantic) stops(allowed bool) bool {
	switch s {
	case DenyOnFirstDeny:
		return !allowed
	case PermitOnFirstPermit:
		return allowed
	case ExecuteAll:
	}
	return false
}

// batch is an evaluations request.
type batch struct {
	// defaults are the top-level members of an evaluation request.
	defaults map[string]any
	// items are the evaluations, each a JSON object; none means the
	// request is one evaluation, the defaults.
	items    []map[string]any
	semantic Semantic
}

// parseBatch reads an evaluations request. Only the shape of the envelope
// is checked here (evaluations is an array of objects, options is an
// object with a known semantic, the defaults are objects); each item is
// checked after the defaults are merged into it.
func parseBatch(body map[string]any, maxItems int) (batch, *requestError) {
	b := batch{defaults: pick(body)}
	for _, k := range members {
		if v, ok := b.defaults[k]; ok {
			if _, isObj := v.(map[string]any); !isObj {
				return batch{}, invalid("%s must be an object", k)
			}
		}
	}
	if v, ok := body["options"]; ok && v != nil {
		opts, isObj := v.(map[string]any)
		if !isObj {
			return batch{}, invalid("options must be an object")
		}
		if sv, ok := opts["evaluations_semantic"]; ok && sv != nil {
			switch sv {
			case "execute_all":
				b.semantic = ExecuteAll
			case "deny_on_first_deny":
				b.semantic = DenyOnFirstDeny
			case "permit_on_first_permit":
				b.semantic = PermitOnFirstPermit
			default:
				return batch{}, invalid("options.evaluations_semantic must be execute_all, deny_on_first_deny or permit_on_first_permit")
			}
		}
	}
	v, ok := body["evaluations"]
	if !ok || v == nil {
		return b, nil
	}
	arr, isArr := v.([]any)
	if !isArr {
		return batch{}, invalid("evaluations must be an array")
	}
	if len(arr) > maxItems {
		return batch{}, &requestError{Status: http.StatusBadRequest, Code: CodeTooManyEvaluations,
			Message: fmt.Sprintf("evaluations has %d items; the limit is %d", len(arr), maxItems)}
	}
	b.items = make([]map[string]any, len(arr))
	for i, it := range arr {
		m, isObj := it.(map[string]any)
		if !isObj {
			return batch{}, invalid("evaluations[%d] must be an object", i)
		}
		b.items[i] = m
	}
	return b, nil
}

// merge returns item with the defaults: each of subject, action, resource
// and context comes from the item when it has it, else from the defaults,
// whole (members are not merged inside). Nothing is copied deeper: the
// result shares the defaults' values with the other items.
func merge(defaults, item map[string]any) map[string]any {
	out := pick(item)
	for k, v := range defaults {
		if _, ok := out[k]; !ok {
			out[k] = v
		}
	}
	return out
}
