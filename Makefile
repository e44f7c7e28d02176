# supportstack — build, test and run.
#
# The two commands of the README:
#   make demo   a local control plane, MinIO and a sample tenant, no cluster needed (or $KUBECONFIG when set)
#   make test   every test, against a real kube-apiserver + etcd and real MinIO servers
#
# Everything a target needs is installed into bin/ (tools) or a machine-wide store (control-plane and MinIO
# binaries, see hack/test-binaries.sh) on first use and reused afterwards.

# Pinned versions: the one place to change them.
CONTROLLER_TOOLS_VERSION ?= v0.23.0
HELM_VERSION ?= v4.3.1
KUSTOMIZE_VERSION ?= v5.8.1
KUBE_SCORE_VERSION ?= v1.20.0
export KUBE_VERSION ?= 1.37.2
export ETCD_VERSION ?= 3.6.16
export MINIO_MODULE_VERSION ?= v0.0.0-20260212201848-7aac2a2c5b7c

# The version built into the binaries (supportstack version; the operator's default tenant image tag).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
IMG ?= ghcr.io/supportstack/supportstack:$(VERSION)
GO_TEST_FLAGS ?= -count=1 -timeout=40m

LOCALBIN := $(CURDIR)/bin
CONTROLLER_GEN := $(LOCALBIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
HELM := $(LOCALBIN)/helm-$(HELM_VERSION)
KUSTOMIZE := $(LOCALBIN)/kustomize-$(KUSTOMIZE_VERSION)
KUBE_SCORE := $(LOCALBIN)/kube-score-$(KUBE_SCORE_VERSION)
# Where hack/test-binaries.sh links the control plane and MinIO.
export KUBEBUILDER_ASSETS := $(LOCALBIN)/k8s
export SUPPORTSTACK_MINIO_BIN := $(LOCALBIN)/minio
export SUPPORTSTACK_HELM_BIN := $(HELM)
export SUPPORTSTACK_KUSTOMIZE_BIN := $(KUSTOMIZE)
export SUPPORTSTACK_CONTROLLER_GEN_BIN := $(CONTROLLER_GEN)
export SUPPORTSTACK_KUBE_SCORE_BIN := $(KUBE_SCORE)

.DEFAULT_GOAL := help

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z_-]+:.*?##/ { printf "  %-14s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate CRDs and RBAC from the markers into config/ and the Helm chart.
	$(CONTROLLER_GEN) rbac:roleName=supportstack-manager crd paths="./api/..." paths="./controllers/..." \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac
	go run ./hack/crd-metadata config/crd/bases/supportstack.io_supporttenants.yaml
	$(CONTROLLER_GEN) rbac:roleName=supportstack-portal paths="./internal/portal/..." output:rbac:artifacts:config=config/rbac/portal
	hack/sync-chart.sh

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate deepcopy code and apply configurations of our types.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."
	$(CONTROLLER_GEN) applyconfiguration:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: fmt
fmt: ## Run go fmt.
	go fmt ./...

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

##@ Build

.PHONY: build
build: ## Build the supportstack and supportstack-agent binaries into bin/.
	CGO_ENABLED=0 go build -ldflags "-X main.version=$(VERSION)" -o $(LOCALBIN)/supportstack ./cmd/supportstack
	CGO_ENABLED=0 go build -ldflags "-X github.com/supportstack/supportstack/agent/cli.Version=$(VERSION)" -o $(LOCALBIN)/supportstack-agent ./cmd/supportstack-agent
	@# The agent ingest serves for this machine's platform (the image carries all six, see Dockerfile).
	mkdir -p $(LOCALBIN)/agents && cp $(LOCALBIN)/supportstack-agent $(LOCALBIN)/agents/supportstack-agent-$$(go env GOOS)-$$(go env GOARCH)$$(go env GOEXE)

.PHONY: run
run: manifests ## Run the operator against the cluster of $KUBECONFIG.
	go run ./cmd/supportstack manager

.PHONY: docker-build
docker-build: ## Build the container image (needs a Docker engine).
	docker build --build-arg VERSION=$(VERSION) -t $(IMG) .

##@ The two commands

.PHONY: demo
demo: test-binaries build ## Run the demo: a local control plane, MinIO and a sample tenant (or $KUBECONFIG when set).
	$(LOCALBIN)/supportstack demo --sample config/samples/supportstack_v1alpha1_supporttenant.yaml

.PHONY: test
test: test-binaries tools vet chromium ## Run every test against a real control plane, real MinIO and headless Chromium.
	go test $(GO_TEST_FLAGS) ./...

##@ Benchmarks

.PHONY: bench
BENCH_FLAGS ?=

bench: test-binaries build ## Measure ingest throughput, the spool, the agent, an enrollment storm, a storage-outage soak and a returning herd (BENCH_FLAGS="--only soak").
	go run ./hack/bench --supportstack $(LOCALBIN)/supportstack --agent $(LOCALBIN)/supportstack-agent $(BENCH_FLAGS)

##@ Dependencies

.PHONY: test-binaries
test-binaries: ## Obtain kube-apiserver, etcd, kube-controller-manager, kubectl and MinIO (built from source when they cannot be downloaded).
	hack/test-binaries.sh all

.PHONY: chromium
chromium: ## Install Debian's chromium package for the browser tests when it is missing (fails in CI when it cannot).
	hack/install-chromium.sh

.PHONY: tools
tools: $(CONTROLLER_GEN) $(HELM) $(KUSTOMIZE) $(KUBE_SCORE) ## Install controller-gen, helm, kustomize and kube-score into bin/.

$(CONTROLLER_GEN):
	GOBIN=$(LOCALBIN)/.gobin go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)
	mv $(LOCALBIN)/.gobin/controller-gen $@

$(HELM):
	GOBIN=$(LOCALBIN)/.gobin go install helm.sh/helm/v4/cmd/helm@$(HELM_VERSION)
	mv $(LOCALBIN)/.gobin/helm $@

$(KUBE_SCORE):
	GOBIN=$(LOCALBIN)/.gobin go install github.com/zegl/kube-score/cmd/kube-score@$(KUBE_SCORE_VERSION)
	mv $(LOCALBIN)/.gobin/kube-score $@

$(KUSTOMIZE):
	GOBIN=$(LOCALBIN)/.gobin go install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)
	mv $(LOCALBIN)/.gobin/kustomize $@
