package tenant_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/supportstack/supportstack/api/v1alpha1"
	tenantac "github.com/supportstack/supportstack/api/v1alpha1/applyconfiguration/api/v1alpha1"
	"github.com/supportstack/supportstack/internal/harness/miniotest"
	"github.com/supportstack/supportstack/internal/naming"
)

// These tests play kubelet themselves: they write the workloads' status by hand, and give the tenant a MinIO
// server started from its own credentials, so that they control exactly what the operator observes.

// setReady reports n ready pods of a workload, as the Deployment or StatefulSet controller would.
func setReady(t *testing.T, obj client.Object, n int32) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, k8s.Get(ctx, client.ObjectKeyFromObject(obj), obj))
	switch o := obj.(type) {
	case *appsv1.Deployment:
		o.Status = appsv1.DeploymentStatus{ObservedGeneration: o.Generation, Replicas: *o.Spec.Replicas,
			UpdatedReplicas: *o.Spec.Replicas, ReadyReplicas: n, AvailableReplicas: n}
	case *appsv1.StatefulSet:
		o.Status = appsv1.StatefulSetStatus{ObservedGeneration: o.Generation, Replicas: *o.Spec.Replicas,
			UpdatedReplicas: *o.Spec.Replicas, CurrentReplicas: *o.Spec.Replicas, ReadyReplicas: n, AvailableReplicas: n}
	}
	require.NoError(t, k8s.Status().Update(ctx, obj))
}

// readyTenantWithoutRunner creates a tenant, starts a MinIO server with its credentials and reports all its
// workloads ready; it returns when the tenant is Ready.
func readyTenantWithoutRunner(t *testing.T, ns, name string) (*miniotest.Server, []client.Object) {
	t.Helper()
	require.NoError(t, k8s.Create(context.Background(), newTenant(ns, name)))
	objs := tenantObjects(ns, name)
	waitForObjects(t, objs, 30*time.Second)
	creds := credentials(t, ns, name)
	srv := miniotest.Start(t, miniotest.Options{AccessKey: string(creds[naming.SecretKeyRootUser]),
		SecretKey: string(creds[naming.SecretKeyRootPassword])})
	storage.set(ns, func(*v1alpha1.SupportTenant) (string, error) { return srv.URL, nil })
	for _, i := range []int{2, 5, 9} { // StatefulSet, ingest and dashboard Deployments
		setReady(t, objs[i], 1)
	}
	waitForCondition(t, ns, name, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonAvailable, 30*time.Second)
	return srv, objs
}

func TestConditionsFollowChildren(t *testing.T) {
	ns := newNamespace(t)
	srv, objs := readyTenantWithoutRunner(t, ns, "watched")
	tn := getTenant(t, ns, "watched")
	require.Equal(t, v1alpha1.PhaseReady, tn.Status.Phase)

	// An ingest pod goes unready.
	setReady(t, objs[5], 0)
	got := waitForCondition(t, ns, "watched", v1alpha1.ConditionIngestReady, metav1.ConditionFalse, v1alpha1.ReasonPodsNotReady, 10*time.Second)
	require.Equal(t, "0/1 ingest pods ready", findCondition(got, v1alpha1.ConditionIngestReady).Message)
	ready := findCondition(got, v1alpha1.ConditionReady)
	require.Equal(t, metav1.ConditionFalse, ready.Status)
	require.Equal(t, v1alpha1.ReasonComponentsNotReady, ready.Reason)
	require.Equal(t, "not ready: IngestReady", ready.Message)
	require.Equal(t, v1alpha1.PhaseDegraded, got.Status.Phase)
	require.Equal(t, metav1.ConditionTrue, findCondition(got, v1alpha1.ConditionStorageReady).Status)
	waitForEvent(t, tn, "NotReady", corev1.EventTypeWarning)

	setReady(t, objs[5], 1)
	waitForCondition(t, ns, "watched", v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonAvailable, 10*time.Second)
	waitForEvent(t, tn, "Recovered", corev1.EventTypeNormal)

	// MinIO goes down while its pod still looks ready: the health check notices within a resync.
	srv.Stop()
	got = waitForCondition(t, ns, "watched", v1alpha1.ConditionStorageReady, metav1.ConditionFalse, v1alpha1.ReasonStorageUnreachable, 15*time.Second)
	require.False(t, got.Status.Storage.Local.Healthy)
	require.Equal(t, metav1.ConditionFalse, findCondition(got, v1alpha1.ConditionReady).Status)

	require.NoError(t, srv.Restart())
	got = waitForCondition(t, ns, "watched", v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonAvailable, 15*time.Second)
	require.True(t, got.Status.Storage.Local.Healthy)
}

