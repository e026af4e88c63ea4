package engine

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
)

// activate returns the snapshot of an engine deciding test/decision with
// policy and data, evaluations bounded by timeout.
func activate(t testing.TB, timeout time.Duration, policy string, data map[string]any) *Snapshot {
	t.Helper()
	e, err := New(Deps{Entrypoints: []string{"test/decision"}, EvalTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	m, err := ast.ParseModuleWithOpts("p.rego", policy, ast.ParserOptions{RegoVersion: ast.RegoV1})
	if err != nil {
		t.Fatal(err)
	}
	b := &bundle.Bundle{
		Manifest: bundle.Manifest{Revision: "r1", Roots: &[]string{""}},
		Data:     data,
		Modules:  []bundle.ModuleFile{{Path: "p.rego", URL: "p.rego", Parsed: m, Raw: []byte(policy)}},
	}
	snap, err := e.Activate(context.Background(), map[string]*bundle.Bundle{"main": b})
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// plainEval evaluates the policy as OPA does out of the box: data as Go
// values converted on read, no built-in value cache, a goroutine watching
// the context.
func plainEval(t testing.TB, policy string, data map[string]any, input ast.Value) any {
	t.Helper()
	rs, err := rego.New(
		rego.Query("data.test.decision"),
		rego.Module("p.rego", policy),
		rego.Store(inmem.NewFromObject(data)),
		rego.ParsedInput(input),
	).Eval(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 {
		return nil
	}
	return rs[0].Expressions[0].Value
}

// TestBuiltinCacheCompilesOnce evaluates a policy that matches a schema, a
// glob and a regular expression from bundle data against many inputs: each
// is compiled once for the snapshot, and every answer is the one OPA gives
// without the cache.
func TestBuiltinCacheCompilesOnce(t *testing.T) {
	t.Parallel()
	policy := `package test

decision := {
	"schema": json.match_schema(input.doc, data.schema),
	"glob": glob.match(data.glob, ["/"], input.path),
	"regex": regex.match(data.regex, input.path),
}
`
	data := map[string]any{
		"schema": map[string]any{
			"type":       "object",
			"properties": map[string]any{"n": map[string]any{"type": "integer", "maximum": 10}},
			"required":   []any{"n"},
		},
		"glob":  "/api/*/items",
		"regex": `^/api/v[0-9]+/`,
	}
	snap := activate(t, time.Second, policy, data)
	const n = 40
	for i := range n {
		input := ast.MustParseTerm(`{"doc": {"n": ` + strconv.Itoa(i%15) + `}, "path": "/api/v` + strconv.Itoa(i%3) + `/items"}`).Value
		if i%4 == 0 {
			input = ast.MustParseTerm(`{"doc": {"m": "x"}, "path": "/other"}`).Value
		}
		res, err := snap.Eval(context.Background(), "test/decision", input)
		if err != nil {
			t.Fatal(err)
		}
		if want := plainEval(t, policy, data, input); !reflect.DeepEqual(res.Value, want) {
			t.Fatalf("input %v: %v, without the cache %v", input, res.Value, want)
		}
	}
	if got := snap.builtins.inserts; got != 3 {
		t.Fatalf("built-ins stored %d compiled values over %d evaluations; want 3 (schema, glob, regex once each)", got, n)
	}
}

func TestBuiltinCacheBounds(t *testing.T) {
	t.Parallel()
	c := newBuiltinCache()
	for i := range 3 * maxBuiltinEntries {
		c.Insert(ast.String("pattern-"+strconv.Itoa(i)), i)
	}
	if c.items.Len() > maxBuiltinEntries || c.bytes > maxBuiltinBytes {
		t.Fatalf("%d entries, %d bytes: over the bounds", c.items.Len(), c.bytes)
	}
	if v, ok := c.Get(ast.String("pattern-" + strconv.Itoa(3*maxBuiltinEntries-1))); !ok || v != 3*maxBuiltinEntries-1 {
		t.Fatalf("the last value stored is not found: %v %v", v, ok)
	}
	big := make([]byte, maxBuiltinBytes/4/4)
	before := c.inserts
	c.Insert(ast.String(big), 0)
	if c.inserts != before || c.bytes > maxBuiltinBytes {
		t.Fatalf("a value over an eighth of the byte bound was stored")
	}
	total := 0
	c.items.Iter(func(_ ast.Value, e builtinEntry) bool { total += e.size; return false })
	if total != c.bytes {
		t.Fatalf("bytes %d, entries add up to %d", c.bytes, total)
	}
	if c.GetCache("io.jwt") != nil {
		t.Fatal("a named cache is on")
	}
}

// loopPolicy runs for seconds unless it is stopped.
const loopPolicy = "package test\n\ndecision := count([1 | some i in numbers.range(1, 4000); some j in numbers.range(1, 4000)])\n"

// TestCallerCancellationStopsEvaluation cancels the caller's context of an
// evaluation whose own timeout is far away: it stops with CodeTimeout.
func TestCallerCancellationStopsEvaluation(t *testing.T) {
	t.Parallel()
	snap := activate(t, time.Minute, loopPolicy, nil)
	if snap.waits {
		t.Fatal("a policy without a waiting built-in is evaluated under a deadline context")
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(30*time.Millisecond, cancel)
	start := time.Now()
	_, err := snap.Eval(ctx, "test/decision", ast.NewObject())
	if CodeOf(err) != CodeTimeout {
		t.Fatalf("Eval = %v, want %s", err, CodeTimeout)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("cancellation took %v to stop the evaluation", took)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a cancelled evaluation reports the deadline: %v", err)
	}
}

// TestDeadlineStopsWaitingBuiltin evaluates a policy that waits on an HTTP
// server that never answers: the deadline reaches the built-in through the
// context, and the evaluation stops with CodeTimeout.
func TestDeadlineStopsWaitingBuiltin(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-release }))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	snap := activate(t, 100*time.Millisecond, `package test

decision := http.send({"method": "GET", "url": input.url}).status_code
`, nil)
	if !snap.waits {
		t.Fatal("a policy calling http.send is not evaluated under a deadline context")
	}
	start := time.Now()
	_, err := snap.Eval(context.Background(), "test/decision", ast.MustParseTerm(`{"url": "`+srv.URL+`"}`).Value)
	if CodeOf(err) != CodeTimeout {
		t.Fatalf("Eval = %v, want %s", err, CodeTimeout)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("the deadline took %v to stop http.send", took)
	}
}

func TestWaits(t *testing.T) {
	t.Parallel()
	for policy, want := range map[string]bool{
		"package test\n\ndecision := glob.match(\"a*\", [], input.x)\n":                  false,
		"package test\n\ndecision := time.now_ns()\n":                                    true,
		"package test\n\ndecision := 1\n\nf := net.lookup_ip_addr(\"example.com\")\n":    true,
		"package test\n\ndecision := json.match_schema(input, {\"type\": \"object\"})\n": true,
	} {
		if got := activate(t, time.Second, policy, nil).waits; got != want {
			t.Errorf("waits = %v for\n%s", got, policy)
		}
	}
}
