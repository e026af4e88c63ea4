package identity

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jws/jwsbb"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

// Defaults applied by [New] to zero Config fields.
const (
	defaultLeeway             = 30 * time.Second
	defaultMaxTokenBytes      = 8192
	defaultRefreshInterval    = 15 * time.Minute
	defaultMinRefreshInterval = 10 * time.Second
	defaultHTTPTimeout        = 10 * time.Second
	defaultCacheSize          = 10000
	// fileRecheck bounds how often a JWKS file's stamp is looked at.
	fileRecheck = time.Second
)

// defaultAlgorithms is the signature allow-list used when
// Config.Algorithms is empty: every supported asymmetric algorithm.
var defaultAlgorithms = []string{
	"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
}

// Config configures a [Verifier]. Zero values select the documented
// defaults.
type Config struct {
	// JWKS is a file path, or an https:// URL (http:// only for loopback
	// hosts).
	JWKS string
	// Issuer must equal the token's "iss" claim. Required.
	Issuer string
	// Audiences name this protected resource (RFC 8707): the token's "aud"
	// must contain at least one of them. Required.
	Audiences []string
	// Algorithms is the allow-list of JWS algorithms; default RS256 RS384
	// RS512 PS256 PS384 PS512 ES256 ES384 ES512 EdDSA. "none" and HS* are
	// refused by New: a JWKS holds public keys only.
	Algorithms []string
	// Leeway is the clock skew allowed for exp, nbf and iat; default 30s.
	Leeway time.Duration
	// MaxTokenBytes refuses longer tokens before parsing; default 8192.
	MaxTokenBytes int
	// RefreshInterval is how often a URL JWKS is re-fetched; default 15m.
	RefreshInterval time.Duration
	// MinRefreshInterval is the floor between refreshes triggered by an
	// unknown kid, and the first retry delay of a failed URL fetch;
	// default 10s.
	MinRefreshInterval time.Duration
	// HTTPClient fetches a URL JWKS; default a client with a 10s timeout
	// that refuses redirects away from https.
	HTTPClient *http.Client
	// CacheSize is the number of verified tokens remembered; 0 means the
	// default of 10000, a negative value disables the cache.
	CacheSize int
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Verifier verifies bearer JWTs against a JWKS. It is safe for concurrent
// use.
type Verifier struct {
	cfg       Config
	algs      map[string]algSpec
	source    keySource
	logger    *slog.Logger
	parseOpts []jwt.ParseOption // claim validation, shared by every Verify

	keys  atomic.Pointer[keySet] // nil until a JWKS has loaded
	cache *tokenCache            // nil when disabled
	stats counters

	lastStat atomic.Int64 // UnixNano of the last file stamp check

	mu             sync.Mutex // guards the fields below
	inflight       *refreshCall
	lastKidRefresh time.Time
	fileStamp      fileStamp
	closed         bool

	life   context.Context // the verifier's lifetime; ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New validates cfg and loads the JWKS once. A file that cannot be read or
// parsed is an error. A URL that cannot be fetched is not: the failure is
// logged, the fetch is retried in the background, and until it succeeds
// every token is refused with [CodeJWKSUnavailable]. ctx is the verifier's
// lifetime, not a start-up deadline: refreshes (background and on an
// unknown kid) stop when it ends or at [Verifier.Close]. A nil logger
// discards.
func New(ctx context.Context, cfg Config, logger *slog.Logger) (*Verifier, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg, algs, err := normalize(cfg)
	if err != nil {
		return nil, err
	}
	source, err := newSource(cfg.JWKS, cfg.HTTPClient)
	if err != nil {
		return nil, err
	}
	life, cancel := context.WithCancel(ctx)
	v := &Verifier{cfg: cfg, algs: algs, source: source, logger: logger, life: life, cancel: cancel}
	v.parseOpts = v.validationOptions()
	v.stats.init()
	if cfg.CacheSize > 0 {
		v.cache = newTokenCache(cfg.CacheSize)
	}
	v.lastStat.Store(cfg.Now().UnixNano())

	err = v.reload(life)
	if _, isFile := source.(fileSource); isFile {
		if err != nil {
			cancel()
			return nil, fmt.Errorf("identity: load JWKS file: %w", err)
		}
		return v, nil
	}
	if err != nil {
		logger.Warn("identity: JWKS unavailable at start; refusing tokens until it loads",
			"source", source.String(), "error", err.Error())
	}
	v.wg.Go(func() { v.refreshLoop(err == nil) })
	return v, nil
}

// normalize validates cfg and fills in defaults.
func normalize(cfg Config) (Config, map[string]algSpec, error) {
	if strings.TrimSpace(cfg.JWKS) == "" {
		return cfg, nil, errors.New("identity: Config.JWKS is required")
	}
	if cfg.Issuer == "" {
		return cfg, nil, errors.New("identity: Config.Issuer is required")
	}
	if len(cfg.Audiences) == 0 {
		return cfg, nil, errors.New("identity: Config.Audiences needs at least one audience")
	}
	for i, a := range cfg.Audiences {
		if a == "" {
			return cfg, nil, fmt.Errorf("identity: Config.Audiences[%d] is empty", i)
		}
	}
	algs, err := allowedAlgorithms(cfg.Algorithms)
	if err != nil {
		return cfg, nil, err
	}
	if err := nonNegative(map[string]time.Duration{
		"Leeway": cfg.Leeway, "RefreshInterval": cfg.RefreshInterval, "MinRefreshInterval": cfg.MinRefreshInterval,
	}); err != nil {
		return cfg, nil, err
	}
	if cfg.MaxTokenBytes < 0 {
		return cfg, nil, errors.New("identity: Config.MaxTokenBytes must not be negative")
	}
	cfg.Leeway = orDefault(cfg.Leeway, defaultLeeway)
	cfg.RefreshInterval = orDefault(cfg.RefreshInterval, defaultRefreshInterval)
	cfg.MinRefreshInterval = orDefault(cfg.MinRefreshInterval, defaultMinRefreshInterval)
	cfg.MaxTokenBytes = orDefault(cfg.MaxTokenBytes, defaultMaxTokenBytes)
	cfg.CacheSize = orDefault(cfg.CacheSize, defaultCacheSize)
	if cfg.MinRefreshInterval > cfg.RefreshInterval {
		return cfg, nil, errors.New("identity: Config.MinRefreshInterval must not exceed Config.RefreshInterval")
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = defaultHTTPClient()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Audiences = append([]string(nil), cfg.Audiences...)
	return cfg, algs, nil
}

// allowedAlgorithms resolves Config.Algorithms; "none" and HMAC algorithms
// are refused.
func allowedAlgorithms(names []string) (map[string]algSpec, error) {
	if len(names) == 0 {
		names = defaultAlgorithms
	}
	algs := make(map[string]algSpec, len(names))
	for _, name := range names {
		spec, ok := supportedAlgs[name]
		switch {
		case ok:
			algs[name] = spec
		case strings.EqualFold(name, "none"):
			return nil, errors.New(`identity: Config.Algorithms: "none" is refused: tokens must be signed`)
		case strings.HasPrefix(strings.ToUpper(name), "HS"):
			return nil, fmt.Errorf("identity: Config.Algorithms: %q is refused: only asymmetric algorithms are accepted", name)
		default:
			return nil, fmt.Errorf("identity: Config.Algorithms: unsupported algorithm %q", name)
		}
	}
	return algs, nil
}

func nonNegative(durations map[string]time.Duration) error {
	for name, d := range durations {
		if d < 0 {
			return fmt.Errorf("identity: Config.%s must not be negative", name)
		}
	}
	return nil
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// errSubjectMissing is returned by the "sub" validator.
var errSubjectMissing = errors.New(`"sub" is missing or empty`)

// validationOptions are the jwx claim checks, in the order their failures
// are reported.
func (v *Verifier) validationOptions() []jwt.ParseOption {
	return []jwt.ParseOption{
		jwt.WithResetValidators(true),
		jwt.WithClock(jwt.ClockFunc(v.cfg.Now)),
		jwt.WithAcceptableSkew(v.cfg.Leeway),
		jwt.WithRequiredClaim(jwt.ExpirationKey),
		jwt.WithValidator(jwt.IsExpirationValid()),
		jwt.WithValidator(jwt.IsNbfValid()),
		jwt.WithValidator(jwt.IsIssuedAtValid()),
		jwt.WithIssuer(v.cfg.Issuer),
		jwt.WithValidator(anyAudience(v.cfg.Audiences)),
		jwt.WithValidator(jwt.ValidatorFunc(func(_ context.Context, t jwt.Token) error {
			if sub, ok := t.Subject(); !ok || sub == "" {
				return errSubjectMissing
			}
			return nil
		})),
	}
}

// anyAudience accepts a token whose "aud" names at least one of audiences,
// using jwx's audience check for each.
func anyAudience(audiences []string) jwt.Validator {
	checks := make([][]jwt.ValidateOption, len(audiences))
	for i, a := range audiences {
		checks[i] = []jwt.ValidateOption{jwt.WithResetValidators(true), jwt.WithAudience(a)}
	}
	return jwt.ValidatorFunc(func(_ context.Context, t jwt.Token) error {
		for _, check := range checks {
			if jwt.Validate(t, check...) == nil {
				return nil
			}
		}
		return jwt.InvalidAudienceError()
	})
}

// Close stops background refreshes and waits for them. It is idempotent.
func (v *Verifier) Close() {
	v.mu.Lock()
	v.closed = true
	v.mu.Unlock()
	v.cancel()
	v.wg.Wait()
}

// Verify checks token and returns the verified identity, or the reason it
// was refused in Result.Err. It never panics. ctx bounds only the wait for
// a JWKS refresh triggered by an unknown kid.
func (v *Verifier) Verify(ctx context.Context, token string) (res Result) {
	defer func() {
		if r := recover(); r != nil {
			v.stats.panics.Add(1)
			v.logger.Error("identity: recovered from a panic while verifying a token", "panic_type", fmt.Sprintf("%T", r))
			res = refused(newError(CodeTokenMalformed, msgMalformed))
		}
		v.stats.count(res)
	}()
	return v.verify(ctx, token)
}

// Caller-safe refusal messages.
const (
	msgMalformed     = "token is not a well-formed signed JWT"
	msgAlgNotAllowed = "token signing algorithm is not allowed"
)

func (v *Verifier) verify(ctx context.Context, token string) Result {
	switch {
	case token == "":
		return refused(newError(CodeTokenMissing, "no bearer token was presented"))
	case len(token) > v.cfg.MaxTokenBytes:
		return refused(newError(CodeTokenTooLarge, "token exceeds the maximum size"))
	}
	v.maybeReloadFile(ctx)
	var digest [sha256.Size]byte
	if v.cache != nil {
		digest = sha256.Sum256([]byte(token))
		if res, ok := v.cache.get(digest, v.cfg.Now(), v.cfg.Leeway); ok {
			v.stats.cacheHits.Add(1)
			return res
		}
	}
	ks := v.keys.Load()
	if ks == nil {
		return refused(newError(CodeJWKSUnavailable, "signing keys are not available yet; try again later"))
	}
	res, ks := v.verifyToken(ctx, ks, token)
	if res.Authenticated {
		v.cache.put(digest, res, ks.gen)
	}
	return res
}

// verifyToken verifies a token against ks (or the key set a refresh
// replaced it with, which it returns).
func (v *Verifier) verifyToken(ctx context.Context, ks *keySet, token string) (Result, *keySet) {
	if !isCompactJWS(token) {
		return refused(newError(CodeTokenMalformed, msgMalformed)), ks
	}
	msg, err := jws.ParseString(token, jws.WithCompact())
	if err != nil || len(msg.Signatures()) != 1 {
		return refused(v.unparsable(token)), ks
	}
	hdr := msg.Signatures()[0].ProtectedHeaders()
	if hdr == nil {
		return refused(newError(CodeTokenMalformed, msgMalformed)), ks
	}
	if hdr.Has(jws.CriticalKey) || hdr.Has("b64") {
		return refused(newError(CodeTokenMalformed, "token uses unsupported critical header parameters")), ks
	}
	alg, ok := hdr.Algorithm()
	spec, allowed := v.algs[alg.String()]
	if !ok || !allowed {
		return refused(newError(CodeAlgorithmNotAllowed, msgAlgNotAllowed)), ks
	}
	kid, _ := hdr.KeyID()
	keys, ks, refusal := v.keysFor(ctx, ks, kid, spec)
	if refusal != nil {
		return refused(refusal), ks
	}
	tok, err := v.parseAndValidate(token, spec, keys)
	if err != nil {
		return refused(classify(err)), ks
	}
	exp, _ := tok.Expiration()
	res, err := newResult(msg.Payload(), exp)
	if err != nil {
		return refused(newError(CodeTokenMalformed, "token claims are malformed")), ks
	}
	return res, ks
}

// isCompactJWS reports whether token is three dot-separated segments of
// canonical unpadded base64url (header and payload non-empty). jwx's
// decoder is lenient about alphabets, padding and trailing bits; refusing
// those here keeps every accepted token byte-for-byte what was signed.
func isCompactJWS(token string) bool {
	segments := strings.Split(token, ".")
	if len(segments) != 3 || segments[0] == "" || segments[1] == "" {
		return false
	}
	for _, s := range segments {
		if _, err := base64.RawURLEncoding.Strict().DecodeString(s); err != nil {
			return false
		}
	}
	return true
}

// unparsable explains why jwx could not parse a token of three base64url
// segments: jwx refuses a header whose "alg" is unknown, or that is
// missing or not "none" while the signature is empty, before the
// allow-list can be consulted.
func (v *Verifier) unparsable(token string) *Error {
	header, _, _ := strings.Cut(token, ".")
	alg, err := jwsbb.HeaderGetString(jwsbb.HeaderParseCompact([]byte(header)), jws.AlgorithmKey)
	if errors.Is(err, jwsbb.ErrHeaderNotFound()) {
		return newError(CodeAlgorithmNotAllowed, msgAlgNotAllowed)
	}
	if err == nil {
		if _, allowed := v.algs[alg]; !allowed {
			return newError(CodeAlgorithmNotAllowed, msgAlgNotAllowed)
		}
	}
	return newError(CodeTokenMalformed, msgMalformed)
}

// keysFor picks the keys that may have signed a token with this kid and
// algorithm, refreshing the key set once when the kid is unknown.
func (v *Verifier) keysFor(ctx context.Context, ks *keySet, kid string, spec algSpec) ([]verificationKey, *keySet, *Error) {
	unknown := newError(CodeUnknownKey, "token signing key is not known")
	if kid == "" {
		keys := ks.fitting("", spec)
		if len(keys) == 0 {
			return nil, ks, unknown
		}
		return keys, ks, nil
	}
	if !ks.hasKid(kid) {
		if started, _ := v.refresh(ctx, causeUnknownKid); started {
			if current := v.keys.Load(); current != nil {
				ks = current
			}
		}
		if !ks.hasKid(kid) {
			return nil, ks, unknown
		}
	}
	keys := ks.fitting(kid, spec)
	if len(keys) == 0 {
		return nil, ks, newError(CodeAlgorithmNotAllowed, "token signing algorithm does not match its key")
	}
	return keys, ks, nil
}

// parseAndValidate has jwx verify the signature with each candidate key in
// turn and then validate the claims.
func (v *Verifier) parseAndValidate(token string, spec algSpec, keys []verificationKey) (jwt.Token, error) {
	opts := make([]jwt.ParseOption, 0, len(v.parseOpts)+1)
	err := errors.New("no candidate key")
	for _, key := range keys {
		opts = append(opts[:0], v.parseOpts...)
		opts = append(opts, jwt.WithKey(spec.alg, key.raw))
		var tok jwt.Token
		tok, err = jwt.ParseString(token, opts...)
		if err == nil {
			return tok, nil
		}
		if !errors.Is(err, jws.VerifyError()) {
			return nil, err
		}
	}
	return nil, err
}

// classify maps a jwx parse, verification or validation error to a
// caller-safe Error.
func classify(err error) *Error {
	switch {
	case errors.Is(err, jws.VerifyError()):
		return newError(CodeInvalidSignature, "token signature is invalid")
	case errors.Is(err, jwt.MissingRequiredClaimError()):
		return newError(CodeTokenMalformed, "exp is required")
	case errors.Is(err, jwt.TokenExpiredError()):
		return newError(CodeTokenExpired, "token has expired")
	case errors.Is(err, jwt.TokenNotYetValidError()):
		return newError(CodeTokenNotYetValid, "token is not valid yet")
	case errors.Is(err, jwt.InvalidIssuedAtError()):
		return newError(CodeTokenIssuedInFuture, "token was issued in the future")
	case errors.Is(err, jwt.InvalidIssuerError()):
		return newError(CodeIssuerMismatch, "token issuer is not accepted")
	case errors.Is(err, jwt.InvalidAudienceError()):
		return newError(CodeAudienceMismatch, "token audience does not name this service")
	case errors.Is(err, errSubjectMissing):
		return newError(CodeSubjectMissing, "token has no subject")
	default:
		return newError(CodeTokenMalformed, "token claims are malformed")
	}
}
