# Verdict — the targets a developer needs. `make test` is what CI runs.

GO            ?= go
GOBIN         ?= $(shell $(GO) env GOPATH)/bin
GOLANGCI_LINT ?= $(GOBIN)/golangci-lint
GRPCURL       ?= $(GOBIN)/grpcurl
OPA           ?= $(GOBIN)/opa
FUZZTIME      ?= 60s

GOLANGCI_LINT_VERSION := v2.15.0
GRPCURL_VERSION       := v1.9.4
OPA_VERSION           := v1.22.0

.PHONY: run test test-race lint vet fmt tools bench fuzz opa-test build clean

build:
	$(GO) build -o bin/pdp ./cmd/pdp

run:
	$(GO) run ./cmd/pdp serve

test:
	$(GO) test ./...

test-race:
	$(GO) test -race ./...

vet:
	$(GO) vet ./...

lint: $(GOLANGCI_LINT)
	$(GOLANGCI_LINT) run ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

tools: $(GOLANGCI_LINT) $(GRPCURL) $(OPA)

$(GOLANGCI_LINT):
	$(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)

$(GRPCURL):
	$(GO) install github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION)

$(OPA):
	$(GO) install github.com/open-policy-agent/opa@$(OPA_VERSION)

# Rego unit tests with the opa CLI (go test runs the same tests in-process).
opa-test: $(OPA)
	$(OPA) test policies/

# Benchmarks of the Check path, in-process and over loopback gRPC.
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./internal/extauthz/ ./internal/app/

# Each fuzz target for FUZZTIME.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzBuildInput$$' -fuzztime $(FUZZTIME) ./internal/extauthz/
	$(GO) test -run '^$$' -fuzz '^FuzzParseBody$$' -fuzztime $(FUZZTIME) ./internal/extauthz/

clean:
	rm -rf bin
