package mcp

import (
	"github.com/open-policy-agent/opa/v1/util"

	"github.com/verdictpdp/verdict/internal/guard"
)

// ParseObject decodes b, the JSON text of one object that a gateway passes
// on apart from its JSON-RPC envelope (the params of a request, the result
// of a response), as strictly as ParseMessages reads a body: valid UTF-8,
// within l (guard.JSONLimits.WithDefaults for unset limits), no member named
// twice in one object, nothing after the value, and an object. Numbers are
// json.Number. what names the object in reasons ("params"). Errors are
// *RequestError with a reason the caller can act on.
func ParseObject(what string, b []byte, l guard.JSONLimits) (map[string]any, error) {
	l.RejectDuplicateKeys = true
	l = l.WithDefaults()
	if v := guard.ScanJSON(b, l); v != nil {
		code := CodeInvalidRequest
		if v.Code == guard.CodeInvalidJSON || v.Code == guard.CodeTrailingData || v.Code == guard.CodeInvalidUTF8 {
			code = CodeParseError
		}
		return nil, &RequestError{JSONRPCCode: code, Reason: what + " refused (" + v.Code + "): " + v.Message}
	}
	var doc any
	if err := util.UnmarshalJSON(b, &doc); err != nil {
		return nil, &RequestError{JSONRPCCode: CodeParseError, Reason: what + " is not valid JSON"}
	}
	obj, ok := doc.(map[string]any)
	if !ok {
		return nil, &RequestError{JSONRPCCode: CodeInvalidParams, Reason: what + " must be a JSON object, not " + TypeName(doc)}
	}
	return obj, nil
}
