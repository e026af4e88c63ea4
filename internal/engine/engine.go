// Package engine owns the active policy: it compiles a set of OPA bundles,
// prepares one query per configured entrypoint, works out what each
// entrypoint's decisions can read of the input, swaps the result in
// atomically and decides inputs against it, through the decision cache
// (and, for adapters that can build it, on only the part of the input a
// decision reads: see PrunedInput).
//
// Each snapshot keeps its data as AST values and its own cache of what
// built-ins compile (schemas, globs, regular expressions); evaluations are
// stopped at their deadline without a goroutine each (see watch).
//
// The engine is the decision core's evaluator. It must not import Envoy, MCP
// or gRPC types: adapters hand it an ast.Value and an entrypoint and get a
// Result or an *Error back.
package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/topdown/print"

	"github.com/verdictpdp/verdict/internal/cache"
	"github.com/verdictpdp/verdict/internal/projection"
)

// DefaultEvalTimeout bounds one evaluation when Deps.EvalTimeout is zero.
const DefaultEvalTimeout = time.Second

// liveCheckTimeout bounds each evaluation of a rule's data-only conditions at
// activation (see projection.DataPrefix).
const liveCheckTimeout = 250 * time.Millisecond

// Deps are the engine's dependencies and settings.
type Deps struct {
	Logger *slog.Logger
	// Entrypoints are slash-separated paths under data, such as
	// "envoy/authz/allow". Each is prepared once per activation.
	Entrypoints []string
	// Optional entrypoints are prepared, and analysed for the cache, only
	// when the active policy defines rules at them (the decision log's
	// data.system.log.mask and drop, the AuthZEN decision and searches):
	// a policy without them is not reported as undefined. Snapshot.Defines
	// reports which are; deciding at one that is not gives
	// CodeUnknownEntrypoint.
	Optional []string
	// EvalTimeout bounds one evaluation. Zero means DefaultEvalTimeout.
	EvalTimeout time.Duration
	// Natives are native compilers by entrypoint (canonical form): each
	// activation asks them for a Go evaluator of that entrypoint, and
	// Decide uses it where it accepts the input (see Native).
	Natives map[string]Native
	// DisableNative keeps every entrypoint in Rego; the natives are still
	// reported, as switched off.
	DisableNative bool
	// Cache, when set, answers Decide for inputs whose projection the active
	// bundle has already decided. It is invalidated on every activation.
	Cache *cache.Cache
}

// Engine evaluates inputs against the active bundle set.
type Engine struct {
	logger      *slog.Logger
	entrypoints []string
	optional    []string
	evalTimeout time.Duration
	cache       *cache.Cache
	natives     map[string]Native
	nativeOff   bool

	activateMu sync.Mutex // serialises activations; never taken on the request path
	generation uint64     // guarded by activateMu
	active     atomic.Pointer[Snapshot]
	listeners  []func(*Snapshot)    // guarded by activateMu
	components map[string]Component // guarded by activateMu
}

// New returns an engine with no active bundle: every evaluation fails with
// CodeNoBundle until Activate succeeds.
func New(deps Deps) (*Engine, error) {
	if len(deps.Entrypoints) == 0 {
		return nil, errors.New("engine: at least one entrypoint is required")
	}
	eps := make([]string, 0, len(deps.Entrypoints))
	for _, ep := range deps.Entrypoints {
		norm, err := NormalizeEntrypoint(ep)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(eps, norm) {
			eps = append(eps, norm)
		}
	}
	var opt []string
	for _, ep := range deps.Optional {
		norm, err := NormalizeEntrypoint(ep)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(eps, norm) && !slices.Contains(opt, norm) {
			opt = append(opt, norm)
		}
	}
	logger := deps.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	timeout := deps.EvalTimeout
	if timeout <= 0 {
		timeout = DefaultEvalTimeout
	}
	natives := make(map[string]Native, len(deps.Natives))
	for ep, n := range deps.Natives {
		norm, err := NormalizeEntrypoint(ep)
		if err != nil {
			return nil, err
		}
		natives[norm] = n
	}
	return &Engine{logger: logger, entrypoints: eps, optional: opt, evalTimeout: timeout, cache: deps.Cache,
		natives: natives, nativeOff: deps.DisableNative}, nil
}

