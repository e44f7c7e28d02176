package e2e_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/supportstack/supportstack/api/v1alpha1"
	"github.com/supportstack/supportstack/internal/harness/planes"
	"github.com/supportstack/supportstack/internal/naming"
)

// TestFlappingStorage: under 50 agents, east's MinIO stops; it comes back during the outage and stops again
// before it has answered for healthyFor (a restart during the outage: no failback begins); it comes back, and
// stops again while the failback verifies (a second outage during the failback: the tenant returns to
// FailedOver, with the same failover record); it comes back for good and the failback is verified. Every record
// every agent produced is then stored exactly once in both copies.
func TestFlappingStorage(t *testing.T) {
	// healthyFor 8 s: time enough to see east's copy answer again and stop it before the failback begins.
	home := newReplicatedTenant(t, "flapping", func(tn *v1alpha1.SupportTenant) {
		tn.Spec.Failover = &v1alpha1.FailoverSpec{Mode: v1alpha1.FailoverAutomatic,
			UnhealthyAfter: metav1.Duration{Duration: 2 * time.Second}, HealthyFor: metav1.Duration{Duration: healthyFor}}
	})
	key := client.ObjectKeyFromObject(home)
	waitReplicating(t, key, 3*time.Minute)
	eastStore, westStore := storage(t, east, key), storage(t, west, key)
	f := startFleet(t, key, fleetSize)

	stopped := stopMinIO(t, east, key)
	first := waitFailover(t, east, key, v1alpha1.FailoverFailedOver, time.Minute).Status.Replication.LastFailover
	t.Logf("failover declared %s after east's MinIO stopped", time.Since(stopped).Round(100*time.Millisecond))
	f.ask(t, "asked during the outage")

	// A restart during the outage: MinIO answers again — the operator sees it — and stops again before
	// healthyFor has passed.
	releaseMinIO(t, east, key)
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Contains(c, get(t, east, key).Status.Failover.Message, "answers again")
	}, time.Minute, 100*time.Millisecond)
	stopMinIO(t, east, key)
	require.Never(t, func() bool {
		tn := get(t, east, key)
		return tn.Status.Failover.State != v1alpha1.FailoverFailedOver
	}, healthyFor+2*time.Second, 100*time.Millisecond, "a copy that answered for less than healthyFor does not start a failback")
	require.Equal(t, first.At, get(t, east, key).Status.Replication.LastFailover.At)

	// A second outage during the failback.
	releaseMinIO(t, east, key)
	waitFailover(t, east, key, v1alpha1.FailoverFailingBack, time.Minute)
	stopMinIO(t, east, key)
	back := waitFailover(t, east, key, v1alpha1.FailoverFailedOver, time.Minute)
	lf := back.Status.Replication.LastFailover
	require.Equal(t, first.At, lf.At, "the failback was interrupted: still the first failover, no new record")
	require.Nil(t, lf.FailedBackAt)
	f.ask(t, "asked during the second outage")

	releaseMinIO(t, east, key)
	healed := time.Now()
	done := waitFailover(t, east, key, v1alpha1.FailoverNormal, 3*time.Minute)
	lf = done.Status.Replication.LastFailover
	require.NotNil(t, lf.FailedBackAt)
	require.True(t, lf.Verified)
	require.Equal(t, first.At, lf.At)
	t.Logf("failed back, verified, %s after east's MinIO returned for good", time.Since(healed).Round(100*time.Millisecond))

	f.requireAllDelivered(t, map[string]*minio.Client{"east": eastStore, "west": westStore})
}

// TestPeerStorageOutage: west's MinIO stops while east serves 50 agents. East's data plane is untouched (its own
// copy is first), east reports that it serves alone and keeps the writes west lacks; west's own tenant fails over
// to east's copy. When west's MinIO returns, east's operator drives its backlog across and verifies both copies,
// west fails back verified, and every record every agent produced is stored exactly once in both copies.
func TestPeerStorageOutage(t *testing.T) {
	home := newFailoverTenant(t, "peerdown", v1alpha1.FailoverAutomatic)
	key := client.ObjectKeyFromObject(home)
	waitReplicating(t, key, 3*time.Minute)
	eastStore, westStore := storage(t, east, key), storage(t, west, key)
	f := startFleet(t, key, fleetSize)

	stopped := stopMinIO(t, west, key)
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		tn := get(t, east, key)
		if assert.NotNil(c, tn.Status.Failover) {
			assert.Equal(c, v1alpha1.FailoverNormal, tn.Status.Failover.State)
			assert.Equal(c, "ServingAlone", tn.Status.Failover.Reason, tn.Status.Failover.Message)
		}
		assert.True(c, meta.IsStatusConditionFalse(tn.Status.Conditions, v1alpha1.ConditionReplicating))
		assert.True(c, meta.IsStatusConditionTrue(tn.Status.Conditions, v1alpha1.ConditionReady), "east's own stack is whole")
		assert.Equal(c, v1alpha1.SiteLocal, tn.Status.Storage.ActiveSite)
	}, time.Minute, 200*time.Millisecond)
	waitFailover(t, west, key, v1alpha1.FailoverFailedOver, time.Minute)
	t.Logf("east serves alone and west failed over to east's copy %s after west's MinIO stopped", time.Since(stopped).Round(100*time.Millisecond))
	f.ask(t, "asked while west's storage is down")
	f.requireQuestionsIn(t, eastStore, 30*time.Second)

	releaseMinIO(t, west, key)
	returned := time.Now()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		tn := get(t, east, key)
		rs := tn.Status.Replication
		if !assert.NotNil(c, rs) || !assert.NotNil(c, rs.LastVerifiedSync) || !assert.NotNil(c, rs.CatchUp) ||
			!assert.NotNil(c, rs.CatchUp.CompletedAt) {
			return
		}
		assert.False(c, rs.CatchUp.CompletedAt.Before(&metav1.Time{Time: returned.Truncate(time.Second)}),
			"east caught west up after it returned")
		assert.True(c, meta.IsStatusConditionTrue(tn.Status.Conditions, v1alpha1.ConditionReplicating))
		assert.Equal(c, "Serving", tn.Status.Failover.Reason)
	}, 3*time.Minute, 250*time.Millisecond)
	t.Logf("east's backlog driven across and verified %s after west's MinIO returned", time.Since(returned).Round(100*time.Millisecond))
	westTenant := waitFailover(t, west, key, v1alpha1.FailoverNormal, 3*time.Minute)
	require.True(t, westTenant.Status.Replication.LastFailover.Verified, "west failed back after a verification")
	requireEvent(t, east, key, "CatchUpCompleted")

	f.requireAllDelivered(t, map[string]*minio.Client{"east": eastStore, "west": westStore})
}