// waitResyncs waits for k more reconciles of the tenant in ns. Each reconcile of a tenant with ready storage
// resolves its storage address once: those lookups count the resyncs.
func waitResyncs(t *testing.T, ns string, k int64) {
	t.Helper()
	lookups := storage.callCount(ns)
	n := lookups.Load()
	require.Eventually(t, func() bool { return lookups.Load() >= n+k }, 20*time.Second, 50*time.Millisecond,
		"the operator did not reconcile the tenant %d more times", k)
}

// waitQuiet waits until in-flight work (events, the last status patch) has settled: two resyncs in a row that
// write nothing to the API server.
func waitQuiet(t *testing.T, ns, msg string) {
	t.Helper()
	count, lookups := writes.counter(ns), storage.callCount(ns)
	before, n := count.Load(), lookups.Load()
	require.Eventually(t, func() bool {
		if w := count.Load(); w != before {
			before, n = w, lookups.Load() // a write: start counting again
			return false
		}
		return lookups.Load() >= n+2
	}, 30*time.Second, 50*time.Millisecond, msg)
}

func TestResyncOfConvergedTenantWritesNothing(t *testing.T) {
	ns := newNamespace(t)
	readyTenantWithoutRunner(t, ns, "quiet")
	count := writes.counter(ns)
	waitQuiet(t, ns, "the operator kept writing to a converged tenant")

	before := count.Load()
	waitResyncs(t, ns, 5)
	require.Zero(t, count.Load()-before, "five resyncs of a converged tenant wrote to the API server")
}

func TestDriftIsReverted(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	require.NoError(t, k8s.Create(ctx, newTenant(ns, "drifty")))
	objs := tenantObjects(ns, "drifty")
	waitForObjects(t, objs, 30*time.Second)
	tn := getTenant(t, ns, "drifty")

	// Someone edits the dashboard Deployment by hand: more replicas, another image, an extra label.
	dash := objs[9].(*appsv1.Deployment)
	wantImage := dash.Spec.Template.Spec.Containers[0].Image
	dash.Spec.Replicas = ptr.To[int32](5)
	dash.Spec.Template.Spec.Containers[0].Image = "evil:latest"
	dash.Labels["team"] = "support"
	require.NoError(t, k8s.Update(ctx, dash))
	// And deletes the MinIO Service.
	require.NoError(t, k8s.Delete(ctx, objs[3]))

	require.Eventually(t, func() bool {
		d := &appsv1.Deployment{}
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(dash), d); err != nil {
			return false
		}
		return *d.Spec.Replicas == 1 && d.Spec.Template.Spec.Containers[0].Image == wantImage
	}, 20*time.Second, 100*time.Millisecond, "the dashboard Deployment was not reverted")
	d := &appsv1.Deployment{}
	require.NoError(t, k8s.Get(ctx, client.ObjectKeyFromObject(dash), d))
	require.Equal(t, "support", d.Labels["team"], "fields the operator does not own are left alone")

	require.Eventually(t, func() bool {
		err := k8s.Get(ctx, client.ObjectKeyFromObject(objs[3]), &corev1.Service{})
		return !apierrors.IsNotFound(err)
	}, 20*time.Second, 100*time.Millisecond, "the deleted MinIO Service was not recreated")
	waitForEvent(t, tn, "Updated", corev1.EventTypeNormal)
}

