package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// Markers that must never appear in a log.
const (
	testSecret   = "0123456789abcdef-the-shared-secret"
	userPassword = "pw-in-userinfo"
	queryToken   = "token-in-query"
	bodyMarker   = "body-marker-never-logged"
)

// received is one request as the receiver saw it.
type received struct {
	path   string
	header http.Header
	body   []byte
	at     time.Time
}

// receiver is an operator's webhook endpoint on loopback. answer decides
// the response to the nth request (from 0); it may block.
type receiver struct {
	srv    *httptest.Server
	answer func(n int, w http.ResponseWriter, r *http.Request)

	mu   sync.Mutex
	reqs []received
}

func newReceiver(t testing.TB, answer func(n int, w http.ResponseWriter, r *http.Request)) *receiver {
	t.Helper()
	rc := &receiver{answer: answer}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		rc.mu.Lock()
		n := len(rc.reqs)
		rc.reqs = append(rc.reqs, received{path: r.URL.Path, header: r.Header.Clone(), body: body, at: time.Now()})
		rc.mu.Unlock()
		rc.answer(n, w, r)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

// statuses answers the nth request with codes[n], the last one after that.
func statuses(codes ...int) func(int, http.ResponseWriter, *http.Request) {
	return func(n int, w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(codes[min(n, len(codes)-1)])
	}
}

// url is the receiver's URL with credentials in its userinfo and query, which
// the notifier must never log.
func (rc *receiver) url(path string) string {
	return strings.Replace(rc.srv.URL, "http://", "http://user:"+userPassword+"@", 1) + path + "?token=" + queryToken
}

func (rc *receiver) requests() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.reqs...)
}

// verify checks a request as a third-party receiver would: it recomputes
// the HMAC from the documented scheme and checks the timestamp's freshness.
func verify(secret []byte, h http.Header, body []byte) error {
	ts := h.Get("X-Verdict-Timestamp")
	sent, ok := strings.CutPrefix(h.Get("X-Verdict-Signature"), "sha256=")
	if !ok {
		return errors.New("signature header lacks sha256=")
	}
	got, err := hex.DecodeString(sent)
	if err != nil {
		return fmt.Errorf("signature is not hex: %w", err)
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(ts + "." + string(body)))
	if !hmac.Equal(got, mac.Sum(nil)) {
		return errors.New("signature mismatch")
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("timestamp: %w", err)
	}
	if d := time.Since(time.Unix(sec, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return fmt.Errorf("timestamp %s is %s away", ts, d)
	}
	return nil
}

// syncBuffer is a log destination safe for concurrent use.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// newNotifier starts a notifier with fast retries, its logs at debug level
// in the returned buffer. At cleanup it closes the notifier and checks that
// no log holds the secret, a body or the URL's credentials.
func newNotifier(t testing.TB, cfg Config) (*Notifier, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	cfg.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if cfg.Secret == nil {
		cfg.Secret = []byte(testSecret)
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = time.Millisecond
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 20 * time.Millisecond
	}
	n, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = n.Close(ctx)
		out := logs.String()
		for _, secret := range []string{testSecret, userPassword, queryToken, bodyMarker} {
			if strings.Contains(out, secret) {
				t.Errorf("logs hold %q:\n%s", secret, out)
			}
		}
	})
	return n, logs
}

func closeWithin(t testing.TB, n *Notifier, d time.Duration) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return n.Close(ctx)
}

func payload(id string) []byte {
	return []byte(`{"approval_id":"` + id + `","note":"` + bodyMarker + `"}`)
}

