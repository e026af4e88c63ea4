package extauthz

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/genproto/googleapis/rpc/code"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/verdictpdp/verdict/internal/pipeline"
)

// ErrInvalidDecision is wrapped when the policy's value at the decision path
// has a shape that cannot be turned into a CheckResponse.
var ErrInvalidDecision = pipeline.ErrInvalidDecision

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidDecision, fmt.Sprintf(format, args...))
}

// responseFor maps a decision (a boolean, or an object with "allowed" and
// optional response fields) onto a CheckResponse the way opa-envoy-plugin
// does. Headers given as an object are emitted in key order, so the answer
// is deterministic.
func responseFor(decision any) (*authv3.CheckResponse, error) {
	switch d := decision.(type) {
	case bool:
		st := code.Code_PERMISSION_DENIED
		if d {
			st = code.Code_OK
		}
		return &authv3.CheckResponse{Status: &rpcstatus.Status{Code: int32(st)}}, nil
	case map[string]any:
		return objectResponse(d)
	default:
		return nil, invalid("decision must be a boolean or an object, got %s", typeName(decision))
	}
}

func objectResponse(d map[string]any) (*authv3.CheckResponse, error) {
	v, ok := d["allowed"]
	if !ok {
		return nil, invalid(`decision object has no "allowed" key`)
	}
	allowed, ok := v.(bool)
	if !ok {
		return nil, invalid(`"allowed" must be a boolean, got %s`, typeName(v))
	}
	headers, err := headerOptions(d, "headers")
	if err != nil {
		return nil, err
	}
	resp := &authv3.CheckResponse{}
	if md, ok := d["dynamic_metadata"]; ok {
		obj, ok := md.(map[string]any)
		if !ok {
			return nil, invalid(`"dynamic_metadata" must be an object, got %s`, typeName(md))
		}
		if resp.DynamicMetadata, err = structpb.NewStruct(obj); err != nil {
			return nil, invalid(`"dynamic_metadata": %v`, err)
		}
	}

	if allowed {
		ok := &authv3.OkHttpResponse{Headers: headers}
		if ok.HeadersToRemove, err = stringList(d, "request_headers_to_remove"); err != nil {
			return nil, err
		}
		if ok.ResponseHeadersToAdd, err = headerOptions(d, "response_headers_to_add"); err != nil {
			return nil, err
		}
		if ok.QueryParametersToRemove, err = stringList(d, "query_parameters_to_remove"); err != nil {
			return nil, err
		}
		if ok.QueryParametersToSet, err = queryParams(d); err != nil {
			return nil, err
		}
		resp.Status = &rpcstatus.Status{Code: int32(code.Code_OK)}
		resp.HttpResponse = &authv3.CheckResponse_OkResponse{OkResponse: ok}
		return resp, nil
	}

	denied := &authv3.DeniedHttpResponse{Headers: headers}
	if b, ok := d["body"]; ok {
		if denied.Body, ok = b.(string); !ok {
			return nil, invalid(`"body" must be a string, got %s`, typeName(b))
		}
	}
	if denied.Status, err = httpStatus(d); err != nil {
		return nil, err
	}
	resp.Status = &rpcstatus.Status{Code: int32(code.Code_PERMISSION_DENIED)}
	resp.HttpResponse = &authv3.CheckResponse_DeniedResponse{DeniedResponse: denied}
	return resp, nil
}

func httpStatus(d map[string]any) (*typev3.HttpStatus, error) {
	v, ok := d["http_status"]
	if !ok {
		return &typev3.HttpStatus{Code: typev3.StatusCode_Forbidden}, nil
	}
	num, ok := v.(json.Number)
	if !ok {
		return nil, invalid(`"http_status" must be a number, got %s`, typeName(v))
	}
	n, err := num.Int64()
	if err != nil || n < 100 || n > 599 || http.StatusText(int(n)) == "" {
		return nil, invalid(`"http_status" %s is not an HTTP status code`, num)
	}
	if _, ok := typev3.StatusCode_name[int32(n)]; !ok {
		return nil, invalid(`"http_status" %d is not supported by Envoy`, n)
	}
	return &typev3.HttpStatus{Code: typev3.StatusCode(int32(n))}, nil
}

func stringList(d map[string]any, field string) ([]string, error) {
	v, ok := d[field]
	if !ok {
		return nil, nil
	}
	arr, ok := v.([]any)
	if !ok {
		return nil, invalid("%q must be an array of strings, got %s", field, typeName(v))
	}
	out := make([]string, len(arr))
	for i, e := range arr {
		s, ok := e.(string)
		if !ok {
			return nil, invalid("%q must be an array of strings, element %d is %s", field, i, typeName(e))
		}
		out[i] = s
	}
	return out, nil
}

// headerOptions accepts an object of name → string or array of strings, or
// an array of such objects (to repeat a header name).
func headerOptions(d map[string]any, field string) ([]*corev3.HeaderValueOption, error) {
	v, ok := d[field]
	if !ok {
		return nil, nil
	}
	var out []*corev3.HeaderValueOption
	add := func(obj map[string]any) error {
		for _, k := range slices.Sorted(maps.Keys(obj)) {
			switch val := obj[k].(type) {
			case string:
				out = append(out, headerValue(k, val))
			case []any:
				for _, e := range val {
					s, ok := e.(string)
					if !ok {
						return invalid("%q: header %q has a non-string value %s", field, k, typeName(e))
					}
					out = append(out, headerValue(k, s))
				}
			default:
				return invalid("%q: header %q must be a string or an array of strings, got %s", field, k, typeName(val))
			}
		}
		return nil
	}
	switch val := v.(type) {
	case map[string]any:
		if err := add(val); err != nil {
			return nil, err
		}
	case []any:
		for _, e := range val {
			obj, ok := e.(map[string]any)
			if !ok {
				return nil, invalid("%q must be an object or an array of objects, element is %s", field, typeName(e))
			}
			if err := add(obj); err != nil {
				return nil, err
			}
		}
	default:
		return nil, invalid("%q must be an object or an array of objects, got %s", field, typeName(v))
	}
	return out, nil
}

func headerValue(k, v string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, Value: v}}
}

func queryParams(d map[string]any) ([]*corev3.QueryParameter, error) {
	v, ok := d["query_parameters_to_set"]
	if !ok {
		return nil, nil
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, invalid(`"query_parameters_to_set" must be an object, got %s`, typeName(v))
	}
	out := make([]*corev3.QueryParameter, 0, len(obj))
	for _, k := range slices.Sorted(maps.Keys(obj)) {
		switch val := obj[k].(type) {
		case string:
			out = append(out, &corev3.QueryParameter{Key: k, Value: val})
		case []any:
			for _, e := range val {
				s, ok := e.(string)
				if !ok {
					return nil, invalid(`"query_parameters_to_set": %q has a non-string value %s`, k, typeName(e))
				}
				out = append(out, &corev3.QueryParameter{Key: k, Value: s})
			}
		default:
			return nil, invalid(`"query_parameters_to_set": %q must be a string or an array of strings, got %s`, k, typeName(val))
		}
	}
	return out, nil
}

// typeName names a JSON-like value's type in the policy author's terms.
func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}
