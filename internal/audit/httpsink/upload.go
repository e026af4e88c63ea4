package httpsink

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// drainLimit bounds how much of a response body is read (and discarded) so
// the connection can be reused.
const drainLimit = 64 << 10

// run is the uploader: it sends the spool, oldest first, until Close asks
// it to stop once the spool is empty, or gives up.
func (s *Sink) run(ctx context.Context) {
	defer close(s.done)
	defer s.closeReader()
	bo := &backoff.ExponentialBackOff{
		InitialInterval:     s.minRetry,
		RandomizationFactor: 0.2,
		Multiplier:          2,
		MaxInterval:         s.maxRetry,
	}
	bo.Reset()
	limit := s.maxBatch
	draining := false
	for ctx.Err() == nil {
		sp, ok, err := s.next(limit)
		if err != nil {
			s.failed("spool read failed: "+cause(err), err)
			if !s.sleep(ctx, bo.NextBackOff()) {
				return
			}
			continue
		}
		if !ok {
			if draining {
				return
			}
			select {
			case <-s.wake:
			case <-s.kick:
			case <-s.closing:
				// Look once more: Write may have appended since.
				draining = true
			case <-ctx.Done():
				return
			}
			continue
		}
		if sp.valid == 0 {
			s.commit(sp, 0, 0)
			continue
		}
		code, ok := s.deliver(ctx, bo, sp)
		switch {
		case !ok:
			return // Close gave up; the span stays in the spool
		case code != http.StatusRequestEntityTooLarge:
			s.commit(sp, sp.valid, 0)
			limit = s.maxBatch
		case sp.valid > 1:
			// Halve the batch until the collector takes it.
			limit = (len(sp.body) + 2) / 2
		default:
			// It can never be delivered.
			s.commit(sp, 0, 1)
			s.log.Warn("audit record dropped: the collector refused it as too large", "status", code, "bytes", len(sp.body))
			limit = s.maxBatch
		}
	}
}

// deliver POSTs the span until the collector answers 2xx or 413, retrying
// any other answer or failure after a backoff. It returns false when ctx
// ends first.
func (s *Sink) deliver(ctx context.Context, bo backoff.BackOff, sp span) (int, bool) {
	body := s.compress(sp.body)
	for {
		code, err := s.post(ctx, body)
		if ctx.Err() != nil {
			return 0, false
		}
		switch {
		case err != nil:
			s.failed(describe(err), err)
		case code >= 200 && code < 300:
			bo.Reset()
			s.mu.Lock()
			recovered := s.uploadFailed
			s.uploadFailed = false
			s.mu.Unlock()
			if recovered {
				s.log.Info("audit upload recovered")
			}
			return code, true
		case code == http.StatusRequestEntityTooLarge:
			return code, true
		default:
			s.failed(fmt.Sprintf("collector answered %d", code), nil)
		}
		if !s.sleep(ctx, bo.NextBackOff()) {
			return 0, false
		}
	}
}

// compress returns the gzipped JSON array of body's events. The result is
// valid until the next call.
func (s *Sink) compress(body []byte) []byte {
	s.zbuf.Reset()
	s.zw.Reset(&s.zbuf)
	// Writes to a bytes.Buffer do not fail.
	_, _ = s.zw.Write([]byte{'['})
	_, _ = s.zw.Write(body)
	_, _ = s.zw.Write([]byte{']'})
	_ = s.zw.Close()
	return s.zbuf.Bytes()
}

// post sends one request and returns the collector's status code.
func (s *Sink) post(ctx context.Context, gz []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(gz))
	if err != nil {
		return 0, err
	}
	req.Header = s.header.Clone()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Content-Encoding", "gzip")
	req.Header.Set("User-Agent", "verdict")
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, drainLimit))
	return resp.StatusCode, nil
}

// commit moves the cursor past the span, of which written records were
// delivered and tooLarge refused by the collector; the span's lines that are
// not JSON are dropped too.
func (s *Sink) commit(sp span, written, tooLarge int) {
	pos := position{seg: sp.seq, off: sp.end}
	cerr := s.saveCursor(pos)
	if cerr != nil {
		// The span is sent again after a restart.
		s.log.Warn("saving the spool cursor", "error", cerr)
	}
	invalid := sp.records - sp.valid
	if invalid > 0 {
		s.log.Warn("audit records dropped: not JSON in the spool", "records", invalid)
	}
	s.mu.Lock()
	s.cursor = pos
	s.pendingBytes -= sp.end - sp.start
	s.pendingRecords -= int64(sp.records)
	s.written += count(written)
	s.dropped += count(invalid + tooLarge)
	if invalid > 0 {
		s.lastErr, s.lastErrAt = "invalid record in the spool", time.Now()
	}
	if tooLarge > 0 {
		s.lastErr, s.lastErrAt = "collector refused a record as too large (413)", time.Now()
	}
	if cerr != nil {
		s.lastErr, s.lastErrAt = "cursor write failed: "+cause(cerr), time.Now()
	}
	s.progressLocked()
	s.mu.Unlock()
}

// failed records a failed attempt; the first of a run is logged at
// warn, the retries at debug. err is logged without the URL.
func (s *Sink) failed(reason string, err error) {
	s.mu.Lock()
	first := !s.uploadFailed
	s.uploadFailed = true
	s.lastErr, s.lastErrAt = reason, time.Now()
	s.mu.Unlock()
	level := slog.LevelDebug
	if first {
		level = slog.LevelWarn
	}
	if ue, ok := errors.AsType[*url.Error](err); ok {
		err = ue.Err
	}
	if err != nil {
		s.log.Log(context.Background(), level, "audit upload failed; retrying", "reason", reason, "error", err)
	} else {
		s.log.Log(context.Background(), level, "audit upload failed; retrying", "reason", reason)
	}
}

// describe names a request failure for an operator, without the URL.
func describe(err error) string {
	_, dns := errors.AsType[*net.DNSError](err)
	ne, isNet := errors.AsType[net.Error](err)
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case dns:
		return "DNS lookup failed"
	case isNet && ne.Timeout(), errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed by the collector"
	case isTLSError(err):
		return "TLS handshake failed"
	default:
		return "request failed"
	}
}

func isTLSError(err error) bool {
	_, a := errors.AsType[*tls.CertificateVerificationError](err)
	_, b := errors.AsType[tls.RecordHeaderError](err)
	_, c := errors.AsType[tls.AlertError](err)
	_, d := errors.AsType[x509.UnknownAuthorityError](err)
	_, e := errors.AsType[x509.HostnameError](err)
	_, f := errors.AsType[x509.CertificateInvalidError](err)
	return a || b || c || d || e || f
}

// sleep waits d before a retry, or less when Flush or Close asks for one.
// It reports false if ctx ended first.
func (s *Sink) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.kick:
		return true
	case <-ctx.Done():
		return false
	}
}

// redact returns u without userinfo, query or fragment, which may carry
// credentials.
func redact(u *url.URL) string {
	r := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}
	return r.String()
}

// validHeaderName reports whether name is an RFC 9110 token.
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for _, c := range []byte(name) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validHeaderValue reports whether v holds no control character but tab.
func validHeaderValue(v string) bool {
	for _, c := range []byte(v) {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}
