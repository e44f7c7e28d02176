package e2e_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/supportstack/supportstack/api/v1alpha1"
	"github.com/supportstack/supportstack/internal/harness/localcluster"
	"github.com/supportstack/supportstack/internal/harness/planes"
	"github.com/supportstack/supportstack/internal/naming"
	"github.com/supportstack/supportstack/internal/protocol"
)

// TestWholeClusterLoss: a whole cluster goes at once — its API server, operator, ingest and MinIO. Agents move
// to the other cluster's ingest by themselves, the standby takes them (the shared signing key), and the tenant
// there reports that it serves alone. The planes are this test's own: it destroys one.
func TestWholeClusterLoss(t *testing.T) {
	lossEnv := planes.StartPlanes(t, planes.Options{SupportstackBin: supportstackBin, Dir: filepath.Join(t.TempDir(), "planes"),
		Operator: operatorOptions}, "north", "south")
	north, south := lossEnv.Plane("north"), lossEnv.Plane("south")
	home := createTenantOn(t, north, "south", localcluster.TestNamespace(t, north.Admin), "lost")
	key := client.ObjectKeyFromObject(home)
	waitReplicatingOn(t, key, 3*time.Minute, north, south)

	public, err := lossEnv.PublicURL("north", key.Namespace, naming.Ingest(key.Name), 80)
	require.NoError(t, err)
	shared := secretData(t, north, key.Namespace, naming.SharedSecret(key.Name))
	a := agent{state: t.TempDir()}
	a.cmd(t, "enroll", "--url", public, "--token", string(shared[naming.SecretKeyEnrollmentToken]))
	device := a.deviceID(t)
	southStore := storage(t, south, key)
	f := startFleetOn(t, lossEnv, north, key, fleetSize)
	before := a.ask(t, "asked while north is up")
	stop := a.run(t)
	defer stop()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		_, err := readLocal(southStore, protocol.QuestionKey(device, before))
		assert.NoError(c, err, "replicated to south")
	}, time.Minute, 200*time.Millisecond)

	require.NoError(t, lossEnv.StopPlane("north"))
	lost := time.Now()
	ackedByNorth := f.lastAcked(t)
	after := a.ask(t, "asked after north is gone")
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		_, err := readLocal(southStore, protocol.QuestionKey(device, after))
		assert.NoError(c, err, "taken by south's ingest")
	}, time.Minute, 100*time.Millisecond)
	t.Logf("a question asked after north was lost is stored in south %s later", time.Since(lost).Round(100*time.Millisecond))
	f.ask(t, "asked after north is gone")
	f.requireQuestionsIn(t, southStore, time.Minute)
	t.Logf("%d agents' questions asked after north was lost are stored in south %s after the loss", fleetSize,
		time.Since(lost).Round(100*time.Millisecond))

	require.EventuallyWithT(t, func(c *assert.CollectT) {
		tn := get(t, south, key)
		if assert.NotNil(c, tn.Status.Failover) {
			assert.Equal(c, v1alpha1.FailoverNormal, tn.Status.Failover.State)
			assert.Equal(c, "ServingAlone", tn.Status.Failover.Reason, tn.Status.Failover.Message)
		}
		reach := meta.FindStatusCondition(tn.Status.Conditions, v1alpha1.ConditionPeerReachable)
		if assert.NotNil(c, reach) {
			assert.Equal(c, metav1.ConditionFalse, reach.Status)
		}
		assert.True(c, meta.IsStatusConditionTrue(tn.Status.Conditions, v1alpha1.ConditionReady), "south still Ready")
		assert.Equal(c, v1alpha1.SiteLocal, tn.Status.Storage.ActiveSite)
	}, time.Minute, 200*time.Millisecond)

	// North is gone with whatever it had acknowledged and not yet replicated; everything else the agents produced
	// is in south exactly once (they resend what north never acknowledged).
	statuses := f.drain(t)
	f.requireStoredAfterLoss(t, statuses, "south", southStore, ackedByNorth)
}
