package e2e_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/supportstack/supportstack/api/v1alpha1"
	"github.com/supportstack/supportstack/internal/harness/planes"
	"github.com/supportstack/supportstack/internal/harness/promtest"
	"github.com/supportstack/supportstack/internal/naming"
	"github.com/supportstack/supportstack/internal/objectstore"
	"github.com/supportstack/supportstack/internal/protocol"
	"github.com/supportstack/supportstack/internal/webserver"
)

// TestStorageFailover: east's MinIO stops while east's ingest runs (the founding incident). An agent's question
// is acknowledged through west's storage, the operator declares the failover after unhealthyAfter; when east's
// MinIO is back and has answered for healthyFor, the operator drives the outage's writes across, verifies both
// copies and only then fails back.
func TestStorageFailover(t *testing.T) {
	ctx := context.Background()
	home := newFailoverTenant(t, "founding", v1alpha1.FailoverAutomatic)
	key := client.ObjectKeyFromObject(home)
	waitReplicating(t, key, 3*time.Minute)
	waitFailover(t, east, key, v1alpha1.FailoverNormal, 30*time.Second)

	a, device := enrolledAgent(t, key)
	eastStore, westStore := storage(t, east, key), storage(t, west, key)
	f := startFleet(t, key, fleetSize)
	endpoints := storageEndpoints(t, east, key)
	require.Len(t, endpoints, 2, "automatic: both copies, own first")
	eastMinIO, westMinIO := endpoints[0], endpoints[1]

	release, err := east.Runner.Hold(key.Namespace, naming.MinIO(key.Name)+"-0")
	require.NoError(t, err)
	defer release()
	held := time.Now()
	q := a.ask(t, "asked while east's storage is down")
	stop := a.run(t)
	defer stop()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		_, err := readLocal(westStore, protocol.QuestionKey(device, q))
		assert.NoError(c, err, "acknowledged through west's storage")
	}, time.Minute, 100*time.Millisecond)
	t.Logf("the question asked in east is in west's storage %s after east's MinIO stopped", time.Since(held).Round(100*time.Millisecond))
	f.ask(t, "asked while east's storage is down")
	f.requireQuestionsIn(t, westStore, 30*time.Second)

	require.EventuallyWithT(t, func(c *assert.CollectT) {
		tn := get(t, east, key)
		if !assert.NotNil(c, tn.Status.Failover) || !assert.NotNil(c, tn.Status.Replication) {
			return
		}
		assert.Equal(c, v1alpha1.FailoverFailedOver, tn.Status.Failover.State, tn.Status.Failover.Message)
		assert.Equal(c, v1alpha1.SitePeer, tn.Status.Storage.ActiveSite)
		assert.Equal(c, v1alpha1.PhaseFailedOver, tn.Status.Phase)
		if lf := tn.Status.Replication.LastFailover; assert.NotNil(c, lf) {
			assert.WithinDuration(c, held, lf.At.Time, 3*time.Second, "the failover began when east's storage was first seen failing")
			assert.Equal(c, "LocalStorageFailed", lf.Trigger)
			assert.Nil(c, lf.FailedBackAt)
			// Measured by the data plane: ingest recorded its move to west's copy.
			if assert.NotNil(c, lf.RTO, "RTO recorded") && assert.NotNil(c, lf.WritesResumedAt) {
				assert.Less(c, lf.RTO.Duration, 5*time.Second)
				assert.WithinDuration(c, held, lf.WritesResumedAt.Time, 10*time.Second)
			}
		}
	}, time.Minute, 200*time.Millisecond)
	t.Logf("failover declared %s after east's MinIO stopped; RTO recorded by the data plane: %s", time.Since(held).Round(100*time.Millisecond),
		get(t, east, key).Status.Replication.LastFailover.RTO.Duration)
	requireEvent(t, east, key, "FailedOver")
	require.Eventually(t, func() bool {
		e := storageEndpoints(t, east, key)
		return len(e) == 2 && e[0] == westMinIO && e[1] == eastMinIO
	}, 30*time.Second, 100*time.Millisecond, "the data plane prefers the peer's copy until the failback is verified")
	standby := get(t, west, key)
	require.Equal(t, v1alpha1.SiteLocal, standby.Status.Storage.ActiveSite, "west's own data plane serves from west as ever")

	release()
	restored := time.Now()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		tn := get(t, east, key)
		if !assert.NotNil(c, tn.Status.Failover) {
			return
		}
		assert.Equal(c, v1alpha1.FailoverNormal, tn.Status.Failover.State, tn.Status.Failover.Message)
		assert.Equal(c, v1alpha1.SiteLocal, tn.Status.Storage.ActiveSite)
		assert.Equal(c, v1alpha1.PhaseReady, tn.Status.Phase)
		if lf := tn.Status.Replication.LastFailover; assert.NotNil(c, lf) && assert.NotNil(c, lf.FailedBackAt) {
			assert.True(c, lf.Verified, "failed back after a verification")
			assert.False(c, lf.FailedBackAt.Time.Before(restored.Add(3*time.Second).Truncate(time.Second)),
				"not before east's storage answered for healthyFor")
		}
	}, 2*time.Minute, 250*time.Millisecond)
	t.Logf("failed back, verified, %s after east's MinIO returned", time.Since(restored).Round(100*time.Millisecond))
	requireEvent(t, east, key, "FailbackStarted")
	requireEvent(t, east, key, "FailedBack")
	require.Eventually(t, func() bool { return storageEndpoints(t, east, key)[0] == eastMinIO }, 30*time.Second,
		100*time.Millisecond, "after the failback the data plane prefers its own copy again")

	// What the verification proved: the outage's question is in east, and both copies hold the same versions
	// written before the failback.
	_, err = readLocal(eastStore, protocol.QuestionKey(device, q))
	require.NoError(t, err, "the question acknowledged during the outage reached east")
	tn := get(t, east, key)
	a1, err := objectstore.ListVersions(ctx, eastStore, naming.BucketName)
	require.NoError(t, err)
	b1, err := objectstore.ListVersions(ctx, westStore, naming.BucketName)
	require.NoError(t, err)
	d := objectstore.DiffVersions(a1, b1, tn.Status.Replication.LastFailover.FailedBackAt.Time.Add(-10*time.Second))
	require.True(t, d.Empty(), "%s", d.Describe("in east", "in west"))
	require.Equal(t, 1.0, promtest.Value(t, metrics.Registry, "supportstack_failover_events_total",
		map[string]string{"namespace": key.Namespace, "tenant": key.Name, "role": "home", "event": "FailedOver"}))
	f.requireAllDelivered(t, map[string]*minio.Client{"east": eastStore, "west": westStore})
}

