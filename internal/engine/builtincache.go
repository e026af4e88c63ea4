package engine

import (
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown/cache"
	"github.com/open-policy-agent/opa/v1/util"
)

// Bounds of one snapshot's built-in value cache.
const (
	// maxBuiltinEntries bounds the compiled arguments a snapshot keeps.
	maxBuiltinEntries = 1024
	// maxBuiltinBytes bounds their estimated size (see builtinCharge).
	maxBuiltinBytes = 32 << 20
)

// builtinCache is the inter-query value cache OPA's built-ins keep their
// compiled arguments in: regular expressions (regex.match and the other
// regex built-ins), glob patterns (glob.match) and JSON schemas
// (json.match_schema), each keyed by the argument it was compiled from.
// Every snapshot has its own, so a schema in bundle data is compiled once
// per activation and dropped with the snapshot; an argument that comes from
// the input is compiled at most once per snapshot too, within the bounds.
//
// Only OPA's unnamed (global) cache is kept. The named caches (verified JWTs
// and parsed keys, GraphQL schemas, affix tries) are off, as they were
// before there was any value cache: GetCache returns nil, and those
// built-ins then compute their answer every time.
//
// A built-in stores a value only after it compiled the key, and reads back a
// value of the type it expects (or compiles again): caching changes the
// time a built-in takes, never its answer.
type builtinCache struct {
	mu      sync.RWMutex
	items   *util.HasherMap[ast.Value, builtinEntry]
	bytes   int
	inserts int // for tests: how many times a built-in compiled and stored a value
}

type builtinEntry struct {
	value any
	size  int
}

var _ cache.InterQueryValueCache = (*builtinCache)(nil)

func newBuiltinCache() *builtinCache {
	return &builtinCache{items: util.NewHasherMap[ast.Value, builtinEntry](ast.ValueEqual)}
}

// Get implements cache.InterQueryValueCacheBucket.
func (c *builtinCache) Get(k ast.Value) (any, bool) {
	c.mu.RLock()
	e, ok := c.items.Get(k)
	c.mu.RUnlock()
	return e.value, ok
}

// Insert implements cache.InterQueryValueCacheBucket: it stores v under k,
// evicting arbitrary entries to stay within the bounds, and returns how many
// it evicted. A value whose charge alone exceeds an eighth of the byte
// bound is not stored.
func (c *builtinCache) Insert(k ast.Value, v any) int {
	size := builtinCharge(k)
	if size > maxBuiltinBytes/8 {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.items.Get(k); ok {
		c.bytes -= old.size
		c.items.Delete(k)
	}
	dropped := 0
	if c.items.Len() >= maxBuiltinEntries || c.bytes+size > maxBuiltinBytes {
		c.items.Iter(func(key ast.Value, e builtinEntry) bool {
			c.items.Delete(key)
			c.bytes -= e.size
			dropped++
			return c.items.Len() < maxBuiltinEntries && c.bytes+size <= maxBuiltinBytes
		})
	}
	c.items.Put(k, builtinEntry{value: v, size: size})
	c.bytes += size
	c.inserts++
	return dropped
}

// Delete implements cache.InterQueryValueCacheBucket.
func (c *builtinCache) Delete(k ast.Value) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.items.Get(k); ok {
		c.bytes -= old.size
		c.items.Delete(k)
	}
}

// GetCache implements cache.InterQueryValueCache: every named cache is off.
func (*builtinCache) GetCache(string) cache.InterQueryValueCacheBucket { return nil }

// UpdateConfig implements cache.InterQueryValueCache: the bounds are fixed.
func (*builtinCache) UpdateConfig(*cache.Config) {}

// builtinCharge estimates what an entry keyed by k holds: a compiled regular
// expression, glob or schema takes several times the bytes of its source,
// so the key's size is charged four times, plus a fixed cost.
func builtinCharge(k ast.Value) int {
	return 256 + 4*valueSize(k)
}

// valueSize estimates the bytes of a value's source text.
func valueSize(v ast.Value) int {
	switch v := v.(type) {
	case ast.String:
		return len(v)
	case ast.Object:
		n := 2
		v.Foreach(func(k, x *ast.Term) { n += 2 + valueSize(k.Value) + valueSize(x.Value) })
		return n
	case *ast.Array:
		n := 2
		v.Foreach(func(x *ast.Term) { n += 1 + valueSize(x.Value) })
		return n
	case ast.Set:
		n := 2
		v.Foreach(func(x *ast.Term) { n += 1 + valueSize(x.Value) })
		return n
	case ast.Number:
		return len(v)
	default:
		return 8
	}
}
