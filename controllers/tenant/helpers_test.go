package tenant_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/supportstack/supportstack/api/v1alpha1"
	"github.com/supportstack/supportstack/internal/naming"
)

// newTenant returns a small valid tenant; the API server fills in the defaults.
func newTenant(ns, name string) *v1alpha1.SupportTenant {
	return &v1alpha1.SupportTenant{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.SupportTenantSpec{
			DisplayName: "Acme IT Services",
			Ingest:      v1alpha1.IngestSpec{Replicas: 1, MaxReplicas: 3},
		},
	}
}

// getTenant reads the tenant from the API server.
func getTenant(t *testing.T, ns, name string) *v1alpha1.SupportTenant {
	t.Helper()
	got := &v1alpha1.SupportTenant{}
	require.NoError(t, k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, got))
	return got
}

// updateTenant changes a tenant, reading it again when another writer (the operator writes its status all the
// time, and the status shares the object's resourceVersion) got there first.
func updateTenant(t *testing.T, ns, name string, mutate func(*v1alpha1.SupportTenant)) {
	t.Helper()
	require.NoError(t, retry.RetryOnConflict(retry.DefaultRetry, func() error {
		tn := &v1alpha1.SupportTenant{}
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, tn); err != nil {
			return err
		}
		mutate(tn)
		return k8s.Update(context.Background(), tn)
	}))
}

// waitForCondition waits until the tenant's condition has the status and reason (any reason when empty), and
// was computed for the tenant's current generation.
func waitForCondition(t *testing.T, ns, name, typ string, status metav1.ConditionStatus, reason string, timeout time.Duration) *v1alpha1.SupportTenant {
	t.Helper()
	var got *v1alpha1.SupportTenant
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		got = &v1alpha1.SupportTenant{}
		if !assert.NoError(c, k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, got)) {
			return
		}
		cond := meta.FindStatusCondition(got.Status.Conditions, typ)
		if !assert.NotNil(c, cond, "condition %s missing; status: %v", typ, got.Status.Conditions) {
			return
		}
		ok := cond.Status == status && (reason == "" || cond.Reason == reason) && cond.ObservedGeneration == got.Generation
		assert.True(c, ok, "want %s=%s (%s); last seen %s=%s reason=%s message=%q observedGeneration=%d generation=%d",
			typ, status, reason, typ, cond.Status, cond.Reason, cond.Message, cond.ObservedGeneration, got.Generation)
	}, timeout, 100*time.Millisecond)
	return got
}

// eventReasons lists the reasons of the events about the tenant.
func eventReasons(t *testing.T, tenant *v1alpha1.SupportTenant) map[string]int {
	t.Helper()
	list := &eventsv1.EventList{}
	require.NoError(t, k8s.List(context.Background(), list, client.InNamespace(tenant.Namespace)))
	out := map[string]int{}
	for _, e := range list.Items {
		if e.Regarding.UID == tenant.UID {
			out[e.Reason]++
		}
	}
	return out
}

// waitForEvent waits for an event about the tenant with the reason and type.
func waitForEvent(t *testing.T, tenant *v1alpha1.SupportTenant, reason, typ string) {
	t.Helper()
	require.Eventually(t, func() bool {
		list := &eventsv1.EventList{}
		if err := k8s.List(context.Background(), list, client.InNamespace(tenant.Namespace)); err != nil {
			return false
		}
		for _, e := range list.Items {
			if e.Regarding.UID == tenant.UID && e.Reason == reason && e.Type == typ {
				return true
			}
		}
		return false
	}, 20*time.Second, 100*time.Millisecond, "no %s event %s about the tenant", typ, reason)
}

// credentials reads the tenant's generated credentials.
func credentials(t *testing.T, ns, tenantName string) map[string][]byte {
	t.Helper()
	s := &corev1.Secret{}
	require.NoError(t, k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: naming.CredentialsSecret(tenantName)}, s))
	return s.Data
}

// requireControlledBy asserts that the tenant is o's controller and blocks o's deletion until o is gone, so
// that garbage collection removes o with the tenant.
func requireControlledBy(t *testing.T, o client.Object, tenant *v1alpha1.SupportTenant) {
	t.Helper()
	ref := metav1.GetControllerOf(o)
	require.NotNil(t, ref, "%T %s has no controller", o, o.GetName())
	require.Equal(t, tenant.UID, ref.UID, "%T %s", o, o.GetName())
	require.Equal(t, "SupportTenant", ref.Kind)
	require.NotNil(t, ref.BlockOwnerDeletion)
	require.True(t, *ref.BlockOwnerDeletion)
}
