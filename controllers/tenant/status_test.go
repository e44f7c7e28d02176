package tenant

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/supportstack/supportstack/api/v1alpha1"
)

func TestConditions(t *testing.T) {
	up := workload{found: true, desired: 2, ready: 2, observed: true}
	healthy := observation{generation: 3, storage: up, ingest: up, dashboard: up, storageChecked: true, retentionDays: 7}
	with := func(f func(*observation)) observation {
		o := healthy
		f(&o)
		return o
	}
	type want struct {
		status          metav1.ConditionStatus
		reason, message string
	}
	tests := map[string]struct {
		obs    observation
		others []metav1.Condition // written by other controllers
		want   map[string]want
	}{
		"all up": {healthy, nil, map[string]want{
			v1alpha1.ConditionReady:        {metav1.ConditionTrue, v1alpha1.ReasonAvailable, ""},
			v1alpha1.ConditionStorageReady: {metav1.ConditionTrue, v1alpha1.ReasonAvailable, "bucket supportstack is versioned and keeps records for 7 days"},
			v1alpha1.ConditionIngestReady:  {metav1.ConditionTrue, v1alpha1.ReasonAvailable, "2/2 ingest pods ready"},
		}},
		"ingest pod down": {with(func(o *observation) { o.ingest.ready = 1 }), nil, map[string]want{
			v1alpha1.ConditionReady:       {metav1.ConditionFalse, v1alpha1.ReasonComponentsNotReady, "not ready: IngestReady"},
			v1alpha1.ConditionIngestReady: {metav1.ConditionFalse, v1alpha1.ReasonPodsNotReady, "1/2 ingest pods ready"},
		}},
		"workloads not created yet": {with(func(o *observation) { o.storage, o.dashboard = workload{}, workload{} }), nil, map[string]want{
			v1alpha1.ConditionReady:          {metav1.ConditionFalse, v1alpha1.ReasonComponentsNotReady, "not ready: StorageReady, DashboardReady"},
			v1alpha1.ConditionDashboardReady: {metav1.ConditionFalse, v1alpha1.ReasonReconciling, "dashboard pods are being created"},
		}},
		"rollout not observed": {with(func(o *observation) { o.dashboard.observed = false }), nil, map[string]want{
			v1alpha1.ConditionDashboardReady: {metav1.ConditionFalse, v1alpha1.ReasonReconciling, "dashboard pods are being updated"},
		}},
		"MinIO unreachable": {with(func(o *observation) { o.storageErr = errors.New("storage health check: connection refused") }), nil, map[string]want{
			v1alpha1.ConditionStorageReady: {metav1.ConditionFalse, v1alpha1.ReasonStorageUnreachable, "storage health check: connection refused"},
			v1alpha1.ConditionReady:        {metav1.ConditionFalse, v1alpha1.ReasonComponentsNotReady, "not ready: StorageReady"},
		}},
		"bucket failed": {with(func(o *observation) { o.bucketErr = errors.New("create bucket: denied") }), nil, map[string]want{
			v1alpha1.ConditionStorageReady: {metav1.ConditionFalse, v1alpha1.ReasonBucketNotConfigured, "create bucket: denied"},
		}},
		"storage pods ready but not yet checked": {with(func(o *observation) { o.storageChecked = false }), nil, map[string]want{
			v1alpha1.ConditionStorageReady: {metav1.ConditionFalse, v1alpha1.ReasonReconciling, "checking MinIO"},
		}},
		"erasure set with a server down and write quorum serves": {with(func(o *observation) { o.storage = workload{found: true, desired: 4, ready: 3, observed: true} }), nil, map[string]want{
			v1alpha1.ConditionStorageReady: {metav1.ConditionTrue, v1alpha1.ReasonServersUnavailable, "3/4 MinIO servers ready: the erasure set serves with reduced redundancy"},
			v1alpha1.ConditionReady:        {metav1.ConditionTrue, v1alpha1.ReasonAvailable, ""},
		}},
		"erasure set without write quorum does not": {with(func(o *observation) {
			o.storage = workload{found: true, desired: 4, ready: 2, observed: true}
			o.storageErr = errors.New("storage health check: 503 Service Unavailable")
		}), nil, map[string]want{
			v1alpha1.ConditionStorageReady: {metav1.ConditionFalse, v1alpha1.ReasonStorageUnreachable, "2/4 MinIO servers ready: storage health check: 503 Service Unavailable"},
			v1alpha1.ConditionReady:        {metav1.ConditionFalse, v1alpha1.ReasonComponentsNotReady, "not ready: StorageReady"},
		}},
		"erasure set with a server down, not yet checked": {with(func(o *observation) {
			o.storage = workload{found: true, desired: 4, ready: 3, observed: true}
			o.storageChecked = false
		}), nil, map[string]want{
			v1alpha1.ConditionStorageReady: {metav1.ConditionFalse, v1alpha1.ReasonReconciling, "checking MinIO"},
		}},
		"a lone server down is not a partial set": {with(func(o *observation) { o.storage = workload{found: true, desired: 1, ready: 0, observed: true} }), nil, map[string]want{
			v1alpha1.ConditionStorageReady: {metav1.ConditionFalse, v1alpha1.ReasonPodsNotReady, "0/1 MinIO servers ready"},
		}},
		"apply failed wins over components": {with(func(o *observation) { o.applyErr = errors.New("apply Service x: forbidden"); o.ingest.ready = 0 }), nil, map[string]want{
			v1alpha1.ConditionReady: {metav1.ConditionFalse, v1alpha1.ReasonApplyFailed, "apply Service x: forbidden"},
		}},
		"another writer's informational condition does not decide": {obs: healthy,
			others: []metav1.Condition{{Type: v1alpha1.ConditionPeerReachable, Status: metav1.ConditionFalse, Reason: "Unreachable"}},
			want:   map[string]want{v1alpha1.ConditionReady: {metav1.ConditionTrue, v1alpha1.ReasonAvailable, ""}}},
		"another writer's deciding condition does": {obs: healthy,
			others: []metav1.Condition{{Type: "Serving", Status: metav1.ConditionFalse, Reason: "BothSitesDown"}},
			want:   map[string]want{v1alpha1.ConditionReady: {metav1.ConditionFalse, v1alpha1.ReasonComponentsNotReady, "not ready: Serving"}}},
		"suspended": {with(func(o *observation) { o.suspended = true; o.ingest.ready = 0 }), nil, map[string]want{
			v1alpha1.ConditionReady:        {metav1.ConditionFalse, v1alpha1.ReasonSuspended, ""},
			v1alpha1.ConditionStorageReady: {metav1.ConditionFalse, v1alpha1.ReasonSuspended, ""},
			v1alpha1.ConditionIngestReady:  {metav1.ConditionFalse, v1alpha1.ReasonSuspended, ""},
		}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := withOwnConditions(tc.others, tc.obs, metav1.Now())
			require.Len(t, got, 4+len(tc.others))
			for typ, w := range tc.want {
				c := meta.FindStatusCondition(got, typ)
				require.NotNil(t, c, typ)
				require.Equal(t, w.status, c.Status, typ)
				require.Equal(t, w.reason, c.Reason, typ)
				if w.message != "" {
					require.Equal(t, w.message, c.Message, typ)
				}
				require.Equal(t, int64(3), c.ObservedGeneration)
			}
		})
	}
}

