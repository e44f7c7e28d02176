package tenant_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	agentclient "github.com/supportstack/supportstack/agent/client"
	"github.com/supportstack/supportstack/api/v1alpha1"
	"github.com/supportstack/supportstack/internal/harness/promtest"
	"github.com/supportstack/supportstack/internal/naming"
	"github.com/supportstack/supportstack/internal/objectstore"
	"github.com/supportstack/supportstack/internal/protocol"
)

// tenantObjects are the objects a tenant without a dashboard host must have, by name.
func tenantObjects(ns, name string) []client.Object {
	om := func(n string) metav1.ObjectMeta { return metav1.ObjectMeta{Namespace: ns, Name: n} }
	return []client.Object{
		&corev1.Secret{ObjectMeta: om(name + "-credentials")},
		&corev1.ServiceAccount{ObjectMeta: om(name)},
		&appsv1.StatefulSet{ObjectMeta: om(name + "-minio")},
		&corev1.Service{ObjectMeta: om(name + "-minio")},
		&corev1.Service{ObjectMeta: om(name + "-minio-hl")},
		&appsv1.Deployment{ObjectMeta: om(name + "-ingest")},
		&corev1.Service{ObjectMeta: om(name + "-ingest")},
		&autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: om(name + "-ingest")},
		&policyv1.PodDisruptionBudget{ObjectMeta: om(name + "-ingest")},
		&appsv1.Deployment{ObjectMeta: om(name + "-dashboard")},
		&corev1.Service{ObjectMeta: om(name + "-dashboard")},
		&networkingv1.NetworkPolicy{ObjectMeta: om(name + "-storage")},
		&networkingv1.NetworkPolicy{ObjectMeta: om(name + "-ingest")},
		&networkingv1.NetworkPolicy{ObjectMeta: om(name + "-dashboard")},
	}
}

// waitForObjects waits until every object exists and fills them in.
func waitForObjects(t *testing.T, objs []client.Object, timeout time.Duration) {
	t.Helper()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		for _, o := range objs {
			assert.NoError(c, k8s.Get(context.Background(), client.ObjectKeyFromObject(o), o))
		}
	}, timeout, 100*time.Millisecond, "objects not created within %s", timeout)
}

// requireRestricted asserts the restricted Pod Security profile, resources and probes on a pod template.
func requireRestricted(t *testing.T, what string, pod corev1.PodSpec) {
	t.Helper()
	psc := pod.SecurityContext
	require.NotNil(t, psc, what)
	require.True(t, ptr.Deref(psc.RunAsNonRoot, false), what+": runAsNonRoot")
	require.NotNil(t, psc.SeccompProfile, what)
	require.Equal(t, corev1.SeccompProfileTypeRuntimeDefault, psc.SeccompProfile.Type, what)
	require.False(t, ptr.Deref(pod.AutomountServiceAccountToken, true), what+": no API token mounted")
	for _, c := range pod.Containers {
		sc := c.SecurityContext
		require.NotNil(t, sc, what)
		require.False(t, ptr.Deref(sc.AllowPrivilegeEscalation, true), what+": allowPrivilegeEscalation")
		require.Equal(t, []corev1.Capability{"ALL"}, sc.Capabilities.Drop, what)
		require.True(t, ptr.Deref(sc.ReadOnlyRootFilesystem, false), what+": readOnlyRootFilesystem")
		require.NotNil(t, c.ReadinessProbe, what+": readiness probe")
		require.NotNil(t, c.LivenessProbe, what+": liveness probe")
		require.False(t, c.Resources.Requests.Cpu().IsZero(), what+": cpu request")
		require.False(t, c.Resources.Requests.Memory().IsZero(), what+": memory request")
		for _, e := range c.Env {
			if e.Name == "MINIO_ROOT_PASSWORD" || e.Name == "STORAGE_SECRET_KEY" {
				require.Empty(t, e.Value, what+": secrets come from the Secret, not the spec")
				require.NotNil(t, e.ValueFrom.SecretKeyRef, what)
			}
		}
	}
}