// NormalizeEntrypoint turns "envoy/authz/allow", "/envoy/authz/allow" or
// "envoy.authz.allow" into the canonical slash form, rejecting paths that
// cannot name a rule.
func NormalizeEntrypoint(ep string) (string, error) {
	s := strings.Trim(strings.TrimSpace(ep), "/")
	s = strings.TrimPrefix(s, "data/")
	if !strings.Contains(s, "/") {
		s = strings.TrimPrefix(s, "data.")
		s = strings.ReplaceAll(s, ".", "/")
	}
	if s == "" {
		return "", fmt.Errorf("engine: entrypoint %q is empty", ep)
	}
	for seg := range strings.SplitSeq(s, "/") {
		if seg == "" || !isIdent(seg) {
			return "", fmt.Errorf("engine: entrypoint %q: segment %q is not a Rego identifier", ep, seg)
		}
	}
	return s, nil
}

func isIdent(s string) bool {
	for i, r := range s {
		switch {
		case r == '_', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case i > 0 && r >= '0' && r <= '9':
		default:
			return false
		}
	}
	return true
}

// Entrypoints returns the prepared entrypoints in canonical form.
func (e *Engine) Entrypoints() []string { return slices.Clone(e.entrypoints) }

// Revision returns the active snapshot's revision, or "" before the first
// activation.
func (e *Engine) Revision() string {
	if snap := e.active.Load(); snap != nil {
		return snap.Revision
	}
	return ""
}

// Snapshot returns the active snapshot, or nil before the first activation.
func (e *Engine) Snapshot() *Snapshot { return e.active.Load() }

// OnActivate registers fn to run after every successful activation, in the
// activating goroutine. It is meant for wiring (health, caches), not work.
func (e *Engine) OnActivate(fn func(*Snapshot)) {
	e.activateMu.Lock()
	defer e.activateMu.Unlock()
	e.listeners = append(e.listeners, fn)
}

// Activate compiles bundles (keyed by bundle name) together, prepares every
// entrypoint and swaps the result in. On any error the active snapshot is
// left untouched and the error wraps ErrActivation.
func (e *Engine) Activate(ctx context.Context, bundles map[string]*bundle.Bundle) (*Snapshot, error) {
	e.activateMu.Lock()
	defer e.activateMu.Unlock()

	start := time.Now()
	snap, err := e.build(ctx, bundles)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrActivation, err)
	}
	e.generation++
	snap.Generation = e.generation
	snap.ActivatedAt = time.Now()
	e.active.Store(snap)
	e.cache.InvalidateBefore(snap.Generation)
	e.logger.LogAttrs(ctx, slog.LevelInfo, "bundle activated",
		slog.String("revision", snap.Revision),
		slog.Uint64("generation", snap.Generation),
		slog.Duration("took", time.Since(start)))
	for _, ep := range snap.Undefined {
		e.logger.LogAttrs(ctx, slog.LevelWarn, "entrypoint is undefined in the active policy: every decision there is denied as undefined_decision",
			slog.String("entrypoint", ep),
			slog.String("revision", snap.Revision),
			slog.Any("bundle_roots", rootsOf(snap.Bundles)))
	}
	for _, fn := range e.listeners {
		fn(snap)
	}
	return snap, nil
}

