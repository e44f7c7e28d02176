package tenant

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	autoscalingv2ac "k8s.io/client-go/applyconfigurations/autoscaling/v2"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	networkingv1ac "k8s.io/client-go/applyconfigurations/networking/v1"
	policyv1ac "k8s.io/client-go/applyconfigurations/policy/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/supportstack/supportstack/api/v1alpha1"
	"github.com/supportstack/supportstack/internal/naming"
)

// child is one object the operator owns for a tenant: what it should be, and how to read back the part of the
// current object that the operator's field manager owns.
type child struct {
	kind    string
	current client.Object // an empty object of the child's type, named; Get fills it
	desired runtime.ApplyConfiguration
	extract func(client.Object) (runtime.ApplyConfiguration, error)
}

// newChild ties a desired apply configuration to its object type and client-go's Extract function.
func newChild[O client.Object, AC runtime.ApplyConfiguration](kind string, current O, desired AC,
	extract func(O, string) (AC, error),
) child {
	return child{
		kind:    kind,
		current: current,
		desired: desired,
		extract: func(o client.Object) (runtime.ApplyConfiguration, error) {
			return extract(o.(O), naming.FieldOwner)
		},
	}
}

// world is what rendering a tenant needs beyond its spec: what the operator read of the cluster.
type world struct {
	// scale is what the operator knows of the ingest Deployment's replicas.
	scale ingestScale
	// peer is the PeerCluster a replicated tenant names; nil without replication or when it does not exist.
	peer *v1alpha1.PeerCluster
}

// children renders every object the tenant should have but the credentials Secret, which is created once
// rather than applied.
func (c Config) children(t *v1alpha1.SupportTenant, w world) []child {
	om := func(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Namespace: t.Namespace, Name: name} }
	// NetworkPolicies come first: a child that fails to apply must not leave the others running unfenced.
	var out []child
	for _, np := range c.networkPolicies(t, w.peer) {
		out = append(out, newChild("NetworkPolicy", &networkingv1.NetworkPolicy{ObjectMeta: om(*np.Name)},
			np, networkingv1ac.ExtractNetworkPolicy))
	}
	out = append(out, newChild("ServiceAccount", &corev1.ServiceAccount{ObjectMeta: om(naming.ServiceAccount(t.Name))},
		serviceAccount(t), corev1ac.ExtractServiceAccount))
	for _, svc := range minioServices(t) {
		out = append(out, newChild("Service", &corev1.Service{ObjectMeta: om(*svc.Name)}, svc, corev1ac.ExtractService))
	}
	out = append(out,
		newChild("StatefulSet", &appsv1.StatefulSet{ObjectMeta: om(naming.MinIO(t.Name))},
			c.minioStatefulSet(t), extractStatefulSet),
	)
	if pdb := minioDisruptionBudget(t); pdb != nil {
		out = append(out, newChild("PodDisruptionBudget", &policyv1.PodDisruptionBudget{ObjectMeta: om(naming.MinIO(t.Name))},
			pdb, policyv1ac.ExtractPodDisruptionBudget))
	}
	out = append(out,
		newChild("Deployment", &appsv1.Deployment{ObjectMeta: om(naming.Ingest(t.Name))},
			c.ingestDeployment(t, w), appsv1ac.ExtractDeployment),
		newChild("Service", &corev1.Service{ObjectMeta: om(naming.Ingest(t.Name))},
			webService(t, naming.Ingest(t.Name), naming.ComponentIngest), corev1ac.ExtractService),
		newChild("HorizontalPodAutoscaler", &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: om(naming.Ingest(t.Name))},
			ingestAutoscaler(t), autoscalingv2ac.ExtractHorizontalPodAutoscaler),
		newChild("PodDisruptionBudget", &policyv1.PodDisruptionBudget{ObjectMeta: om(naming.Ingest(t.Name))},
			ingestDisruptionBudget(t), policyv1ac.ExtractPodDisruptionBudget),
		newChild("Deployment", &appsv1.Deployment{ObjectMeta: om(naming.Dashboard(t.Name))},
			c.dashboardDeployment(t, w.peer), appsv1ac.ExtractDeployment),
		newChild("Service", &corev1.Service{ObjectMeta: om(naming.Dashboard(t.Name))},
			webService(t, naming.Dashboard(t.Name), naming.ComponentDashboard), corev1ac.ExtractService),
	)
	for _, ing := range []*networkingv1ac.IngressApplyConfiguration{
		ingress(t, naming.Ingest(t.Name), naming.ComponentIngest, t.Spec.Ingest.Exposure),
		ingress(t, naming.Dashboard(t.Name), naming.ComponentDashboard, t.Spec.Dashboard.Exposure),
	} {
		if ing != nil {
			out = append(out, newChild("Ingress", &networkingv1.Ingress{ObjectMeta: om(*ing.Name)}, ing, networkingv1ac.ExtractIngress))
		}
	}
	return out
}

