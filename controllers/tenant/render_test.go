package tenant

import (
	"testing"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/supportstack/supportstack/api/v1alpha1"
)

// The kubelet expands $(VAR) in args from the container's env, which holds the storage credentials: a display
// name must not be able to pull them into the dashboard.
func TestDisplayNameCannotExpandSecrets(t *testing.T) {
	tn := &v1alpha1.SupportTenant{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "acme"},
		Spec: v1alpha1.SupportTenantSpec{DisplayName: "Acme $(STORAGE_SECRET_KEY) & $$ Co"}}
	d := Config{ClusterDomain: "cluster.local"}.dashboardDeployment(tn)
	require.Contains(t, d.Spec.Template.Spec.Containers[0].Args, "--display-name=Acme $$(STORAGE_SECRET_KEY) & $$$$ Co")
}

// NetworkPolicies are applied before anything that runs, so that a failure halfway never leaves pods unfenced.
func TestNetworkPoliciesComeFirst(t *testing.T) {
	tn := &v1alpha1.SupportTenant{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "acme"}}
	tn.Spec.Storage.Servers = 1
	children := Config{ClusterDomain: "cluster.local"}.children(tn, ingestScale{current: -1})
	for i, kind := range []string{"NetworkPolicy", "NetworkPolicy", "NetworkPolicy", "ServiceAccount"} {
		require.Equal(t, kind, children[i].kind, "child %d", i)
	}
}
