package tenant

import (
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	networkingv1ac "k8s.io/client-go/applyconfigurations/networking/v1"

	"github.com/supportstack/supportstack/api/v1alpha1"
	"github.com/supportstack/supportstack/internal/naming"
)

// serviceAccount is the identity of the tenant's pods. None of them talks to the Kubernetes API, so no token is
// mounted and no Role is bound.
func serviceAccount(t *v1alpha1.SupportTenant) *corev1ac.ServiceAccountApplyConfiguration {
	return corev1ac.ServiceAccount(naming.ServiceAccount(t.Name), t.Namespace).
		WithLabels(naming.Labels(t.Name, "")).
		WithOwnerReferences(ownerReference(t)).
		WithAutomountServiceAccountToken(false)
}

// networkPolicies admit only the traffic each component needs:
//   - storage: S3 from the tenant's own pods and from the operator's namespace (bucket bootstrap, health), and
//     for a replicated tenant from where its PeerCluster says the peer's traffic enters this cluster (the
//     namespace of the ingress or gateway that publishes MinIO to the peer, or the peer's CIDRs): never from
//     anywhere;
//   - ingest and dashboard: HTTP from anywhere (agents and browsers arrive through Services and Ingresses).
//
// Kubelet probes are not subject to NetworkPolicy.
func (c Config) networkPolicies(t *v1alpha1.SupportTenant, peer *v1alpha1.PeerCluster) []*networkingv1ac.NetworkPolicyApplyConfiguration {
	tcp := corev1.ProtocolTCP
	port := func(p int32) *networkingv1ac.NetworkPolicyPortApplyConfiguration {
		return networkingv1ac.NetworkPolicyPort().WithProtocol(tcp).WithPort(intstr.FromInt32(p))
	}
	policy := func(component string, rules ...*networkingv1ac.NetworkPolicyIngressRuleApplyConfiguration) *networkingv1ac.NetworkPolicyApplyConfiguration {
		return networkingv1ac.NetworkPolicy(naming.NetworkPolicy(t.Name, component), t.Namespace).
			WithLabels(naming.Labels(t.Name, component)).
			WithOwnerReferences(ownerReference(t)).
			WithSpec(networkingv1ac.NetworkPolicySpec().
				WithPodSelector(selector(t, component)).
				WithPolicyTypes(networkingv1.PolicyTypeIngress).
				WithIngress(rules...))
	}

	namespace := func(ns string) *networkingv1ac.NetworkPolicyPeerApplyConfiguration {
		return networkingv1ac.NetworkPolicyPeer().WithNamespaceSelector(metav1ac.LabelSelector().
			WithMatchLabels(map[string]string{"kubernetes.io/metadata.name": ns}))
	}
	storageRule := networkingv1ac.NetworkPolicyIngressRule().WithPorts(port(naming.MinIOPort)).
		WithFrom(networkingv1ac.NetworkPolicyPeer().
			WithPodSelector(metav1ac.LabelSelector().WithMatchLabels(map[string]string{naming.LabelTenant: t.Name})))
	if c.OperatorNamespace != "" {
		storageRule.WithFrom(namespace(c.OperatorNamespace))
	}
	if t.Spec.Replication != nil && peer != nil && peer.Spec.Inbound != nil {
		for _, ns := range peer.Spec.Inbound.Namespaces {
			storageRule.WithFrom(namespace(ns))
		}
		for _, cidr := range peer.Spec.Inbound.CIDRs {
			storageRule.WithFrom(networkingv1ac.NetworkPolicyPeer().WithIPBlock(networkingv1ac.IPBlock().WithCIDR(cidr)))
		}
	}
	web := func() *networkingv1ac.NetworkPolicyIngressRuleApplyConfiguration {
		return networkingv1ac.NetworkPolicyIngressRule().WithPorts(port(naming.HTTPPort))
	}
	return []*networkingv1ac.NetworkPolicyApplyConfiguration{
		policy(naming.ComponentStorage, storageRule),
		policy(naming.ComponentIngest, web()),
		policy(naming.ComponentDashboard, web()),
	}
}
