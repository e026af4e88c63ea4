// Package redisstore is a control.Store on Redis, so that replicas of the
// decision point share their approvals, grants and quarantines: one
// replica's approval is consumed once across all of them, and a quarantine
// set on one denies on every one.
//
// Layout. Each kind of record is one hash, Prefix + "control:" + kind
// ("verdict:control:approvals"), field the record's id, value its JSON
// document. Ids are Verdict's own (control.ValidID), and every id and
// document read back is checked again: Redis may hold anything.
//
// Changes. Apply runs one Lua script, so it is atomic: it first compares
// every record with the document the change was decided on
// (control.Change.Prev; none: the record must not exist) and, if any
// differs, writes nothing and returns an error wrapping control.ErrConflict
// that names the records. Otherwise it writes them all, then PUBLISHes on
// Prefix + "control" a message naming the changed records (see
// parseMessage), which Watch hands to the other replicas.
//
// Deadlines. Apply and Get are bounded by Options.Timeout (default 50ms),
// Load and the subscription by Options.LoadTimeout (default 5s). A Redis
// error, a timeout or a reply the store does not expect is an error, never
// an empty answer: the controls then refuse what they cannot vouch for.
//
// Limits. The three hashes are separate keys, so the store does not run on
// Redis Cluster. Redis must be persistent (AOF) for the records to survive
// a restart of Redis: an empty Redis is an empty store.
package redisstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/verdictpdp/verdict/internal/control"
)

// Defaults for Options fields left zero.
const (
	DefaultPrefix      = "verdict:"
	DefaultTimeout     = 50 * time.Millisecond
	DefaultLoadTimeout = 5 * time.Second
	DefaultPingEvery   = 250 * time.Millisecond
)

// MaxDocBytes bounds one stored document: a larger one is garbage.
const MaxDocBytes = 1 << 20

// ErrReply is wrapped by the error of a call whose reply from Redis is not
// what the store expects (a record under a malformed id, a wrong type).
var ErrReply = errors.New("redisstore: unexpected reply from redis")

// Options configure a Store.
type Options struct {
	// Prefix starts every key and the channel (default "verdict:").
	Prefix string
	// Timeout bounds Apply and Get (default 50ms); LoadTimeout bounds
	// Load and subscribing (default 5s).
	Timeout, LoadTimeout time.Duration
	// PingEvery is how often a quiet subscription is checked (default
	// 250ms): one that does not answer for two of them is lost.
	PingEvery time.Duration
	// Observe is told of every call's latency and outcome (metrics).
	Observe func(d time.Duration, err error)
}

// Store keeps control records in Redis. It owns its client: Close closes
// it.
type Store struct {
	client  *redis.Client
	opts    Options
	keys    []string // one hash per kind, in the order of control.Kinds
	channel string
	// src names this store in the messages it publishes, so that Watch
	// skips its own changes (the controls already hold them).
	src string
}

var (
	_ control.Store   = (*Store)(nil)
	_ control.Getter  = (*Store)(nil)
	_ control.Watcher = (*Store)(nil)
)

// New returns a store on client.
func New(client *redis.Client, opts Options) *Store {
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.LoadTimeout <= 0 {
		opts.LoadTimeout = DefaultLoadTimeout
	}
	if opts.PingEvery <= 0 {
		opts.PingEvery = DefaultPingEvery
	}
	if opts.Observe == nil {
		opts.Observe = func(time.Duration, error) {}
	}
	s := &Store{client: client, opts: opts, channel: opts.Prefix + "control", src: newSrc()}
	for _, k := range control.Kinds {
		s.keys = append(s.keys, opts.Prefix+"control:"+string(k))
	}
	return s
}

func newSrc() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func kindIndex(k control.Kind) int {
	for i, kk := range control.Kinds {
		if kk == k {
			return i
		}
	}
	return -1
}

// apply is the conditional write. KEYS are the hashes in the order of
// control.Kinds; ARGV[1] the channel, ARGV[2] the message, then four per
// change: the hash's index (1-based), the id, the document it was decided
// on ("" none) and the new one ("" delete). It returns the 0-based
// indexes of the changes whose record differs (nothing written), or an
// empty list once written and published.
var apply = redis.NewScript(`
local conflicts = {}
for i = 3, #ARGV, 4 do
  local cur = redis.call('HGET', KEYS[tonumber(ARGV[i])], ARGV[i+1])
  local prev = ARGV[i+2]
  if (prev == '' and cur) or (prev ~= '' and cur ~= prev) then
    conflicts[#conflicts+1] = (i-3)/4
  end
end
if #conflicts > 0 then
  return conflicts
end
for i = 3, #ARGV, 4 do
  if ARGV[i+3] == '' then
    redis.call('HDEL', KEYS[tonumber(ARGV[i])], ARGV[i+1])
  else
    redis.call('HSET', KEYS[tonumber(ARGV[i])], ARGV[i+1], ARGV[i+3])
  end
end
redis.call('PUBLISH', ARGV[1], ARGV[2])
return {}
`)

