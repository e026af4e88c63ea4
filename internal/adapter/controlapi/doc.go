// Package controlapi serves the runtime controls (internal/control) to
// approvers: the admin HTTP API under /v1/approvals, /v1/grants and
// /v1/quarantines, the same operations as the gRPC service
// verdict.control.v1.ControlService, and the approvals page under
// /approvals. It only translates: every rule lives in internal/control and
// in the approvals policy. Approvers authenticate with a bearer token
// verified like callers' tokens.
package controlapi
