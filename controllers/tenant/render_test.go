package tenant

import (
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	"github.com/supportstack/supportstack/api/v1alpha1"
	"github.com/supportstack/supportstack/internal/dashboard"
	"github.com/supportstack/supportstack/internal/naming"
)

// The kubelet expands $(VAR) in args from the container's env, which holds the storage credentials: a display
// name must not be able to pull them into the dashboard.
func TestDisplayNameCannotExpandSecrets(t *testing.T) {
	tn := &v1alpha1.SupportTenant{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "acme"},
		Spec: v1alpha1.SupportTenantSpec{DisplayName: "Acme $(STORAGE_SECRET_KEY) & $$ Co"}}
	d := Config{ClusterDomain: "cluster.local"}.dashboardDeployment(tn, nil)
	require.Contains(t, d.Spec.Template.Spec.Containers[0].Args, "--display-name=Acme $$(STORAGE_SECRET_KEY) & $$$$ Co")
}

// NetworkPolicies are applied before anything that runs, so that a failure halfway never leaves pods unfenced.
func TestNetworkPoliciesComeFirst(t *testing.T) {
	tn := &v1alpha1.SupportTenant{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "acme"}}
	tn.Spec.Storage.Servers = 1
	children := Config{ClusterDomain: "cluster.local"}.children(tn, world{scale: ingestScale{current: -1}})
	for i, kind := range []string{"NetworkPolicy", "NetworkPolicy", "NetworkPolicy", "ServiceAccount"} {
		require.Equal(t, kind, children[i].kind, "child %d", i)
	}
}

// A replicated tenant's MinIO admits its own pods, the operator's namespace and the peer's traffic only where
// its PeerCluster says that traffic enters this cluster. No case leaves the rule open to any source.
func TestStorageAdmitsThePeerOnlyThroughTheDeclaredPath(t *testing.T) {
	replicated := &v1alpha1.SupportTenant{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "acme"},
		Spec: v1alpha1.SupportTenantSpec{Replication: &v1alpha1.ReplicationSpec{Peer: "west"}}}
	single := replicated.DeepCopy()
	single.Spec.Replication = nil
	declared := &v1alpha1.PeerCluster{Spec: v1alpha1.PeerClusterSpec{Inbound: &v1alpha1.PeerInbound{
		Namespaces: []string{"ingress-nginx"}, CIDRs: []string{"203.0.113.0/24"}}}}
	undeclared := &v1alpha1.PeerCluster{}
	tests := map[string]struct {
		tenant *v1alpha1.SupportTenant
		peer   *v1alpha1.PeerCluster
		want   []string
	}{
		"single cluster":                  {single, nil, []string{"pods of acme", "namespace supportstack-system"}},
		"replicated, PeerCluster missing": {replicated, nil, []string{"pods of acme", "namespace supportstack-system"}},
		"replicated, no inbound declared": {replicated, undeclared, []string{"pods of acme", "namespace supportstack-system"}},
		"replicated, inbound declared": {replicated, declared, []string{"pods of acme", "namespace supportstack-system",
			"namespace ingress-nginx", "CIDR 203.0.113.0/24"}},
		"a PeerCluster of a tenant that does not replicate": {single, declared, []string{"pods of acme", "namespace supportstack-system"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			nps := Config{ClusterDomain: "cluster.local", OperatorNamespace: "supportstack-system"}.networkPolicies(tc.tenant, tc.peer)
			storage := nps[0]
			require.Equal(t, "acme-storage", *storage.Name)
			require.Len(t, storage.Spec.Ingress, 1)
			var got []string
			for _, from := range storage.Spec.Ingress[0].From {
				switch {
				case from.PodSelector != nil:
					got = append(got, "pods of "+from.PodSelector.MatchLabels[naming.LabelTenant])
				case from.NamespaceSelector != nil:
					got = append(got, "namespace "+from.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"])
				case from.IPBlock != nil:
					got = append(got, "CIDR "+*from.IPBlock.CIDR)
				}
			}
			require.Equal(t, tc.want, got)
		})
	}
}