// Apply implements control.Store: all changes or none, each only while
// its record is byte-identical to Change.Prev.
func (s *Store) Apply(ctx context.Context, changes []control.Change) error {
	if len(changes) == 0 {
		return nil
	}
	args := make([]any, 0, 2+4*len(changes))
	args = append(args, s.channel, encodeMessage(s.src, changes))
	for _, ch := range changes {
		i := kindIndex(ch.Kind)
		if i < 0 {
			return fmt.Errorf("unknown table %q", ch.Kind)
		}
		if !control.ValidID(ch.Kind, ch.ID) {
			return fmt.Errorf("%s: malformed id", ch.Kind)
		}
		if (ch.Doc != nil && len(ch.Doc) == 0) || (ch.Prev != nil && len(ch.Prev) == 0) {
			return fmt.Errorf("%s %s: empty document", ch.Kind, ch.ID)
		}
		args = append(args, i+1, ch.ID, ch.Prev, ch.Doc)
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	start := time.Now()
	res, err := apply.Run(ctx, s.client, s.keys, args...).Int64Slice()
	s.opts.Observe(time.Since(start), err)
	if err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	if len(res) == 0 {
		return nil
	}
	byKind := map[control.Kind][]string{}
	for _, i := range res {
		if i < 0 || int(i) >= len(changes) {
			return fmt.Errorf("%w: conflict index %d", ErrReply, i)
		}
		ch := changes[i]
		byKind[ch.Kind] = append(byKind[ch.Kind], ch.ID)
	}
	var errs []error
	for _, k := range control.Kinds {
		if ids := byKind[k]; len(ids) > 0 {
			errs = append(errs, &control.ConflictError{Kind: k, IDs: ids})
		}
	}
	return errors.Join(errs...)
}

// Get implements control.Getter.
func (s *Store) Get(ctx context.Context, kind control.Kind, ids []string) (map[string][]byte, error) {
	i := kindIndex(kind)
	if i < 0 {
		return nil, fmt.Errorf("unknown table %q", kind)
	}
	out := make(map[string][]byte, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	for _, id := range ids {
		if !control.ValidID(kind, id) {
			return nil, fmt.Errorf("%s: malformed id", kind)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	start := time.Now()
	vals, err := s.client.HMGet(ctx, s.keys[i], ids...).Result()
	s.opts.Observe(time.Since(start), err)
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	if len(vals) != len(ids) {
		return nil, fmt.Errorf("%w: %d values for %d ids", ErrReply, len(vals), len(ids))
	}
	for j, v := range vals {
		switch v := v.(type) {
		case nil:
		case string:
			if err := checkDoc(kind, ids[j], v); err != nil {
				return nil, err
			}
			out[ids[j]] = []byte(v)
		default:
			return nil, fmt.Errorf("%w: %s %s is a %T", ErrReply, kind, ids[j], v)
		}
	}
	return out, nil
}

// Load implements control.Store: the three hashes in one transaction.
func (s *Store) Load(ctx context.Context) (map[control.Kind]map[string][]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.LoadTimeout)
	defer cancel()
	start := time.Now()
	cmds := make([]*redis.MapStringStringCmd, len(s.keys))
	_, err := s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range s.keys {
			cmds[i] = p.HGetAll(ctx, k)
		}
		return nil
	})
	s.opts.Observe(time.Since(start), err)
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	out := make(map[control.Kind]map[string][]byte, len(s.keys))
	for i, kind := range control.Kinds {
		t := make(map[string][]byte, len(cmds[i].Val()))
		for id, doc := range cmds[i].Val() {
			if !control.ValidID(kind, id) {
				return nil, fmt.Errorf("%w: %s holds a malformed id", ErrReply, kind)
			}
			if err := checkDoc(kind, id, doc); err != nil {
				return nil, err
			}
			t[id] = []byte(doc)
		}
		out[kind] = t
	}
	return out, nil
}

func checkDoc(kind control.Kind, id, doc string) error {
	if doc == "" || len(doc) > MaxDocBytes {
		return fmt.Errorf("%w: %s %s: a document of %d bytes", ErrReply, kind, id, len(doc))
	}
	return nil
}

// Watch implements control.Watcher: it subscribes to the channel, calls
// h.Subscribed once the subscription is live and h.Changed (h.All) for
// each change another store published. It returns when ctx ends, Redis
// fails or a quiet subscription does not answer a ping.
func (s *Store) Watch(ctx context.Context, h control.WatchHandler) error {
	ps := s.client.Subscribe(ctx)
	defer func() { _ = ps.Close() }()
	subCtx, cancel := context.WithTimeout(ctx, s.opts.LoadTimeout)
	err := ps.Subscribe(subCtx, s.channel)
	if err == nil {
		_, err = ps.ReceiveTimeout(subCtx, s.opts.LoadTimeout)
	}
	cancel()
	if err != nil {
		return fmt.Errorf("redis subscribe: %w", err)
	}
	h.Subscribed()
	pinged := false
	for {
		msg, err := ps.ReceiveTimeout(ctx, s.opts.PingEvery)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if !isTimeout(err) || pinged {
				if isTimeout(err) {
					err = errors.New("the subscription does not answer")
				}
				return fmt.Errorf("redis subscription: %w", err)
			}
			pctx, cancel := context.WithTimeout(ctx, s.opts.PingEvery)
			err = ps.Ping(pctx)
			cancel()
			if err != nil {
				return fmt.Errorf("redis subscription: %w", err)
			}
			pinged = true
			continue
		}
		pinged = false
		m, ok := msg.(*redis.Message)
		if !ok {
			continue // a pong, a subscription confirmation
		}
		parsed, err := parseMessage([]byte(m.Payload))
		switch {
		case err != nil:
			// Not ours, or damaged: reload everything rather than guess.
			h.All()
		case parsed.src == s.src:
		case parsed.all:
			h.All()
		default:
			for _, k := range control.Kinds {
				if ids := parsed.ids[k]; len(ids) > 0 {
					h.Changed(k, ids)
				}
			}
		}
	}
}

