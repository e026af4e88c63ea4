# Verdict — the targets a developer needs. `make test` is what CI runs.

GO            ?= go
GOBIN         ?= $(shell $(GO) env GOPATH)/bin
GOLANGCI_LINT ?= $(GOBIN)/golangci-lint
GRPCURL       ?= $(GOBIN)/grpcurl
OPA           ?= $(GOBIN)/opa
BUF           ?= $(GOBIN)/buf
HELM          ?= $(GOBIN)/helm
PROTOC_GEN_GO ?= $(GOBIN)/protoc-gen-go
PROTOC_GEN_GO_GRPC ?= $(GOBIN)/protoc-gen-go-grpc
FUZZTIME      ?= 60s

GOLANGCI_LINT_VERSION := v2.15.0
GRPCURL_VERSION       := v1.9.4
OPA_VERSION           := v1.22.0
BUF_VERSION           := v1.73.0
HELM_VERSION          := v4.3.2
PROTOC_GEN_GO_VERSION := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2

.PHONY: run test test-race lint vet fmt tools bench fuzz opa-test build clean generate proto-check image manifests soak capacity conformance

build:
	$(GO) build -o bin/pdp ./cmd/pdp

run:
	$(GO) run ./cmd/pdp serve

# The approvals page test (internal/app) drives a headless Chromium and
# skips without one: apt-get install chromium (.ci/run installs it). The
# Redis rate limit tests (internal/ratelimit/redisstore, internal/app) run a
# real redis-server and skip without one, fail with CI=true: apt-get install
# redis-server (.ci/run installs it).
test:
	$(GO) test ./...

# The soak, fault and capacity suite (internal/soak, docs/reliability.md):
# the pdp binary under load against a real redis-server, a bundle server and
# an audit collector. `go test ./...` skips it; VERDICT_SOAK turns it on and
# is the soak's length. `make soak` runs the faults and a 10-minute soak
# (about 13 minutes in all); CI runs it with SOAK=60s. `make capacity`
# measures one replica's throughput, Redis-backed against in-memory limits.
SOAK ?= 10m
soak:
	VERDICT_SOAK=$(SOAK) $(GO) test ./internal/soak -run '^(TestFaults|TestSoak)$$' -count=1 -v -timeout 60m

capacity:
	VERDICT_SOAK=60s $(GO) test ./internal/soak -run '^TestCapacity$$' -count=1 -v -timeout 10m

test-race:
	$(GO) test -race ./...

vet:
	$(GO) vet ./...

lint: $(GOLANGCI_LINT)
	$(GOLANGCI_LINT) run ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

tools: $(GOLANGCI_LINT) $(GRPCURL) $(OPA) $(BUF) $(PROTOC_GEN_GO) $(PROTOC_GEN_GO_GRPC) $(HELM)

# helm for deploy/helm_test.go (lint and render the chart). Compiling it
# took 10.5 minutes of wall time on 2 shared cores (4.7 minutes of user
# CPU), once; the module and build caches keep it.
$(HELM):
	$(GO) install helm.sh/helm/v4/cmd/helm@$(HELM_VERSION)

# The container image (needs a Docker engine; see docs/deploy.md).
image:
	docker build -t verdict:dev --build-arg VERSION=$$(git describe --always --dirty) .

# Re-render deploy/kubernetes/verdict.yaml from the chart's defaults.
manifests: $(HELM)
	PATH="$(GOBIN):$$PATH" $(GO) test ./deploy -run '^TestHelmManifests$$' -helm.update

$(BUF):
	$(GO) install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)

$(PROTOC_GEN_GO):
	$(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)

$(PROTOC_GEN_GO_GRPC):
	$(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)

# Regenerate the Go code of proto/ (checked in) with the pinned local plugins.
generate: $(BUF) $(PROTOC_GEN_GO) $(PROTOC_GEN_GO_GRPC)
	PATH="$(GOBIN):$$PATH" $(BUF) generate

# buf lint, and fail when regenerating would change a checked-in file.
proto-check: generate
	cd proto && $(BUF) lint
	git diff --exit-code -- proto/

$(GOLANGCI_LINT):
	$(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)

