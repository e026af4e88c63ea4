// Package ratelimit enforces the rate limits that policy asks for through
// the obligation
//
//	rate_limit: {key, limit, period_seconds, burst}
//
// meaning "at most limit requests per period_seconds for this key, with
// bursts of up to burst requests at once". The limit is taken on every
// request after the decision cache, so a cached decision is still counted.
//
// # Algorithm
//
// Limits are enforced with GCRA, the generic cell rate algorithm in its
// virtual-scheduling form (ITU-T I.371; ATM Forum Traffic Management 4.0):
// a token bucket expressed as one number per key, the theoretical arrival
// time (TAT) of the next request. With emission interval T = Period/Limit
// and tolerance τ = T·(Burst−1), a request at now is allowed when
// max(TAT, now) − τ ≤ now, and then moves TAT on by T. Burst requests
// therefore pass at once and then one per T. All arithmetic is in integer
// nanoseconds; T is rounded up to a whole nanosecond so that the rate never
// exceeds Limit per Period, and Rule.Validate bounds every rule so nothing
// overflows.
//
// The key identifies the bucket: two rules with the same key share it. When
// a key's rule changes (a new policy bundle), its TAT is kept but capped at
// what the new rule can owe (a full burst), so a tightened limit never
// refuses a key for longer than the new rule itself could. The same cap
// forgives a key what a clock stepping back would otherwise add.
//
// # Stores
//
// A Store decides and records one request in one atomic step, so that a
// shared implementation (Redis, one Lua script per call) can follow the
// in-memory one behind the same interface.
//
// Memory is the in-memory Store: a fixed number of shards, each a
// map[string]int64 from key to TAT under its own mutex. Keys are built by
// policy from request data (subject, tenant, tool) and may be minted by an
// attacker, so the store is bounded by MemoryOptions.MaxKeys. A key whose
// TAT has passed is idle: it answers exactly as a key never seen, so
// dropping it changes no decision. When a shard is full and a new key
// arrives, the shard drops idle keys first: all of them when a whole-shard
// sweep is due (below), else those among a sample of 8 entries. Only if
// that finds none does it evict a live key: the sampled one with the
// smallest TAT, the closest to a full budget anyway. Evicting a live key
// forgives it (its next request starts from a full burst); the
// alternative, refusing new keys while full, would let anyone who can mint
// keys lock out everybody else. Evictions are counted in MemoryStats so
// that an operator can see the store is too small or under attack.
//
// Idle keys are reclaimed lazily, by inserts into full shards (a full shard
// sweeps itself whole when it has not for a second by the requests' clock,
// or has made room MaxKeys/Shards/4 times since), or by Memory.Sweep, which
// a caller may run periodically to return the memory of a quiet store; no
// background goroutine is started. Go maps do not shrink, so a store's
// memory is that of its peak key count, never more than MaxKeys.
//
// A stored key costs its map slot and its cloned key string, measured on
// the live heap at about 85 bytes for keys of 25 bytes (such as
// "alice:crm/export_contacts"), so the default MaxKeys of 262144 holds about
// 21 MiB; keys of the maximum length, 512 bytes, cost about 565 bytes each,
// about 141 MiB at the default. Policies should build keys from bounded
// parts (subject and tool names) rather than free-form request data.
//
// Times are Unix nanoseconds: a store refuses times before 1678 or after
// 2252 (so that now plus MaxRefill fits an int64), such as a zero
// time.Time.
package ratelimit
