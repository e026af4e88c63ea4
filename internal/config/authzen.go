package config

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// DefaultAuthZENPath is the AuthZEN decision's entrypoint.
const DefaultAuthZENPath = "authzen/decision"

// AuthZEN configures the OpenID AuthZEN Authorization API 1.0 endpoints.
type AuthZEN struct {
	// Enabled serves the endpoints. Nil means on: they are served on the
	// HTTP listener, which is loopback by default.
	Enabled *bool `json:"enabled,omitempty"`
	// Addr, when set, serves the endpoints on a listener of their own
	// instead of the HTTP listener (so that they can be exposed without
	// the admin endpoints).
	Addr string `json:"addr"`
	// Path is the decision's entrypoint (default authzen/decision). The
	// search rules are under its parent: <parent>/search/subject,
	// <parent>/search/resource and <parent>/search/action.
	Path string `json:"path"`
	// BaseURL is the policy_decision_point of the metadata document and
	// the base of its endpoint URLs; empty: derived from each request's
	// Host (http://, or https:// on a TLS connection).
	BaseURL string `json:"base_url"`
	// RequireToken makes callers (PEPs) present a bearer token that
	// identity.jwt verifies; RequiredScope, when set, must be one of its
	// scopes.
	RequireToken  bool   `json:"require_token"`
	RequiredScope string `json:"required_scope"`
	// MCP decides requests whose resource type is mcp_tool, mcp_prompt or
	// mcp_resource as the native MCP request they describe, with the MCP
	// policy (mcp.path), and answers resource searches of MCP tools and
	// prompts from the catalog. Nil means on.
	MCP *bool `json:"mcp,omitempty"`
	// MaxBodyBytes bounds a request body (default 1 MiB); MaxEvaluations
	// the items of one evaluations request (default 100); MaxPageSize the
	// results of one search page (default 100); MaxCandidates the
	// candidates one search request evaluates (default 1000).
	MaxBodyBytes   int `json:"max_body_bytes"`
	MaxEvaluations int `json:"max_evaluations"`
	MaxPageSize    int `json:"max_page_size"`
	MaxCandidates  int `json:"max_candidates"`
}

// On reports whether the AuthZEN endpoints are served.
func (a AuthZEN) On() bool { return a.Enabled == nil || *a.Enabled }

// MCPOn reports whether AuthZEN requests about MCP resources are decided
// by the MCP policy.
func (a AuthZEN) MCPOn() bool { return a.MCP == nil || *a.MCP }

func (a AuthZEN) validate(id Identity) []error {
	if !a.On() {
		return nil
	}
	var errs []error
	if strings.TrimSpace(a.Path) == "" {
		errs = append(errs, errors.New("authzen.path: must not be empty"))
	}
	if a.Addr != "" {
		if err := checkAddr(a.Addr); err != nil {
			errs = append(errs, fmt.Errorf("authzen.addr: %w", err))
		}
	}
	if a.BaseURL != "" {
		u, err := url.Parse(a.BaseURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			errs = append(errs, errors.New("authzen.base_url: must be an http(s) URL without user, query or fragment"))
		}
	}
	if a.RequireToken && !id.JWT.Enabled() {
		errs = append(errs, errors.New("authzen.require_token: needs identity.jwt (--jwks) to verify the tokens"))
	}
	if a.RequiredScope != "" && !a.RequireToken {
		errs = append(errs, errors.New("authzen.required_scope: needs authzen.require_token"))
	}
	if strings.ContainsAny(a.RequiredScope, " \"\\") {
		errs = append(errs, errors.New("authzen.required_scope: must be one scope, without spaces, quotes or backslashes"))
	}
	if a.MaxBodyBytes < 0 || a.MaxEvaluations < 0 || a.MaxPageSize < 0 || a.MaxCandidates < 0 {
		errs = append(errs, errors.New("authzen: limits must not be negative"))
	}
	return errs
}