func TestNewValidation(t *testing.T) {
	t.Parallel()
	secret := []byte(testSecret)
	cases := []struct {
		name    string
		cfg     Config
		wantErr string // "" for success
	}{
		{name: "https", cfg: Config{URL: "https://hooks.example.com/verdict", Secret: secret}},
		{name: "http to localhost", cfg: Config{URL: "http://localhost:9000/hook", Secret: secret}},
		{name: "http to 127.0.0.1", cfg: Config{URL: "http://127.0.0.1:9000/hook", Secret: secret}},
		{name: "http to ::1", cfg: Config{URL: "http://[::1]:9000/hook", Secret: secret}},
		{name: "http to a remote host", cfg: Config{URL: "http://hooks.example.com/verdict", Secret: secret}, wantErr: "plain http is allowed only to a loopback host"},
		{name: "http to a LAN address", cfg: Config{URL: "http://10.0.0.7/verdict", Secret: secret}, wantErr: "plain http is allowed only to a loopback host"},
		{name: "other scheme", cfg: Config{URL: "ftp://hooks.example.com/verdict", Secret: secret}, wantErr: "want an http or https URL"},
		{name: "no host", cfg: Config{URL: "https:///verdict", Secret: secret}, wantErr: "want an http or https URL"},
		{name: "relative", cfg: Config{URL: "/verdict", Secret: secret}, wantErr: "want an http or https URL"},
		{name: "unparsable", cfg: Config{URL: "https://user:" + userPassword + "@host:port:bad/x", Secret: secret}, wantErr: "invalid URL"},
		{name: "credentials not echoed", cfg: Config{URL: "http://user:" + userPassword + "@hooks.example.com/x?token=" + queryToken, Secret: secret}, wantErr: "http://hooks.example.com/x:"},
		{name: "no secret", cfg: Config{URL: "https://hooks.example.com/verdict"}, wantErr: "secret is 0 bytes; want at least 16"},
		{name: "short secret", cfg: Config{URL: "https://hooks.example.com/verdict", Secret: []byte("fifteen-bytes..")}, wantErr: "secret is 15 bytes; want at least 16"},
		{name: "negative timeout", cfg: Config{URL: "https://hooks.example.com/verdict", Secret: secret, Timeout: -time.Second}, wantErr: "negative"},
		{name: "negative queue", cfg: Config{URL: "https://hooks.example.com/verdict", Secret: secret, QueueSize: -1}, wantErr: "negative"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			n, err := New(tc.cfg)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				if err := closeWithin(t, n, time.Second); err != nil {
					t.Errorf("Close: %v", err)
				}
				return
			}
			if err == nil {
				_ = closeWithin(t, n, time.Second)
				t.Fatalf("New succeeded; want an error containing %q", tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("New error %q; want it to contain %q", err, tc.wantErr)
			}
			for _, secret := range []string{userPassword, queryToken} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("New error %q holds %q", err, secret)
				}
			}
		})
	}
}

