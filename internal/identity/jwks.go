package identity

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
)

const (
	// maxJWKSBytes bounds a JWKS document; real ones are a few kilobytes.
	maxJWKSBytes = 1 << 20
	// minRSABits is the smallest RSA modulus accepted from a JWKS.
	minRSABits = 2048
)

// algSpec describes a signature algorithm the verifier can accept and the
// key it needs.
type algSpec struct {
	alg jwa.SignatureAlgorithm
	kty string // "RSA", "EC" or "OKP"
	crv string // required curve for EC and OKP keys
}

// supportedAlgs are the asymmetric algorithms Config.Algorithms may name.
var supportedAlgs = map[string]algSpec{
	"RS256": {jwa.RS256(), "RSA", ""},
	"RS384": {jwa.RS384(), "RSA", ""},
	"RS512": {jwa.RS512(), "RSA", ""},
	"PS256": {jwa.PS256(), "RSA", ""},
	"PS384": {jwa.PS384(), "RSA", ""},
	"PS512": {jwa.PS512(), "RSA", ""},
	"ES256": {jwa.ES256(), "EC", "P-256"},
	"ES384": {jwa.ES384(), "EC", "P-384"},
	"ES512": {jwa.ES512(), "EC", "P-521"},
	"EdDSA": {jwa.EdDSA(), "OKP", "Ed25519"},
}

// fits reports whether key can verify signatures made with s: the key type
// and curve must match, and a JWK that declares its own "alg" must declare
// this one.
func (s algSpec) fits(key verificationKey) bool {
	return key.kty == s.kty && key.crv == s.crv && (key.alg == "" || key.alg == s.alg.String())
}

// verificationKey is one usable public key of a JWKS.
type verificationKey struct {
	kid string
	kty string
	crv string // empty for RSA
	alg string // the JWK's own "alg", empty when absent
	raw any    // *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
}

// keySet is an immutable, filtered JWKS.
type keySet struct {
	keys        []verificationKey
	byKid       map[string][]int // indexes into keys
	fingerprint [sha256.Size]byte
	gen         uint64 // bumped on every change; set by Verifier.install
}

func (ks *keySet) hasKid(kid string) bool { return len(ks.byKid[kid]) > 0 }

// fitting returns the keys that can verify spec signatures: those under kid,
// or every key when kid is empty.
func (ks *keySet) fitting(kid string, spec algSpec) []verificationKey {
	var out []verificationKey
	if kid == "" {
		for _, k := range ks.keys {
			if spec.fits(k) {
				out = append(out, k)
			}
		}
		return out
	}
	for _, i := range ks.byKid[kid] {
		if spec.fits(ks.keys[i]) {
			out = append(out, ks.keys[i])
		}
	}
	return out
}

func (ks *keySet) kids() []string {
	out := make([]string, 0, len(ks.byKid))
	for kid := range ks.byKid {
		out = append(out, kid)
	}
	slices.Sort(out)
	return out
}

// skippedKey records a JWKS entry that was not accepted, for the logs.
type skippedKey struct {
	kid    string
	reason string
}

// parseKeySet parses a JWKS document (or a single JWK) and keeps the keys
// usable for signature verification. It fails when none is usable.
func parseKeySet(raw []byte) (*keySet, []skippedKey, error) {
	set, err := jwk.Parse(raw, jwk.WithIgnoreParseError(true))
	if err != nil {
		return nil, nil, fmt.Errorf("parse JWKS: %w", err)
	}
	var skipped []skippedKey
	if n := countEntries(raw) - set.Len(); n > 0 {
		skipped = append(skipped, skippedKey{reason: fmt.Sprintf("%d entries could not be parsed", n)})
	}
	ks := &keySet{byKid: make(map[string][]int)}
	var prints []string
	for i := range set.Len() {
		key, _ := set.Key(i)
		vk, thumb, err := usableKey(key)
		if err != nil {
			skipped = append(skipped, skippedKey{kid: vk.kid, reason: err.Error()})
			continue
		}
		if vk.kid != "" {
			ks.byKid[vk.kid] = append(ks.byKid[vk.kid], len(ks.keys))
		}
		ks.keys = append(ks.keys, vk)
		prints = append(prints, vk.kid+"\x00"+vk.alg+"\x00"+thumb)
	}
	if len(ks.keys) == 0 {
		return nil, skipped, errors.New("JWKS holds no usable signature verification key")
	}
	slices.Sort(prints)
	ks.fingerprint = sha256.Sum256([]byte(strings.Join(prints, "\n")))
	return ks, skipped, nil
}

