package extauthz

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/util"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"

	"github.com/verdictpdp/verdict/internal/audit"
	"github.com/verdictpdp/verdict/internal/bundle"
	"github.com/verdictpdp/verdict/internal/bundle/bundletest"
	"github.com/verdictpdp/verdict/internal/engine"
	"github.com/verdictpdp/verdict/internal/engine/enginetest"
	"github.com/verdictpdp/verdict/internal/pipeline"
)

// prunePolicy is one policy the pruned input is held to, with the options
// its requests are built with.
type prunePolicy struct {
	name string
	eng  *engine.Engine
	path string
	opts InputOptions
}

// prunePolicies are the policies of the ext_authz corpora (testdata/extauthz,
// the envoy cases of testdata/cache-soundness), the benchmark's RBAC policy
// and the key fuzzer's, which between them read every part of the input.
func prunePolicies(t testing.TB) []prunePolicy {
	t.Helper()
	var out []prunePolicy
	add := func(name, policy string, data map[string]any, path string, opts InputOptions) {
		if path == "" {
			path = DefaultPath
		}
		raw := bundletest.Archive(t, bundletest.Spec{Revision: "r1", Modules: map[string]string{"p.rego": policy}, Data: data})
		b, err := bundle.NewReader(bundle.Limits{}, nil).ReadArchive("p", raw)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		e, err := engine.New(engine.Deps{Entrypoints: []string{path}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.Activate(context.Background(), map[string]*bundle.Bundle{"p": b}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out = append(out, prunePolicy{name: name, eng: e, path: path, opts: opts})
	}
	files, _ := filepath.Glob("../../../testdata/extauthz/*.yaml")
	soundness, _ := filepath.Glob("../../../testdata/cache-soundness/*.yaml")
	for _, file := range append(files, soundness...) {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Policy  string         `json:"policy"`
			Data    map[string]any `json:"data"`
			Envoy   []any          `json:"envoy"`
			Options struct {
				Path               string `json:"path"`
				SkipBodyParse      bool   `json:"skip_body_parse"`
				MaxBodyBytes       int    `json:"max_body_bytes"`
				AllowDuplicateKeys bool   `json:"allow_duplicate_keys"`
			} `json:"options"`
		}
		if err := yaml.Unmarshal(raw, &doc); err != nil {
			t.Fatal(err)
		}
		if doc.Policy == "" || (strings.Contains(file, "cache-soundness") && len(doc.Envoy) == 0) {
			continue
		}
		o := doc.Options
		add(filepath.Base(file), doc.Policy, doc.Data, o.Path,
			InputOptions{SkipBodyParse: o.SkipBodyParse, MaxBodyBytes: o.MaxBodyBytes, AllowDuplicateKeys: o.AllowDuplicateKeys})
	}
	rbac, err := os.ReadFile("../../../testdata/bench/rbac.rego")
	if err != nil {
		t.Fatal(err)
	}
	add("bench rbac", string(rbac), map[string]any{"rbac": map[string]any{"permissions": map[string]any{
		"reader": []any{map[string]any{"method": "GET", "path": "/api/*/items"}},
	}}}, "", InputOptions{})
	for i, src := range fuzzKeyPolicies {
		add("key policy "+string(rune('a'+i)), src, nil, "", InputOptions{})
	}
	return out
}

// pruneRequests are the requests of the ext_authz corpora (testdata/extauthz,
// testdata/hostile, the envoy cases of testdata/cache-soundness) and the key
// fuzzer's seeds, each with the identity and options it comes with (nil
// options: the policy's).
type pruneRequest struct {
	req   *authv3.CheckRequest
	opts  *InputOptions
	ident *requestIdentity
}

func pruneRequests(t testing.TB) []pruneRequest {
	t.Helper()
	var out []pruneRequest
	for _, wire := range seedRequestsFrom(t, "../../../testdata/extauthz/*.yaml", "../../../testdata/hostile/envoy.yaml") {
		var req authv3.CheckRequest
		if err := proto.Unmarshal(wire, &req); err != nil {
			t.Fatal(err)
		}
		out = append(out, pruneRequest{req: &req})
	}
	soundness, _ := filepath.Glob("../../../testdata/cache-soundness/*.yaml")
	for _, file := range soundness {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Envoy []struct {
				Request map[string]any `json:"request"`
			} `json:"envoy"`
		}
		if err := yaml.Unmarshal(raw, &doc); err != nil {
			t.Fatal(err)
		}
		for _, c := range doc.Envoy {
			js, _ := yaml.Marshal(c.Request)
			js, _ = yaml.YAMLToJSON(js)
			var req authv3.CheckRequest
			if err := protojson.Unmarshal(js, &req); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			out = append(out, pruneRequest{req: &req})
		}
	}
	for _, a := range envoyKeySeeds {
		req, opts, ident := a.request()
		out = append(out, pruneRequest{req: req, opts: &opts, ident: ident})
	}
	for _, mutate := range keyVariants {
		r := proto.CloneOf(baseKeyRequest())
		mutate(r)
		out = append(out, pruneRequest{req: r})
	}
	return out
}

// checkPrunedDecision evaluates req at p's entrypoint on the whole input
// and, when the adapter builds one, on the pruned input: the two must hold
// the same values at every projected path (enginetest.CheckPruned) and get
// the same decision (value, or error code). It reports whether the request
// was pruned.
func checkPrunedDecision(t testing.TB, p prunePolicy, r pruneRequest) bool {
	t.Helper()
	opts := p.opts
	if r.opts != nil {
		opts = *r.opts
	}
	snap := p.eng.Snapshot()
	proj := snap.Projection(p.path)
	whole, err := (&envoyInput{req: r.req, opts: opts, ident: r.ident}).Value()
	in := &envoyInput{req: r.req, opts: opts, ident: r.ident}
	if !enginetest.CheckPruned(t, in, proj, whole, err) {
		return false
	}
	pruned, _ := (&envoyInput{req: r.req, opts: opts, ident: r.ident}).PrunedValue(proj)
	ctx := context.Background()
	want, wantErr := snap.Eval(ctx, p.path, whole)
	got, gotErr := snap.Eval(ctx, p.path, pruned)
	if (wantErr == nil) != (gotErr == nil) || (wantErr != nil && engine.CodeOf(wantErr) != engine.CodeOf(gotErr)) {
		t.Fatalf("%s, paths %v: whole input %v, pruned input %v\nwhole  %v\npruned %v", p.name, proj.Strings(), wantErr, gotErr, whole, pruned)
	}
	if !reflect.DeepEqual(want.Value, got.Value) {
		t.Fatalf("%s, paths %v: whole input decides %v, pruned input %v\nwhole  %v\npruned %v", p.name, proj.Strings(), want.Value, got.Value, whole, pruned)
	}
	return true
}

// TestPrunedInputDecidesAsWholeInput evaluates every corpus request under
// every corpus policy on the whole input and on the pruned one.
func TestPrunedInputDecidesAsWholeInput(t *testing.T) {
	t.Parallel()
	policies, requests := prunePolicies(t), pruneRequests(t)
	total := 0
	for _, p := range policies {
		pruned := 0
		for _, r := range requests {
			if checkPrunedDecision(t, p, r) {
				pruned++
			}
		}
		proj := p.eng.Snapshot().Projection(p.path)
		if !proj.Whole && proj.Cacheable() && pruned == 0 {
			t.Errorf("%s (paths %v): no request was pruned", p.name, proj.Strings())
		}
		total += pruned
	}
	if total < len(requests) {
		t.Fatalf("%d pruned evaluations of %d requests under %d policies", total, len(requests), len(policies))
	}
}

// FuzzPrunedDecision is TestPrunedInputDecidesAsWholeInput on the requests
// FuzzEnvoyKey makes.
func FuzzPrunedDecision(f *testing.F) {
	for _, a := range envoyKeySeeds {
		f.Add(a.path, a.method, a.headers, a.body, a.rawBody, a.ext, a.principal, a.sec, a.nanos, a.flags, a.subject, a.claims, a.dns)
	}
	for _, wire := range seedRequestsFrom(f, "../../../testdata/extauthz/*.yaml", "../../../testdata/hostile/envoy.yaml") {
		var req authv3.CheckRequest
		if proto.Unmarshal(wire, &req) != nil {
			continue
		}
		a := seedArgs(&req)
		f.Add(a.path, a.method, a.headers, a.body, a.rawBody, a.ext, a.principal, a.sec, a.nanos, a.flags, a.subject, a.claims, a.dns)
	}
	policies := prunePolicies(f)
	f.Fuzz(func(t *testing.T, path, method, headers, body string, rawBody []byte, ext, principal string,
		sec int64, nanos int32, flags uint16, subject, claims, dns string,
	) {
		a := envoyKeyArgs{path, method, headers, body, rawBody, ext, principal, sec, nanos, flags, subject, claims, dns, ""}
		req, opts, ident := a.request()
		for _, p := range policies {
			checkPrunedDecision(t, p, pruneRequest{req: req, opts: &opts, ident: ident})
		}
	})
}

// auditSink keeps the records it is sent.
type auditSink struct {
	mu      sync.Mutex
	records [][]byte
}

func (s *auditSink) Name() string { return "mem" }
func (s *auditSink) Write(_ context.Context, batch []audit.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range batch {
		s.records = append(s.records, slices.Clone(r.JSON))
	}
	return nil
}
func (s *auditSink) Close(context.Context) error { return nil }
func (s *auditSink) Status() audit.SinkStatus    { return audit.SinkStatus{Name: "mem", Healthy: true} }

// TestPrunedDecisionAuditsWholeInput: a decision evaluated on the pruned
// input is recorded, and shown by InputJSON, with the whole input, also
// when the evaluation fails.
func TestPrunedDecisionAuditsWholeInput(t *testing.T) {
	t.Parallel()
	policy := `package envoy.authz

allow := true if input.attributes.request.http.method == "GET"
allow := false if input.attributes.request.http.method == "GET"
allow := true if input.attributes.request.http.method == "HEAD"
`
	sink := &auditSink{}
	rec, err := audit.New(audit.Options{Sinks: []audit.Sink{sink}})
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(pipeline.New(enginetest.Engine(t, DefaultPath, policy, nil), pipeline.Options{Audit: rec}), Options{})
	var wants []any
	for _, method := range []string{"HEAD", "GET"} { // an allow, then a conflict
		req := baseKeyRequest()
		h(req).Method = method
		delete(h(req).Headers, "authorization") // the log redacts it
		whole, err := (&envoyInput{req: req}).Value()
		if err != nil {
			t.Fatal(err)
		}
		want, err := ast.JSON(whole)
		if err != nil {
			t.Fatal(err)
		}
		wants = append(wants, want)
		out := srv.Decide(context.Background(), req)
		if !out.in.pruned {
			t.Fatalf("%s: the policy was evaluated on the whole input", method)
		}
		if got := out.InputJSON(); !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: InputJSON = %v, want the whole input %v", method, got, want)
		}
		if method == "GET" && engine.CodeOf(out.Err) != engine.CodeEvalError {
			t.Fatalf("GET: %v, want a conflict", out.Err)
		}
		srv.finish(context.Background(), req, &out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rec.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if len(sink.records) != 2 {
		t.Fatalf("%d records, want 2", len(sink.records))
	}
	for i, raw := range sink.records {
		var event struct {
			Input any `json:"input"`
		}
		if err := util.UnmarshalJSON(raw, &event); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(event.Input, wants[i]) {
			t.Fatalf("record %d holds input %v, want the whole input %v", i, event.Input, wants[i])
		}
	}
}