$(GRPCURL):
	$(GO) install github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION)

$(OPA):
	$(GO) install github.com/open-policy-agent/opa@$(OPA_VERSION)

# Rego unit tests with the opa CLI (go test runs the same tests in-process).
opa-test: $(OPA)
	$(OPA) fmt --v1-compatible --fail -l policies/ bundles/
	$(OPA) check --v1-compatible --strict policies/
	$(OPA) test --v1-compatible policies/
	$(OPA) check --v1-compatible --strict --bundle bundles/authzen-todo/
	$(OPA) test --v1-compatible bundles/authzen-todo/

# The benchmark suite: in-process Go benchmarks (cache hit, miss and off by
# catalog size; MCP Checks with every request new by rule count), then the
# loopback load run (MCP traffic with every request new against a no-op
# floor and the opa server, ext_authz against a no-op floor with the cache on
# and off, pdp's MCP API on a repeating mix against opa, memory). Both
# rewrite their part of docs/benchmarks.md, cache misses first. About 15
# minutes; run it on an otherwise idle machine.
BENCH_COUNT ?= 5
BENCH_PKGS  := ./internal/adapter/ ./internal/adapter/extauthz/ ./internal/adapter/mcpapi/ ./internal/adapter/toolhive/ ./internal/cache/ ./internal/mcpnative/
bench: $(OPA)
	mkdir -p bin
	$(GO) test -run '^$$' -bench . -benchmem -count $(BENCH_COUNT) $(BENCH_PKGS) | tee bin/bench-inprocess.txt
	$(GO) run ./bench/gobench -in bin/bench-inprocess.txt \
		-cmd "go test -run '^$$' -bench . -benchmem -count $(BENCH_COUNT) $(BENCH_PKGS)" -update docs/benchmarks.md
	$(GO) run ./bench/loadrun -opa $(OPA) -update docs/benchmarks.md

