// Package webhook tells an operator's HTTP endpoint that a human approval was
// requested. The caller builds the JSON payload; the package owns the queue,
// the delivery, the signature and the retries.
//
// Notify never waits on the network: it puts the notification on a bounded
// queue and returns. One worker goroutine delivers the queue in order, each
// notification as a POST with Content-Type application/json and these
// headers:
//
//	X-Verdict-Event:     the event, e.g. approval.requested
//	X-Verdict-Delivery:  a UUID, one per notification, the same on every
//	                     attempt to deliver it (receivers deduplicate on it)
//	X-Verdict-Timestamp: the attempt's time, in Unix seconds
//	X-Verdict-Signature: sha256=<hex HMAC-SHA256, keyed with the secret, of
//	                     the timestamp, a ".", and the body>
//
// A receiver verifies a request by recomputing
// HMAC-SHA256(secret, timestamp + "." + body) over the raw body bytes,
// comparing its lowercase hex encoding with the signature header's value
// after "sha256=" in constant time (hmac.Equal), and refusing a timestamp
// far from its own clock (five minutes, say). The timestamp is inside the
// MAC, so a captured request cannot be replayed with a fresh one once its
// own is stale; within the window, a receiver that keeps the delivery ids it
// has seen treats a replay as the duplicate it is (answering 2xx, acting
// once). Each attempt is signed anew with its own timestamp.
//
// A 2xx answer is a delivery. 408, 429, 5xx and network errors or timeouts
// are retried with exponential backoff, up to Config.MaxAttempts attempts;
// a Retry-After of whole seconds on 429 or 503 replaces the backoff's delay
// (capped at Config.MaxBackoff). Any other answer, a redirect included, is a
// permanent failure. Redirects are never followed.
//
// Delivery is at least once: a receiver whose answer is lost sees the
// notification again, with the same delivery id. The queue is in memory, so
// what is queued when the process exits is lost. Notifications dropped
// because the queue is full, or abandoned when Close gives up, are counted
// and logged by approval id. The secret and the bodies are never logged; the URL is logged without
// userinfo, query or fragment.
//
// The package must not import the decision core (engine, pipeline, adapters):
// it only moves bytes it is handed.
package webhook

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for Config fields left zero.
const (
	DefaultTimeout     = 5 * time.Second
	DefaultMaxAttempts = 6
	DefaultQueueSize   = 1024
	DefaultMinBackoff  = 200 * time.Millisecond
	DefaultMaxBackoff  = 30 * time.Second
)

// MinSecretLen is the shortest Config.Secret New accepts, in bytes.
const MinSecretLen = 16

// Config configures a Notifier.
type Config struct {
	// URL is the receiver's endpoint. It must be https, or http to a
	// loopback host (localhost, 127.0.0.0/8, ::1). Userinfo in it is sent
	// as basic authentication and never logged.
	URL string
	// Secret keys the HMAC-SHA256 signature; at least MinSecretLen bytes.
	Secret []byte
	// Timeout bounds one attempt, response included (default 5 s).
	Timeout time.Duration
	// MaxAttempts bounds the attempts to deliver one notification, the
	// first included (default 6).
	MaxAttempts int
	// QueueSize bounds the notifications waiting for delivery (default
	// 1024). Notify drops what does not fit.
	QueueSize int
	// MinBackoff and MaxBackoff bound the delay between attempts (default
	// 200 ms and 30 s).
	MinBackoff, MaxBackoff time.Duration
	// Client sends the requests (default: http.DefaultTransport). The
	// Notifier uses a copy of it that never follows redirects.
	Client *http.Client
	// Logger receives the notifier's logs (default: discarded).
	Logger *slog.Logger
}

// Stats are the notifier's counters since New.
type Stats struct {
	// Delivered counts notifications the receiver answered with a 2xx.
	Delivered uint64
	// Failed counts notifications given up on: attempts exhausted, a
	// permanent failure, or still undelivered when Close gave up.
	Failed uint64
	// Dropped counts notifications Notify refused because the queue was
	// full or the notifier closed.
	Dropped uint64
	// Retried counts attempts beyond each notification's first.
	Retried uint64
	// Pending counts notifications accepted and not yet delivered or
	// given up on: those queued and the one being delivered.
	Pending uint64
}

// Notifier delivers notifications to one webhook. Its methods are safe for
// concurrent use.
type Notifier struct {
	url         string
	target      string // url for logs
	secret      []byte
	client      *http.Client
	timeout     time.Duration
	maxAttempts int
	minBackoff  time.Duration
	maxBackoff  time.Duration
	log         *slog.Logger

	// mu guards closed and orders Notify's sends before Close's drain.
	mu     sync.RWMutex
	closed bool

	queue     chan notification
	closing   chan struct{} // closed by Close: deliver what is queued, then stop
	done      chan struct{} // closed when the worker has stopped
	ctx       context.Context
	cancel    context.CancelFunc // Close gives up: abandon what is left
	closeOnce sync.Once

	delivered atomic.Uint64
	failed    atomic.Uint64
	dropped   atomic.Uint64
	retried   atomic.Uint64
	pending   atomic.Int64
	abandoned atomic.Uint64
}

