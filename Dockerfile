# syntax=docker/dockerfile:1
# The supportstack image: one static binary (cmd/supportstack) whose subcommands are the operator (manager) and the
# tenants' ingest and dashboard, which the operator runs from this same image. Build: `make docker-build IMG=...`.

# The builder runs on the build machine's platform and cross-compiles for the target platform.
FROM --platform=$BUILDPLATFORM golang:1.26 AS builder
ARG TARGETOS
ARG TARGETARCH
# Printed by `supportstack version`: docker build --build-arg VERSION=v0.1.0 ...
ARG VERSION=dev
WORKDIR /workspace

# Dependencies first, in their own layer: it is rebuilt only when go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download

COPY . .
RUN --mount=type=cache,target=/root/.cache/go-build \
	CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} \
	go build -trimpath -ldflags="-s -w -X main.version=${VERSION}" -o /out/supportstack ./cmd/supportstack

# distroless static: no shell, no package manager; the nonroot variant's user is 65532, which the Deployment's
# runAsUser matches.
FROM gcr.io/distroless/static:nonroot
COPY --from=builder /out/supportstack /supportstack
USER 65532:65532
ENTRYPOINT ["/supportstack"]
