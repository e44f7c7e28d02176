#!/usr/bin/env bash
# Obtains the binaries the tests and the demo run for real: kube-apiserver, etcd and kubectl (envtest's control
# plane), kube-controller-manager (real garbage collection of a deleted tenant's children) and a MinIO server.
# Each is reused when present. For each the usual way is tried first (setup-envtest, MinIO's release download);
# on a machine that reaches only the Go module proxy they are built from source.
#
# The binaries live in a machine-wide store so that every clone reuses them (setup-envtest's own store is the
# convention); bin/ in the repository gets symlinks to them.
#
# Two runs at once (two clones, a developer's and CI's) share the store safely: each kind of binary is obtained
# under an exclusive lock of the store (flock), built in a private temporary folder and moved into place with a
# rename, so a run never sees half a binary and never builds what another run is building.
#
# Usage: hack/test-binaries.sh [envtest|minio|all]   (default: all)
# Environment: ENVTEST_STORE (the store), MINIO_FROM (a MinIO binary to take instead of downloading or building
# one: an offline mirror, or the tests of this script), TEST_BINARIES_BIN (where the symlinks go; bin/).
# Prints nothing on success but progress lines on stderr.
set -euo pipefail

KUBE_VERSION="${KUBE_VERSION:-1.37.2}"
ETCD_VERSION="${ETCD_VERSION:-3.6.16}"
MINIO_MODULE_VERSION="${MINIO_MODULE_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}"
SETUP_ENVTEST_VERSION="${SETUP_ENVTEST_VERSION:-release-0.25}"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${TEST_BINARIES_BIN:-${ROOT}/bin}"
STORE="${ENVTEST_STORE:-${XDG_DATA_HOME:-$HOME/.local/share}/kubebuilder-envtest}"
GOOS="$(go env GOOS)"
GOARCH="$(go env GOARCH)"
ENVTEST_DIR="${STORE}/k8s/${KUBE_VERSION}-${GOOS}-${GOARCH}"
MINIO_DIR="${STORE}/minio/${MINIO_MODULE_VERSION}-${GOOS}-${GOARCH}"

log() { echo "test-binaries: $*" >&2; }

# locked NAME COMMAND...: runs the command holding the store's lock NAME, so that concurrent runs take turns.
locked() {
	local name="$1"
	shift
	mkdir -p "${STORE}"
	(
		flock 9
		"$@"
	) 9>"${STORE}/.${name}.lock"
}

# build_in_wrapper DIR OUTDIR GO_MOD_CONTENT TOOLS_GO_CONTENT PACKAGE...
# k8s.io/kubernetes and etcd's server carry replace directives, so `go install pkg@version` refuses them; a
# small wrapper module that requires them builds fine.
build_in_wrapper() {
	local dir="$1" out="$2" gomod="$3" tools="$4"
	shift 4
	rm -rf "${dir}"
	mkdir -p "${dir}" "${out}"
	printf '%s\n' "${gomod}" >"${dir}/go.mod"
	printf '%s\n' "${tools}" >"${dir}/tools.go"
	(cd "${dir}" && GOFLAGS=-mod=mod go mod tidy >&2 && CGO_ENABLED=0 go build -o "${out}/" "$@" >&2)
}

envtest_from_setup_envtest() {
	log "trying setup-envtest ${SETUP_ENVTEST_VERSION} for Kubernetes ${KUBE_VERSION}"
	local path
	path="$(timeout 300 go run "sigs.k8s.io/controller-runtime/tools/setup-envtest@${SETUP_ENVTEST_VERSION}" \
		use "${KUBE_VERSION}" --bin-dir "${STORE}" -p path 2>/dev/null)" || return 1
	[ -x "${path}/kube-apiserver" ] && [ -x "${path}/etcd" ] || return 1
	if [ "${path}" != "${ENVTEST_DIR}" ]; then
		mkdir -p "${ENVTEST_DIR}"
		cp -f "${path}/kube-apiserver" "${path}/etcd" "${ENVTEST_DIR}/"
		[ -x "${path}/kubectl" ] && cp -f "${path}/kubectl" "${ENVTEST_DIR}/"
	fi
	return 0
}

