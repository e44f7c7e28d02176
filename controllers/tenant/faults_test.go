package tenant_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/supportstack/supportstack/api/v1alpha1"
	"github.com/supportstack/supportstack/internal/harness/promtest"
	"github.com/supportstack/supportstack/internal/naming"
)

// TestTenantOverQuota: a tenant that needs more than its namespace's ResourceQuota allows says so in Ready
// (QuotaExceeded, naming the quota, the resource and both amounts) and in a Warning event, instead of pods that
// never start; it writes nothing more while it stays over quota, and raising the quota is all it takes.
func TestTenantOverQuota(t *testing.T) {
	ns := newNamespace(t)
	ctx := context.Background()
	quota := &corev1.ResourceQuota{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "compute"},
		Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{
			corev1.ResourceRequestsCPU:     resource.MustParse("100m"),
			corev1.ResourceRequestsStorage: resource.MustParse("1Ti"),
		}},
	}
	require.NoError(t, k8s.Create(ctx, quota))
	require.NoError(t, k8s.Create(ctx, newTenant(ns, "crowded")))

	got := waitForCondition(t, ns, "crowded", v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonQuotaExceeded, 30*time.Second)
	msg := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReady).Message
	assert.Contains(t, msg, "ResourceQuota compute allows requests.cpu 100m, the tenant needs ")
	assert.NotContains(t, msg, "requests.storage", "10Gi of volume fits in 1Ti")
	waitForEvent(t, got, "QuotaExceeded", corev1.EventTypeWarning)
	waitForObjects(t, tenantObjects(ns, "crowded"), 30*time.Second)

	// Observed state, not a failure to retry: once the new tenant's status has settled, resyncs (every second
	// here) find nothing to write.
	last := int64(-1)
	require.Eventually(t, func() bool {
		n := writes.counter(ns).Load()
		settled := n == last
		last = n
		return settled
	}, 30*time.Second, time.Second, "the tenant's first writes settle")
	before := writes.counter(ns).Load()
	require.Never(t, func() bool { return writes.counter(ns).Load() != before }, 3*time.Second, 100*time.Millisecond,
		"a tenant over quota writes nothing while nothing changes")

	require.NoError(t, k8s.Get(ctx, client.ObjectKeyFromObject(quota), quota))
	quota.Spec.Hard[corev1.ResourceRequestsCPU] = resource.MustParse("100")
	require.NoError(t, k8s.Update(ctx, quota))
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		ready := meta.FindStatusCondition(getTenant(t, ns, "crowded").Status.Conditions, v1alpha1.ConditionReady)
		assert.NotEqual(c, v1alpha1.ReasonQuotaExceeded, ready.Reason, ready.Message)
	}, 30*time.Second, 100*time.Millisecond, "the raised quota lets the tenant go on")
}

// TestAPIServerRefusesAnObject: the API server refuses one of the tenant's objects (an admission policy here; a
// quota on object counts or a webhook in a cluster). Ready says ApplyFailed with the API server's own message,
// the operator retries with growing delays rather than in a hot loop, and once the API server accepts the object
// the tenant converges with no restart.
func TestAPIServerRefusesAnObject(t *testing.T) {
	ns := newNamespace(t)
	ctx := context.Background()
	policy := &admissionv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "refuse-ingest-" + ns},
		Spec: admissionv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionv1.Fail),
			MatchConstraints: &admissionv1.MatchResources{ResourceRules: []admissionv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionv1.RuleWithOperations{
					Operations: []admissionv1.OperationType{admissionv1.Create, admissionv1.Update},
					Rule:       admissionv1.Rule{APIGroups: []string{"apps"}, APIVersions: []string{"v1"}, Resources: []string{"deployments"}},
				},
			}}},
			Validations: []admissionv1.Validation{{
				Expression: "!object.metadata.name.endsWith('-ingest')",
				Message:    "ingest Deployments are frozen in this namespace",
			}},
		},
	}
	binding := &admissionv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: policy.Name},
		Spec: admissionv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        policy.Name,
			ValidationActions: []admissionv1.ValidationAction{admissionv1.Deny},
			MatchResources: &admissionv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{corev1.LabelMetadataName: ns}}},
		},
	}
	require.NoError(t, k8s.Create(ctx, policy))
	require.NoError(t, k8s.Create(ctx, binding))
	t.Cleanup(func() {
		_ = k8s.Delete(context.Background(), binding)
		_ = k8s.Delete(context.Background(), policy)
	})
	// Policies take effect once the API server has loaded them: probe with an object of the test's own.
	require.Eventually(t, func() bool {
		probe := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "probe-ingest"},
			Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"a": "b"}},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"a": "b"}},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}}}}}
		return k8s.Create(ctx, probe, client.DryRunAll) != nil
	}, 30*time.Second, 100*time.Millisecond)

	errorsBefore := reconcileErrors(t)
	require.NoError(t, k8s.Create(ctx, newTenant(ns, "refused")))
	got := waitForCondition(t, ns, "refused", v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonApplyFailed, 30*time.Second)
	msg := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReady).Message
	assert.Contains(t, msg, "apply Deployment "+naming.Ingest("refused"))
	assert.Contains(t, msg, "ingest Deployments are frozen in this namespace")

	// Retries back off: a hot loop would fail thousands of times in these seconds.
	require.Never(t, func() bool { return reconcileErrors(t)-errorsBefore > 50 }, 5*time.Second, 100*time.Millisecond,
		"the operator retries a refused object with growing delays")
	t.Logf("%.0f failed reconciles in the first seconds of the refusal", reconcileErrors(t)-errorsBefore)

	require.NoError(t, k8s.Delete(ctx, binding))
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		ready := meta.FindStatusCondition(getTenant(t, ns, "refused").Status.Conditions, v1alpha1.ConditionReady)
		assert.NotEqual(c, v1alpha1.ReasonApplyFailed, ready.Reason, ready.Message)
		assert.NoError(c, k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: naming.Ingest("refused")}, &appsv1.Deployment{}))
	}, time.Minute, 200*time.Millisecond, "the tenant converges once the API server accepts its objects")
}

func reconcileErrors(t *testing.T) float64 {
	t.Helper()
	return promtest.Value(t, ctrlmetrics.Registry, "controller_runtime_reconcile_errors_total",
		map[string]string{"controller": "supporttenant"})
}
