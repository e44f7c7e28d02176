package install_test

import (
	"os"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"
)

// peerRole is the hand-written ClusterRole a peer cluster's operator gets here.
func peerRole(t *testing.T) *rbacv1.ClusterRole {
	t.Helper()
	data, err := os.ReadFile(path(t, "config", "peer-access", "role.yaml"))
	require.NoError(t, err)
	role := &rbacv1.ClusterRole{}
	require.NoError(t, yaml.UnmarshalStrict(data, role))
	return role
}

// requirePeerAccess checks the objects that let a peer's operator in: the role, a ServiceAccount bound to it and
// a token Secret for that ServiceAccount, all in ns.
func requirePeerAccess(t *testing.T, objs []manifest, ns string) {
	t.Helper()
	role := into[rbacv1.ClusterRole](t, find(t, objs, "ClusterRole", "supportstack-peer"))
	require.Equal(t, peerRole(t).Rules, role.Rules)
	for _, r := range role.Rules {
		require.NotContains(t, r.Verbs, "*", "least privilege: no wildcards")
		require.NotContains(t, r.Resources, "*")
	}
	sa := into[corev1.ServiceAccount](t, find(t, objs, "ServiceAccount", "supportstack-peer"))
	require.Equal(t, ns, sa.Namespace)
	crb := into[rbacv1.ClusterRoleBinding](t, find(t, objs, "ClusterRoleBinding", "supportstack-peer"))
	require.Equal(t, rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "supportstack-peer"}, crb.RoleRef)
	require.Equal(t, []rbacv1.Subject{{Kind: "ServiceAccount", Name: "supportstack-peer", Namespace: ns}}, crb.Subjects)
	token := into[corev1.Secret](t, find(t, objs, "Secret", "supportstack-peer-token"))
	require.Equal(t, corev1.SecretTypeServiceAccountToken, token.Type)
	require.Equal(t, "supportstack-peer", token.Annotations[corev1.ServiceAccountNameKey])
	require.Equal(t, ns, token.Namespace)
}

func TestKustomizePeerAccess(t *testing.T) {
	objs := kustomizeBuild(t, "config/peer-access")
	require.Equal(t, []string{"ClusterRole/supportstack-peer", "ClusterRoleBinding/supportstack-peer",
		"Secret/supportstack-peer-token", "ServiceAccount/supportstack-peer"}, kindNames(objs))
	requirePeerAccess(t, objs, operatorNamespace)
}

func TestHelmPeerAccessAndClusterName(t *testing.T) {
	names := kindNames(mustHelmTemplate(t))
	require.NotContains(t, names, "ClusterRole/supportstack-peer", "peer access is off by default")
	require.NotContains(t, names, "ServiceAccount/supportstack-peer", "peer access is off by default")
	objs := mustHelmTemplate(t, "--set", "peerAccess.enabled=true", "--set", "clusterName=east")
	requirePeerAccess(t, objs, operatorNamespace)
	dep := into[appsv1.Deployment](t, find(t, objs, "Deployment", managerName))
	args := managerContainer(t, dep).Args
	require.True(t, slices.Contains(args, "--cluster-name=east"), "args: %v", args)

	for _, bad := range []string{"clusterName=East_1", "clusterName=-east"} {
		_, err := helmTemplate(t, "--set", bad)
		require.Error(t, err, bad)
		require.Contains(t, err.Error(), "schema")
	}
}