func TestPhase(t *testing.T) {
	ready := []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue}}
	notReady := []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse}}
	require.Equal(t, v1alpha1.PhaseSuspended, phase(ready, true, true, false))
	require.Equal(t, v1alpha1.PhaseReady, phase(ready, false, true, false))
	require.Equal(t, v1alpha1.PhaseProvisioning, phase(notReady, false, false, false))
	require.Equal(t, v1alpha1.PhaseFailedOver, phase(ready, false, true, true))
	require.Equal(t, v1alpha1.PhaseSuspended, phase(ready, true, true, true))
	require.Equal(t, v1alpha1.PhaseDegraded, phase(notReady, false, true, false))
}

// A resync that observes the same state must compute the same status, timestamps included; otherwise every
// resync would write.
func TestDesiredStatusIsStableAcrossResyncs(t *testing.T) {
	c := Config{ClusterDomain: "cluster.local"}
	tn := &v1alpha1.SupportTenant{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "acme", Generation: 2}}
	up := workload{found: true, desired: 1, ready: 1, observed: true}
	obs := observation{generation: 2, storage: up, ingest: up, dashboard: up, storageChecked: true, retentionDays: 365}

	first := c.desiredStatus(tn, obs, time.Unix(1000, 0))
	tn.Status = first
	second := c.desiredStatus(tn, obs, time.Unix(2000, 0))
	require.Equal(t, first, second)

	obs.storageErr = errors.New("down")
	third := c.desiredStatus(tn, obs, time.Unix(3000, 0))
	require.False(t, third.Storage.Local.Healthy)
	require.Equal(t, time.Unix(3000, 0), third.Storage.Local.Since.Time, "since moves when health changes")
	require.Equal(t, v1alpha1.PhaseDegraded, third.Phase, "a tenant that was Ready once is degraded, not provisioning")
}