func TestStorageOrder(t *testing.T) {
	tenant := func(mode v1alpha1.FailoverMode, active v1alpha1.Site) *v1alpha1.SupportTenant {
		tn := &v1alpha1.SupportTenant{Spec: v1alpha1.SupportTenantSpec{Replication: &v1alpha1.ReplicationSpec{Peer: "west"}}}
		if mode != "" {
			tn.Spec.Failover = &v1alpha1.FailoverSpec{Mode: mode}
		}
		if active != "" {
			tn.Status.Storage = &v1alpha1.StorageStatus{ActiveSite: active}
		}
		return tn
	}
	for _, tc := range []struct {
		name string
		t    *v1alpha1.SupportTenant
		want []string
	}{
		{"no failover spec: automatic", tenant("", ""), []string{"own", "peer"}},
		{"automatic, serving locally", tenant(v1alpha1.FailoverAutomatic, v1alpha1.SiteLocal), []string{"own", "peer"}},
		{"automatic, failed over: the peer until the failback is verified", tenant(v1alpha1.FailoverAutomatic, v1alpha1.SitePeer), []string{"peer", "own"}},
		{"manual: this copy only", tenant(v1alpha1.FailoverManual, v1alpha1.SiteLocal), []string{"own"}},
		{"manual, switched by a person", tenant(v1alpha1.FailoverManual, v1alpha1.SitePeer), []string{"peer", "own"}},
	} {
		t.Run(tc.name, func(t *testing.T) { require.Equal(t, tc.want, storageOrder(tc.t, "own", "peer")) })
	}
}

// The dashboard gets its sign-in secrets from the environment, never from args: from the tenant's credentials,
// or, replicated, from the shared Secret both clusters hold, so that staff sign in on either side and a session
// survives a failover.
func TestDashboardSignInSecrets(t *testing.T) {
	single := &v1alpha1.SupportTenant{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "acme"}}
	replicated := single.DeepCopy()
	replicated.Spec.Replication = &v1alpha1.ReplicationSpec{Peer: "west"}
	for tn, secret := range map[*v1alpha1.SupportTenant]string{single: naming.CredentialsSecret("acme"), replicated: naming.SharedSecret("acme")} {
		c := Config{ClusterDomain: "cluster.local"}.dashboardDeployment(tn, nil).Spec.Template.Spec.Containers[0]
		found := map[string]string{}
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				found[*e.Name] = *e.ValueFrom.SecretKeyRef.Name + "/" + *e.ValueFrom.SecretKeyRef.Key
			}
		}
		require.Equal(t, secret+"/"+naming.SecretKeyDashboardAdminPassword, found[dashboard.EnvAdminPassword])
		require.Equal(t, secret+"/"+naming.SecretKeyDashboardSessionKey, found[dashboard.EnvSessionKey])
		for _, arg := range c.Args {
			require.NotContains(t, arg, "password")
		}
	}
}

// Every container of a tenant bounds its ephemeral storage — also under resources the tenant sets without it —
// and /tmp is bounded: one tenant filling a node's disk is evicted instead of harming the others.
func TestEphemeralStorageIsBounded(t *testing.T) {
	tn := &v1alpha1.SupportTenant{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "acme"}}
	tn.Spec.Storage.Servers = 1
	tn.Spec.Ingest.Resources = &corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")}}
	c := Config{ClusterDomain: "cluster.local"}
	pods := map[string]*corev1ac.PodSpecApplyConfiguration{
		"minio":     c.minioStatefulSet(tn).Spec.Template.Spec,
		"ingest":    c.ingestDeployment(tn, world{scale: ingestScale{current: -1}}).Spec.Template.Spec,
		"dashboard": c.dashboardDeployment(tn, nil).Spec.Template.Spec,
	}
	for name, pod := range pods {
		for _, ctr := range pod.Containers {
			require.Contains(t, *ctr.Resources.Requests, corev1.ResourceEphemeralStorage, name)
			require.Contains(t, *ctr.Resources.Limits, corev1.ResourceEphemeralStorage, name)
		}
		for _, v := range pod.Volumes {
			if v.EmptyDir != nil {
				require.NotNil(t, v.EmptyDir.SizeLimit, "%s: emptyDir %s", name, *v.Name)
			}
		}
	}
	ingest := pods["ingest"].Containers[0].Resources
	require.Equal(t, resource.MustParse("1Gi"), (*ingest.Limits)[corev1.ResourceMemory], "the tenant's own limits stay")
	require.Nil(t, tn.Spec.Ingest.Resources.Requests, "the tenant's spec is not changed")
}
