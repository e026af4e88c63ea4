package config

import (
	"errors"
	"fmt"
	"net/url"
	"time"
)

// DefaultApprovalsPath is the approvals policy's entrypoint.
const DefaultApprovalsPath = "verdict/approvals/decision"

// Approvals configures the runtime controls: human approvals, just-in-time
// grants and quarantines.
type Approvals struct {
	// Enabled turns them on. Nil means on.
	Enabled *bool `json:"enabled,omitempty"`
	// Dir keeps them in an embedded database on disk, so a restart loses
	// nothing; empty keeps them in memory only (a warning at start), or in
	// Redis when state.redis is set (then Dir must be empty).
	Dir string `json:"dir"`
	// URL is the approvals page as approvers reach it; an approval's link
	// is URL/<id>. Default: http://<http.addr>/approvals.
	URL string `json:"url"`
	// Path is the approvals policy's entrypoint (who may approve what).
	Path string `json:"path"`
	// TTL is how long an approval waits, and how long an approved call may
	// be retried (default 15m); policy may ask for up to MaxTTL (24h).
	TTL    Duration `json:"ttl"`
	MaxTTL Duration `json:"max_ttl"`
	// Retention keeps final records readable (default 24h).
	Retention Duration `json:"retention"`
	// MaxPendingPerSubject (default 16) and MaxRecords (default 10000)
	// bound what callers can make Verdict hold.
	MaxPendingPerSubject int `json:"max_pending_per_subject"`
	MaxRecords           int `json:"max_records"`
	// MaxGrantDuration bounds a grant's life (default 24h).
	MaxGrantDuration Duration `json:"max_grant_duration"`
	// ApproverScope must be among an approver token's scopes (default
	// "verdict:approve"; "-" turns the check off), so a token an agent
	// calls tools with cannot approve.
	ApproverScope string `json:"approver_scope"`
	// GRPC serves verdict.control.v1.ControlService on the gRPC listener.
	// Nil means on.
	GRPC    *bool   `json:"grpc,omitempty"`
	Webhook Webhook `json:"webhook"`
}

// Webhook is told of every new pending approval.
type Webhook struct {
	// URL receives a signed POST (https, or http to loopback).
	URL string `json:"url"`
	// SecretFile holds the HMAC key (at least 16 bytes).
	SecretFile string `json:"secret_file"`
	// Timeout bounds one attempt (default 5s); MaxAttempts (default 6).
	Timeout     Duration `json:"timeout"`
	MaxAttempts int      `json:"max_attempts"`
}

// DefaultApproverScope is the scope approver tokens carry.
const DefaultApproverScope = "verdict:approve"

// Scope is the scope approver tokens must carry ("" for none).
func (a Approvals) Scope() string {
	switch a.ApproverScope {
	case "":
		return DefaultApproverScope
	case "-":
		return ""
	}
	return a.ApproverScope
}

// On reports whether the runtime controls are on.
func (a Approvals) On() bool { return a.Enabled == nil || *a.Enabled }

// GRPCOn reports whether the control service is served over gRPC.
func (a Approvals) GRPCOn() bool { return a.GRPC == nil || *a.GRPC }

func (a Approvals) validate() []error {
	var errs []error
	if a.URL != "" {
		u, err := url.Parse(a.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("approvals.url %q: must be an absolute http(s) URL", a.URL))
		} else if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			errs = append(errs, fmt.Errorf("approvals.url: must not carry credentials, a query or a fragment"))
		}
	}
	if a.TTL != 0 && time.Duration(a.TTL) < time.Second {
		errs = append(errs, errors.New("approvals.ttl: must be at least 1s"))
	}
	ttl := time.Duration(a.TTL)
	if ttl == 0 {
		ttl = 15 * time.Minute
	}
	if a.MaxTTL != 0 && time.Duration(a.MaxTTL) < ttl {
		errs = append(errs, fmt.Errorf("approvals.max_ttl: must not be shorter than approvals.ttl (%v)", ttl))
	}
	if a.MaxPendingPerSubject < 0 || a.MaxRecords < 0 {
		errs = append(errs, errors.New("approvals.max_pending_per_subject, max_records: must not be negative"))
	}
	if (a.Webhook.URL == "") != (a.Webhook.SecretFile == "") {
		errs = append(errs, errors.New("approvals.webhook: url and secret_file must be set together"))
	}
	if a.Webhook.MaxAttempts < 0 {
		errs = append(errs, errors.New("approvals.webhook.max_attempts: must not be negative"))
	}
	return errs
}
