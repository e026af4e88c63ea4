package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/structpb"

	mcpv1 "github.com/verdictpdp/verdict/proto/verdict/mcp/v1"
)

// Decider is the native MCP API the gateway asks: the decision core in
// this process (internal/adapter/mcpapi.Server satisfies it) or a remote
// Verdict over gRPC (Remote).
type Decider interface {
	Check(ctx context.Context, req *mcpv1.CheckRequest) (*mcpv1.CheckResponse, error)
	FilterTools(ctx context.Context, req *mcpv1.FilterToolsRequest) (*mcpv1.FilterToolsResponse, error)
	CheckResult(ctx context.Context, req *mcpv1.CheckResultRequest) (*mcpv1.CheckResultResponse, error)
}

// Remote returns a Decider asking a Verdict over gRPC.
func Remote(c mcpv1.MCPPolicyClient) Decider { return remote{c: c} }

type remote struct{ c mcpv1.MCPPolicyClient }

func (r remote) Check(ctx context.Context, req *mcpv1.CheckRequest) (*mcpv1.CheckResponse, error) {
	return r.c.Check(ctx, req, grpc.WaitForReady(false))
}

func (r remote) FilterTools(ctx context.Context, req *mcpv1.FilterToolsRequest) (*mcpv1.FilterToolsResponse, error) {
	return r.c.FilterTools(ctx, req)
}

func (r remote) CheckResult(ctx context.Context, req *mcpv1.CheckResultRequest) (*mcpv1.CheckResultResponse, error) {
	return r.c.CheckResult(ctx, req)
}

// exactInteger is the largest integer a float64 (the number type of the
// native API's Struct and of policy input) holds exactly.
const exactInteger = 1 << 53

// errInexact is a number in a client's params that policy would see as
// another number than the server.
var errInexact = errors.New("number cannot be decided exactly")

// toStruct converts decoded JSON (numbers as json.Number) to a Struct.
// With exact, an integer beyond ±2^53 is refused: policy would decide on a
// rounded value while the server reads the exact one.
func toStruct(m map[string]any, exact bool) (*structpb.Struct, error) {
	if m == nil {
		return nil, nil
	}
	fields := make(map[string]*structpb.Value, len(m))
	for k, v := range m {
		pv, err := toValue(v, exact)
		if err != nil {
			return nil, err
		}
		fields[k] = pv
	}
	return &structpb.Struct{Fields: fields}, nil
}

func toValue(v any, exact bool) (*structpb.Value, error) {
	switch x := v.(type) {
	case nil:
		return structpb.NewNullValue(), nil
	case bool:
		return structpb.NewBoolValue(x), nil
	case string:
		return structpb.NewStringValue(x), nil
	case json.Number:
		f, err := numberValue(x, exact)
		if err != nil {
			return nil, err
		}
		return structpb.NewNumberValue(f), nil
	case float64:
		return structpb.NewNumberValue(x), nil
	case map[string]any:
		s, err := toStruct(x, exact)
		if err != nil {
			return nil, err
		}
		return structpb.NewStructValue(s), nil
	case []any:
		vals := make([]*structpb.Value, len(x))
		for i, e := range x {
			pv, err := toValue(e, exact)
			if err != nil {
				return nil, err
			}
			vals[i] = pv
		}
		return structpb.NewListValue(&structpb.ListValue{Values: vals}), nil
	default:
		return nil, fmt.Errorf("unexpected JSON value of type %T", v)
	}
}

func numberValue(n json.Number, exact bool) (float64, error) {
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%w: %d-digit number is out of range", errInexact, len(n))
	}
	if exact && !strings.ContainsAny(string(n), ".eE") {
		// Compared as an integer: 2^53+1 rounds to 2^53 as a float64.
		if i, err := strconv.ParseInt(string(n), 10, 64); err != nil || i > exactInteger || i < -exactInteger {
			return 0, fmt.Errorf("%w: integers beyond ±2^53 are refused", errInexact)
		}
	}
	return f, nil
}
