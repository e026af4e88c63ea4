package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/verdictpdp/verdict/internal/bundle"
)

// HTTPOptions configure polling of a bundle server.
type HTTPOptions struct {
	// MinDelay and MaxDelay bound the pause between two successful polls
	// (a random delay in between spreads replicas apart).
	MinDelay, MaxDelay time.Duration
	// MaxBackoff bounds the pause after failures, which grows exponentially.
	MaxBackoff time.Duration
	// Timeout bounds one download.
	Timeout time.Duration
	// Client is the HTTP client; nil means a client with Timeout.
	Client *http.Client
}

func (o HTTPOptions) withDefaults() HTTPOptions {
	if o.MinDelay <= 0 {
		o.MinDelay = 10 * time.Second
	}
	if o.MaxDelay < o.MinDelay {
		o.MaxDelay = max(o.MinDelay, 20*time.Second)
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 60 * time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: o.Timeout}
	}
	return o
}

// HTTP polls a bundle server with ETag / If-None-Match and backs off on
// failure. The last good archive is persisted through store so that a
// restart serves it while the server is down.
type HTTP struct {
	name   string
	url    string
	opts   HTTPOptions
	reader *bundle.Reader
	store  *bundle.Store
	logger *slog.Logger

	etag string
}

// NewHTTP returns a source for an http:// or https:// URL.
func NewHTTP(name, rawURL string, opts HTTPOptions, reader *bundle.Reader, store *bundle.Store, logger *slog.Logger) *HTTP {
	return &HTTP{name: name, url: rawURL, opts: opts.withDefaults(), reader: reader, store: store, logger: logger}
}

// Name implements Source.
func (h *HTTP) Name() string { return h.name }

// Location implements Source: the URL without user info or query.
func (h *HTTP) Location() string { return RedactURL(h.url) }

// RedactURL drops credentials and the query string from a URL for display.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	u.User = nil
	u.RawQuery = ""
	u.Fragment = ""
	return u.String()
}

// Run implements Source.
func (h *HTTP) Run(ctx context.Context, sink Sink) {
	h.loadPersisted(ctx, sink)

	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = time.Second
	bo.MaxInterval = h.opts.MaxBackoff
	for {
		var wait time.Duration
		if err := h.poll(ctx, sink); err != nil {
			if ctx.Err() != nil {
				return
			}
			sink.Failure(h.name, err)
			wait = bo.NextBackOff()
		} else {
			bo.Reset()
			wait = h.opts.MinDelay
			if spread := h.opts.MaxDelay - h.opts.MinDelay; spread > 0 {
				wait += rand.N(spread) //nolint:gosec // jitter, not security
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func (h *HTTP) loadPersisted(ctx context.Context, sink Sink) {
	raw, etag, err := h.store.Load(h.name)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	if err != nil {
		h.logger.Warn("cannot read persisted bundle", "bundle", h.name, "err", err)
		return
	}
	b, err := h.reader.ReadArchive(h.name, raw)
	if err != nil {
		h.logger.Warn("persisted bundle is unusable; waiting for the server", "bundle", h.name, "err", err)
		return
	}
	if err := sink.Update(ctx, h.name, b); err != nil {
		return
	}
	h.etag = etag
	h.logger.Info("serving persisted bundle until the server answers", "bundle", h.name, "revision", b.Manifest.Revision)
}

// ErrHTTPStatus is wrapped when the bundle server answers with an
// unexpected status.
var ErrHTTPStatus = errors.New("unexpected HTTP status from bundle server")

func (h *HTTP) poll(ctx context.Context, sink Sink) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.url, nil)
	if err != nil {
		return fmt.Errorf("bundle request: %w", err)
	}
	req.Header.Set("Accept", "application/gzip, application/octet-stream")
	if h.etag != "" {
		req.Header.Set("If-None-Match", h.etag)
	}
	resp, err := h.opts.Client.Do(req)
	if err != nil {
		return fmt.Errorf("download %s: %w", h.Location(), err)
	}
	defer func() { _ = resp.Body.Close() }()
	switch resp.StatusCode {
	case http.StatusNotModified:
		return nil
	case http.StatusOK:
	default:
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("%w: %s answered %d", ErrHTTPStatus, h.Location(), resp.StatusCode)
	}
	limit := h.reader.Limits().MaxCompressedBytes
	raw, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return fmt.Errorf("download %s: %w", h.Location(), err)
	}
	if int64(len(raw)) > limit {
		return fmt.Errorf("download %s: %w: more than %d bytes", h.Location(), bundle.ErrTooLarge, limit)
	}
	b, err := h.reader.ReadArchive(h.name, raw)
	if err != nil {
		return fmt.Errorf("bundle from %s: %w", h.Location(), err)
	}
	etag := resp.Header.Get("ETag")
	b.Etag = etag
	if err := sink.Update(ctx, h.name, b); err != nil {
		// Activation failed and was reported by the sink. Forget the ETag so the
		// next poll downloads again rather than trusting a 304 for a bad bundle.
		h.etag = ""
		return nil
	}
	h.etag = etag
	if err := h.store.Save(h.name, raw, etag); err != nil {
		h.logger.Warn("cannot persist bundle", "bundle", h.name, "err", err)
	}
	return nil
}