// TestFrozenStorage: east's MinIO hangs (SIGSTOP: connections are accepted and never answered) instead of
// refusing them. Writes still reach west within the data plane's request timeout, the failover is declared, and
// when MinIO continues the failback is verified as after a crash.
func TestFrozenStorage(t *testing.T) {
	home := newFailoverTenant(t, "frozen", v1alpha1.FailoverAutomatic)
	key := client.ObjectKeyFromObject(home)
	waitReplicating(t, key, 3*time.Minute)
	a, device := enrolledAgent(t, key)
	eastStore, westStore := storage(t, east, key), storage(t, west, key)
	f := startFleet(t, key, fleetSize)

	thaw, err := east.Runner.Freeze(key.Namespace, naming.MinIO(key.Name)+"-0")
	require.NoError(t, err)
	defer thaw()
	frozen := time.Now()
	q := a.ask(t, "asked while east's storage hangs")
	stop := a.run(t)
	defer stop()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		_, err := readLocal(westStore, protocol.QuestionKey(device, q))
		assert.NoError(c, err, "acknowledged through west's storage")
	}, time.Minute, 100*time.Millisecond)
	t.Logf("the question is in west's storage %s after east's MinIO froze", time.Since(frozen).Round(100*time.Millisecond))
	f.ask(t, "asked while east's storage hangs")
	f.requireQuestionsIn(t, westStore, 30*time.Second)
	waitFailover(t, east, key, v1alpha1.FailoverFailedOver, time.Minute)
	t.Logf("failover declared %s after the freeze", time.Since(frozen).Round(100*time.Millisecond))
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		if lf := get(t, east, key).Status.Replication.LastFailover; assert.NotNil(c, lf) && assert.NotNil(c, lf.RTO, "RTO recorded") {
			assert.GreaterOrEqual(c, lf.RTO.Duration, time.Second, "a hung copy costs about one storage request timeout")
			assert.Less(c, lf.RTO.Duration, 5*time.Second)
		}
	}, 30*time.Second, 200*time.Millisecond)
	t.Logf("RTO recorded by the data plane %s after the freeze: %s", time.Since(frozen).Round(100*time.Millisecond),
		get(t, east, key).Status.Replication.LastFailover.RTO.Duration)

	thaw()
	thawed := time.Now()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		tn := get(t, east, key)
		assert.Equal(c, v1alpha1.FailoverNormal, tn.Status.Failover.State, tn.Status.Failover.Message)
		if lf := tn.Status.Replication.LastFailover; assert.NotNil(c, lf) && assert.NotNil(c, lf.FailedBackAt) {
			assert.True(c, lf.Verified)
		}
	}, 2*time.Minute, 250*time.Millisecond)
	t.Logf("failed back, verified, %s after east's MinIO continued", time.Since(thawed).Round(100*time.Millisecond))
	_, err = readLocal(eastStore, protocol.QuestionKey(device, q))
	require.NoError(t, err, "the question taken by west while east hung is in east")
	f.requireAllDelivered(t, map[string]*minio.Client{"east": eastStore, "west": westStore})
}

