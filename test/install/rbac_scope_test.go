package install_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	rbacv1 "k8s.io/api/rbac/v1"
)

// resourcesOf lists every (apiGroup, resource, verb) a set of rules grants.
func resourcesOf(rules []rbacv1.PolicyRule) []string {
	var out []string
	for _, r := range rules {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					out = append(out, g+"/"+res+":"+v)
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

// Watching all namespaces, the operator's generated rules are granted cluster-wide. Watching named ones, only the
// rules on cluster-scoped resources (PeerClusters) are: Secrets and every other namespaced kind are granted by a
// Role in each watched namespace, the PeerClusters' kubeconfig Secrets by a get-only Role in the operator's own
// namespace, and their events (cluster-scoped objects' events live in "default") by a Role there.
func TestHelmRBACFollowsWatchedNamespaces(t *testing.T) {
	generated := generatedRules(t)
	all := mustHelmTemplate(t)
	require.Equal(t, generated, into[rbacv1.ClusterRole](t, find(t, all, "ClusterRole", clusterRoleName)).Rules)

	objs := mustHelmTemplate(t, "--set", "watchNamespaces={tenant-a,tenant-b}")
	cluster := into[rbacv1.ClusterRole](t, find(t, objs, "ClusterRole", clusterRoleName)).Rules
	for _, g := range resourcesOf(cluster) {
		resource, _, _ := strings.Cut(g, ":")
		require.Contains(t, []string{"supportstack.io/peerclusters", "supportstack.io/peerclusters/status"}, resource,
			"only cluster-scoped resources are granted cluster-wide: %s", g)
	}
	var namespaced []rbacv1.PolicyRule
	for _, ns := range []string{"tenant-a", "tenant-b"} {
		var role *rbacv1.Role
		for _, o := range objs {
			if o.obj.GetKind() == "Role" && o.obj.GetNamespace() == ns && o.obj.GetName() == clusterRoleName {
				role = into[rbacv1.Role](t, o)
			}
		}
		require.NotNil(t, role, "no Role in %s", ns)
		var binding *rbacv1.RoleBinding
		for _, o := range objs {
			if o.obj.GetKind() == "RoleBinding" && o.obj.GetNamespace() == ns && o.obj.GetName() == clusterRoleName {
				binding = into[rbacv1.RoleBinding](t, o)
			}
		}
		require.NotNil(t, binding, "no RoleBinding in %s", ns)
		requireBindsManager(t, binding.RoleRef, binding.Subjects, "Role", clusterRoleName, operatorNamespace)
		namespaced = role.Rules
		require.Contains(t, resourcesOf(role.Rules), "/secrets:get")
	}
	require.Equal(t, resourcesOf(generated), resourcesOf(append(slices.Clone(cluster), namespaced...)),
		"together the ClusterRole and a namespace's Role grant exactly the generated rules")

	peer := into[rbacv1.Role](t, find(t, objs, "Role", clusterRoleName+"-peer-secrets"))
	require.Equal(t, operatorNamespace, peer.Namespace)
	require.Equal(t, []string{"/secrets:get"}, resourcesOf(peer.Rules))
	events := into[rbacv1.Role](t, find(t, objs, "Role", clusterRoleName+"-events"))
	require.Equal(t, "default", events.Namespace)
	require.Equal(t, []string{"/events:create", "/events:patch", "events.k8s.io/events:create", "events.k8s.io/events:patch"}, resourcesOf(events.Rules))
}