envtest_from_source() {
	local work
	# In the store, so that the moves below are renames on one filesystem.
	mkdir -p "${STORE}"
	work="$(mktemp -d "${STORE}/.work.XXXXXX")"
	if [ ! -x "${ENVTEST_DIR}/etcd" ]; then
		log "building etcd v${ETCD_VERSION} from the Go module proxy (about 3 minutes)"
		build_in_wrapper "${work}/etcd" "${work}/etcd-out" \
			"$(printf 'module example.com/etcd-binary\n\ngo 1.26\n\nrequire go.etcd.io/etcd/server/v3 v%s\n' "${ETCD_VERSION}")" \
			"$(printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n')" \
			go.etcd.io/etcd/server/v3
		mkdir -p "${ENVTEST_DIR}"
		# go build names the binary after the last path element that is not a major version: "server".
		mv "${work}/etcd-out/server" "${ENVTEST_DIR}/etcd"
	fi
	if [ ! -x "${ENVTEST_DIR}/kube-apiserver" ] || [ ! -x "${ENVTEST_DIR}/kubectl" ] || [ ! -x "${ENVTEST_DIR}/kube-controller-manager" ]; then
		log "building kube-apiserver, kube-controller-manager and kubectl v${KUBE_VERSION} from the Go module proxy (about 20 minutes)"
		local replaces="" m
		# k8s.io/kubernetes points its staging modules at local folders; name the published ones instead.
		for m in api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider \
			cluster-bootstrap code-generator component-base component-helpers controller-manager cri-api \
			cri-client cri-streaming csi-translation-lib dynamic-resource-allocation endpointslice externaljwt kms \
			kube-aggregator kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics mount-utils \
			pod-security-admission sample-apiserver sample-cli-plugin sample-controller streaming; do
			replaces+=$'\t'"k8s.io/${m} => k8s.io/${m} v0.${KUBE_VERSION#1.}"$'\n'
		done
		build_in_wrapper "${work}/kube" "${work}/kube-out" \
			"$(printf 'module example.com/kube-binaries\n\ngo 1.26\n\nrequire k8s.io/kubernetes v%s\n\nreplace (\n%s)\n' "${KUBE_VERSION}" "${replaces}")" \
			"$(printf '//go:build tools\n\npackage tools\n\nimport (\n\t_ "k8s.io/kubernetes/cmd/kube-apiserver"\n\t_ "k8s.io/kubernetes/cmd/kube-controller-manager"\n\t_ "k8s.io/kubernetes/cmd/kubectl"\n)\n')" \
			k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kubectl
		mkdir -p "${ENVTEST_DIR}"
		mv "${work}/kube-out/kube-apiserver" "${work}/kube-out/kube-controller-manager" "${work}/kube-out/kubectl" "${ENVTEST_DIR}/"
	fi
	rm -rf "${work}"
}

obtain_envtest() {
	if [ ! -x "${ENVTEST_DIR}/kube-apiserver" ] || [ ! -x "${ENVTEST_DIR}/etcd" ] || [ ! -x "${ENVTEST_DIR}/kubectl" ]; then
		envtest_from_setup_envtest || true
	fi
	# setup-envtest ships no kube-controller-manager; whatever is still missing is built.
	envtest_from_source
}

ensure_envtest() {
	locked envtest obtain_envtest
	mkdir -p "${BIN}"
	ln -sfn "${ENVTEST_DIR}" "${BIN}/k8s.tmp.$$"
	mv -Tf "${BIN}/k8s.tmp.$$" "${BIN}/k8s"
}

obtain_minio() {
	[ -x "${MINIO_DIR}/minio" ] && return 0
	mkdir -p "${MINIO_DIR}"
	local work
	work="$(mktemp -d "${MINIO_DIR}/.work.XXXXXX")"
	if [ -n "${MINIO_FROM:-}" ]; then
		cp "${MINIO_FROM}" "${work}/minio"
	else
		log "trying MinIO's release download"
		if ! curl -fsSL --connect-timeout 10 --max-time 600 -o "${work}/minio" \
			"https://dl.min.io/server/minio/release/${GOOS}-${GOARCH}/minio" 2>/dev/null; then
			rm -f "${work}/minio"
			log "building MinIO ${MINIO_MODULE_VERSION} from the Go module proxy (about 9 minutes)"
			GOBIN="${work}" CGO_ENABLED=0 go install "github.com/minio/minio@${MINIO_MODULE_VERSION}" >&2
		fi
	fi
	chmod +x "${work}/minio"
	mv -f "${work}/minio" "${MINIO_DIR}/minio" # a rename: whole or absent
	rm -rf "${work}"
}

ensure_minio() {
	locked minio obtain_minio
	mkdir -p "${BIN}"
	ln -sfn "${MINIO_DIR}/minio" "${BIN}/minio.tmp.$$"
	mv -Tf "${BIN}/minio.tmp.$$" "${BIN}/minio"
}

case "${1:-all}" in
envtest) ensure_envtest ;;
minio) ensure_minio ;;
all)
	ensure_envtest
	ensure_minio
	;;
*) echo "usage: $0 [envtest|minio|all]" >&2; exit 2 ;;
esac