func (e *Engine) build(ctx context.Context, bundles map[string]*bundle.Bundle) (*Snapshot, error) {
	if len(bundles) == 0 {
		return nil, errors.New("no bundles to activate")
	}
	// The store holds bundle data as AST values, converted once here: the
	// evaluator reads them as they are instead of converting what it reads
	// at every evaluation. The conversion copies: activation (which adds
	// data.system.bundles) never writes into a bundle's own Data, so a
	// bundle read again still compares equal to it, and a later activation
	// of the same bundle shares nothing with this snapshot.
	store := inmem.NewWithOpts(inmem.OptRoundTripOnWrite(false), inmem.OptReturnASTValuesOnRead(true))
	compiler := ast.NewCompiler().
		WithEnablePrintStatements(true).
		WithDefaultRegoVersion(ast.RegoV1)

	txn, err := store.NewTransaction(ctx, storage.WriteParams)
	if err != nil {
		return nil, err
	}
	err = bundle.Activate(&bundle.ActivateOpts{
		Ctx:           ctx,
		Store:         store,
		Txn:           txn,
		TxnCtx:        storage.NewContext(),
		Compiler:      compiler,
		Metrics:       metrics.New(),
		Bundles:       bundles,
		ParserOptions: ast.ParserOptions{RegoVersion: ast.RegoV1},
	})
	if err != nil {
		store.Abort(ctx, txn)
		return nil, err
	}
	if err := store.Commit(ctx, txn); err != nil {
		return nil, err
	}

	snap := &Snapshot{
		Bundles:     make(map[string]BundleInfo, len(bundles)),
		queries:     make(map[string]*rego.PreparedEvalQuery, len(e.entrypoints)),
		projections: make(map[string]*projection.Projection, len(e.entrypoints)),
		timeout:     e.evalTimeout,
		waits:       waits(compiler),
		builtins:    newBuiltinCache(),
		store:       store,
	}
	snap.evalOpts = [...]rego.EvalOption{
		rego.EvalMetrics(metrics.NoOp()),
		rego.EvalInterQueryBuiltinValueCache(snap.builtins),
	}
	for name, b := range bundles {
		var roots []string
		if b.Manifest.Roots != nil {
			roots = slices.Clone(*b.Manifest.Roots)
		}
		snap.Bundles[name] = BundleInfo{Revision: b.Manifest.Revision, Roots: roots}
	}
	snap.Revision = compositeRevision(snap.Bundles)

	hook := printHook{logger: e.logger}
	prepare := func(ep string) (ast.Ref, error) {
		ref := entrypointRef(ep)
		pq, err := rego.New(
			rego.ParsedQuery(ast.NewBody(ast.NewExpr(ast.NewTerm(ref)))),
			rego.Compiler(compiler),
			rego.Store(store),
			rego.EnablePrintStatements(true),
			rego.PrintHook(hook),
		).PrepareForEval(ctx)
		if err != nil {
			return nil, fmt.Errorf("prepare %s: %w", ep, err)
		}
		snap.queries[ep] = &pq
		return ref, nil
	}
	local := localSchemas(bundles)
	for _, ep := range e.entrypoints {
		ref, err := prepare(ep)
		if err != nil {
			return nil, err
		}
		snap.projections[ep] = e.analyze(ctx, compiler, store, ep, ref, local)
		if !defined(ctx, compiler, store, ref) {
			snap.Undefined = append(snap.Undefined, ep)
		}
	}
	e.compileNatives(ctx, snap, &Policy{Compiler: compiler, Store: store, Bundles: bundles})
	for _, ep := range e.optional {
		if len(compiler.GetRulesForVirtualDocument(entrypointRef(ep))) == 0 {
			continue
		}
		ref, err := prepare(ep)
		if err != nil {
			return nil, err
		}
		snap.projections[ep] = e.analyze(ctx, compiler, store, ep, ref, local)
	}
	if err := e.buildComponents(ctx, snap); err != nil {
		return nil, err
	}
	return snap, nil
}

// defined reports whether anything in the policy can give ref a value: a
// rule at ref, under it (ref names a package) or above it (ref reaches into
// a rule's value), or bundle data at ref. An entrypoint that is not defined
// is almost always a typo or a bundle that left out the policy it needed.
func defined(ctx context.Context, c *ast.Compiler, store storage.Store, ref ast.Ref) bool {
	if len(c.GetRules(ref)) > 0 {
		return true
	}
	path, err := storage.NewPathForRef(ref)
	if err != nil {
		return false
	}
	_, err = storage.ReadOne(ctx, store, path)
	return err == nil
}

// rootsOf lists the roots of every bundle, as "name:root", for logs.
func rootsOf(bs map[string]BundleInfo) []string {
	var out []string
	for _, name := range slices.Sorted(maps.Keys(bs)) {
		for _, r := range bs[name].Roots {
			out = append(out, name+":"+r)
		}
	}
	return out
}

// entrypointRef turns a canonical entrypoint into a reference under data.
func entrypointRef(ep string) ast.Ref {
	ref := ast.Ref{ast.DefaultRootDocument}
	for seg := range strings.SplitSeq(ep, "/") {
		ref = append(ref, ast.StringTerm(seg))
	}
	return ref
}

// Defines reports whether entrypoint is prepared on this snapshot: always
// for configured entrypoints, and for optional ones when the policy has
// rules at them.
func (s *Snapshot) Defines(entrypoint string) bool {
	_, ok := s.queries[entrypoint]
	return ok
}