func TestForeignCredentialsSecretIsNotTakenOver(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	foreign := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "taken-credentials"},
		StringData: map[string]string{"password": "someone else's"}}
	require.NoError(t, k8s.Create(ctx, foreign))
	require.NoError(t, k8s.Create(ctx, newTenant(ns, "taken")))

	got := waitForCondition(t, ns, "taken", v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonApplyFailed, 20*time.Second)
	require.Contains(t, findCondition(got, v1alpha1.ConditionReady).Message, "secret taken-credentials exists and is not managed by supportstack")
	waitForEvent(t, got, "CredentialsFailed", corev1.EventTypeWarning)
	s := &corev1.Secret{}
	require.NoError(t, k8s.Get(ctx, client.ObjectKeyFromObject(foreign), s))
	require.Equal(t, map[string][]byte{"password": []byte("someone else's")}, s.Data, "the foreign Secret must be left as it was")

	// Once the owner removes it, the operator carries on by itself.
	require.NoError(t, k8s.Delete(ctx, s))
	require.Eventually(t, func() bool {
		s := &corev1.Secret{}
		err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "taken-credentials"}, s)
		return err == nil && len(s.Data[naming.SecretKeySigningKey]) > 0
	}, 20*time.Second, 100*time.Millisecond, "the operator did not create its credentials after the foreign Secret was deleted")
}

func TestIngressFollowsHost(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	tn := newTenant(ns, "public")
	tn.Spec.Ingest.Host = "ingest.public.example.com"
	require.NoError(t, k8s.Create(ctx, tn))
	ing := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "public-ingest"}}
	waitForObjects(t, []client.Object{ing}, 30*time.Second)

	updateTenant(t, ns, "public", func(tn *v1alpha1.SupportTenant) { tn.Spec.Ingest.Host = "" })
	got := getTenant(t, ns, "public")
	require.Eventually(t, func() bool {
		return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKeyFromObject(ing), &networkingv1.Ingress{}))
	}, 20*time.Second, 100*time.Millisecond, "the Ingress of a cleared host was not deleted")
	waitForEvent(t, got, "Deleted", corev1.EventTypeNormal)
	d := &appsv1.Deployment{}
	require.NoError(t, k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "public-ingest"}, d))
	require.Eventually(t, func() bool {
		_ = k8s.Get(ctx, client.ObjectKeyFromObject(d), d)
		for _, a := range d.Spec.Template.Spec.Containers[0].Args {
			if a == "--ingest-endpoints=http://public-ingest."+ns+".svc.cluster.local" {
				return true
			}
		}
		return false
	}, 20*time.Second, 100*time.Millisecond, "ingest still advertises the removed host: %v", d.Spec.Template.Spec.Containers[0].Args)
}

// The HorizontalPodAutoscaler scales ingest through the scale subresource; the operator must leave its choice
// alone and keep writing nothing on resync.
func TestAutoscalerKeepsItsReplicas(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	_, objs := readyTenantWithoutRunner(t, ns, "scaled")
	dep := objs[5].(*appsv1.Deployment)
	require.Equal(t, "scaled-ingest", dep.Name)
	scale := &autoscalingv1.Scale{Spec: autoscalingv1.ScaleSpec{Replicas: 3}}
	require.NoError(t, k8s.SubResource("scale").Update(ctx, dep, client.WithSubResourceBody(scale),
		client.FieldOwner("horizontal-pod-autoscaler")))

	waitQuiet(t, ns, "the operator kept writing after the autoscaler scaled ingest")
	require.NoError(t, k8s.Get(ctx, client.ObjectKeyFromObject(dep), dep))
	require.Equal(t, int32(3), *dep.Spec.Replicas, "the autoscaler's choice was overwritten")
	// The operator did not take the field back: it stays the autoscaler's, so the next scaling is not undone.
	owned, err := appsv1ac.ExtractDeployment(dep, naming.FieldOwner)
	require.NoError(t, err)
	require.Nil(t, owned.Spec.Replicas, "the operator took spec.replicas back from the autoscaler")
}