type notification struct {
	event string
	id    string
	body  []byte
}

// New checks cfg and starts the notifier's worker. Close stops it.
func New(cfg Config) (*Notifier, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		// url.Error repeats the URL, credentials and all.
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		return nil, fmt.Errorf("webhook: invalid URL: %w", err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https" || u.Host == "":
		return nil, fmt.Errorf("webhook: URL %s: want an http or https URL with a host", redact(u))
	case u.Scheme == "http" && !isLoopback(u.Hostname()):
		return nil, fmt.Errorf("webhook: URL %s: plain http is allowed only to a loopback host; use https", redact(u))
	}
	if len(cfg.Secret) < MinSecretLen {
		return nil, fmt.Errorf("webhook: secret is %d bytes; want at least %d", len(cfg.Secret), MinSecretLen)
	}
	if cfg.Timeout < 0 || cfg.MaxAttempts < 0 || cfg.QueueSize < 0 || cfg.MinBackoff < 0 || cfg.MaxBackoff < 0 {
		return nil, errors.New("webhook: negative Timeout, MaxAttempts, QueueSize, MinBackoff or MaxBackoff")
	}
	minBackoff := cmp.Or(cfg.MinBackoff, DefaultMinBackoff)
	maxBackoff := max(cmp.Or(cfg.MaxBackoff, DefaultMaxBackoff), minBackoff)

	client := &http.Client{}
	if cfg.Client != nil {
		c := *cfg.Client
		client = &c
	}
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	target := redact(u)
	ctx, cancel := context.WithCancel(context.Background())
	n := &Notifier{
		url:         u.String(),
		target:      target,
		secret:      bytes.Clone(cfg.Secret),
		client:      client,
		timeout:     cmp.Or(cfg.Timeout, DefaultTimeout),
		maxAttempts: cmp.Or(cfg.MaxAttempts, DefaultMaxAttempts),
		minBackoff:  minBackoff,
		maxBackoff:  maxBackoff,
		log:         log.With("webhook", target),
		queue:       make(chan notification, cmp.Or(cfg.QueueSize, DefaultQueueSize)),
		closing:     make(chan struct{}),
		done:        make(chan struct{}),
		ctx:         ctx,
		cancel:      cancel,
	}
	go n.run()
	return n, nil
}

// Notify queues body, a JSON document, for delivery as event (e.g.
// "approval.requested") about approval id. It never blocks. It returns false,
// and logs a warning naming id, when the notification is not accepted: the
// queue is full or the notifier closed (counted as Dropped), or event is not
// a token of letters, digits, '.', '_' and '-' (counted as Failed). Notify
// keeps a copy of body.
func (n *Notifier) Notify(event, id string, body []byte) bool {
	if !validEvent(event) {
		n.failed.Add(1)
		n.log.Warn("webhook notification refused: invalid event name", "id", id)
		return false
	}
	n.mu.RLock()
	defer n.mu.RUnlock()
	if n.closed {
		n.dropped.Add(1)
		n.log.Warn("webhook notification dropped: notifier closed", "event", event, "id", id)
		return false
	}
	// Count it before the worker can see it, so Pending never goes negative.
	n.pending.Add(1)
	select {
	case n.queue <- notification{event: event, id: id, body: bytes.Clone(body)}:
		return true
	default:
		n.pending.Add(-1)
		n.dropped.Add(1)
		n.log.Warn("webhook notification dropped: queue full", "event", event, "id", id, "queue_size", cap(n.queue))
		return false
	}
}

// Stats returns the notifier's counters.
func (n *Notifier) Stats() Stats {
	return Stats{
		Delivered: n.delivered.Load(),
		Failed:    n.failed.Load(),
		Dropped:   n.dropped.Load(),
		Retried:   n.retried.Load(),
		Pending:   uint64(max(n.pending.Load(), 0)),
	}
}

// Close stops accepting notifications and delivers those queued, retrying as
// usual, until the queue is empty or ctx ends. Notifications still
// undelivered when ctx ends are counted as Failed and logged with their ids;
// Close then returns an error wrapping ctx.Err(). Later calls wait for the
// same worker and return nil once it has stopped, or ctx's error.
func (n *Notifier) Close(ctx context.Context) error {
	n.closeOnce.Do(func() {
		n.mu.Lock()
		n.closed = true
		n.mu.Unlock()
		close(n.closing)
	})
	select {
	case <-n.done:
		n.cancel()
		return nil
	case <-ctx.Done():
	}
	n.cancel()
	<-n.done
	if k := n.abandoned.Swap(0); k > 0 {
		return fmt.Errorf("webhook: closed with %d notifications undelivered: %w", k, ctx.Err())
	}
	return nil
}

// validEvent reports whether event is a non-empty token safe in a header.
func validEvent(event string) bool {
	if event == "" || len(event) > 128 {
		return false
	}
	for _, c := range []byte(event) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// isLoopback reports whether host names the local machine.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// redact returns u without userinfo, query or fragment, which may carry
// credentials.
func redact(u *url.URL) string {
	r := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}
	return r.String()
}