# Each fuzz target for FUZZTIME.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzBuildInput$$' -fuzztime $(FUZZTIME) ./internal/adapter/extauthz/
	$(GO) test -run '^$$' -fuzz '^FuzzBuildValue$$' -fuzztime $(FUZZTIME) ./internal/adapter/extauthz/
	$(GO) test -run '^$$' -fuzz '^FuzzParseBody$$' -fuzztime $(FUZZTIME) ./internal/adapter/extauthz/
	$(GO) test -run '^$$' -fuzz '^FuzzRoute$$' -fuzztime $(FUZZTIME) ./internal/adapter/extauthz/
	$(GO) test -run '^$$' -fuzz '^FuzzEnvoyKey$$' -fuzztime $(FUZZTIME) ./internal/adapter/extauthz/
	$(GO) test -run '^$$' -fuzz '^FuzzMCPEnvoyKey$$' -fuzztime $(FUZZTIME) ./internal/adapter/extauthz/
	$(GO) test -run '^$$' -fuzz '^FuzzMCPKey$$' -fuzztime $(FUZZTIME) ./internal/adapter/mcpapi/
	$(GO) test -run '^$$' -fuzz '^FuzzEvaluationsBody$$' -fuzztime $(FUZZTIME) ./internal/adapter/authzen/
	$(GO) test -run '^$$' -fuzz '^FuzzPORC$$' -fuzztime $(FUZZTIME) ./internal/adapter/toolhive/
	$(GO) test -run '^$$' -fuzz '^FuzzCheckRequest$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 2s ./internal/adapter/extmcp/
	$(GO) test -run '^$$' -fuzz '^FuzzGoKey$$' -fuzztime $(FUZZTIME) ./internal/projection/
	$(GO) test -run '^$$' -fuzz '^FuzzParseMessages$$' -fuzztime $(FUZZTIME) ./internal/mcp/
	$(GO) test -run '^$$' -fuzz '^FuzzFromHTTP$$' -fuzztime $(FUZZTIME) ./internal/mcp/
	$(GO) test -run '^$$' -fuzz '^FuzzCheckResult$$' -fuzztime $(FUZZTIME) ./internal/mcp/
	$(GO) test -run '^$$' -fuzz '^FuzzCheckFlows$$' -fuzztime $(FUZZTIME) ./internal/mcp/
	$(GO) test -run '^$$' -fuzz '^FuzzStdioClientLine$$' -fuzztime $(FUZZTIME) ./internal/gateway/
	$(GO) test -run '^$$' -fuzz '^FuzzParseStored$$' -fuzztime $(FUZZTIME) ./internal/session/
	$(GO) test -run '^$$' -fuzz '^FuzzApply$$' -fuzztime $(FUZZTIME) ./internal/redact/
	$(GO) test -run '^$$' -fuzz '^FuzzVerify$$' -fuzztime $(FUZZTIME) ./internal/audit/filelog/
	$(GO) test -run '^$$' -fuzz '^FuzzEventBody$$' -fuzztime $(FUZZTIME) ./internal/audit/filelog/
	$(GO) test -run '^$$' -fuzz '^FuzzRecover$$' -fuzztime $(FUZZTIME) ./internal/audit/filelog/
	$(GO) test -run '^$$' -fuzz '^FuzzEncodeString$$' -fuzztime $(FUZZTIME) ./internal/audit/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeHeaderValue$$' -fuzztime $(FUZZTIME) ./internal/mcp/
	$(GO) test -run '^$$' -fuzz '^FuzzReader$$' -fuzztime $(FUZZTIME) ./internal/gateway/sse/
	$(GO) test -run '^$$' -fuzz '^FuzzProxyPost$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 2s ./internal/gateway/
	$(GO) test -run '^$$' -fuzz '^FuzzReadArchive$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 2s ./internal/bundle/
	$(GO) test -run '^$$' -fuzz '^FuzzVerify$$' -fuzztime $(FUZZTIME) ./internal/identity/
	$(GO) test -run '^$$' -fuzz '^FuzzBearerToken$$' -fuzztime $(FUZZTIME) ./internal/identity/
	$(GO) test -run '^$$' -fuzz '^FuzzScanJSON$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 2s ./internal/guard/
	$(GO) test -run '^$$' -fuzz '^FuzzNormalizePath$$' -fuzztime $(FUZZTIME) ./internal/guard/
	$(GO) test -run '^$$' -fuzz '^FuzzCheckHeaders$$' -fuzztime $(FUZZTIME) ./internal/guard/
	$(GO) test -run '^$$' -fuzz '^FuzzCheck$$' -fuzztime $(FUZZTIME) ./internal/jsonerr/
	$(GO) test -run '^$$' -fuzz '^FuzzCacheSoundness$$' -fuzztime $(FUZZTIME) -parallel 1 ./internal/engine/
	$(GO) test -run '^$$' -fuzz '^FuzzAPI$$' -fuzztime $(FUZZTIME) -parallel 1 ./internal/adapter/controlapi/
	$(GO) test -run '^$$' -fuzz '^FuzzPresentedID$$' -fuzztime $(FUZZTIME) ./internal/control/
	$(GO) test -run '^$$' -fuzz '^FuzzParseMessage$$' -fuzztime $(FUZZTIME) ./internal/control/redisstore/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./internal/containment/
	$(GO) test -run '^$$' -fuzz '^FuzzApply$$' -fuzztime $(FUZZTIME) ./internal/scan/dlp/
	$(GO) test -run '^$$' -fuzz '^FuzzScan$$' -fuzztime $(FUZZTIME) ./internal/scan/poison/
	$(GO) test -run '^$$' -fuzz '^FuzzCatalogListing$$' -fuzztime $(FUZZTIME) ./internal/catalog/
	$(GO) test -run '^$$' -fuzz '^FuzzNativeDifferential$$' -fuzztime $(FUZZTIME) -parallel 1 ./internal/mcpnative/

clean:
	rm -rf bin

# MCP conformance through pdp gateway: the conformance suite's server
# scenarios against the Go SDK's everything-server, directly and through the
# gateway (allow-all bundle), plus the MCP Inspector CLI; fails on any
# scenario that passes only without the gateway. Installs its pinned tools
# under ~/.cache/verdict-conformance. GATEWAY=off runs the baseline only;
# SCENARIOS="a b" picks scenarios. See scripts/conformance.sh.
conformance:
	GO=$(GO) bash scripts/conformance.sh
