package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/google/uuid"
)

// Header names of a delivery.
const (
	HeaderEvent     = "X-Verdict-Event"
	HeaderDelivery  = "X-Verdict-Delivery"
	HeaderTimestamp = "X-Verdict-Timestamp"
	HeaderSignature = "X-Verdict-Signature"
)

// drainLimit bounds how much of a response body is read (and discarded).
const drainLimit = 64 << 10

// outcome is what one attempt's result asks of the worker.
type outcome int

const (
	delivered outcome = iota
	retry
	permanent
)

// result is one attempt's result.
type result struct {
	outcome outcome
	status  int    // 0 when no response came
	reason  string // for the log; never the URL, the secret or a body
	err     error
	// retryAfter is the receiver's Retry-After, when it sent a usable one.
	retryAfter    time.Duration
	hasRetryAfter bool
}

// run is the worker: it delivers the queue in order until Close asks it to
// stop, then delivers what is left unless Close gives up.
func (n *Notifier) run() {
	defer close(n.done)
	bo := &backoff.ExponentialBackOff{
		InitialInterval:     n.minBackoff,
		RandomizationFactor: 0.2,
		Multiplier:          2,
		MaxInterval:         n.maxBackoff,
	}
	var abandoned []string
	defer func() {
		if len(abandoned) > 0 {
			n.log.Warn("webhook notifications abandoned: closed before delivery", "count", len(abandoned), "ids", abandoned)
		}
	}()
	for {
		var nt notification
		select {
		case nt = <-n.queue:
		case <-n.closing:
			// Notify sends nothing once closed is set, which precedes
			// closing: what is queued now is all there will be.
			select {
			case nt = <-n.queue:
			default:
				return
			}
		}
		if !n.deliver(bo, nt) {
			abandoned = append(abandoned, nt.id)
		}
	}
}

// deliver sends nt until it is delivered, fails for good or runs out of
// attempts. It reports false when Close gave up on it first; the notification
// is then counted as failed but not logged.
func (n *Notifier) deliver(bo backoff.BackOff, nt notification) bool {
	defer n.pending.Add(-1)
	delivery := uuid.NewString()
	log := n.log.With("event", nt.event, "id", nt.id, "delivery", delivery)
	bo.Reset()
	for attempt := 1; ; attempt++ {
		if n.ctx.Err() != nil {
			n.failed.Add(1)
			n.abandoned.Add(1)
			return false
		}
		if attempt > 1 {
			n.retried.Add(1)
		}
		res := n.attempt(nt, delivery)
		switch res.outcome {
		case delivered:
			n.delivered.Add(1)
			log.Debug("webhook notification delivered", "attempts", attempt, "status", res.status)
			return true
		case permanent:
			n.failed.Add(1)
			log.Warn("webhook notification failed", "attempts", attempt, "reason", res.reason)
			return true
		case retry:
		}
		if n.ctx.Err() != nil {
			continue // abandoned above
		}
		if attempt >= n.maxAttempts {
			n.failed.Add(1)
			attrs := []any{"attempts", attempt, "reason", res.reason}
			if res.err != nil {
				attrs = append(attrs, "error", res.err)
			}
			log.Warn("webhook notification failed: attempts exhausted", attrs...)
			return true
		}
		wait := bo.NextBackOff()
		if res.hasRetryAfter {
			wait = res.retryAfter
		}
		log.Debug("webhook attempt failed; retrying", "attempt", attempt, "reason", res.reason, "retry_in", wait)
		if !n.sleep(wait) {
			continue // abandoned above
		}
	}
}

// attempt POSTs nt once, signed with the current time.
func (n *Notifier) attempt(nt notification, delivery string) result {
	ctx, cancel := context.WithTimeout(n.ctx, n.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.url, bytes.NewReader(nt.body))
	if err != nil {
		return result{outcome: permanent, reason: "building the request failed"}
	}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "verdict-webhook")
	req.Header.Set(HeaderEvent, nt.event)
	req.Header.Set(HeaderDelivery, delivery)
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderSignature, sign(n.secret, ts, nt.body))
	resp, err := n.client.Do(req)
	if err != nil {
		// url.Error repeats the URL, credentials and all.
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		return result{outcome: retry, reason: describe(err), err: err}
	}
	defer func() { _ = resp.Body.Close() }()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, drainLimit))

	code := resp.StatusCode
	res := result{status: code, reason: fmt.Sprintf("receiver answered %d", code)}
	switch {
	case code >= 200 && code < 300:
		res.outcome = delivered
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests, code >= 500 && code < 600:
		res.outcome = retry
		if code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable {
			res.retryAfter, res.hasRetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), n.maxBackoff)
		}
	case code >= 300 && code < 400:
		res.outcome = permanent
		res.reason = fmt.Sprintf("receiver answered %d, a redirect; redirects are not followed", code)
	default:
		res.outcome = permanent
	}
	return res
}

// sign returns the signature header's value for body sent at timestamp ts:
// "sha256=" and the hex HMAC-SHA256 of ts + "." + body under secret.
func sign(secret []byte, ts string, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(ts))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// parseRetryAfter reads a Retry-After header of whole seconds, capped at
// limit. It reports false for an absent, negative or non-numeric value (an
// HTTP date included), which leaves the backoff's delay in force.
func parseRetryAfter(v string, limit time.Duration) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	for _, c := range []byte(v) {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	secs, err := strconv.ParseInt(v, 10, 64)
	if err != nil || secs > int64(limit/time.Second) {
		// Only digits, so err is a range error: too large.
		return limit, true
	}
	return time.Duration(secs) * time.Second, true
}

// sleep waits d before a retry. It reports false if Close gave up first.
func (n *Notifier) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-n.ctx.Done():
		return false
	}
}

// describe names a request failure for an operator, without the URL.
func describe(err error) string {
	_, dns := errors.AsType[*net.DNSError](err)
	ne, isNet := errors.AsType[net.Error](err)
	_, tlsRecord := errors.AsType[tls.RecordHeaderError](err)
	_, tlsVerify := errors.AsType[*tls.CertificateVerificationError](err)
	switch {
	case errors.Is(err, context.DeadlineExceeded), isNet && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case dns:
		return "DNS lookup failed"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed by the receiver"
	case tlsRecord, tlsVerify:
		return "TLS handshake failed"
	default:
		return "request failed"
	}
}
