package extauthz_test

import (
	"context"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/verdictpdp/verdict/internal/adapter/extauthz"
	"github.com/verdictpdp/verdict/internal/cache"
	"github.com/verdictpdp/verdict/internal/engine/enginetest"
	"github.com/verdictpdp/verdict/internal/guard"
	"github.com/verdictpdp/verdict/internal/pipeline"
)

// methodPolicy allows every GET: its cache key is the method alone.
const methodPolicy = `package envoy.authz
default allow := false
allow if input.attributes.request.http.method == "GET"`

func get(path string, edit ...func(*authv3.AttributeContext_HttpRequest)) *authv3.CheckRequest {
	h := &authv3.AttributeContext_HttpRequest{Method: "GET", Path: path, Headers: map[string]string{"x-request-id": "1"}}
	for _, e := range edit {
		e(h)
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{Http: h}}}
}

// TestCacheNeverAnswersWhatTheBuilderRefuses: a GET the input builder
// refuses must be refused even when an allowed GET with the same cache key
// (the method) was just cached. The fast key once skipped the path
// normalization and the encoding checks, and answered such requests with
// the cached allow.
func TestCacheNeverAnswersWhatTheBuilderRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		input extauthz.InputOptions
		probe *authv3.CheckRequest
		want  typev3.StatusCode
	}{
		{
			// Before paths with backslashes were refused as ambiguous,
			// each "\" normalized to %5C and the normal form went over
			// the limit the raw path was under: the fast key, which did
			// not normalize, answered it from the cache.
			name:  "path the path checks refuse",
			input: extauthz.InputOptions{Path: guard.PathLimits{MaxBytes: 32}},
			probe: get("/" + strings.Repeat(`\`, 20)),
			want:  typev3.StatusCode_BadRequest,
		},
		{
			name:  "path over the configured limit",
			input: extauthz.InputOptions{Path: guard.PathLimits{MaxBytes: 32}},
			probe: get("/" + strings.Repeat("a", 40)),
			want:  typev3.StatusCode_URITooLong,
		},
		{
			name:  "invalid UTF-8 in a header the policy does not read",
			probe: get("/", func(h *authv3.AttributeContext_HttpRequest) { h.Headers["x-note"] = "caf\xc3" }),
			want:  typev3.StatusCode_BadRequest,
		},
		{
			name: "time protojson cannot encode",
			probe: func() *authv3.CheckRequest {
				r := get("/")
				r.Attributes.Request.Time = &timestamppb.Timestamp{Seconds: 1, Nanos: -1}
				return r
			}(),
			want: typev3.StatusCode_BadRequest,
		},
		{
			name: "body that is not JSON",
			probe: get("/", func(h *authv3.AttributeContext_HttpRequest) {
				h.Headers["content-type"] = "application/json"
				h.Body = `{"a":`
			}),
			want: typev3.StatusCode_BadRequest,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := cache.New(cache.Limits{MaxEntries: 16, AdmitFirst: true})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.Close)
			srv := extauthz.NewServer(pipeline.New(enginetest.Engine(t, extauthz.DefaultPath, methodPolicy, c), pipeline.Options{}), extauthz.Options{Input: tc.input})
			ctx := context.Background()
			for i, path := range []string{"/ok", "/other"} {
				resp, _ := srv.Check(ctx, get(path))
				if resp.GetStatus().GetCode() != 0 {
					t.Fatalf("GET %s: %v", path, resp)
				}
				c.Flush()
				if st := c.Stats(); st.Hits != uint64(i) {
					t.Fatalf("GET %s: %d cache hits, want %d: the cache is not answering GETs", path, st.Hits, i)
				}
			}
			resp, _ := srv.Check(ctx, tc.probe)
			if got := resp.GetDeniedResponse().GetStatus().GetCode(); got != tc.want {
				t.Errorf("probe answered %v (cached: allow), want %v; response %v", got, tc.want, resp)
			}
		})
	}
}
