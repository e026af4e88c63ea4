# Verdict's container image: a static pdp binary on distroless, run as the
# non-root user 65532. The built-in bundles (policies/, bundles/default/)
# are embedded in the binary, so the image needs no policy files; mount your
# own bundles or point --bundle/--config at a URL.
#
#   docker build -t verdict:dev --build-arg VERSION=$(git describe --always) .
#
# No HEALTHCHECK: the final image has no shell and no curl, and pdp has no
# probe subcommand. Kubernetes probes GET /readyz and /healthz on the HTTP
# port (or uses the grpc.health.v1 service on 9191); see docs/deploy.md.

ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath \
      -ldflags "-s -w -X github.com/verdictpdp/verdict/internal/app.Version=${VERSION}" \
      -o /out/pdp ./cmd/pdp

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/pdp /pdp
USER 65532:65532
EXPOSE 9191 8181
ENTRYPOINT ["/pdp"]
CMD ["serve", "--grpc-addr", "0.0.0.0:9191", "--http-addr", "0.0.0.0:8181"]
