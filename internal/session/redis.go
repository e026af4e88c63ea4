package session

import (
	"cmp"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/verdictpdp/verdict/internal/mcp"
)

// Redis keeps session state in Redis, so that every replica of the
// decision point reads what a session read through any of them: a session
// that read personal data through one replica cannot send it out through
// another.
//
// Layout. Under Prefix + "session:" + hex(hash), where the hashes are the
// memory store's (never caller data):
//   - each session is a hash: st (started, Unix seconds), calls, cl / src /
//     lv (classification, its source, its level), k:<category> = source,
//     f:<detector> = count, t:<server/tool> = count, and nk, nf, nt (how
//     many categories, detectors and tools are recorded);
//   - each subject has a sorted set of its sessions' hashes by last use
//     (microseconds of the caller's clock);
//   - each subject's overflow record is a hash like a session's.
//
// Semantics are the memory store's (see the package documentation): one
// Lua script per recorded call merges the observation (classification by
// Levels, the first source at the highest level; categories first source
// wins; counts; the bounds on names and maps), refreshes the idle TTL
// (PEXPIRE) and, for a new session beyond MaxPerSubject, folds the
// subject's least recently used sessions into the overflow record, which
// then lives as long as the longest-lived session folded into it. A read
// is one round trip (the session and the overflow record, in one
// MULTI/EXEC).
//
// What differs. MaxSessions does not apply: Redis's memory is the bound,
// and Redis must not evict keys (maxmemory-policy noeviction), since an
// evicted session forgets what it read. Expiry is Redis's (the key's TTL),
// and the state is the replicas' together, so there are no Stats. The script touches a subject's session keys
// that are not declared to it, so the store needs a single Redis (or a
// primary with replicas), not Redis Cluster.
//
// Failure. Every call is bounded by RedisOptions.Timeout. A Redis error, a
// timeout or stored state the store does not understand is an error,
// never a clean session: the decider then refuses the call as
// state.unavailable unless the service fails open for sessions.
type Redis struct {
	client  redis.Cmdable
	opts    Options
	prefix  string
	timeout time.Duration
	observe func(time.Duration, error)
}

// RedisOptions configure where and how a Redis store talks to Redis.
type RedisOptions struct {
	// Prefix starts every key (default "verdict:").
	Prefix string
	// Timeout bounds each call to Redis (default 50ms).
	Timeout time.Duration
	// Observe, when set, is called after each call to Redis with its
	// latency and error (metrics, health logs).
	Observe func(d time.Duration, err error)
}

// Defaults of RedisOptions.
const (
	DefaultRedisPrefix  = "verdict:"
	DefaultRedisTimeout = 50 * time.Millisecond
)

// ErrCorrupt is wrapped by the error of a read that found state the store
// did not write.
var ErrCorrupt = errors.New("session: stored session state is not valid")

var (
	_ mcp.Observer        = (*Redis)(nil)
	_ mcp.SessionState    = (*Redis)(nil)
	_ mcp.SessionRecorder = (*Redis)(nil)
)

// NewRedis returns a session state on Redis. The client should have
// ContextTimeoutEnabled set, so that the deadline bounds its network
// reads. Options.MaxSessions is ignored (see Redis).
func NewRedis(client redis.Cmdable, o Options, ro RedisOptions) (*Redis, error) {
	o.TTL = cmp.Or(o.TTL, DefaultTTL)
	o.MaxPerSubject = cmp.Or(o.MaxPerSubject, DefaultMaxPerSubject)
	if o.Now == nil {
		o.Now = time.Now
	}
	o.Scope = cmp.Or(o.Scope, ScopeSession)
	if o.Scope != ScopeSession && o.Scope != ScopeSubject {
		return nil, errors.New("session: scope must be session or subject")
	}
	if o.TTL < time.Millisecond || o.MaxPerSubject < 1 {
		return nil, errors.New("session: ttl and max per subject must be positive")
	}
	r := &Redis{client: client, opts: o, prefix: cmp.Or(ro.Prefix, DefaultRedisPrefix),
		timeout: ro.Timeout, observe: ro.Observe}
	if r.timeout <= 0 {
		r.timeout = DefaultRedisTimeout
	}
	return r, nil
}

