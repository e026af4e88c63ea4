package config

import (
	"errors"
	"fmt"
	"strings"
)

// How a ToolHive question that carries no arguments is decided (see
// ToolHive.CallsWithoutArgs).
const (
	CallsWithoutArgsCall = "call"
	CallsWithoutArgsList = "list"
)

// ToolHive configures the endpoint ToolHive's httpv1 authorizer asks:
// POST <path_prefix>/decision on the HTTP listener.
type ToolHive struct {
	// Enabled serves the endpoint. Nil means on: the HTTP listener is on
	// loopback unless the operator moves it.
	Enabled *bool `json:"enabled,omitempty"`
	// PathPrefix goes before /decision: "" (the default) or a path in
	// normal form without a trailing slash ("/toolhive").
	PathPrefix string `json:"path_prefix"`
	// MaxBodyBytes bounds a request body (default 1 MiB).
	MaxBodyBytes int `json:"max_body_bytes"`
	// CallsWithoutArgs decides mcp:tool:call and mcp:prompt:get questions
	// without context.mcp.args, which ToolHive also sends for each entry
	// of a list result: "call" (the default) as the call with no
	// arguments, "list" from the list-visibility rules.
	CallsWithoutArgs string `json:"calls_without_args"`
}

// On reports whether the ToolHive endpoint is served.
func (t ToolHive) On() bool { return t.Enabled == nil || *t.Enabled }

// ListsWithoutArgs reports whether questions without arguments are
// answered from the list-visibility rules.
func (t ToolHive) ListsWithoutArgs() bool { return t.CallsWithoutArgs == CallsWithoutArgsList }

func (t ToolHive) validate() []error {
	var errs []error
	if p := t.PathPrefix; p != "" {
		if err := checkRoutePrefix(p); err != nil {
			errs = append(errs, fmt.Errorf("toolhive.path_prefix %q: %w", p, err))
		} else if strings.HasSuffix(p, "/") {
			errs = append(errs, fmt.Errorf("toolhive.path_prefix %q: must not end with \"/\"", p))
		}
	}
	if t.MaxBodyBytes < 0 {
		errs = append(errs, errors.New("toolhive.max_body_bytes: must not be negative"))
	}
	switch t.CallsWithoutArgs {
	case "", CallsWithoutArgsCall, CallsWithoutArgsList:
	default:
		errs = append(errs, fmt.Errorf("toolhive.calls_without_args: %q is not one of call, list", t.CallsWithoutArgs))
	}
	return errs
}
