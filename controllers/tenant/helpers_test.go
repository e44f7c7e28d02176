package tenant_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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

// waitForCondition waits until the tenant's condition has the status and reason (any reason when empty), and
// was computed for the tenant's current generation.
func waitForCondition(t *testing.T, ns, name, typ string, status metav1.ConditionStatus, reason string, timeout time.Duration) *v1alpha1.SupportTenant {
	t.Helper()
	var last string
	var got *v1alpha1.SupportTenant
	ok := assertEventually(timeout, func() bool {
		got = &v1alpha1.SupportTenant{}
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, got); err != nil {
			last = err.Error()
			return false
		}
		c := meta.FindStatusCondition(got.Status.Conditions, typ)
		if c == nil {
			last = "condition missing; status: " + fmt.Sprint(got.Status.Conditions)
			return false
		}
		last = fmt.Sprintf("%s=%s reason=%s message=%q observedGeneration=%d generation=%d", typ, c.Status, c.Reason,
			c.Message, c.ObservedGeneration, got.Generation)
		return c.Status == status && (reason == "" || c.Reason == reason) && c.ObservedGeneration == got.Generation
	})
	require.True(t, ok, "waited %s for %s=%s (%s); last seen: %s", timeout, typ, status, reason, last)
	return got
}

// assertEventually polls cond every 100ms until it holds or the timeout passes.
func assertEventually(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
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
	ok := assertEventually(20*time.Second, func() bool {
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
	})
	require.True(t, ok, "no %s event %s about the tenant; saw %v", typ, reason, eventReasons(t, tenant))
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