func TestDelivery(t *testing.T) {
	t.Parallel()
	redirect := func(n int, w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hook" {
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
			return
		}
		w.WriteHeader(http.StatusOK)
	}
	cases := []struct {
		name        string
		answer      func(int, http.ResponseWriter, *http.Request)
		maxAttempts int
		wantPaths   []string // the requests the receiver sees
		want        Stats
	}{
		{name: "200 at once", answer: statuses(200), wantPaths: []string{"/hook"}, want: Stats{Delivered: 1}},
		{name: "204 at once", answer: statuses(204), wantPaths: []string{"/hook"}, want: Stats{Delivered: 1}},
		{name: "500 then success", answer: statuses(500, 502, 200), wantPaths: []string{"/hook", "/hook", "/hook"}, want: Stats{Delivered: 1, Retried: 2}},
		{name: "408 retried", answer: statuses(408, 200), wantPaths: []string{"/hook", "/hook"}, want: Stats{Delivered: 1, Retried: 1}},
		{name: "429 retried", answer: statuses(429, 200), wantPaths: []string{"/hook", "/hook"}, want: Stats{Delivered: 1, Retried: 1}},
		{name: "400 not retried", answer: statuses(400, 200), wantPaths: []string{"/hook"}, want: Stats{Failed: 1}},
		{name: "401 not retried", answer: statuses(401, 200), wantPaths: []string{"/hook"}, want: Stats{Failed: 1}},
		{name: "410 not retried", answer: statuses(410, 200), wantPaths: []string{"/hook"}, want: Stats{Failed: 1}},
		{name: "gives up after MaxAttempts", answer: statuses(503), maxAttempts: 3, wantPaths: []string{"/hook", "/hook", "/hook"}, want: Stats{Failed: 1, Retried: 2}},
		{name: "redirect not followed", answer: redirect, wantPaths: []string{"/hook"}, want: Stats{Failed: 1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rc := newReceiver(t, tc.answer)
			n, _ := newNotifier(t, Config{URL: rc.url("/hook"), MaxAttempts: tc.maxAttempts})
			body := payload("apr-1")
			if !n.Notify("approval.requested", "apr-1", body) {
				t.Fatal("Notify refused the notification")
			}
			if err := closeWithin(t, n, 5*time.Second); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if diff := cmp.Diff(tc.want, n.Stats()); diff != "" {
				t.Errorf("Stats (-want +got):\n%s", diff)
			}
			reqs := rc.requests()
			var paths []string
			for _, r := range reqs {
				paths = append(paths, r.path)
			}
			if diff := cmp.Diff(tc.wantPaths, paths); diff != "" {
				t.Fatalf("requests' paths (-want +got):\n%s", diff)
			}
			delivery := reqs[0].header.Get("X-Verdict-Delivery")
			if len(delivery) != 36 {
				t.Errorf("X-Verdict-Delivery %q; want a UUID", delivery)
			}
			for i, r := range reqs {
				if err := verify([]byte(testSecret), r.header, r.body); err != nil {
					t.Errorf("request %d: %v", i, err)
				}
				if err := verify([]byte("another-secret-of-length"), r.header, r.body); err == nil {
					t.Errorf("request %d verifies under the wrong secret", i)
				}
				if !bytes.Equal(r.body, body) {
					t.Errorf("request %d body %q; want %q", i, r.body, body)
				}
				gotHeaders := map[string]string{
					"Content-Type":       r.header.Get("Content-Type"),
					"X-Verdict-Event":    r.header.Get("X-Verdict-Event"),
					"X-Verdict-Delivery": r.header.Get("X-Verdict-Delivery"),
				}
				wantHeaders := map[string]string{
					"Content-Type":       "application/json",
					"X-Verdict-Event":    "approval.requested",
					"X-Verdict-Delivery": delivery, // the same on every attempt
				}
				if diff := cmp.Diff(wantHeaders, gotHeaders); diff != "" {
					t.Errorf("request %d headers (-want +got):\n%s", i, diff)
				}
				if user, pass, ok := basicAuth(r.header); !ok || user != "user" || pass != userPassword {
					t.Errorf("request %d: basic auth from the URL's userinfo missing", i)
				}
			}
		})
	}
}

func basicAuth(h http.Header) (string, string, bool) {
	r := &http.Request{Header: h}
	return r.BasicAuth()
}

func TestDeliveriesAreDistinct(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, statuses(200))
	n, _ := newNotifier(t, Config{URL: rc.url("/hook")})
	for _, id := range []string{"apr-1", "apr-2", "apr-3"} {
		if !n.Notify("approval.requested", id, payload(id)) {
			t.Fatalf("Notify(%s) refused", id)
		}
	}
	if err := closeWithin(t, n, 5*time.Second); err != nil {
		t.Fatalf("Close: %v", err)
	}
	seen := map[string]bool{}
	var bodies []string
	for _, r := range rc.requests() {
		seen[r.header.Get("X-Verdict-Delivery")] = true
		bodies = append(bodies, string(r.body))
	}
	if len(seen) != 3 {
		t.Errorf("%d distinct delivery ids for 3 notifications; want 3", len(seen))
	}
	want := []string{string(payload("apr-1")), string(payload("apr-2")), string(payload("apr-3"))}
	if diff := cmp.Diff(want, bodies); diff != "" {
		t.Errorf("bodies in delivery order (-want +got):\n%s", diff)
	}
}