// A PeerCluster that declares where its traffic enters this cluster, created after the tenant that replicates to
// it, opens the tenant's MinIO to that path, and to nothing more.
func TestPeerInboundFollowsThePeerCluster(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	peerName := "peer-" + ns
	tn := newTenant(ns, "twin")
	tn.Spec.Replication = &v1alpha1.ReplicationSpec{Peer: peerName}
	require.NoError(t, k8s.Create(ctx, tn))
	np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "twin-storage"}}
	waitForObjects(t, []client.Object{np}, 30*time.Second)
	sources := func() int {
		_ = k8s.Get(ctx, client.ObjectKeyFromObject(np), np)
		return len(np.Spec.Ingress[0].From)
	}
	before := sources()
	require.Positive(t, before, "the tenant's MinIO admits named sources only")

	peer := &v1alpha1.PeerCluster{ObjectMeta: metav1.ObjectMeta{Name: peerName}, Spec: v1alpha1.PeerClusterSpec{
		KubeconfigSecretRef: v1alpha1.SecretKeyReference{Namespace: "supportstack-system", Name: "west-kubeconfig"},
		StorageURLTemplate:  "https://{{tenant}}-s3.west.example.com",
		IngestURLTemplate:   "https://{{tenant}}-ingest.west.example.com",
		Inbound:             &v1alpha1.PeerInbound{Namespaces: []string{"ingress-nginx"}, CIDRs: []string{"203.0.113.0/24"}},
	}}
	require.NoError(t, k8s.Create(ctx, peer))
	t.Cleanup(func() { _ = k8s.Delete(ctx, peer) })
	require.Eventually(t, func() bool { return sources() == before+2 }, 20*time.Second, 100*time.Millisecond, "the storage NetworkPolicy did not admit the declared path: %+v", np.Spec.Ingress)
	require.Equal(t, "203.0.113.0/24", np.Spec.Ingress[0].From[before+1].IPBlock.CIDR)
}

// The tenant's status has several writers, each applying its own part under its own field owner: what another
// controller writes (here a Replicating condition, under a field owner of its own) survives the tenant
// controller's reconciles, and the tenant controller alone computes Ready, from all the conditions present.
func TestStatusWrittenByOthersIsKept(t *testing.T) {
	// Not the replication controller's own field owner: that controller runs here too and clears what it owns of
	// a tenant without replication.
	const otherWriter = "supportstack-test-writer"
	ctx := context.Background()
	ns := newNamespace(t)
	startRunner(t, ns)
	require.NoError(t, k8s.Create(ctx, newTenant(ns, "shared")))
	waitForCondition(t, ns, "shared", v1alpha1.ConditionReady, metav1.ConditionTrue, "", 120*time.Second)

	replicating := tenantac.SupportTenant("shared", ns).WithStatus(tenantac.SupportTenantStatus().WithConditions(
		metav1ac.Condition().WithType(v1alpha1.ConditionReplicating).WithStatus(metav1.ConditionFalse).
			WithReason("PeerUnreachable").WithMessage("the peer does not answer").WithLastTransitionTime(metav1.Now())))
	require.NoError(t, k8s.Status().Apply(ctx, replicating, client.FieldOwner(otherWriter), client.ForceOwnership))

	// A change of spec makes the tenant controller write its part again.
	updateTenant(t, ns, "shared", func(tn *v1alpha1.SupportTenant) { tn.Spec.DisplayName = "Shared IT" })
	require.Eventually(t, func() bool {
		got := getTenant(t, ns, "shared")
		return got.Status.ObservedGeneration == got.Generation && meta.IsStatusConditionTrue(got.Status.Conditions, v1alpha1.ConditionReady)
	}, 30*time.Second, 100*time.Millisecond, "the tenant did not converge on its new generation")
	got := getTenant(t, ns, "shared")
	c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReplicating)
	require.NotNil(t, c, "another writer's condition was dropped")
	require.Equal(t, "PeerUnreachable", c.Reason)
	owners := map[string]bool{}
	for _, f := range got.ManagedFields {
		if f.Subresource == "status" {
			owners[f.Manager] = true
		}
	}
	require.True(t, owners[naming.StatusOwnerTenant] && owners[otherWriter], "status owners: %v", owners)
}
