// Package soak proves under load that Verdict loses nothing: a capacity
// measurement (closed loop, Redis-backed against in-memory rate limits), a
// soak at 70 % of that capacity with a bundle swap every 10 s, and faults
// injected during load (Redis killed, the audit collector down, the bundle
// server failing, the audit disk full, SIGKILL of a replica).
//
// The tests use real parts only: the pdp binary built from ./cmd/pdp and
// run as a process with a config file, a real redis-server
// (internal/redistest), a bundle server and an audit collector on loopback,
// and gRPC clients of ext_authz v3 and the native MCP API. They run only
// when VERDICT_SOAK is set (a duration, the soak's length), so that
// `go test ./...` stays fast: `make soak`, `make capacity`, and a short
// version in .ci/run. docs/reliability.md has the commands and the results.
//
// The package is tests only: it must not be imported, and it imports
// nothing of the product but the generated protos and the test helpers
// (bundletest, redistest).
package soak