// countEntries returns the length of the "keys" array, or 1 for a bare JWK.
func countEntries(raw []byte) int {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil || doc.Keys == nil {
		return 1
	}
	return len(doc.Keys)
}

// usableKey converts a JWK into a verification key, or explains why it is
// not usable. It also returns the key's RFC 7638 thumbprint (hex).
func usableKey(key jwk.Key) (verificationKey, string, error) {
	var vk verificationKey
	vk.kid, _ = key.KeyID()
	if use, ok := key.KeyUsage(); ok && use != "" && use != jwk.ForSignature.String() {
		return vk, "", fmt.Errorf("key use is %q, not %q", use, jwk.ForSignature.String())
	}
	if ops, ok := key.KeyOps(); ok && len(ops) > 0 && !slices.Contains(ops, jwk.KeyOpVerify) {
		return vk, "", errors.New(`key_ops does not include "verify"`)
	}
	pub, err := publicKey(key)
	if err != nil {
		return vk, "", err
	}
	if err := describeKey(pub, &vk); err != nil {
		return vk, "", err
	}
	if alg, ok := pub.Algorithm(); ok && alg.String() != "" {
		spec, known := supportedAlgs[alg.String()]
		if !known || spec.kty != vk.kty || spec.crv != vk.crv {
			return vk, "", fmt.Errorf("alg %q is not a supported algorithm for this %s key", alg.String(), vk.kty)
		}
		vk.alg = alg.String()
	}
	thumb, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return vk, "", fmt.Errorf("thumbprint: %w", err)
	}
	return vk, hex.EncodeToString(thumb), nil
}

// publicKey returns the public part of key; a JWKS should never hold
// private keys, but when one does only its public half is kept.
func publicKey(key jwk.Key) (jwk.Key, error) {
	if key.KeyType() == jwa.OctetSeq() {
		return nil, errors.New("symmetric (oct) keys are not accepted")
	}
	private, err := jwk.IsPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("unsupported key type %q", key.KeyType().String())
	}
	if !private {
		return key, nil
	}
	pub, err := key.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("derive public key: %w", err)
	}
	return pub, nil
}

// describeKey fills the type, curve and raw key of vk, refusing weak RSA
// keys and unsupported curves.
func describeKey(key jwk.Key, vk *verificationKey) error {
	var raw any
	if err := jwk.Export(key, &raw); err != nil {
		return fmt.Errorf("unsupported key: %w", err)
	}
	switch k := raw.(type) {
	case *rsa.PublicKey:
		if err := checkRSA(k); err != nil {
			return err
		}
		vk.kty = "RSA"
	case *ecdsa.PublicKey:
		vk.kty, vk.crv = "EC", k.Curve.Params().Name
		if vk.crv != "P-256" && vk.crv != "P-384" && vk.crv != "P-521" {
			return fmt.Errorf("unsupported EC curve %q", vk.crv)
		}
	case ed25519.PublicKey:
		vk.kty, vk.crv = "OKP", "Ed25519"
	default:
		return fmt.Errorf("unsupported key type %q", key.KeyType().String())
	}
	vk.raw = raw
	return nil
}

// checkRSA refuses weak RSA public keys. jwx has the same checks, but they
// are process-wide settings that other packages may relax (OPA's topdown
// package sets both minimums to zero in an init function).
func checkRSA(k *rsa.PublicKey) error {
	if k.N == nil || k.N.BitLen() < minRSABits {
		bits := 0
		if k.N != nil {
			bits = k.N.BitLen()
		}
		return fmt.Errorf("RSA key of %d bits is below the minimum of %d", bits, minRSABits)
	}
	if k.E < 3 || k.E%2 == 0 {
		return fmt.Errorf("RSA public exponent %d is not an odd number of at least 3", k.E)
	}
	return nil
}

// fileStamp identifies a version of a file on disk.
type fileStamp struct {
	modTime int64
	size    int64
}

// keySource loads raw JWKS documents.
type keySource interface {
	// load returns the document and, for files, the stamp of the version
	// read (also when the read fails after the stat).
	load(ctx context.Context) ([]byte, fileStamp, error)
	// String names the source in logs: never credentials.
	String() string
}

