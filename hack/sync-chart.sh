#!/usr/bin/env bash
# Copies what controller-gen generated into the Helm chart, so that the chart never carries hand-copied CRDs or
# RBAC rules:
#   config/crd/bases/*.yaml        -> charts/supportstack/crds/ (Helm installs crds/ itself)
#   the rules of config/rbac/role.yaml -> charts/supportstack/files/manager-rbac-rules.yaml (the ClusterRole
#                                     template includes it)
#   the rules of config/peer-access/role.yaml -> charts/supportstack/files/peer-rbac-rules.yaml (peerAccess)
# `make manifests` runs it after controller-gen. Idempotent: a second run changes nothing. test/install fails when
# the chart's copies are stale.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BASES="${ROOT}/config/crd/bases"
ROLE="${ROOT}/config/rbac/role.yaml"
CHART="${ROOT}/charts/supportstack"

shopt -s nullglob
crds=("${BASES}"/*.yaml)
shopt -u nullglob
if [ "${#crds[@]}" -eq 0 ]; then
	echo "sync-chart: no CRDs in ${BASES}: run controller-gen (make manifests) first" >&2
	exit 1
fi
if [ ! -f "${ROLE}" ]; then
	echo "sync-chart: ${ROLE} is missing: run controller-gen (make manifests) first" >&2
	exit 1
fi

# CRDs: mirror the folder exactly, dropping copies of CRDs that no longer exist.
mkdir -p "${CHART}/crds"
for f in "${CHART}/crds"/*.yaml; do
	[ -e "${f}" ] || continue
	[ -e "${BASES}/$(basename "${f}")" ] || rm -f "${f}"
done
for f in "${crds[@]}"; do
	dst="${CHART}/crds/$(basename "${f}")"
	cmp -s "${f}" "${dst}" 2>/dev/null || cp "${f}" "${dst}"
done

# RBAC: every line after the top-level "rules:" line of a ClusterRole, without comments.
mkdir -p "${CHART}/files"
copy_rules() {
	local role="$1" rules="$2" tmp
	if ! grep -q '^rules:[[:space:]]*$' "${role}"; then
		echo "sync-chart: ${role} has no top-level 'rules:' list" >&2
		exit 1
	fi
	tmp="$(mktemp)"
	awk 'found && !/^[[:space:]]*#/ { print } /^rules:[[:space:]]*$/ { found = 1 }' "${role}" >"${tmp}"
	if cmp -s "${tmp}" "${rules}" 2>/dev/null; then
		rm -f "${tmp}"
	else
		mv "${tmp}" "${rules}"
		chmod 0644 "${rules}"
	fi
}
copy_rules "${ROLE}" "${CHART}/files/manager-rbac-rules.yaml"
copy_rules "${ROOT}/config/peer-access/role.yaml" "${CHART}/files/peer-rbac-rules.yaml"

# The portal's role holds a ClusterRole and a Role (its own namespace): each one's rules go to a file of its own.
copy_kind_rules() {
	local role="$1" kind="$2" rules="$3" tmp
	tmp="$(mktemp)"
	awk -v kind="${kind}" '
		/^---/ { doc = ""; inrules = 0; next }
		/^kind: / { doc = $2 }
		doc == kind && inrules && !/^[[:space:]]*#/ { print }
		doc == kind && /^rules:[[:space:]]*$/ { inrules = 1 }
	' "${role}" >"${tmp}"
	if [ ! -s "${tmp}" ]; then
		echo "sync-chart: ${role} has no ${kind} rules" >&2
		exit 1
	fi
	if cmp -s "${tmp}" "${rules}" 2>/dev/null; then
		rm -f "${tmp}"
	else
		mv "${tmp}" "${rules}"
		chmod 0644 "${rules}"
	fi
}
copy_kind_rules "${ROOT}/config/rbac/portal/role.yaml" ClusterRole "${CHART}/files/portal-rbac-rules.yaml"
copy_kind_rules "${ROOT}/config/rbac/portal/role.yaml" Role "${CHART}/files/portal-namespace-rbac-rules.yaml"
cmp -s "${ROOT}/config/rbac/portal/workspace_roles.yaml" "${CHART}/files/portal-workspace-roles.yaml" 2>/dev/null ||
	cp "${ROOT}/config/rbac/portal/workspace_roles.yaml" "${CHART}/files/portal-workspace-roles.yaml"