func TestTenantConvergesToReadyWithRealPods(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	runner := startRunner(t, ns)
	tn := newTenant(ns, "acme")
	tn.Spec.Storage.RetentionDays = 30
	tn.Spec.Dashboard = v1alpha1.DashboardSpec{Exposure: v1alpha1.Exposure{Host: "acme.support.example.com", TLSSecretName: "acme-tls"}}
	tn.Spec.Ingest.Host = "ingest.acme.example.com"

	start := time.Now()
	require.NoError(t, k8s.Create(ctx, tn))
	objs := append(tenantObjects(ns, "acme"),
		&networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "acme-ingest"}},
		&networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "acme-dashboard"}})
	waitForObjects(t, objs, 30*time.Second)
	t.Logf("all %d objects created %s after create", len(objs), time.Since(start))

	got := waitForCondition(t, ns, "acme", v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonAvailable, 120*time.Second)
	t.Logf("Ready %s after create", time.Since(start))
	require.Equal(t, v1alpha1.PhaseReady, got.Status.Phase)
	require.Equal(t, got.Generation, got.Status.ObservedGeneration)
	require.NotNil(t, got.Status.FirstReadyTime)
	for _, typ := range []string{v1alpha1.ConditionStorageReady, v1alpha1.ConditionIngestReady, v1alpha1.ConditionDashboardReady} {
		c := findCondition(got, typ)
		require.Equal(t, metav1.ConditionTrue, c.Status, typ)
		require.Equal(t, got.Generation, c.ObservedGeneration, typ)
	}
	require.Equal(t, v1alpha1.SiteLocal, got.Status.Storage.ActiveSite)
	require.True(t, got.Status.Storage.Local.Healthy)
	require.Equal(t, naming.BucketName, got.Status.Storage.Bucket)
	require.Equal(t, "https://acme.support.example.com", got.Status.Endpoints.Dashboard)
	require.Equal(t, "http://ingest.acme.example.com", got.Status.Endpoints.Ingest)
	require.Equal(t, "acme-credentials", got.Status.CredentialsSecretName)

	// Every child is owned by the tenant and labelled as the operator's; the credentials Secret, like the
	// volumes it unlocks, is retained by default and has no owner.
	require.Empty(t, objs[0].GetOwnerReferences(), "a retained credentials Secret has no owner")
	for i, o := range objs {
		if i > 0 {
			requireControlledBy(t, o, got)
		}
		require.Equal(t, naming.ManagedBy, o.GetLabels()[naming.LabelManagedBy], "%T %s", o, o.GetName())
		require.Equal(t, "acme", o.GetLabels()[naming.LabelTenant], "%T %s", o, o.GetName())
	}
	sts := objs[2].(*appsv1.StatefulSet)
	requireRestricted(t, "MinIO", sts.Spec.Template.Spec)
	require.Equal(t, "10Gi", sts.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests.Storage().String())
	require.Equal(t, appsv1.RetainPersistentVolumeClaimRetentionPolicyType, sts.Spec.PersistentVolumeClaimRetentionPolicy.WhenDeleted)
	requireRestricted(t, "ingest", objs[5].(*appsv1.Deployment).Spec.Template.Spec)
	requireRestricted(t, "dashboard", objs[9].(*appsv1.Deployment).Spec.Template.Spec)
	hpa := objs[7].(*autoscalingv2.HorizontalPodAutoscaler)
	require.Equal(t, int32(1), *hpa.Spec.MinReplicas)
	require.Equal(t, int32(3), hpa.Spec.MaxReplicas)
	ing := objs[len(objs)-1].(*networkingv1.Ingress)
	require.Equal(t, "acme.support.example.com", ing.Spec.Rules[0].Host)
	require.Equal(t, "acme-tls", ing.Spec.TLS[0].SecretName)
	ingestIng := objs[len(objs)-2].(*networkingv1.Ingress)
	require.Equal(t, "ingest.acme.example.com", ingestIng.Spec.Rules[0].Host)
	require.Empty(t, ingestIng.Spec.TLS)
	// Ingest tells agents its public address.
	require.Contains(t, objs[5].(*appsv1.Deployment).Spec.Template.Spec.Containers[0].Args, "--ingest-endpoints=http://ingest.acme.example.com")

	// The credentials were generated: every key present and non-trivial.
	creds := credentials(t, ns, "acme")
	for _, k := range []string{naming.SecretKeyRootUser, naming.SecretKeyRootPassword, naming.SecretKeyEnrollmentToken, naming.SecretKeySigningKey} {
		require.GreaterOrEqual(t, len(creds[k]), 16, "key %s", k)
	}

	// The bucket in the MinIO that the operator rendered and the runner started is versioned and expires
	// records after retentionDays.
	addr, err := runner.ServiceAddress(ns, "acme-minio", naming.MinIOPort)
	require.NoError(t, err)
	mc, err := objectstore.NewClient(objectstore.Endpoint{URL: "http://" + addr,
		AccessKey: string(creds[naming.SecretKeyRootUser]), SecretKey: string(creds[naming.SecretKeyRootPassword])})
	require.NoError(t, err)
	v, err := mc.GetBucketVersioning(ctx, naming.BucketName)
	require.NoError(t, err)
	require.True(t, v.Enabled())
	lc, err := mc.GetBucketLifecycle(ctx, naming.BucketName)
	require.NoError(t, err)
	require.EqualValues(t, 30, lc.Rules[0].Expiration.Days)

	// The dashboard the operator rendered serves the tenant's page.
	dash, err := runner.ServiceAddress(ns, "acme-dashboard", 80)
	require.NoError(t, err)
	resp, err := http.Get("http://" + dash + "/")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	require.Contains(t, string(body), "Acme IT Services")

	// Prometheus sees the tenant's conditions.
	require.Equal(t, 1.0, conditionMetric(t, ns, "acme", v1alpha1.ConditionReady, "True"))
	require.Equal(t, 0.0, conditionMetric(t, ns, "acme", v1alpha1.ConditionReady, "False"))

	reasons := eventReasons(t, got)
	for _, r := range []string{"CredentialsCreated", "Created", "BucketCreated", "VersioningEnabled", "RetentionSet", "BecameReady"} {
		require.Positive(t, reasons[r], "event %s; saw %v", r, reasons)
	}
}

