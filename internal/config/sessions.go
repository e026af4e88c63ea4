package config

import (
	"errors"
	"time"
)

// Sessions configures the per-session state policy reads as
// input.session (flow rules: what a session read before this call).
type Sessions struct {
	// Enabled turns it on. Nil means on.
	Enabled *bool `json:"enabled,omitempty"`
	// TTL is how long a session is remembered after its last call
	// (default 30m).
	TTL Duration `json:"ttl"`
	// Scope is what one state is kept for: "session" (default, one per
	// MCP session id) or "subject" (one per tenant and subject, across
	// sessions: MCP over Envoy with a route per server).
	Scope string `json:"scope"`
	// MaxSessions (default 20000) and MaxPerSubject (default 64) bound
	// what callers can make Verdict hold.
	MaxSessions   int `json:"max_sessions"`
	MaxPerSubject int `json:"max_per_subject"`
}

// On reports whether session state is kept.
func (s Sessions) On() bool { return s.Enabled == nil || *s.Enabled }

func (s Sessions) validate() []error {
	var errs []error
	if s.TTL != 0 && time.Duration(s.TTL) < time.Second {
		errs = append(errs, errors.New("sessions.ttl: must be at least 1s"))
	}
	if s.Scope != "" && s.Scope != "session" && s.Scope != "subject" {
		errs = append(errs, errors.New("sessions.scope: must be session or subject"))
	}
	if s.MaxSessions < 0 || s.MaxPerSubject < 0 {
		errs = append(errs, errors.New("sessions.max_sessions, max_per_subject: must not be negative"))
	}
	return errs
}