// newSource interprets Config.JWKS as an http(s) URL or a file path.
func newSource(spec string, client *http.Client) (keySource, error) {
	if !strings.Contains(spec, "://") {
		return fileSource{path: spec}, nil
	}
	u, err := url.Parse(spec)
	if err != nil || u.Host == "" {
		return nil, errors.New("identity: Config.JWKS is neither a file path nor a valid http(s) URL")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopback(u.Hostname()) {
			return nil, fmt.Errorf("identity: Config.JWKS %s: plain http is only allowed for loopback hosts", redactURL(u))
		}
	default:
		return nil, fmt.Errorf("identity: Config.JWKS: unsupported URL scheme %q (want https)", u.Scheme)
	}
	return urlSource{url: spec, display: redactURL(u), client: client}, nil
}

// secureURL reports whether u is https, or http to a loopback host.
func secureURL(u *url.URL) bool {
	return u.Scheme == "https" || u.Scheme == "http" && isLoopback(u.Hostname())
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// redactURL renders u for logs: without userinfo, query or fragment.
func redactURL(u *url.URL) string {
	c := *u
	c.User = nil
	c.RawQuery, c.ForceQuery = "", false
	c.Fragment, c.RawFragment = "", ""
	return c.String()
}

// defaultHTTPClient fetches JWKS documents with a timeout and refuses
// redirects that would leave https (or loopback http).
func defaultHTTPClient() *http.Client {
	return &http.Client{
		Timeout: defaultHTTPTimeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return errors.New("too many redirects")
			}
			if !secureURL(req.URL) {
				return errors.New("redirect away from https refused")
			}
			return nil
		},
	}
}

type fileSource struct{ path string }

func (s fileSource) String() string { return s.path }

func (s fileSource) stamp() (fileStamp, error) {
	info, err := os.Stat(s.path)
	if err != nil {
		return fileStamp{}, fmt.Errorf("stat JWKS file: %w", err)
	}
	return fileStamp{modTime: info.ModTime().UnixNano(), size: info.Size()}, nil
}

func (s fileSource) load(context.Context) ([]byte, fileStamp, error) {
	stamp, err := s.stamp()
	if err != nil {
		return nil, fileStamp{}, err
	}
	f, err := os.Open(s.path)
	if err != nil {
		return nil, stamp, fmt.Errorf("open JWKS file: %w", err)
	}
	defer func() { _ = f.Close() }()
	raw, err := readLimited(f)
	if err != nil {
		return nil, stamp, fmt.Errorf("read JWKS file: %w", err)
	}
	return raw, stamp, nil
}

type urlSource struct {
	url     string
	display string
	client  *http.Client
}

func (s urlSource) String() string { return s.display }

func (s urlSource) load(ctx context.Context) ([]byte, fileStamp, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, fileStamp{}, errors.New("build JWKS request")
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fileStamp{}, fmt.Errorf("fetch JWKS: %w", withoutURL(err))
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil, fileStamp{}, fmt.Errorf("fetch JWKS: unexpected HTTP status %d", resp.StatusCode)
	}
	raw, err := readLimited(resp.Body)
	if err != nil {
		return nil, fileStamp{}, fmt.Errorf("read JWKS response: %w", withoutURL(err))
	}
	return raw, fileStamp{}, nil
}

// withoutURL drops the request URL (which may carry credentials) from an
// http.Client error.
func withoutURL(err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return fmt.Errorf("%s: %w", uerr.Op, uerr.Err)
	}
	return err
}

func readLimited(r io.Reader) ([]byte, error) {
	raw, err := io.ReadAll(io.LimitReader(r, maxJWKSBytes+1))
	if err != nil {
		return nil, err
	}
	if len(raw) > maxJWKSBytes {
		return nil, fmt.Errorf("JWKS document exceeds %d bytes", maxJWKSBytes)
	}
	return bytes.TrimSpace(raw), nil
}

// refreshCause says why the key set is being reloaded.
type refreshCause int

const (
	causePeriodic refreshCause = iota
	causeUnknownKid
	causeFileChanged
)

// refreshCall is one in-flight reload, shared by everyone who asks for a
// refresh while it runs.
type refreshCall struct {
	done chan struct{}
	err  error // valid once done is closed
}

// refresh reloads the key set, joining a reload already in flight. A reload
// for an unknown kid is skipped (started false) when the previous one
// happened less than MinRefreshInterval ago. The reload itself runs on the
// verifier's lifetime context, so a caller that gives up does not abort it.
func (v *Verifier) refresh(ctx context.Context, cause refreshCause) (started bool, err error) {
	call := v.startRefresh(cause)
	if call == nil {
		return false, nil
	}
	select {
	case <-call.done:
		return true, call.err
	case <-ctx.Done():
		return true, fmt.Errorf("wait for JWKS refresh: %w", ctx.Err())
	}
}

