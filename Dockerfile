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
# The agent for every platform PCs run, served by ingest at /downloads/ (--agent-dir=/agents) with SHA256SUMS.
RUN --mount=type=cache,target=/root/.cache/go-build \
	for p in linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64 windows/arm64; do \
		os=${p%/*}; arch=${p#*/}; ext=; [ "$os" = windows ] && ext=.exe; \
		CGO_ENABLED=0 GOOS=$os GOARCH=$arch go build -trimpath -ldflags="-s -w -X github.com/supportstack/supportstack/agent/cli.Version=${VERSION}" \
			-o /out/agents/supportstack-agent-$os-$arch$ext ./cmd/supportstack-agent || exit 1; \
	done

# distroless static: no shell, no package manager; the nonroot variant's user is 65532, which the Deployment's
# runAsUser matches.
FROM gcr.io/distroless/static:nonroot
COPY --from=builder /out/supportstack /supportstack
COPY --from=builder /out/agents /agents
USER 65532:65532
ENTRYPOINT ["/supportstack"]