func TestNotifyCopiesBody(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	rc := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n == 0 {
			<-release
		}
	})
	n, _ := newNotifier(t, Config{URL: rc.url("/hook")})
	n.Notify("approval.requested", "apr-0", payload("apr-0"))
	buf := payload("apr-1")
	n.Notify("approval.requested", "apr-1", buf)
	copy(buf, "XXXXXXXX") // the caller reuses its buffer
	close(release)
	if err := closeWithin(t, n, 5*time.Second); err != nil {
		t.Fatalf("Close: %v", err)
	}
	reqs := rc.requests()
	if len(reqs) != 2 || !bytes.Equal(reqs[1].body, payload("apr-1")) {
		t.Errorf("second body %q; want %q", reqs[len(reqs)-1].body, payload("apr-1"))
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		status     int
		retryAfter string
		maxBackoff time.Duration
		wantMin    time.Duration // bounds on the gap between the attempts
		wantMax    time.Duration
	}{
		{name: "429 honoured", status: 429, retryAfter: "1", maxBackoff: 5 * time.Second, wantMin: time.Second, wantMax: 3 * time.Second},
		{name: "503 honoured", status: 503, retryAfter: "1", maxBackoff: 5 * time.Second, wantMin: time.Second, wantMax: 3 * time.Second},
		{name: "huge clamped to MaxBackoff", status: 429, retryAfter: "86400", maxBackoff: 50 * time.Millisecond, wantMin: 50 * time.Millisecond, wantMax: 700 * time.Millisecond},
		{name: "non-numeric ignored", status: 429, retryAfter: "soon", maxBackoff: 5 * time.Second, wantMax: 700 * time.Millisecond},
		{name: "HTTP date ignored", status: 503, retryAfter: "Wed, 21 Oct 2099 07:28:00 GMT", maxBackoff: 5 * time.Second, wantMax: 700 * time.Millisecond},
		{name: "negative ignored", status: 429, retryAfter: "-3", maxBackoff: 5 * time.Second, wantMax: 700 * time.Millisecond},
		{name: "ignored on 500", status: 500, retryAfter: "1", maxBackoff: 5 * time.Second, wantMax: 700 * time.Millisecond},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rc := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
				if n == 0 {
					w.Header().Set("Retry-After", tc.retryAfter)
					w.WriteHeader(tc.status)
				}
			})
			n, _ := newNotifier(t, Config{URL: rc.url("/hook"), MaxBackoff: tc.maxBackoff})
			n.Notify("approval.requested", "apr-1", payload("apr-1"))
			if err := closeWithin(t, n, 10*time.Second); err != nil {
				t.Fatalf("Close: %v", err)
			}
			reqs := rc.requests()
			if len(reqs) != 2 {
				t.Fatalf("%d requests; want 2", len(reqs))
			}
			gap := reqs[1].at.Sub(reqs[0].at)
			if gap < tc.wantMin || gap > tc.wantMax {
				t.Errorf("retried after %s; want between %s and %s", gap, tc.wantMin, tc.wantMax)
			}
			if tc.wantMin >= time.Second {
				// Each attempt is signed anew with its own timestamp.
				t0, _ := strconv.ParseInt(reqs[0].header.Get("X-Verdict-Timestamp"), 10, 64)
				t1, _ := strconv.ParseInt(reqs[1].header.Get("X-Verdict-Timestamp"), 10, 64)
				if t1 <= t0 {
					t.Errorf("retry timestamp %d not after the first attempt's %d", t1, t0)
				}
				if reqs[0].header.Get("X-Verdict-Signature") == reqs[1].header.Get("X-Verdict-Signature") {
					t.Error("the retry reuses the first attempt's signature")
				}
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	const limit = 30 * time.Second
	cases := []struct {
		in     string
		want   time.Duration
		wantOK bool
	}{
		{in: ""},
		{in: "0", want: 0, wantOK: true},
		{in: "7", want: 7 * time.Second, wantOK: true},
		{in: " 2 ", want: 2 * time.Second, wantOK: true},
		{in: "30", want: limit, wantOK: true},
		{in: "31", want: limit, wantOK: true},
		{in: "99999999999999999999999999", want: limit, wantOK: true},
		{in: "-1"},
		{in: "+1"},
		{in: "1.5"},
		{in: "1e3"},
		{in: "Wed, 21 Oct 2015 07:28:00 GMT"},
	}
	for _, tc := range cases {
		got, ok := parseRetryAfter(tc.in, limit)
		if got != tc.want || ok != tc.wantOK {
			t.Errorf("parseRetryAfter(%q) = %s, %t; want %s, %t", tc.in, got, ok, tc.want, tc.wantOK)
		}
	}
}