func TestIngestReplicasRespectTheAutoscaler(t *testing.T) {
	tn := &v1alpha1.SupportTenant{Spec: v1alpha1.SupportTenantSpec{Ingest: v1alpha1.IngestSpec{Replicas: 2, MaxReplicas: 10}}}
	suspended := tn.DeepCopy()
	suspended.Spec.Suspend = true
	tests := map[string]struct {
		tenant *v1alpha1.SupportTenant
		scale  ingestScale
		want   *int32 // nil: left to the autoscaler
	}{
		"new deployment":                        {tn, ingestScale{current: -1}, ptr.To[int32](2)},
		"below the minimum":                     {tn, ingestScale{current: 1, operatorOwned: true}, ptr.To[int32](2)},
		"below the minimum, autoscaler's field": {tn, ingestScale{current: 1}, ptr.To[int32](2)},
		"within bounds, operator's field":       {tn, ingestScale{current: 7, operatorOwned: true}, ptr.To[int32](7)},
		"within bounds, autoscaler's field":     {tn, ingestScale{current: 7}, nil},
		"above a lowered maximum":               {tn, ingestScale{current: 12}, ptr.To[int32](10)},
		"suspended":                             {suspended, ingestScale{current: 7}, ptr.To[int32](0)},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			require.Equal(t, tc.want, ingestReplicas(tc.tenant, tc.scale))
		})
	}
}

func TestMinIOArgs(t *testing.T) {
	c := Config{ClusterDomain: "cluster.local"}
	tn := &v1alpha1.SupportTenant{ObjectMeta: metav1.ObjectMeta{Namespace: "tenant-acme", Name: "acme"}}
	tn.Spec.Storage.Servers = 1
	require.Equal(t, []string{"server", "/data", "--address", "$(POD_IP):9000", "--certs-dir", "/tmp/certs"}, c.minioArgs(tn))
	tn.Spec.Storage.Servers = 4
	require.Equal(t, []string{"server",
		"http://acme-minio-0.acme-minio-hl.tenant-acme.svc.cluster.local:9000/data",
		"http://acme-minio-1.acme-minio-hl.tenant-acme.svc.cluster.local:9000/data",
		"http://acme-minio-2.acme-minio-hl.tenant-acme.svc.cluster.local:9000/data",
		"http://acme-minio-3.acme-minio-hl.tenant-acme.svc.cluster.local:9000/data",
		"--address", "$(POD_IP):9000", "--certs-dir", "/tmp/certs"}, c.minioArgs(tn))
}

func TestQuotaNeeds(t *testing.T) {
	c := Config{ClusterDomain: "cluster.local"}
	size := resource.MustParse("100Gi")
	tn := &v1alpha1.SupportTenant{ObjectMeta: metav1.ObjectMeta{Namespace: "tenant-acme", Name: "acme"}}
	tn.Spec.Storage = v1alpha1.StorageSpec{Servers: 4, Size: &size, StorageClassName: ptr.To("fast")}
	tn.Spec.Ingest.Replicas, tn.Spec.Dashboard.Replicas = 3, 1
	need := c.needs(tn)
	for name, want := range map[corev1.ResourceName]string{
		corev1.ResourcePods:                                 "8",
		corev1.ResourcePersistentVolumeClaims:               "4",
		corev1.ResourceRequestsStorage:                      "400Gi",
		"fast.storageclass.storage.k8s.io/requests.storage": "400Gi",
	} {
		q := need[name]
		assert.Equal(t, 0, q.Cmp(resource.MustParse(want)), "%s: got %s, want %s", name, q.String(), want)
	}
	assert.Equal(t, need[corev1.ResourceRequestsCPU], need[corev1.ResourceCPU], "cpu counts requests")

	quotas := []corev1.ResourceQuota{
		{ObjectMeta: metav1.ObjectMeta{Name: "storage"}, Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{
			corev1.ResourceRequestsStorage: resource.MustParse("1Ti"), corev1.ResourcePersistentVolumeClaims: resource.MustParse("3")}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "scoped"}, Spec: corev1.ResourceQuotaSpec{
			Scopes: []corev1.ResourceQuotaScope{corev1.ResourceQuotaScopeBestEffort},
			Hard:   corev1.ResourceList{corev1.ResourcePods: resource.MustParse("1")}}},
	}
	err := quotaExceeded(need, quotas)
	require.EqualError(t, err, "ResourceQuota storage allows persistentvolumeclaims 3, the tenant needs 4: "+
		"lower the tenant's replicas, servers, size or resources, or raise the quota")
	require.NoError(t, quotaExceeded(need, quotas[1:]), "a scoped quota is left out")
}
