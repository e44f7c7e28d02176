package e2e_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/supportstack/supportstack/api/v1alpha1"
	"github.com/supportstack/supportstack/internal/harness/promtest"
	"github.com/supportstack/supportstack/internal/naming"
)

// TestDrill: a disaster-recovery drill under live traffic from 50 real agents. One annotation makes east's copy
// refuse the data plane (nothing is stopped); the agents' writes and questions go through west, the operator
// declares the failover as for an outage, the drill records the RTO the data plane measured and the RPO its
// canaries measured, restores access and the tenant fails back after a verification. A second drill is ended
// early by removing the annotation, and access is restored. Afterwards every record every agent produced is
// stored exactly once, by (device, seq), in both copies.
func TestDrill(t *testing.T) {
	home := newFailoverTenant(t, "drill", v1alpha1.FailoverAutomatic)
	key := client.ObjectKeyFromObject(home)
	waitReplicating(t, key, 3*time.Minute)
	eastStore, westStore := storage(t, east, key), storage(t, west, key)
	f := startFleet(t, key, fleetSize)

	started := time.Now()
	annotateDrill(t, key, "first")
	waitDrill(t, key, "first", v1alpha1.DrillFenced, time.Minute)
	t.Logf("east's copy fenced %s after the annotation", time.Since(started).Round(100*time.Millisecond))
	f.ask(t, "asked while east's copy refuses the data plane")
	f.requireQuestionsIn(t, westStore, 30*time.Second)
	declared := waitFailover(t, east, key, v1alpha1.FailoverFailedOver, time.Minute)
	require.Equal(t, "Drill", declared.Status.Replication.LastFailover.Trigger)
	require.Contains(t, declared.Status.Failover.Message, "drill first")
	rec := waitDrill(t, key, "first", v1alpha1.DrillSucceeded, 3*time.Minute)
	t.Logf("drill succeeded %s after the annotation: %s", time.Since(started).Round(100*time.Millisecond), rec.Message)
	require.NotNil(t, rec.RTO, "RTO measured by the data plane")
	require.Less(t, rec.RTO.Duration, 2*time.Second)
	require.NotNil(t, rec.RPO, "RPO measured by the canaries")
	require.Less(t, rec.RPO.Duration, 30*time.Second)
	require.EqualValues(t, 20, rec.Canaries)
	require.True(t, rec.Verified)
	for name, at := range map[string]*metav1.Time{"fencedAt": rec.FencedAt, "writesResumedAt": rec.WritesResumedAt,
		"declaredAt": rec.DeclaredAt, "restoredAt": rec.RestoredAt, "failedBackAt": rec.FailedBackAt} {
		require.NotNil(t, at, name)
	}
	require.False(t, rec.WritesResumedAt.Before(rec.FencedAt), "the data plane wrote through west after the fence")
	require.False(t, rec.FailedBackAt.Before(rec.RestoredAt), "failed back after access was restored")
	for _, reason := range []string{"DrillStarted", "FailedOver", "FailbackStarted", "FailedBack", "DrillSucceeded"} {
		requireEvent(t, east, key, reason)
	}
	labels := map[string]string{"namespace": key.Namespace, "tenant": key.Name, "role": "home"}
	require.Equal(t, 1.0, promtest.Value(t, metrics.Registry, "supportstack_drills_total",
		map[string]string{"namespace": key.Namespace, "tenant": key.Name, "role": "home", "result": "Succeeded"}))
	require.InDelta(t, rec.RTO.Seconds(), promtest.Value(t, metrics.Registry, "supportstack_drill_rto_seconds", labels), 0.001)
	tn := get(t, east, key)
	require.Equal(t, v1alpha1.FailoverNormal, tn.Status.Failover.State, "failed back")
	require.Equal(t, v1alpha1.SiteLocal, tn.Status.Storage.ActiveSite)
	lf := tn.Status.Replication.LastFailover
	require.True(t, lf.Verified)
	require.NotNil(t, lf.RTO, "the failover record has the data plane's RTO too")
	put(t, dataPlane(t, east, key), "drill-check/after-first", "east takes the data plane again")

	// A drill ended early: the annotation is removed while east's copy is fenced.
	annotateDrill(t, key, "second")
	waitDrill(t, key, "second", v1alpha1.DrillFenced, time.Minute)
	update(t, east, key, func(tn *v1alpha1.SupportTenant) { delete(tn.Annotations, v1alpha1.AnnotationDrill) })
	rec = waitDrill(t, key, "second", v1alpha1.DrillAborted, time.Minute)
	require.Contains(t, rec.Message, "annotation")
	require.NotNil(t, rec.RestoredAt)
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		_, err := dataPlane(t, east, key).PutObject(context.Background(), naming.BucketName, "drill-check/after-second",
			strings.NewReader("ok"), 2, minio.PutObjectOptions{})
		assert.NoError(c, err, "the data plane's user works in east again")
	}, 10*time.Second, 200*time.Millisecond)
	waitFailover(t, east, key, v1alpha1.FailoverNormal, 2*time.Minute)

	f.requireAllDelivered(t, map[string]*minio.Client{"east": eastStore, "west": westStore})
}

// annotateDrill starts a drill on east's tenant, as `kubectl annotate st … supportstack.io/drill=<name>` does.
func annotateDrill(t *testing.T, key client.ObjectKey, name string) {
	t.Helper()
	update(t, east, key, func(tn *v1alpha1.SupportTenant) {
		metav1.SetMetaDataAnnotation(&tn.ObjectMeta, v1alpha1.AnnotationDrill, name)
	})
}

// waitDrill waits until east's tenant's last drill is the named one in phase, and returns it.
func waitDrill(t *testing.T, key client.ObjectKey, name string, phase v1alpha1.DrillPhase, timeout time.Duration) *v1alpha1.DrillRecord {
	t.Helper()
	var rec *v1alpha1.DrillRecord
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		rs := get(t, east, key).Status.Replication
		if !assert.NotNil(c, rs) || !assert.NotNil(c, rs.LastDrill) {
			return
		}
		rec = rs.LastDrill
		assert.Equal(c, name, rec.Name)
		assert.Equal(c, phase, rec.Phase, rec.Message)
	}, timeout, 200*time.Millisecond)
	return rec
}
