package engine

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/verdictpdp/verdict/internal/cache"
	"github.com/verdictpdp/verdict/internal/projection"
)

// Input is one request's policy input as Decide sees it: an adapter can key
// the cache straight from its own request (without building the input) and
// build the input only when the policy must be evaluated.
type Input interface {
	// AppendKey appends to dst an encoding of the input's projected paths
	// that is injective for this adapter and starts with a byte naming the
	// encoding. It returns false when it cannot; Decide then keys on Value.
	AppendKey(dst []byte, p *projection.Projection) ([]byte, bool)
	// Value returns the whole policy input. An error is returned by Decide
	// as it is (it is the adapter's own).
	Value() (ast.Value, error)
	// Subject names whose decision it is, so that it can be flushed (see
	// cache.Cache.InvalidateSubject). It is asked only when a decision is
	// cached.
	Subject() string
}

// PrunedInput is an Input that can build, instead of the whole input, only
// the members a projection reads.
type PrunedInput interface {
	Input
	// PrunedValue returns an input that holds, at every path of p's Tree,
	// exactly what Value's input holds there (the same value, or nothing
	// where it has nothing), and true; or false when it cannot build one
	// or cannot tell that Value would succeed. Decide then evaluates
	// Value, with its errors. It is asked only for an exact projection of
	// a cacheable entrypoint.
	PrunedValue(p *projection.Projection) (ast.Value, bool)
}

// Derive turns a policy result into the adapter's answer. It must depend on
// the result's Value alone: what it returns is cached and shared by every
// request the cache answers with an equal value, so it must never be
// modified afterwards. An error keeps the decision out of the cache.
type Derive func(Result) (derived any, err error)

// Decision is a policy result together with the adapter's derived answer.
type Decision struct {
	Result
	Derived any
	// Cached is set when the decision came from the cache.
	Cached bool
	// EvalTook is the time the policy evaluation took; zero when the cache
	// answered or no evaluation ran.
	EvalTook time.Duration
}

type cached struct {
	value   any
	derived any
}

var keyBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// Decide answers entrypoint for in on the active snapshot: from the decision
// cache when this snapshot already decided an input with the same
// projection, otherwise by evaluation.
func (e *Engine) Decide(ctx context.Context, entrypoint string, in Input, derive Derive) (Decision, error) {
	snap := e.active.Load()
	if snap == nil {
		return Decision{}, &Error{Code: CodeNoBundle, Message: "no policy bundle is active yet"}
	}
	p := snap.projections[entrypoint]
	if e.cache == nil || p == nil || !p.Cacheable() {
		return snap.decide(ctx, entrypoint, in, nil, derive)
	}

	bp := keyBufs.Get().(*[]byte)
	defer keyBufs.Put(bp)
	buf, ok := in.AppendKey((*bp)[:0], p)
	var v ast.Value
	if !ok {
		var err error
		if v, err = in.Value(); err != nil {
			return Decision{Result: snap.result()}, err
		}
		buf = p.AppendKey(buf[:0], v)
	}
	*bp = buf
	key := cache.Key{Generation: snap.Generation, Entrypoint: entrypoint, Hash: sha256.Sum256(buf)}
	if hit, ok := e.cache.Get(&key); ok {
		c, _ := hit.(cached)
		d := Decision{Result: snap.result(), Derived: c.derived, Cached: true}
		d.Value = c.value
		return d, nil
	}
	d, err := snap.decide(ctx, entrypoint, in, v, derive)
	if err == nil && e.cache.Admit(&key) {
		c, size := snap.intern(cached{value: d.Value, derived: d.Derived})
		e.cache.Put(&key, in.Subject(), c, size)
	}
	return d, err
}

// maxInterned bounds the distinct decisions a snapshot shares between cache
// entries.
const maxInterned = 4096

// intern returns the cached value already held for an equal decision, so
// that a thousand inputs with the same answer hold one copy of it (boxed
// once: the cache stores an interface), and the size to charge the new
// entry (nothing for a shared copy; the derived answer is charged as much as
// the value it comes from). Decisions are equal when the policy's values
// are: derive is a function of the value.
func (s *Snapshot) intern(c cached) (any, int) {
	size := 2 * approxSize(c.value)
	raw, err := json.Marshal(c.value) // sorted map keys: equal values, equal bytes
	if err != nil {
		return c, size
	}
	sum := sha256.Sum256(raw)
	s.internMu.Lock()
	defer s.internMu.Unlock()
	if have, ok := s.interned[sum]; ok {
		return have, 0
	}
	if len(s.interned) >= maxInterned {
		return c, size
	}
	if s.interned == nil {
		s.interned = map[[32]byte]any{}
	}
	var boxed any = c
	s.interned[sum] = boxed
	return boxed, size
}

func (s *Snapshot) result() Result { return Result{Revision: s.Revision, Bundles: s.Bundles} }

// decide evaluates in (v when already built) and derives the answer.
func (s *Snapshot) decide(ctx context.Context, entrypoint string, in Input, v ast.Value, derive Derive) (Decision, error) {
	if s.natives[entrypoint] != nil {
		start := time.Now()
		if val, ok := s.evalNative(ctx, entrypoint, in); ok {
			took := time.Since(start)
			res := s.result()
			res.Value = val
			derived, err := derive(res)
			return Decision{Result: res, Derived: derived, EvalTook: took}, err
		}
	}
	if v == nil {
		v = s.pruned(entrypoint, in)
	}
	if v == nil {
		var err error
		if v, err = in.Value(); err != nil {
			return Decision{Result: s.result()}, err
		}
	}
	start := time.Now()
	res, err := s.Eval(ctx, entrypoint, v)
	took := time.Since(start)
	if err != nil {
		return Decision{Result: res, EvalTook: took}, err
	}
	derived, err := derive(res)
	return Decision{Result: res, Derived: derived, EvalTook: took}, err
}

// pruned returns the part of in that the decision at entrypoint can read,
// or nil. The decision on it is the decision on the whole input: the two
// hold the same values at every projected path, which is the invariant the
// cache rests on (equal projected values, equal decisions). Only an exact
// projection (not Whole) of a cacheable entrypoint is trusted for it, as
// only those are what the cache keys on.
func (s *Snapshot) pruned(entrypoint string, in Input) ast.Value {
	pi, ok := in.(PrunedInput)
	if !ok {
		return nil
	}
	p := s.projections[entrypoint]
	if p == nil || p.Whole || !p.Cacheable() {
		return nil
	}
	v, ok := pi.PrunedValue(p)
	if !ok {
		return nil
	}
	return v
}

// approxSize estimates the memory of a JSON-like Go value, for the cache's
// byte bound: string bytes plus a fixed cost per value.
func approxSize(v any) int {
	const perValue = 16
	switch v := v.(type) {
	case string:
		return perValue + len(v)
	case map[string]any:
		n := perValue * 3
		for k, x := range v {
			n += perValue + len(k) + approxSize(x)
		}
		return n
	case []any:
		n := perValue * 2
		for _, x := range v {
			n += approxSize(x)
		}
		return n
	default:
		return perValue
	}
}

// Projection returns what decisions at entrypoint can read of the input, or
// nil for an entrypoint that is not prepared.
func (s *Snapshot) Projection(entrypoint string) *projection.Projection {
	return s.projections[entrypoint]
}

// NewDecisionID returns a random (version 4) UUID naming one decision.
func NewDecisionID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never returns an error
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return uuid.UUID(b).String()
}
