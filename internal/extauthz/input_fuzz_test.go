package extauthz

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/open-policy-agent/opa/v1/ast"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"

	"github.com/verdictpdp/verdict/internal/guard"
)

// seedRequests returns the CheckRequests of the ext_authz corpus in wire
// form, to seed the fuzzers with realistic messages.
func seedRequests(f testing.TB) [][]byte {
	f.Helper()
	return seedRequestsFrom(f, "../../testdata/extauthz/*.yaml")
}

// seedRequestsFrom returns the requests of the corpus files that match the
// patterns, in wire form.
func seedRequestsFrom(f testing.TB, patterns ...string) [][]byte {
	f.Helper()
	var files []string
	for _, p := range patterns {
		m, _ := filepath.Glob(p)
		files = append(files, m...)
	}
	var out [][]byte
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		var doc struct {
			Cases []struct {
				Request map[string]any `json:"request"`
				Envoy   map[string]any `json:"envoy"` // testdata/mcp/envoy.yaml
			} `json:"cases"`
		}
		if err := yaml.Unmarshal(raw, &doc); err != nil {
			f.Fatal(err)
		}
		for _, c := range doc.Cases {
			if c.Request == nil {
				c.Request = c.Envoy
			}
			js, _ := yaml.Marshal(c.Request)
			js, _ = yaml.YAMLToJSON(js)
			var req authv3.CheckRequest
			if err := protojson.Unmarshal(js, &req); err != nil {
				continue
			}
			wire, err := proto.Marshal(&req)
			if err != nil {
				f.Fatal(err)
			}
			out = append(out, wire)
		}
	}
	if len(out) == 0 {
		f.Fatal("no seed requests")
	}
	return out
}

// FuzzBuildInput feeds arbitrary CheckRequest wire bytes (as a gRPC server
// would decode them) through the input mapping: it must never panic, and
// every success must convert to a Rego value.
func FuzzBuildInput(f *testing.F) {
	for _, s := range seedRequests(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, wire []byte) {
		var req authv3.CheckRequest
		if err := proto.Unmarshal(wire, &req); err != nil {
			return
		}
		input, err := BuildInput(&req, InputOptions{MaxBodyBytes: 1 << 16})
		if err != nil {
			var ie *InputError
			if !errors.As(err, &ie) || ie.Reason == "" || ie.HTTPStatus < typev3.StatusCode_BadRequest {
				t.Fatalf("BuildInput error without a caller reason: %v", err)
			}
			return
		}
		if _, err := ast.InterfaceToValue(input); err != nil {
			t.Fatalf("input does not convert to a Rego value: %v", err)
		}
	})
}

// FuzzParseBody targets the body parsers directly with arbitrary content
// types and payloads.
func FuzzParseBody(f *testing.F) {
	f.Add("application/json", `{"a":[1,{"b":null}]}`, "")
	f.Add("application/x-www-form-urlencoded", "a=1&b=%zz", "")
	f.Add("multipart/form-data; boundary=X", "--X\r\nContent-Disposition: form-data; name=\"a\"\r\nContent-Type: application/json\r\n\r\n[1]\r\n--X--\r\n", "")
	f.Add("application/json", "", "10")
	f.Fuzz(func(t *testing.T, ctype, body, clen string) {
		headers := map[string]string{"content-type": ctype}
		if clen != "" {
			headers["content-length"] = clen
		}
		v, _, err := parseBody(headers, body, nil, guard.JSONLimits{})
		if err != nil {
			var ie *InputError
			if !errors.As(err, &ie) || ie.Reason == "" {
				t.Fatalf("parseBody error without a reason: %v", err)
			}
			return
		}
		if _, err := ast.InterfaceToValue(v); err != nil {
			t.Fatalf("parsed body does not convert to a Rego value: %v", err)
		}
	})
}

// FuzzBuildValue checks BuildValue against BuildInput, the reference, on
// arbitrary CheckRequest wire bytes: both succeed with the same value and
// parsed body, or both fail with the same status and reason.
func FuzzBuildValue(f *testing.F) {
	for _, s := range seedRequests(f) {
		f.Add(s, false)
	}
	for _, req := range buildValueCases(f) {
		// Megabyte bodies slow the mutator down without finding more.
		if wire, err := proto.Marshal(req); err == nil && len(wire) < 4096 {
			f.Add(wire, false)
		}
	}
	f.Fuzz(func(t *testing.T, wire []byte, skipBody bool) {
		var req authv3.CheckRequest
		if err := proto.Unmarshal(wire, &req); err != nil {
			return
		}
		if err := sameInput(&req, InputOptions{MaxBodyBytes: 1 << 16, SkipBodyParse: skipBody}); err != nil {
			t.Fatal(err)
		}
	})
}