// key is the Redis key of a hash.
func (s *Redis) key(h string) string { return s.prefix + "session:" + hex.EncodeToString([]byte(h)) }

// keys returns the session's, the subject's set and the overflow record's
// Redis keys, and the session's member in the set.
func (s *Redis) keys(tenant, subject, session string) (key, set, overflow, member string) {
	if s.opts.Scope == ScopeSubject {
		session = ""
	}
	k, subj := keys(tenant, subject, session)
	member = hex.EncodeToString([]byte(k))
	return s.prefix + "session:" + member, s.key(subj), s.key(overflowKey(subj)), member
}

func (s *Redis) done(start time.Time, err error) {
	if s.observe != nil {
		s.observe(time.Since(start), err)
	}
}

// SessionInput implements mcp.SessionState in one round trip.
func (s *Redis) SessionInput(ctx context.Context, tenant, subject, session string) (map[string]any, error) {
	key, _, overflow, _ := s.keys(tenant, subject, session)
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	start := time.Now()
	var own, of *redis.MapStringStringCmd
	// MULTI/EXEC: a fold by another replica cannot fall between the two
	// reads (one round trip all the same).
	_, err := s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		own = p.HGetAll(ctx, key)
		of = p.HGetAll(ctx, overflow)
		return nil
	})
	s.done(start, err)
	if err != nil {
		return nil, fmt.Errorf("session: reading redis: %w", err)
	}
	r, calls, tools, err := parse(own.Val())
	if err != nil {
		return nil, err
	}
	o, _, _, err := parse(of.Val())
	if err != nil {
		return nil, err
	}
	if o != nil {
		if r == nil {
			r = &record{} // no calls of its own
		}
		merge(r, o)
	}
	if r == nil {
		return nil, nil
	}
	return input(r, calls, tools), nil
}

// parse reads a stored hash; nil for an empty one (no such key).
func parse(h map[string]string) (r *record, calls int, tools map[string]any, err error) {
	if len(h) == 0 {
		return nil, 0, nil, nil
	}
	bad := func(what string) (*record, int, map[string]any, error) {
		return nil, 0, nil, fmt.Errorf("%w: %s", ErrCorrupt, what)
	}
	r = &record{}
	nk, nf, nt, lv := -1, -1, -1, -1
	for f, v := range h {
		name, hasName := "", false
		if i := strings.IndexByte(f, ':'); i > 0 {
			name, hasName = f[i+1:], true
			f = f[:i+1]
		}
		var n int
		switch f {
		case "cl", "src", "k:":
		default:
			n, err = strconv.Atoi(v)
			if err != nil || n < 0 || strconv.Itoa(n) != v {
				return bad("a count is not a number")
			}
		}
		switch {
		case f == "st":
			r.Started = time.Unix(int64(n), 0)
		case f == "calls":
			calls = n
		case f == "nk":
			nk = n
		case f == "nf":
			nf = n
		case f == "nt":
			nt = n
		case f == "lv":
			lv = n
		case f == "cl":
			r.Classification = v
		case f == "src":
			r.Source = v
		case f == "k:" && hasName:
			if r.Categories == nil {
				r.Categories = map[string]string{}
			}
			r.Categories[name] = v
		case f == "f:" && hasName && n > 0:
			if r.Findings == nil {
				r.Findings = map[string]int{}
			}
			r.Findings[name] = n
		case f == "t:" && hasName && n > 0:
			if tools == nil {
				tools = map[string]any{}
			}
			tools[name] = n
		default:
			return bad("unknown field")
		}
	}
	switch {
	case r.Classification != "" && lv != level(r.Classification), r.Classification == "" && lv >= 0:
		return bad("classification and level disagree")
	case (nk >= 0 || len(r.Categories) > 0) && nk != len(r.Categories):
		return bad("category count")
	case (nf >= 0 || len(r.Findings) > 0) && nf != len(r.Findings):
		return bad("finding count")
	case (nt >= 0 || len(tools) > 0) && nt != len(tools):
		return bad("tool count")
	}
	return r, calls, tools, nil
}