// Keys returns the sorted member names of the object at data.<path...>
// in this snapshot's bundle data, and false when there is no object there
// (an adapter listing catalog entries, e.g. data.mcp.servers.crm.tools).
func (s *Snapshot) Keys(ctx context.Context, path ...string) ([]string, bool) {
	if s.store == nil {
		return nil, false
	}
	v, err := storage.ReadOne(ctx, s.store, storage.Path(path))
	if err != nil {
		return nil, false
	}
	var keys []string
	switch obj := v.(type) {
	case ast.Object:
		keys = make([]string, 0, obj.Len())
		for _, k := range obj.Keys() {
			if str, ok := k.Value.(ast.String); ok {
				keys = append(keys, string(str))
			}
		}
	case map[string]any:
		keys = slices.Collect(maps.Keys(obj))
	default:
		return nil, false
	}
	slices.Sort(keys)
	return keys, true
}

// analyze finds what decisions at ep can read of the input, for the cache.
func (e *Engine) analyze(ctx context.Context, c *ast.Compiler, store storage.Store, ep string, ref ast.Ref, localSchemas bool) *projection.Projection {
	live := projection.LiveWithData(ctx, c, store, liveCheckTimeout)
	p := projection.Analyze(c, ref, projection.Options{Live: live, LocalSchemas: localSchemas})
	attrs := []slog.Attr{
		slog.String("entrypoint", ep),
		slog.Bool("cacheable", p.Cacheable()),
		slog.Any("reads", p.Strings()),
	}
	if p.Whole {
		attrs = append(attrs, slog.String("whole_input", p.Reason))
	}
	if !p.Cacheable() {
		attrs = append(attrs, slog.Any("nondeterministic", p.Nondeterministic))
	}
	level := slog.LevelDebug
	if p.Whole || !p.Cacheable() {
		// Worth a line at activation: this entrypoint's decisions are
		// never cached, or keyed on the whole input, and this says why.
		level = slog.LevelInfo
	}
	e.logger.LogAttrs(ctx, level, "entrypoint input projection", attrs...)
	return p
}

// localSchemas reports whether no JSON schema in the bundles can refer to
// another document: no "$ref" member other than a local "#..." fragment, in
// data or in policy, and no "$ref" inside a string (a schema in JSON text).
func localSchemas(bundles map[string]*bundle.Bundle) bool {
	ok := true
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, isStr := x.(string); k == "$ref" && (!isStr || !strings.HasPrefix(s, "#")) {
					ok = false
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		case string:
			if !walkJSONText(v, walk) {
				ok = false
			}
		}
	}
	for _, b := range bundles {
		walk(b.Data)
		for _, m := range b.Modules {
			ast.WalkTerms(m.Parsed, func(t *ast.Term) bool {
				switch v := t.Value.(type) {
				case ast.String:
					if !walkJSONText(string(v), walk) {
						ok = false
					}
				case ast.Object:
					if x := v.Get(ast.StringTerm("$ref")); x != nil {
						if s, isStr := x.Value.(ast.String); !isStr || !strings.HasPrefix(string(s), "#") {
							ok = false
						}
					}
				}
				return !ok
			})
		}
	}
	return ok
}

// walkJSONText walks a string that may hold a schema as JSON text: its first
// JSON value is decoded (as OPA's schema loader does, which ignores what
// follows it), so that an escaped key ("\u0024ref") is seen as "$ref". It
// returns false for text that mentions a reference it could not decode.
func walkJSONText(s string, walk func(any)) bool {
	t := strings.TrimSpace(s)
	if t == "" || (t[0] != '{' && t[0] != '[') {
		return true
	}
	var doc any
	if err := json.NewDecoder(strings.NewReader(t)).Decode(&doc); err != nil {
		return !strings.Contains(t, "ref") && !strings.Contains(t, `\u`)
	}
	walk(doc)
	return true
}

func compositeRevision(bs map[string]BundleInfo) string {
	names := slices.Sorted(maps.Keys(bs))
	if len(names) == 1 {
		return bs[names[0]].Revision
	}
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = n + "=" + bs[n].Revision
	}
	return strings.Join(parts, ",")
}

// BundleInfo describes one activated bundle.
type BundleInfo struct {
	Revision string   `json:"revision"`
	Roots    []string `json:"roots"`
}

