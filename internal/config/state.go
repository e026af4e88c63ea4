package config

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"
)

// State configures state shared between replicas.
type State struct {
	Redis Redis `json:"redis"`
}

// Redis configures a Redis server for shared state: when URL is set, rate
// limits and the runtime controls (approvals, grants, quarantines) are
// kept there instead of in memory or approvals.dir, so replicas share them.
type Redis struct {
	// URL is a redis:// or rediss:// (TLS) URL, as go-redis parses it
	// ("redis://host:6379/0"). A password may be in it, but PasswordFile
	// is better: the URL is masked when printed and never logged.
	URL string `json:"url"`
	// PasswordFile holds the password (trailing newline trimmed).
	PasswordFile string `json:"password_file"`
	// TLS customizes TLS for a rediss:// URL.
	TLS RedisTLS `json:"tls"`
	// KeyPrefix starts every key written (default "verdict:").
	KeyPrefix string `json:"key_prefix"`
	// Timeout bounds each call (default 50ms); a call that fails or times
	// out refuses the request (state.unavailable).
	Timeout Duration `json:"timeout"`
	// FailOpen names the stateful checks that let a request through while
	// Redis is unreachable instead of refusing it as state.unavailable:
	// "rate_limits", "sessions", "controls" (see FailOpen constants).
	// Empty, the default, fails every check closed.
	FailOpen []string `json:"fail_open"`
}

// The stateful checks state.redis.fail_open may name.
const (
	FailOpenRateLimits = "rate_limits"
	FailOpenSessions   = "sessions"
	FailOpenControls   = "controls"
)

// FailsOpen reports whether check lets requests through while Redis is
// unreachable.
func (r Redis) FailsOpen(check string) bool { return slices.Contains(r.FailOpen, check) }

// RedisTLS customizes TLS to Redis.
type RedisTLS struct {
	// CAFile is a PEM bundle of the CAs to trust (default: the system's).
	CAFile string `json:"ca_file"`
	// ServerName is the name to verify the certificate against (default:
	// the URL's host).
	ServerName string `json:"server_name"`
}

// Enabled reports whether Redis is configured.
func (r Redis) Enabled() bool { return r.URL != "" }

// Bounds of state.redis settings.
const (
	maxRedisTimeout   = 10 * time.Second
	maxRedisKeyPrefix = 128
)

// validate checks the settings, and that approvals have one store.
func (r Redis) validate(a Approvals) []error {
	errs := r.validateOwn()
	if a.On() && a.Dir != "" && r.Enabled() {
		errs = append(errs, errors.New("approvals.dir and state.redis.url are both set: with state.redis, approvals, grants and quarantines are kept in Redis, shared by the replicas; remove approvals.dir"))
	}
	return errs
}

func (r Redis) validateOwn() []error {
	if !r.Enabled() {
		if r.PasswordFile != "" || r.TLS != (RedisTLS{}) || r.KeyPrefix != "" || r.Timeout != 0 || len(r.FailOpen) > 0 {
			return []error{errors.New("state.redis: url must be set when other state.redis settings are")}
		}
		return nil
	}
	var errs []error
	// The URL may hold a password: errors never quote it.
	u, err := url.Parse(r.URL)
	switch {
	case err != nil:
		errs = append(errs, errors.New("state.redis.url: is not a valid URL"))
	case u.Scheme != "redis" && u.Scheme != "rediss":
		errs = append(errs, errors.New("state.redis.url: must be a redis:// or rediss:// URL"))
	case u.Hostname() == "":
		errs = append(errs, errors.New("state.redis.url: has no host"))
	case u.Fragment != "" || u.Opaque != "":
		errs = append(errs, errors.New("state.redis.url: is not a valid redis URL"))
	default:
		if _, ok := u.User.Password(); ok && r.PasswordFile != "" {
			errs = append(errs, errors.New("state.redis: set the password in url or in password_file, not both"))
		}
		if r.TLS != (RedisTLS{}) && u.Scheme != "rediss" {
			errs = append(errs, errors.New("state.redis.tls: needs a rediss:// url"))
		}
	}
	if r.Timeout != 0 && (time.Duration(r.Timeout) < time.Millisecond || time.Duration(r.Timeout) > maxRedisTimeout) {
		errs = append(errs, fmt.Errorf("state.redis.timeout: must be between 1ms and %v", maxRedisTimeout))
	}
	if len(r.KeyPrefix) > maxRedisKeyPrefix {
		errs = append(errs, fmt.Errorf("state.redis.key_prefix: longer than %d bytes", maxRedisKeyPrefix))
	}
	for _, c := range r.FailOpen {
		switch c {
		case FailOpenRateLimits, FailOpenSessions, FailOpenControls:
		default:
			errs = append(errs, fmt.Errorf("state.redis.fail_open: unknown check %q (want %s, %s or %s)",
				c, FailOpenRateLimits, FailOpenSessions, FailOpenControls))
		}
	}
	if strings.IndexFunc(r.KeyPrefix, func(c rune) bool { return unicode.IsSpace(c) || unicode.IsControl(c) }) >= 0 {
		errs = append(errs, errors.New("state.redis.key_prefix: must not hold spaces or control characters"))
	}
	return errs
}
