#!/usr/bin/env bash
# Prints a kubeconfig for the supportstack-peer identity of the cluster kubectl talks to (made by
# config/peer-access or the Helm chart's peerAccess), for the PeerCluster Secret of the *other* cluster:
#
#   KUBECONFIG=west.kubeconfig hack/peer-kubeconfig.sh > west-peer.kubeconfig
#   KUBECONFIG=east.kubeconfig kubectl -n supportstack-system create secret generic west-kubeconfig \
#       --from-file=kubeconfig=west-peer.kubeconfig
#
# SERVER overrides the API server URL written into it (the address the other cluster reaches).
set -euo pipefail
NAMESPACE="${NAMESPACE:-supportstack-system}"
SECRET="${SECRET:-supportstack-peer-token}"
KUBECTL="${KUBECTL:-kubectl}"

token="$("${KUBECTL}" -n "${NAMESPACE}" get secret "${SECRET}" -o jsonpath='{.data.token}' | base64 -d)"
ca="$("${KUBECTL}" -n "${NAMESPACE}" get secret "${SECRET}" -o jsonpath='{.data.ca\.crt}')"
server="${SERVER:-$("${KUBECTL}" config view --minify -o jsonpath='{.clusters[0].cluster.server}')}"
if [ -z "${token}" ] || [ -z "${ca}" ]; then
	echo "peer-kubeconfig: Secret ${NAMESPACE}/${SECRET} has no token yet" >&2
	exit 1
fi
cat <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: peer
  cluster:
    server: ${server}
    certificate-authority-data: ${ca}
users:
- name: supportstack-peer
  user:
    token: ${token}
contexts:
- name: peer
  context:
    cluster: peer
    user: supportstack-peer
current-context: peer
KUBECONFIG
