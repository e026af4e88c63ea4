package extauthz

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
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
	return seedRequestsFrom(f, "../../../testdata/extauthz/*.yaml")
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
		if req.GetAttributes().GetRequest().GetHttp().GetHeaders()[HeaderPartialBody] == "true" && input["truncated_body"] != true {
			t.Fatalf("Envoy marked the body partial, truncated_body = %v", input["truncated_body"])
		}
	})
}

// FuzzParseBody targets the body parsers directly with arbitrary content
// types and payloads, with and without Envoy's partial-body header. Refusing
// duplicate member names may only turn a success into a duplicate_key
// refusal: everything else parses the same with and without it.
func FuzzParseBody(f *testing.F) {
	f.Add("application/json", `{"a":[1,{"b":null}]}`, "", false)
	f.Add("application/x-www-form-urlencoded", "a=1&b=%zz", "", false)
	f.Add("multipart/form-data; boundary=X", "--X\r\nContent-Disposition: form-data; name=\"a\"\r\nContent-Type: application/json\r\n\r\n[1]\r\n--X--\r\n", "", false)
	f.Add("application/json", "", "10", false)
	f.Add("application/json", `{"action":"write","action":"read"}`, "", false)
	f.Add("application/json", `{"a":{"b":1,"\u0062":2}}`, "", false)
	f.Add("multipart/form-data; boundary=X", "--X\r\nContent-Disposition: form-data; name=\"a\"\r\nContent-Type: application/json\r\n\r\n{\"k\":1,\"k\":2}\r\n--X--\r\n", "", false)
	f.Add("application/json", `{"a":`, "", true)
	f.Add("", "", "ten", true)
	f.Fuzz(func(t *testing.T, ctype, body, clen string, partial bool) {
		headers := map[string]string{"content-type": ctype}
		if clen != "" {
			headers["content-length"] = clen
		}
		if partial {
			headers[HeaderPartialBody] = "true"
		}
		v, truncated, err := parseBody(headers, body, nil, guard.JSONLimits{RejectDuplicateKeys: true})
		lax, laxTruncated, laxErr := parseBody(headers, body, nil, guard.JSONLimits{})
		if partial && (v != nil || !truncated || err != nil) {
			t.Fatalf("partial body: parseBody = %v, %v, %v; want nil, true, nil", v, truncated, err)
		}
		if err != nil {
			var ie *InputError
			if !errors.As(err, &ie) || ie.Reason == "" {
				t.Fatalf("parseBody error without a reason: %v", err)
			}
			if laxErr == nil && ie.Code != guard.CodeDuplicateKey {
				t.Fatalf("parseBody refuses with %q only when duplicates are refused: %v", ie.Code, err)
			}
			return
		}
		if laxErr != nil || laxTruncated != truncated || !reflect.DeepEqual(lax, v) {
			t.Fatalf("accepting duplicates changes a body without any: %v %v %v, then %v %v %v", v, truncated, err, lax, laxTruncated, laxErr)
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
		f.Add(s, false, false)
	}
	for _, req := range buildValueCases(f) {
		// Megabyte bodies slow the mutator down without finding more.
		if wire, err := proto.Marshal(req); err == nil && len(wire) < 4096 {
			f.Add(wire, false, false)
			f.Add(wire, false, true)
		}
	}
	f.Fuzz(func(t *testing.T, wire []byte, skipBody, allowDups bool) {
		var req authv3.CheckRequest
		if err := proto.Unmarshal(wire, &req); err != nil {
			return
		}
		if err := sameInput(&req, InputOptions{MaxBodyBytes: 1 << 16, SkipBodyParse: skipBody, AllowDuplicateKeys: allowDups}); err != nil {
			t.Fatal(err)
		}
	})
}