// healthyFor is how long the flapping tenant's storage must answer before its failback begins.
const healthyFor = 8 * time.Second

// minioHolds are the stopped MinIO pods of running tests, by plane and tenant, with the function that starts
// each again.
var minioHolds = map[string]func(){}

func holdKey(p *planes.Plane, key client.ObjectKey) string { return p.Name + "/" + key.String() }

// stopMinIO stops a plane's MinIO of the tenant (kept stopped until releaseMinIO or the test's end).
func stopMinIO(t *testing.T, p *planes.Plane, key client.ObjectKey) time.Time {
	t.Helper()
	release, err := p.Runner.Hold(key.Namespace, naming.MinIO(key.Name)+"-0")
	require.NoError(t, err)
	minioHolds[holdKey(p, key)] = release
	t.Cleanup(release)
	return time.Now()
}

// releaseMinIO starts a stopped MinIO again.
func releaseMinIO(t *testing.T, p *planes.Plane, key client.ObjectKey) {
	t.Helper()
	release, ok := minioHolds[holdKey(p, key)]
	require.True(t, ok, "%s's MinIO is not stopped", p.Name)
	delete(minioHolds, holdKey(p, key))
	release()
}

// waitFailover waits until a plane's tenant is in a failover state and returns it.
func waitFailover(t *testing.T, p *planes.Plane, key client.ObjectKey, state v1alpha1.FailoverState, timeout time.Duration) *v1alpha1.SupportTenant {
	t.Helper()
	var tn *v1alpha1.SupportTenant
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		tn = get(t, p, key)
		if assert.NotNil(c, tn.Status.Failover) {
			assert.Equal(c, state, tn.Status.Failover.State, tn.Status.Failover.Message)
		}
	}, timeout, 100*time.Millisecond)
	return tn
}

// TestBothCopiesDown: east's and west's MinIO stop together under 50 agents. East's tenant says so
// (Unavailable, BothSitesDown, an event), nothing is acknowledged and the agents keep their records; when the
// storage returns they deliver everything, once, to both copies.
func TestBothCopiesDown(t *testing.T) {
	home := newFailoverTenant(t, "bothdown", v1alpha1.FailoverAutomatic)
	key := client.ObjectKeyFromObject(home)
	waitReplicating(t, key, 3*time.Minute)
	eastStore, westStore := storage(t, east, key), storage(t, west, key)
	f := startFleet(t, key, fleetSize)

	stopped := stopMinIO(t, east, key)
	stopMinIO(t, west, key)
	down := waitFailover(t, east, key, v1alpha1.FailoverUnavailable, time.Minute)
	require.Equal(t, "BothSitesDown", down.Status.Failover.Reason)
	requireEvent(t, east, key, "StorageUnavailable")
	// The agents keep their records: nothing is acknowledged while both copies are down.
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		out, err := agentOutput(f.agents[0], "status", "--json")
		if !assert.NoError(c, err) {
			return
		}
		var st struct {
			Spool struct {
				PendingRecords map[string]int `json:"pendingRecords"`
				LastAck        time.Time      `json:"lastAck"`
			} `json:"spool"`
		}
		if !assert.NoError(c, json.Unmarshal([]byte(out), &st)) {
			return
		}
		pending := 0
		for _, n := range st.Spool.PendingRecords {
			pending += n
		}
		assert.Positive(c, pending, "records pile up in the spool")
		assert.True(c, st.Spool.LastAck.Before(stopped.Add(time.Second)), "acknowledged at %s, after both copies stopped", st.Spool.LastAck)
	}, 30*time.Second, 500*time.Millisecond)
	f.ask(t, "asked while both copies are down")

	releaseMinIO(t, east, key)
	releaseMinIO(t, west, key)
	waitFailover(t, east, key, v1alpha1.FailoverNormal, 2*time.Minute)
	f.requireQuestionsIn(t, eastStore, time.Minute)
	f.requireAllDelivered(t, map[string]*minio.Client{"east": eastStore, "west": westStore})
}