// conditionMetric reads supportstack_tenant_condition from the operator's metrics registry.
func conditionMetric(t *testing.T, ns, name, typ, status string) float64 {
	t.Helper()
	return promtest.Value(t, ctrlmetrics.Registry, "supportstack_tenant_condition",
		map[string]string{"namespace": ns, "tenant": name, "type": typ, "status": status})
}

func findCondition(t *v1alpha1.SupportTenant, typ string) metav1.Condition {
	for _, c := range t.Status.Conditions {
		if c.Type == typ {
			return c
		}
	}
	return metav1.Condition{}
}

func TestSuspendScalesToZeroAndKeepsData(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	runner := startRunner(t, ns)
	require.NoError(t, k8s.Create(ctx, newTenant(ns, "sleepy")))
	waitForCondition(t, ns, "sleepy", v1alpha1.ConditionReady, metav1.ConditionTrue, "", 120*time.Second)

	// Store a question, as ingest will.
	creds := credentials(t, ns, "sleepy")
	putQuestion := func() *minio.Client {
		addr, err := runner.ServiceAddress(ns, "sleepy-minio", naming.MinIOPort)
		require.NoError(t, err)
		mc, err := objectstore.NewClient(objectstore.Endpoint{URL: "http://" + addr,
			AccessKey: string(creds[naming.SecretKeyRootUser]), SecretKey: string(creds[naming.SecretKeyRootPassword])})
		require.NoError(t, err)
		return mc
	}
	mc := putQuestion()
	_, err := mc.PutObject(ctx, naming.BucketName, "questions/dev1/q1.json", bytes.NewReader([]byte(`{"text":"why is my PC slow?"}`)), -1, minio.PutObjectOptions{})
	require.NoError(t, err)

	updateTenant(t, ns, "sleepy", func(tn *v1alpha1.SupportTenant) { tn.Spec.Suspend = true })
	got := waitForCondition(t, ns, "sleepy", v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonSuspended, 30*time.Second)
	require.Equal(t, v1alpha1.PhaseSuspended, got.Status.Phase)
	for _, name := range []string{"sleepy-ingest", "sleepy-dashboard"} {
		d := &appsv1.Deployment{}
		require.NoError(t, k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, d))
		require.Equal(t, int32(0), *d.Spec.Replicas, name)
	}
	sts := &appsv1.StatefulSet{}
	require.NoError(t, k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "sleepy-minio"}, sts))
	require.Equal(t, int32(0), *sts.Spec.Replicas)
	// No process of the tenant runs any more.
	require.Eventually(t, func() bool {
		for _, p := range runner.Pods() {
			if p.Namespace == ns {
				return false
			}
		}
		return true
	}, 30*time.Second, 100*time.Millisecond, "processes still running: %v", runner.Pods())
	require.Equal(t, creds, credentials(t, ns, "sleepy"), "suspend must keep the credentials")

	updateTenant(t, ns, "sleepy", func(tn *v1alpha1.SupportTenant) { tn.Spec.Suspend = false })
	waitForCondition(t, ns, "sleepy", v1alpha1.ConditionReady, metav1.ConditionTrue, "", 120*time.Second)
	obj, err := putQuestion().GetObject(ctx, naming.BucketName, "questions/dev1/q1.json", minio.GetObjectOptions{})
	require.NoError(t, err)
	data, err := io.ReadAll(obj)
	require.NoError(t, err)
	require.JSONEq(t, `{"text":"why is my PC slow?"}`, string(data), "the question stored before suspend must survive it")
}