func isTimeout(err error) bool {
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		return true
	}
	return errors.Is(err, os.ErrDeadlineExceeded)
}

// Close implements control.Store: it closes the client.
func (s *Store) Close() error { return s.client.Close() }

// Messages. A change message is text lines: "v1 <src>", then one line per
// kind, "<kind> <id> <id>...". A message naming more than maxMessageIDs
// records says "all" instead of the kind lines: reload everything.
const (
	maxMessageIDs   = 256
	maxMessageBytes = 16 << 10
	maxSrcBytes     = 32
)

type message struct {
	src string
	all bool
	ids map[control.Kind][]string
}

func encodeMessage(src string, changes []control.Change) string {
	var b strings.Builder
	b.WriteString("v1 " + src)
	if len(changes) > maxMessageIDs {
		b.WriteString("\nall")
		return b.String()
	}
	for _, k := range control.Kinds {
		first := true
		for _, ch := range changes {
			if ch.Kind != k {
				continue
			}
			if first {
				b.WriteString("\n" + string(k))
				first = false
			}
			b.WriteString(" " + ch.ID)
		}
	}
	return b.String()
}

// parseMessage reads a change message. Anything malformed is an error (the
// watcher then reloads everything).
func parseMessage(raw []byte) (message, error) {
	bad := func(why string) (message, error) { return message{}, errors.New("change message: " + why) }
	if len(raw) > maxMessageBytes {
		return bad("too long")
	}
	lines := bytes.Split(raw, []byte("\n"))
	head := strings.Fields(string(lines[0]))
	if len(head) != 2 || head[0] != "v1" || !validSrc(head[1]) {
		return bad("bad header")
	}
	m := message{src: head[1], ids: map[control.Kind][]string{}}
	n := 0
	for _, line := range lines[1:] {
		f := strings.Split(string(line), " ")
		if len(f) == 1 && f[0] == "all" && len(lines) == 2 {
			return message{src: m.src, all: true}, nil
		}
		kind := control.Kind(f[0])
		if kindIndex(kind) < 0 {
			return bad("unknown kind")
		}
		if _, dup := m.ids[kind]; dup || len(f) < 2 {
			return bad("bad kind line")
		}
		for _, id := range f[1:] {
			if !control.ValidID(kind, id) {
				return bad("malformed id")
			}
			if n++; n > maxMessageIDs {
				return bad("too many ids")
			}
		}
		m.ids[kind] = f[1:]
	}
	if len(m.ids) == 0 {
		return bad("names no record")
	}
	return m, nil
}

func validSrc(s string) bool {
	if s == "" || len(s) > maxSrcBytes {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'z') {
			return false
		}
	}
	return true
}

// String names the store for logs (never the URL or a password).
func (s *Store) String() string {
	return "redis " + s.client.Options().Addr + " prefix " + strconv.Quote(s.opts.Prefix)
}