// enrolledAgent is an agent enrolled with east's ingest of the tenant through its stable public address, as
// through an ingress (east's ingest pods restart when the preferred copy changes), and its device.
func enrolledAgent(t *testing.T, key client.ObjectKey) (agent, string) {
	t.Helper()
	public, err := env.PublicURL(east.Name, key.Namespace, naming.Ingest(key.Name), 80)
	require.NoError(t, err)
	a := agent{state: t.TempDir()}
	a.cmd(t, "enroll", "--url", public, "--token", sharedToken(t, key))
	return a, a.deviceID(t)
}

// newFailoverTenant creates a replicated tenant in east that fails over after 2 s and starts failing back after
// its storage has answered for 3 s.
func newFailoverTenant(t *testing.T, name string, mode v1alpha1.FailoverMode) *v1alpha1.SupportTenant {
	return newReplicatedTenant(t, name, func(tn *v1alpha1.SupportTenant) {
		tn.Spec.Failover = &v1alpha1.FailoverSpec{Mode: mode,
			UnhealthyAfter: metav1.Duration{Duration: 2 * time.Second}, HealthyFor: metav1.Duration{Duration: 3 * time.Second}}
	})
}

// requireEvent waits for an event of the given reason on a plane's tenant.
func requireEvent(t *testing.T, p *planes.Plane, key client.ObjectKey, reason string) {
	t.Helper()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		list := &corev1.EventList{}
		if !assert.NoError(c, p.Admin.List(context.Background(), list, client.InNamespace(key.Namespace))) {
			return
		}
		for _, e := range list.Items {
			if e.Reason == reason && e.InvolvedObject.Name == key.Name && e.InvolvedObject.Kind == "SupportTenant" {
				return
			}
		}
		assert.Fail(c, "no event", "%s: no %s event on %s", p.Name, reason, key)
	}, 30*time.Second, 200*time.Millisecond)
}