func TestQueueFull(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	release := make(chan struct{})
	rc := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n == 0 {
			close(started)
			<-release
		}
	})
	n, logs := newNotifier(t, Config{URL: rc.url("/hook"), QueueSize: 2})

	// The first is taken off the queue and hangs in the receiver; two more
	// fill the queue; the fourth does not fit.
	if !n.Notify("approval.requested", "apr-1", payload("apr-1")) {
		t.Fatal("Notify(apr-1) refused")
	}
	<-started
	for _, id := range []string{"apr-2", "apr-3"} {
		if !n.Notify("approval.requested", id, payload(id)) {
			t.Fatalf("Notify(%s) refused with room in the queue", id)
		}
	}
	if n.Notify("approval.requested", "apr-4", payload("apr-4")) {
		t.Fatal("Notify(apr-4) accepted into a full queue")
	}
	if diff := cmp.Diff(Stats{Dropped: 1, Pending: 3}, n.Stats()); diff != "" {
		t.Errorf("Stats with a full queue (-want +got):\n%s", diff)
	}
	if !strings.Contains(logs.String(), `"id":"apr-4"`) || !strings.Contains(logs.String(), "queue full") {
		t.Errorf("no warning naming the dropped apr-4:\n%s", logs)
	}

	close(release)
	if err := closeWithin(t, n, 5*time.Second); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if diff := cmp.Diff(Stats{Delivered: 3, Dropped: 1}, n.Stats()); diff != "" {
		t.Errorf("Stats after Close (-want +got):\n%s", diff)
	}
}

func TestNotifyRefusesInvalidEvent(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, statuses(200))
	n, _ := newNotifier(t, Config{URL: rc.url("/hook")})
	for _, event := range []string{"", "approval requested", "approval.requested\r\nX-Evil: 1"} {
		if n.Notify(event, "apr-1", payload("apr-1")) {
			t.Errorf("Notify accepted event %q", event)
		}
	}
	if err := closeWithin(t, n, 5*time.Second); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := len(rc.requests()); got != 0 {
		t.Errorf("receiver got %d requests; want 0", got)
	}
	if diff := cmp.Diff(Stats{Failed: 3}, n.Stats()); diff != "" {
		t.Errorf("Stats (-want +got):\n%s", diff)
	}
}