func (v *Verifier) startRefresh(cause refreshCause) *refreshCall {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed || v.life.Err() != nil {
		return nil
	}
	if v.inflight != nil {
		return v.inflight
	}
	if cause == causeUnknownKid {
		now := v.cfg.Now()
		if !v.lastKidRefresh.IsZero() && now.Sub(v.lastKidRefresh) < v.cfg.MinRefreshInterval {
			return nil
		}
		v.lastKidRefresh = now
	}
	call := &refreshCall{done: make(chan struct{})}
	v.inflight = call
	v.wg.Go(func() {
		call.err = v.reload(v.life)
		if call.err != nil {
			v.logger.Warn("identity: JWKS refresh failed; keeping the last good key set",
				"source", v.source.String(), "error", call.err.Error())
		}
		v.mu.Lock()
		v.inflight = nil
		v.mu.Unlock()
		close(call.done)
	})
	return call
}

// reload loads, parses and installs the key set. Only one reload runs at a
// time (New's initial load precedes every other).
func (v *Verifier) reload(ctx context.Context) error {
	raw, stamp, err := v.source.load(ctx)
	if stamp != (fileStamp{}) {
		v.mu.Lock()
		v.fileStamp = stamp
		v.mu.Unlock()
	}
	var (
		ks      *keySet
		skipped []skippedKey
	)
	if err == nil {
		ks, skipped, err = parseKeySet(raw)
	}
	if err != nil {
		v.stats.refreshesFailed.Add(1)
		return err
	}
	v.install(ks, skipped)
	return nil
}

// install makes ks current. An unchanged key set keeps the cache; a changed
// one empties it.
func (v *Verifier) install(ks *keySet, skipped []skippedKey) {
	old := v.keys.Load()
	changed := old == nil || old.fingerprint != ks.fingerprint
	if changed {
		if old != nil {
			ks.gen = old.gen + 1
		}
		v.cache.reset(ks.gen)
		v.keys.Store(ks)
		for _, s := range skipped {
			v.logger.Warn("identity: JWKS entry skipped", "source", v.source.String(), "kid", s.kid, "reason", s.reason)
		}
		v.logger.Info("identity: JWKS loaded", "source", v.source.String(), "keys", len(ks.keys), "kids", ks.kids())
	}
	v.stats.refreshesOK.Add(1)
	v.stats.keysLoaded.Store(int64(len(v.keys.Load().keys)))
	v.stats.lastRefresh.Store(v.cfg.Now().UnixNano())
}

// maybeReloadFile re-reads a file JWKS whose modification time or size
// changed, looking at most once per fileRecheck.
func (v *Verifier) maybeReloadFile(ctx context.Context) {
	fs, ok := v.source.(fileSource)
	if !ok {
		return
	}
	now := v.cfg.Now().UnixNano()
	last := v.lastStat.Load()
	if d := now - last; d >= 0 && d < int64(fileRecheck) {
		return
	}
	if !v.lastStat.CompareAndSwap(last, now) {
		return
	}
	stamp, err := fs.stamp()
	if err != nil {
		return // the file may be mid-replacement; keep the current keys
	}
	v.mu.Lock()
	same := stamp == v.fileStamp
	v.mu.Unlock()
	if !same {
		_, _ = v.refresh(ctx, causeFileChanged)
	}
}

// refreshLoop re-fetches a URL JWKS every RefreshInterval; after a failure
// it retries after MinRefreshInterval, doubling up to RefreshInterval.
func (v *Verifier) refreshLoop(loaded bool) {
	failing := !loaded
	delay := v.cfg.RefreshInterval
	if failing {
		delay = v.cfg.MinRefreshInterval
	}
	timer := time.NewTimer(delay)
	defer timer.Stop()
	for {
		select {
		case <-v.life.Done():
			return
		case <-timer.C:
		}
		started, err := v.refresh(v.life, causePeriodic)
		switch {
		case !started:
			return // closed
		case err == nil:
			failing, delay = false, v.cfg.RefreshInterval
		case !failing:
			failing, delay = true, v.cfg.MinRefreshInterval
		default:
			delay = min(2*delay, v.cfg.RefreshInterval)
		}
		timer.Reset(delay)
	}
}