// TestManualFailover: in Manual mode the data plane stays on its own copy when that fails — ingest refuses writes
// and agents keep them — until a person switches with one annotation; removing it fails back after verification.
func TestManualFailover(t *testing.T) {
	home := newFailoverTenant(t, "manual", v1alpha1.FailoverManual)
	key := client.ObjectKeyFromObject(home)
	waitReplicating(t, key, 3*time.Minute)
	require.Len(t, storageEndpoints(t, east, key), 1, "manual: the data plane has its own copy only")
	require.Len(t, argValues(t, east, key, "ingest-endpoints"), 1, "manual: agents are not told of the peer's ingest")
	// A drill would fence the only copy this data plane writes to: it is refused, and says why.
	annotateDrill(t, key, "refused")
	rec := waitDrill(t, key, "refused", v1alpha1.DrillRefused, 30*time.Second)
	require.Contains(t, rec.Message, "Manual")
	requireEvent(t, east, key, "DrillRefused")

	a, device := enrolledAgent(t, key)
	eastStore, westStore := storage(t, east, key), storage(t, west, key)

	release, err := east.Runner.Hold(key.Namespace, naming.MinIO(key.Name)+"-0")
	require.NoError(t, err)
	defer release()
	q := a.ask(t, "asked while east's storage is down, in manual mode")
	stop := a.run(t)
	defer stop()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		f := get(t, east, key).Status.Failover
		if assert.NotNil(c, f) {
			assert.Equal(c, v1alpha1.FailoverAwaitingSwitch, f.State, f.Message)
			assert.Contains(c, f.Message, "supportstack.io/active-site=peer")
		}
	}, time.Minute, 200*time.Millisecond)
	requireEvent(t, east, key, "ManualFailoverRequired")
	_, err = readLocal(westStore, protocol.QuestionKey(device, q))
	require.Error(t, err, "nothing went to the peer without a person's decision")
	require.Equal(t, v1alpha1.SiteLocal, get(t, east, key).Status.Storage.ActiveSite)

	switched := time.Now()
	update(t, east, key, func(tn *v1alpha1.SupportTenant) {
		metav1.SetMetaDataAnnotation(&tn.ObjectMeta, v1alpha1.AnnotationActiveSite, string(v1alpha1.SitePeer))
	})
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		_, err := readLocal(westStore, protocol.QuestionKey(device, q))
		assert.NoError(c, err, "the agent's question reaches west once the tenant is switched")
	}, time.Minute, 200*time.Millisecond)
	t.Logf("the question is in west %s after the switch was asked for", time.Since(switched).Round(100*time.Millisecond))
	tn := get(t, east, key)
	require.Equal(t, v1alpha1.FailoverFailedOver, tn.Status.Failover.State)
	require.Equal(t, v1alpha1.PhaseFailedOver, tn.Status.Phase)
	require.Equal(t, "LocalStorageFailed", tn.Status.Replication.LastFailover.Trigger)

	release()
	update(t, east, key, func(tn *v1alpha1.SupportTenant) { delete(tn.Annotations, v1alpha1.AnnotationActiveSite) })
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		tn := get(t, east, key)
		if assert.NotNil(c, tn.Status.Failover) {
			assert.Equal(c, v1alpha1.FailoverNormal, tn.Status.Failover.State, tn.Status.Failover.Message)
		}
		if lf := tn.Status.Replication.LastFailover; assert.NotNil(c, lf) && assert.NotNil(c, lf.FailedBackAt) {
			assert.True(c, lf.Verified)
		}
	}, 2*time.Minute, 250*time.Millisecond)
	require.Eventually(t, func() bool { return len(storageEndpoints(t, east, key)) == 1 }, 30*time.Second, 100*time.Millisecond)
	_, err = readLocal(eastStore, protocol.QuestionKey(device, q))
	require.NoError(t, err, "the question taken by west during the outage is in east after the failback")
}

// storageEndpoints are the storage endpoints a plane's ingest pods of the tenant are given, in order.
func storageEndpoints(t require.TestingT, p *planes.Plane, key client.ObjectKey) []string {
	return argValues(t, p, key, webserver.FlagStorageEndpoints)
}