// Observe implements mcp.Observer: it records nothing, since a decider
// records through Record before it answers.
func (s *Redis) Observe(context.Context, *mcp.Observation) {}

// Record implements mcp.SessionRecorder: it merges an allowed read or
// the findings of a delivered result into the session in one round trip.
// Observations that record nothing (see records) cost nothing.
func (s *Redis) Record(ctx context.Context, ob *mcp.Observation) error {
	if !records(ob) {
		return nil
	}
	key, set, overflow, member := s.keys(ob.Tenant, ob.Subject, ob.Session)
	now := s.opts.Now()
	args := []any{
		now.UnixMicro(), s.opts.TTL.Milliseconds(), s.opts.MaxPerSubject, member, s.prefix + "session:",
		MaxCategories, MaxFindings, MaxTools,
	}
	if ob.Stage == mcp.StageResult {
		args = append(args, 0, "", "", 0, "", 0)
		counts := boundedCounts(ob.Findings)
		args = append(args, len(counts))
		for k, v := range counts {
			args = append(args, k, v)
		}
	} else {
		tool := ""
		if ob.Method == mcp.MethodToolsCall {
			tool = bounded(ob.Server + "/" + ob.Target)
		}
		c := bounded(ob.Classification)
		lv := 0
		if c != "" {
			lv = level(c)
		}
		args = append(args, 1, tool, c, lv, bounded(ob.Server+"/"+source(ob)), len(ob.Categories))
		for _, c := range ob.Categories {
			args = append(args, bounded(c))
		}
		args = append(args, 0)
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	start := time.Now()
	err := recordScript.Run(ctx, s.client, []string{key, set, overflow}, args...).Err()
	s.done(start, err)
	if err != nil {
		return fmt.Errorf("session: recording in redis: %w", err)
	}
	return nil
}

// recordScript merges one observation. KEYS: the session, the subject's
// set, the overflow record. ARGV: now (µs), TTL (ms), MaxPerSubject, the
// session's member in the set, the key prefix of members, MaxCategories,
// MaxFindings, MaxTools, then: is a call (1/0), tool ("" none),
// classification ("" none), its level, source, the number of categories
// and the categories, the number of findings and name, count pairs. A
// stored value that is not what the script writes is an error.
var recordScript = redis.NewScript(`
local key, set, of = KEYS[1], KEYS[2], KEYS[3]
local now, ttl, maxper = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local member, pre = ARGV[4], ARGV[5]
local maxk, maxf, maxt = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])

local function int(v)
  if not v then return 0 end
  local n = tonumber(v)
  if n == nil or n ~= math.floor(n) or n < 0 then
    error('verdict: session state is not valid')
  end
  return n
end

local function tainted(h)
  return h['cl'] ~= nil or int(h['nk']) > 0 or int(h['nf']) > 0
end

-- mergeinto adds what the hash src (HGETALL) read to dst.
local function mergeinto(dst, src)
  local h = {}
  for i = 1, #src, 2 do h[src[i]] = src[i + 1] end
  if h['cl'] then
    local lv = int(h['lv'])
    local cur = redis.call('HGET', dst, 'lv')
    if not cur or lv > int(cur) then
      redis.call('HSET', dst, 'cl', h['cl'], 'src', h['src'] or '', 'lv', lv)
    end
  end
  local nk = int(redis.call('HGET', dst, 'nk'))
  local nf = int(redis.call('HGET', dst, 'nf'))
  for i = 1, #src, 2 do
    local f = src[i]
    local p = string.sub(f, 1, 2)
    if p == 'k:' then
      if nk < maxk and redis.call('HSETNX', dst, f, src[i + 1]) == 1 then nk = nk + 1 end
    elseif p == 'f:' then
      local c = int(src[i + 1])
      if redis.call('HEXISTS', dst, f) == 1 then
        redis.call('HINCRBY', dst, f, c)
      elseif nf < maxf then
        redis.call('HINCRBY', dst, f, c)
        nf = nf + 1
      end
    end
  end
  redis.call('HSET', dst, 'nk', nk, 'nf', nf)
end

if redis.call('EXISTS', key) == 0 then
  -- A new session carries what the subject's folded sessions read (as
  -- the memory store, before this call folds more).
  redis.call('HSET', key, 'st', math.floor(now / 1000000), 'calls', 0, 'nk', 0, 'nf', 0, 'nt', 0)
  local ofields = redis.call('HGETALL', of)
  if #ofields > 0 then mergeinto(key, ofields) end
  -- Sessions idle past the TTL leave the set, and the least recently
  -- used beyond the bound fold into the overflow record.
  redis.call('ZREMRANGEBYSCORE', set, '-inf', now - ttl * 1000)
  redis.call('ZREM', set, member) -- expired by Redis, its member may linger
  local n = redis.call('ZCARD', set)
  while n >= maxper do
    local v = redis.call('ZPOPMIN', set)
    local vkey = pre .. v[1]
    local fields = redis.call('HGETALL', vkey)
    if #fields > 0 then
      local h = {}
      for i = 1, #fields, 2 do h[fields[i]] = fields[i + 1] end
      if tainted(h) then
        mergeinto(of, fields)
        local vt, ot = redis.call('PTTL', vkey), redis.call('PTTL', of)
        if vt > ot then redis.call('PEXPIRE', of, vt) end
        if redis.call('PTTL', of) < 0 then redis.call('PEXPIRE', of, ttl) end
      end
      redis.call('DEL', vkey)
    end
    n = n - 1
  end
end

local i = 9
local call, tool, cl, lv, src = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3]), ARGV[i + 4]
i = i + 5
local n = tonumber(ARGV[i])
i = i + 1
if cl ~= '' then
  local cur = redis.call('HGET', key, 'lv')
  if not cur or lv > int(cur) then
    redis.call('HSET', key, 'cl', cl, 'src', src, 'lv', lv)
  end
end
local nk = int(redis.call('HGET', key, 'nk'))
for j = 1, n do
  if nk < maxk and redis.call('HSETNX', key, 'k:' .. ARGV[i], src) == 1 then nk = nk + 1 end
  i = i + 1
end
redis.call('HSET', key, 'nk', nk)
n = tonumber(ARGV[i])
i = i + 1
local nf = int(redis.call('HGET', key, 'nf'))
for j = 1, n do
  local f, c = 'f:' .. ARGV[i], tonumber(ARGV[i + 1])
  if redis.call('HEXISTS', key, f) == 1 then
    redis.call('HINCRBY', key, f, c)
  elseif nf < maxf then
    redis.call('HINCRBY', key, f, c)
    nf = nf + 1
  end
  i = i + 2
end
redis.call('HSET', key, 'nf', nf)
if call == '1' then
  redis.call('HINCRBY', key, 'calls', 1)
  if tool ~= '' then
    local f = 't:' .. tool
    local nt = int(redis.call('HGET', key, 'nt'))
    if redis.call('HEXISTS', key, f) == 1 then
      redis.call('HINCRBY', key, f, 1)
    elseif nt < maxt then
      redis.call('HINCRBY', key, f, 1)
      redis.call('HSET', key, 'nt', nt + 1)
    end
  end
end
redis.call('ZADD', set, now, member)
redis.call('PEXPIRE', key, ttl)
redis.call('PEXPIRE', set, ttl)
return 1
`)