func TestDeletingTenantGarbageCollectsChildren(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	for name, policy := range map[string]v1alpha1.ReclaimPolicy{"keep": "", "purge": v1alpha1.ReclaimDelete} {
		tn := newTenant(ns, name)
		tn.Spec.Storage.ReclaimPolicy = policy
		require.NoError(t, k8s.Create(ctx, tn))
	}
	keep, purge := tenantObjects(ns, "keep"), tenantObjects(ns, "purge")
	waitForObjects(t, append(keep, purge...), 30*time.Second)
	require.Equal(t, appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
		keep[2].(*appsv1.StatefulSet).Spec.PersistentVolumeClaimRetentionPolicy.WhenDeleted, "volumes are kept by default")
	require.Equal(t, appsv1.DeletePersistentVolumeClaimRetentionPolicyType,
		purge[2].(*appsv1.StatefulSet).Spec.PersistentVolumeClaimRetentionPolicy.WhenDeleted, "reclaimPolicy Delete deletes volumes")

	requireControlledBy(t, purge[0], getTenant(t, ns, "purge"))
	keepCredentials := credentials(t, ns, "keep")

	// Deleting removes what the operator made; the credentials of a tenant that keeps its volumes stay.
	for name, objs := range map[string][]client.Object{"keep": keep[1:], "purge": purge} {
		require.NoError(t, k8s.Delete(ctx, getTenant(t, ns, name)))
		require.EventuallyWithT(t, func(c *assert.CollectT) {
			var left []string
			for _, o := range objs {
				if err := k8s.Get(ctx, client.ObjectKeyFromObject(o), o); !apierrors.IsNotFound(err) {
					left = append(left, o.GetName())
				}
			}
			assert.Empty(c, left, "garbage collection left these of %s", name)
		}, 60*time.Second, 100*time.Millisecond)
	}
	require.Equal(t, keepCredentials, credentials(t, ns, "keep"), "the retained credentials were lost")

	// Recreated on its retained volumes, the tenant gets its credentials back: enrolled agents keep working.
	require.NoError(t, k8s.Create(ctx, newTenant(ns, "keep")))
	waitForObjects(t, tenantObjects(ns, "keep"), 30*time.Second)
	require.Eventually(t, func() bool {
		got := getTenant(t, ns, "keep")
		c := findCondition(got, v1alpha1.ConditionReady)
		return c.Type != "" && c.Reason != v1alpha1.ReasonApplyFailed
	}, 20*time.Second, 100*time.Millisecond, "the recreated tenant did not adopt its retained Secret")
	require.Equal(t, keepCredentials, credentials(t, ns, "keep"), "recreating the tenant rotated its credentials")

}

// Without a public host, ingest hands agents the address the local workload runner gave its pod, so an agent on
// this machine (the demo's) reaches what it was told: enrolling there and sending a batch works.
func TestIngestAdvertisesAnAddressAgentsHereReach(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	runner := startRunner(t, ns)
	require.NoError(t, k8s.Create(ctx, newTenant(ns, "near")))
	waitForCondition(t, ns, "near", v1alpha1.ConditionReady, metav1.ConditionTrue, "", 120*time.Second)
	addr, err := runner.ServiceAddress(ns, "near-ingest", 80)
	require.NoError(t, err)
	creds := credentials(t, ns, "near")
	resp, err := (&agentclient.Client{}).Enroll(ctx, "http://"+addr, string(creds[naming.SecretKeyEnrollmentToken]),
		protocol.EnrollRequest{Hostname: "demo-pc"})
	require.NoError(t, err)
	require.NotEmpty(t, resp.Endpoints)
	for _, ep := range resp.Endpoints {
		ack, err := (&agentclient.Client{}).SendBatch(ctx, ep, resp.Credential, &protocol.Batch{DeviceID: resp.DeviceID,
			Records: []protocol.Record{{Seq: 1, Kind: protocol.KindPerf, Time: time.Now(), Data: []byte(`{"cpu":1}`)}}})
		require.NoError(t, err, "advertised endpoint %s", ep)
		require.Equal(t, uint64(1), ack.AckedThroughSeq)
	}
}