// extractStatefulSet extracts the operator's fields of a StatefulSet. Its volume claim templates form an atomic
// list, so the API server's defaults inside them (a Pending status) come along; they are not the operator's
// choice and are dropped before the comparison.
func extractStatefulSet(sts *appsv1.StatefulSet, fieldManager string) (*appsv1ac.StatefulSetApplyConfiguration, error) {
	ac, err := appsv1ac.ExtractStatefulSet(sts, fieldManager)
	if err != nil || ac.Spec == nil {
		return ac, err
	}
	for i := range ac.Spec.VolumeClaimTemplates {
		ac.Spec.VolumeClaimTemplates[i].Status = nil
	}
	return ac, nil
}

// applyOutcome says what applyChild did.
type applyOutcome int

const (
	unchanged applyOutcome = iota
	created
	updated
)

// applyChild sends the child's desired state with server-side apply, but only when the fields the operator owns
// differ from it: a resync of a converged tenant writes nothing. A change by hand to an owned field shows up in
// the extracted fields and is reverted.
func (r *Reconciler) applyChild(ctx context.Context, ch child) (applyOutcome, error) {
	outcome := created
	err := r.Get(ctx, client.ObjectKeyFromObject(ch.current), ch.current)
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return unchanged, fmt.Errorf("get %s %s: %w", ch.kind, ch.current.GetName(), err)
	default:
		owned, err := ch.extract(ch.current)
		if err != nil {
			return unchanged, fmt.Errorf("extract owned fields of %s %s: %w", ch.kind, ch.current.GetName(), err)
		}
		if equality.Semantic.DeepEqual(owned, ch.desired) {
			return unchanged, nil
		}
		outcome = updated
		log.FromContext(ctx).V(1).Info("Object differs from its desired state", "kind", ch.kind, "name", ch.current.GetName())
	}
	if err := r.Apply(ctx, ch.desired, client.ForceOwnership); err != nil {
		return unchanged, fmt.Errorf("apply %s %s: %w", ch.kind, ch.current.GetName(), err)
	}
	return outcome, nil
}

// deleteStaleIngresses removes the Ingress of a component whose host was cleared, and returns the names of
// the Ingresses it deleted.
func (r *Reconciler) deleteStaleIngresses(ctx context.Context, t *v1alpha1.SupportTenant) ([]string, error) {
	var deleted []string
	for name, host := range map[string]string{naming.Ingest(t.Name): t.Spec.Ingest.Host, naming.Dashboard(t.Name): t.Spec.Dashboard.Host} {
		if host != "" {
			continue
		}
		ing := &networkingv1.Ingress{}
		err := r.Get(ctx, client.ObjectKey{Namespace: t.Namespace, Name: name}, ing)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return deleted, fmt.Errorf("get Ingress %s: %w", name, err)
		}
		if !isControlledBy(ing, t) {
			continue
		}
		if err := r.Delete(ctx, ing); client.IgnoreNotFound(err) != nil {
			return deleted, fmt.Errorf("delete Ingress %s: %w", name, err)
		}
		deleted = append(deleted, name)
	}
	return deleted, nil
}

// isControlledBy reports whether t is o's controller.
func isControlledBy(o client.Object, t *v1alpha1.SupportTenant) bool {
	for _, ref := range o.GetOwnerReferences() {
		if ref.Controller != nil && *ref.Controller && ref.UID == t.UID {
			return true
		}
	}
	return false
}

// ChildObjects returns an empty, named object for each object the operator makes for t, the credentials Secret
// included: what to wait for, or to look at, when checking that a tenant has converged.
func (c Config) ChildObjects(t *v1alpha1.SupportTenant) []client.Object {
	out := []client.Object{&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: t.Namespace, Name: naming.CredentialsSecret(t.Name)}}}
	for _, ch := range c.children(t, world{scale: ingestScale{current: -1}}) {
		out = append(out, ch.current)
	}
	return out
}