func TestCloseDrains(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		time.Sleep(10 * time.Millisecond)
		if n%3 == 0 {
			w.WriteHeader(http.StatusInternalServerError) // each is retried once
		}
	})
	n, _ := newNotifier(t, Config{URL: rc.url("/hook")})
	const count = 10
	for i := range count {
		id := "apr-" + strconv.Itoa(i)
		if !n.Notify("approval.requested", id, payload(id)) {
			t.Fatalf("Notify(%s) refused", id)
		}
	}
	if err := closeWithin(t, n, 10*time.Second); err != nil {
		t.Fatalf("Close: %v", err)
	}
	st := n.Stats()
	if st.Delivered != count || st.Failed != 0 || st.Pending != 0 || st.Retried == 0 {
		t.Errorf("Stats after Close %+v; want %d delivered, some retried, none failed or pending", st, count)
	}
	if n.Notify("approval.requested", "apr-late", payload("apr-late")) {
		t.Error("Notify accepted a notification after Close")
	}
	if got := n.Stats().Dropped; got != 1 {
		t.Errorf("Dropped after a Notify past Close = %d; want 1", got)
	}
	if err := closeWithin(t, n, time.Second); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestCloseGivesUp(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, statuses(500))
	n, logs := newNotifier(t, Config{URL: rc.url("/hook"), MaxAttempts: 1000, MinBackoff: 10 * time.Millisecond})
	ids := []string{"apr-1", "apr-2", "apr-3"}
	for _, id := range ids {
		n.Notify("approval.requested", id, payload(id))
	}
	start := time.Now()
	err := closeWithin(t, n, 200*time.Millisecond)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close = %v; want an error wrapping context.DeadlineExceeded", err)
	}
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("Close took %s after its deadline of 200ms", elapsed)
	}
	st := n.Stats()
	if st.Failed != 3 || st.Pending != 0 || st.Delivered != 0 {
		t.Errorf("Stats after Close gave up %+v; want 3 failed, none pending", st)
	}
	if len(rc.requests()) < 2 {
		t.Errorf("receiver saw %d requests; want Close to keep retrying until its deadline", len(rc.requests()))
	}
	out := logs.String()
	for _, id := range ids {
		if !strings.Contains(out, `"`+id+`"`) {
			t.Errorf("no warning names abandoned %s:\n%s", id, out)
		}
	}
	if !strings.Contains(out, `"level":"WARN","msg":"webhook notifications abandoned`) {
		t.Errorf("no warning about the abandoned notifications:\n%s", out)
	}
}

func TestTimeoutCutsHangingReceiver(t *testing.T) {
	t.Parallel()
	unblock := make(chan struct{})
	rc := newReceiver(t, func(_ int, _ http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-unblock:
		}
	})
	t.Cleanup(func() { close(unblock) }) // runs before the server's Close
	n, _ := newNotifier(t, Config{URL: rc.url("/hook"), Timeout: 100 * time.Millisecond, MaxAttempts: 2})
	start := time.Now()
	n.Notify("approval.requested", "apr-1", payload("apr-1"))
	if err := closeWithin(t, n, 5*time.Second); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("two attempts against a hanging receiver took %s; want about 200ms", elapsed)
	}
	if diff := cmp.Diff(Stats{Failed: 1, Retried: 1}, n.Stats()); diff != "" {
		t.Errorf("Stats (-want +got):\n%s", diff)
	}
	if got := len(rc.requests()); got != 2 {
		t.Errorf("receiver saw %d requests; want 2", got)
	}
}

func TestLargeResponseBodyIsDiscarded(t *testing.T) {
	t.Parallel()
	const total = 64 << 20
	written := make(chan int, 1)
	rc := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusOK)
		chunk := bytes.Repeat([]byte("x"), 32<<10)
		sent := 0
		defer func() { written <- sent }()
		for sent < total { // unless the client stops reading
			k, err := w.Write(chunk)
			sent += k
			if err != nil {
				return
			}
		}
	})
	n, _ := newNotifier(t, Config{URL: rc.url("/hook")})
	n.Notify("approval.requested", "apr-1", payload("apr-1"))
	if err := closeWithin(t, n, 5*time.Second); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if diff := cmp.Diff(Stats{Delivered: 1}, n.Stats()); diff != "" {
		t.Errorf("Stats (-want +got):\n%s", diff)
	}
	// The client hangs up after 64 KiB; what the server got out before its
	// writes failed sits in socket buffers, far below the whole.
	select {
	case sent := <-written:
		if sent >= total/2 {
			t.Errorf("the receiver wrote %d bytes of a %d-byte answer; want the client to stop reading early", sent, total)
		}
	case <-time.After(5 * time.Second):
		t.Error("the receiver is still writing its answer 5s after the delivery")
	}
}