// argValues are the comma-separated values of a flag of a plane's ingest pods of the tenant.
func argValues(t require.TestingT, p *planes.Plane, key client.ObjectKey, flag string) []string {
	d := &appsv1.Deployment{}
	require.NoError(t, p.Admin.Get(context.Background(), client.ObjectKey{Namespace: key.Namespace, Name: naming.Ingest(key.Name)}, d))
	for _, arg := range d.Spec.Template.Spec.Containers[0].Args {
		if v, ok := strings.CutPrefix(arg, "--"+flag+"="); ok {
			return strings.Split(v, ",")
		}
	}
	require.Fail(t, "no such flag", "--%s in %v", flag, d.Spec.Template.Spec.Containers[0].Args)
	return nil
}

// TestSwitchover: a planned switchover (maintenance) with one annotation: the operator waits until the peer holds
// everything written before the request, then the data plane serves from the peer; removing the annotation fails
// back after verification. Nothing is stopped.
func TestSwitchover(t *testing.T) {
	home := newFailoverTenant(t, "planned", v1alpha1.FailoverAutomatic)
	key := client.ObjectKeyFromObject(home)
	waitReplicating(t, key, 3*time.Minute)
	endpoints := storageEndpoints(t, east, key)
	eastStore, westStore := storage(t, east, key), storage(t, west, key)
	f := startFleet(t, key, fleetSize)
	put(t, dataPlane(t, east, key), "devices/before-switch/x", "x")

	asked := time.Now()
	update(t, east, key, func(tn *v1alpha1.SupportTenant) {
		metav1.SetMetaDataAnnotation(&tn.ObjectMeta, v1alpha1.AnnotationActiveSite, string(v1alpha1.SitePeer))
	})
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		tn := get(t, east, key)
		if assert.NotNil(c, tn.Status.Failover) {
			assert.Equal(c, v1alpha1.FailoverFailedOver, tn.Status.Failover.State, tn.Status.Failover.Message)
		}
		assert.Equal(c, v1alpha1.SitePeer, tn.Status.Storage.ActiveSite)
		if lf := tn.Status.Replication.LastFailover; assert.NotNil(c, lf) {
			assert.Equal(c, "SwitchedOver", lf.Trigger)
		}
	}, time.Minute, 200*time.Millisecond)
	t.Logf("switched over %s after it was asked for", time.Since(asked).Round(100*time.Millisecond))
	requireEvent(t, east, key, "SwitchedOver")
	tn := get(t, east, key)
	require.NotNil(t, tn.Status.Replication.LastVerifiedSync)
	require.False(t, tn.Status.Replication.LastVerifiedSync.Time.Before(asked.Truncate(time.Second)),
		"the switch waited for a verification made after it was asked for")
	_, err := readLocal(storage(t, west, key), "devices/before-switch/x")
	require.NoError(t, err, "what was written before the switch is in the peer's copy")
	require.Eventually(t, func() bool { return storageEndpoints(t, east, key)[0] == endpoints[1] }, 30*time.Second,
		100*time.Millisecond, "the data plane prefers the peer's copy")
	require.Equal(t, v1alpha1.FailoverNormal, get(t, west, key).Status.Failover.State, "west's own data plane is untouched")
	f.ask(t, "asked while switched over")
	f.requireQuestionsIn(t, westStore, 30*time.Second)

	update(t, east, key, func(tn *v1alpha1.SupportTenant) { delete(tn.Annotations, v1alpha1.AnnotationActiveSite) })
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		tn := get(t, east, key)
		assert.Equal(c, v1alpha1.FailoverNormal, tn.Status.Failover.State, tn.Status.Failover.Message)
		if lf := tn.Status.Replication.LastFailover; assert.NotNil(c, lf) && assert.NotNil(c, lf.FailedBackAt) {
			assert.True(c, lf.Verified)
		}
	}, time.Minute, 200*time.Millisecond)
	require.Eventually(t, func() bool { return storageEndpoints(t, east, key)[0] == endpoints[0] }, 30*time.Second, 100*time.Millisecond)
	_, err = readLocal(eastStore, "devices/before-switch/x")
	require.NoError(t, err)
	f.requireAllDelivered(t, map[string]*minio.Client{"east": eastStore, "west": westStore})
}
