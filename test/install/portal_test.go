package install_test

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"

	"github.com/supportstack/supportstack/internal/portal"
)

// generatedPortalRules are the rules controller-gen made of internal/portal's markers: the ClusterRole's and the
// Role's (the portal's own namespace).
func generatedPortalRules(t *testing.T) (cluster, namespaced []rbacv1.PolicyRule) {
	t.Helper()
	b, err := os.ReadFile(path(t, "config", "rbac", "portal", "role.yaml"))
	require.NoError(t, err, "run `make manifests`")
	for _, doc := range bytes.Split(b, []byte("\n---")) {
		doc = bytes.TrimPrefix(bytes.TrimSpace(doc), []byte("---"))
		switch {
		case bytes.Contains(doc, []byte("kind: ClusterRole\n")):
			var r rbacv1.ClusterRole
			require.NoError(t, yaml.UnmarshalStrict(doc, &r))
			cluster = r.Rules
		case bytes.Contains(doc, []byte("kind: Role\n")):
			var r rbacv1.Role
			require.NoError(t, yaml.UnmarshalStrict(doc, &r))
			namespaced = r.Rules
		}
	}
	require.NotEmpty(t, cluster)
	require.NotEmpty(t, namespaced)
	return cluster, namespaced
}

// The portal is off by default; enabled, the chart renders it under the restricted profile with exactly the
// generated rules (cluster-wide and in its own namespace), its workspace ClusterRoles, a session key, a catalog
// the portal can read, and an Ingress when it has a host.
func TestHelmPortal(t *testing.T) {
	for _, o := range mustHelmTemplate(t) {
		require.False(t, strings.Contains(o.obj.GetName(), "portal"), "the default render has no portal: %s/%s", o.obj.GetKind(), o.obj.GetName())
	}
	objs := mustHelmTemplate(t, "--set", "portal.enabled=true", "--set", "portal.host=portal.example.com",
		"--set", "portal.oidc.issuer=https://idp.example.com", "--set", "portal.oidc.clientID=portal",
		"--set", "portal.oidc.redirectURL=https://portal.example.com/auth/oidc/callback", "--set", "portal.oidc.clientSecretName=portal-oidc")
	name := "supportstack-portal"
	dep := into[appsv1.Deployment](t, find(t, objs, "Deployment", name))
	c := dep.Spec.Template.Spec.Containers[0]
	requireRestricted(t, dep.Spec.Template.Spec, c)
	require.Equal(t, name, dep.Spec.Template.Spec.ServiceAccountName)
	require.Contains(t, c.Args, "--service-account="+operatorNamespace+"/"+name)
	require.Contains(t, c.Args, "--oidc-issuer=https://idp.example.com")
	require.Contains(t, c.Args, "--namespace="+operatorNamespace)

	cluster, namespaced := generatedPortalRules(t)
	require.Equal(t, cluster, into[rbacv1.ClusterRole](t, find(t, objs, "ClusterRole", name)).Rules)
	role := into[rbacv1.Role](t, find(t, objs, "Role", name))
	require.Equal(t, namespaced, role.Rules)
	require.Equal(t, operatorNamespace, role.Namespace)
	for _, r := range []string{"supportstack-tenant-viewer", "supportstack-portal-workspace"} {
		find(t, objs, "ClusterRole", r)
	}
	secret := into[corev1.Secret](t, find(t, objs, "Secret", name))
	require.GreaterOrEqual(t, len(secret.Data["session-key"]), 32)
	cm := into[corev1.ConfigMap](t, find(t, objs, "ConfigMap", portal.ConfigMapName))
	_, err := portal.ParseCatalog(cm.Data[portal.CatalogKey])
	require.NoError(t, err, "the chart's default catalog")
	find(t, objs, "Ingress", name)
}