// Snapshot is one immutable activation: compiled policy, data and prepared
// queries. Evaluations that loaded a snapshot finish on it even if a newer
// one is activated meanwhile, so no decision mixes two revisions.
type Snapshot struct {
	// Revision is the bundle's manifest revision, or "name=rev,..." (sorted
	// by name) when several bundles are active.
	Revision string
	// Bundles maps bundle names to their revision and roots.
	Bundles map[string]BundleInfo
	// Generation increases by one with every activation of this engine.
	Generation  uint64
	ActivatedAt time.Time
	// Undefined lists the configured entrypoints that no rule and no data
	// of the active bundles defines: decisions there are always undefined
	// (and so denied, unless the service fails open).
	Undefined []string

	queries     map[string]*rego.PreparedEvalQuery
	projections map[string]*projection.Projection
	natives     map[string]*nativeEntry // entrypoints with a native compiler
	timeout     time.Duration
	// waits is set when the policy may call a built-in that waits on the
	// outside world: its evaluations get a context with the deadline.
	waits bool
	// builtins keeps what built-ins compile (schemas, globs, regular
	// expressions) for the life of the snapshot.
	builtins *builtinCache
	// evalOpts are the options every evaluation shares: no metrics (OPA
	// otherwise allocates a set per evaluation that nothing reads) and the
	// snapshot's built-in cache.
	evalOpts [2]rego.EvalOption

	// store holds the bundles' data, read-only once activated (Keys).
	store storage.Store
	// components are what the registered components compiled from it.
	components map[string]any

	internMu sync.Mutex
	interned map[[32]byte]any // decisions shared by cache entries (see intern)
}

// Result is a policy's value at an entrypoint. Value holds JSON-like Go
// values (map[string]any, []any, string, bool, json.Number, nil).
type Result struct {
	Value    any
	Revision string
	Bundles  map[string]BundleInfo
}

// Eval evaluates input at entrypoint on the active snapshot.
func (e *Engine) Eval(ctx context.Context, entrypoint string, input ast.Value) (Result, error) {
	snap := e.active.Load()
	if snap == nil {
		return Result{}, &Error{Code: CodeNoBundle, Message: "no policy bundle is active yet"}
	}
	return snap.Eval(ctx, entrypoint, input)
}

// Eval evaluates input at entrypoint (canonical slash form) on this snapshot.
// The evaluation is stopped, with CodeTimeout, when ctx is done or when it
// has run for the engine's EvalTimeout.
func (s *Snapshot) Eval(ctx context.Context, entrypoint string, input ast.Value) (Result, error) {
	res := Result{Revision: s.Revision, Bundles: s.Bundles}
	pq, ok := s.queries[entrypoint]
	if !ok {
		return res, &Error{Code: CodeUnknownEntrypoint, Message: "entrypoint is not configured"}
	}
	if s.waits {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.timeout)
		defer cancel()
	}
	w := newWatch(ctx, s.timeout)
	rs, err := pq.Eval(ctx, s.evalOpts[0], s.evalOpts[1], rego.EvalParsedInput(input), rego.EvalExternalCancel(w))
	switch {
	case err != nil && w.stopped.Load():
		if w.deadline {
			err = fmt.Errorf("%w (after %v): %w", context.DeadlineExceeded, s.timeout, err)
		}
		return res, &Error{Code: CodeTimeout, Message: "policy evaluation timed out", Err: err}
	case err != nil && ctx.Err() != nil:
		// A built-in that honours the context gave up on it.
		return res, &Error{Code: CodeTimeout, Message: "policy evaluation timed out", Err: err}
	case err != nil:
		return res, &Error{Code: CodeEvalError, Message: "policy evaluation failed", Err: err}
	case len(rs) == 0 || len(rs[0].Expressions) == 0:
		return res, &Error{Code: CodeUndefined, Message: "policy decision is undefined"}
	case len(rs) > 1:
		return res, &Error{Code: CodeConflict, Message: "policy produced more than one decision"}
	}
	res.Value = rs[0].Expressions[0].Value
	return res, nil
}

type printHook struct{ logger *slog.Logger }

func (h printHook) Print(pctx print.Context, msg string) error {
	h.logger.LogAttrs(pctx.Context, slog.LevelDebug, "policy print",
		slog.String("location", pctx.Location.String()), slog.String("msg", msg))
	return nil
}
