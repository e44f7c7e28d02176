package e2e_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/supportstack/supportstack/api/v1alpha1"
	"github.com/supportstack/supportstack/internal/harness/localcluster"
	"github.com/supportstack/supportstack/internal/harness/planes"
	"github.com/supportstack/supportstack/internal/harness/promtest"
	"github.com/supportstack/supportstack/internal/naming"
	"github.com/supportstack/supportstack/internal/objectstore"
	"github.com/supportstack/supportstack/internal/protocol"
)

// TestReplicatedTenant follows one replicated tenant through its life: it converges on both sides, carries
// agents' records both ways, reports its lag, rests without writing, repairs what is broken by hand, survives a
// peer outage with writes on both sides and catches up, and takes its standby with it when deleted.
func TestReplicatedTenant(t *testing.T) {
	ctx := context.Background()
	home := newReplicatedTenant(t, "acme")
	key := client.ObjectKeyFromObject(home)
	start := time.Now()

	t.Run("converges on both sides", func(t *testing.T) {
		waitReplicating(t, key, 3*time.Minute)
		t.Logf("both sides Ready and replicating %s after the tenant was applied", time.Since(start).Round(100*time.Millisecond))
		standby := get(t, west, key)
		require.Equal(t, "east", standby.Spec.Replication.StandbyOf)
		require.Equal(t, "east", standby.Spec.Replication.Peer)
		require.Equal(t, "east", standby.Labels[naming.LabelStandbyOf])
		require.Equal(t, home.Spec.DisplayName, standby.Spec.DisplayName)
		for _, tn := range []*v1alpha1.SupportTenant{get(t, east, key), standby} {
			require.NotNil(t, tn.Status.Replication.LagSeconds, "lag is reported")
			require.True(t, tn.Status.Storage.Peer.Healthy)
			require.Equal(t, v1alpha1.SiteLocal, tn.Status.Storage.ActiveSite)
		}
		// Each side keeps its own MinIO root credentials; what agents need is shared.
		eastCreds := secretData(t, east, key.Namespace, naming.CredentialsSecret(key.Name))
		westCreds := secretData(t, west, key.Namespace, naming.CredentialsSecret(key.Name))
		require.NotEqual(t, eastCreds[naming.SecretKeyRootPassword], westCreds[naming.SecretKeyRootPassword])
		require.Equal(t, secretData(t, east, key.Namespace, naming.SharedSecret(key.Name)),
			secretData(t, west, key.Namespace, naming.SharedSecret(key.Name)))
	})

	a := agent{state: t.TempDir()}
	var device string
	t.Run("a question asked in east reaches west", func(t *testing.T) {
		a.cmd(t, "enroll", "--url", ingestURL(t, east, key), "--token", sharedToken(t, key))
		device = a.deviceID(t)
		q := a.ask(t, "east: my printer is on fire")
		a.run(t)
		require.EventuallyWithT(t, func(c *assert.CollectT) {
			_, err := readLocal(storage(t, west, key), protocol.QuestionKey(device, q))
			assert.NoError(c, err)
		}, time.Minute, 200*time.Millisecond)
	})

	t.Run("with east's ingest down the agent goes to west, which knows the device, and the question reaches east", func(t *testing.T) {
		release, err := east.Runner.Hold(key.Namespace, naming.Ingest(key.Name)+"-0")
		require.NoError(t, err)
		defer release()
		q := a.ask(t, "asked while east's ingest is down")
		stop := a.run(t)
		defer stop()
		require.EventuallyWithT(t, func(c *assert.CollectT) {
			_, err := readLocal(storage(t, west, key), protocol.QuestionKey(device, q))
			assert.NoError(c, err, "stored in west")
			_, err = readLocal(storage(t, east, key), protocol.QuestionKey(device, q))
			assert.NoError(c, err, "replicated to east")
		}, 2*time.Minute, 250*time.Millisecond)
	})

	t.Run("lag is measured on both sides", func(t *testing.T) {
		for _, ns := range []string{key.Namespace} {
			require.Positive(t, promtest.Value(t, metrics.Registry, "supportstack_replication_lag_observed_seconds",
				map[string]string{"namespace": ns, "tenant": key.Name}))
		}
		require.EventuallyWithT(t, func(c *assert.CollectT) {
			for _, p := range []*planes.Plane{east, west} {
				tn := get(t, p, key)
				if assert.NotNil(c, tn.Status.Replication) && assert.NotNil(c, tn.Status.Replication.LagSeconds) {
					assert.LessOrEqual(c, *tn.Status.Replication.LagSeconds, int64(5), "%s lag", p.Name)
				}
			}
		}, time.Minute, 250*time.Millisecond)
	})

	t.Run("a resync of the converged tenant writes nothing to either API server", func(t *testing.T) {
		waitReplicating(t, key, time.Minute)
		// A new pair is verified once soon after it is set up (then every 10 minutes): that is a status write
		// with a reason, so the window starts after it.
		require.EventuallyWithT(t, func(c *assert.CollectT) {
			for _, p := range []*planes.Plane{east, west} {
				rs := get(t, p, key).Status.Replication
				assert.True(c, rs != nil && rs.LastVerifiedSync != nil, "%s: not verified yet", p.Name)
			}
		}, time.Minute, 250*time.Millisecond)
		var before map[string]string
		require.EventuallyWithT(t, func(c *assert.CollectT) {
			// Quiet for a while before the window starts: the last catch-up's verification may still be landing.
			before = versions(t, key.Namespace)
			time.Sleep(2 * resyncPeriod)
			assert.Equal(c, before, versions(t, key.Namespace))
		}, time.Minute, time.Second)
		tenants := func() []v1alpha1.SupportTenant {
			out := []v1alpha1.SupportTenant{*get(t, east, key), *get(t, west, key)}
			for i := range out {
				out[i].ResourceVersion, out[i].ManagedFields = "", nil
			}
			return out
		}
		tenantsBefore := tenants()
		time.Sleep(4 * resyncPeriod) // several resyncs of both controllers on both sides, and heartbeats
		require.Equal(t, tenantsBefore, tenants(), "what was written to the tenants")
		require.Equal(t, before, versions(t, key.Namespace))
	})

	t.Run("spec edits flow to the standby and hand edits of it are reverted", func(t *testing.T) {
		update(t, east, key, func(tn *v1alpha1.SupportTenant) { tn.Spec.DisplayName = "Acme, renamed at home" })
		tn := get(t, east, key)
		require.EventuallyWithT(t, func(c *assert.CollectT) {
			assert.Equal(c, "Acme, renamed at home", get(t, west, key).Spec.DisplayName)
		}, 30*time.Second, 100*time.Millisecond)

		update(t, west, key, func(standby *v1alpha1.SupportTenant) {
			standby.Spec.DisplayName = "edited by hand in west"
			standby.Spec.Storage.RetentionDays = 7
		})
		require.EventuallyWithT(t, func(c *assert.CollectT) {
			s := get(t, west, key)
			assert.Equal(c, "Acme, renamed at home", s.Spec.DisplayName)
			assert.Equal(c, tn.Spec.Storage.RetentionDays, s.Spec.Storage.RetentionDays)
		}, 30*time.Second, 100*time.Millisecond)
	})

	t.Run("a replication rule removed by hand is repaired", func(t *testing.T) {
		eastStore := storage(t, east, key)
		require.NoError(t, eastStore.RemoveBucketReplication(ctx, naming.BucketName))
		require.EventuallyWithT(t, func(c *assert.CollectT) {
			cfg, err := eastStore.GetBucketReplication(ctx, naming.BucketName)
			if assert.NoError(c, err) && assert.Len(c, cfg.Rules, 1) {
				assert.Equal(c, objectstore.ReplicationRuleID, cfg.Rules[0].ID)
			}
		}, 30*time.Second, 200*time.Millisecond)
		put(t, eastStore, "devices/after-repair/x", "x")
		require.EventuallyWithT(t, func(c *assert.CollectT) {
			_, err := readLocal(storage(t, west, key), "devices/after-repair/x")
			assert.NoError(c, err)
		}, time.Minute, 200*time.Millisecond)
	})

	t.Run("the peer's kubeconfig rotated: the client is rebuilt and the old identity is no longer used", func(t *testing.T) {
		builds := func() float64 {
			return promtest.Value(t, metrics.Registry, "supportstack_peer_client_builds_total", map[string]string{"peer": "west"})
		}
		before := builds()
		// A name of its own per run, so that the test can run again against the same planes (-count).
		user := fmt.Sprintf("supportstack-peer-east-rotated-%d", time.Now().UnixNano())
		require.NoError(t, west.Admin.Create(ctx, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "supportstack-peer-" + user},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "supportstack-peer"},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
		}))
		kubeconfig, err := west.Cluster.UserKubeconfig(user)
		require.NoError(t, err)
		secret := &corev1.Secret{}
		require.NoError(t, east.Admin.Get(ctx, client.ObjectKey{Namespace: planes.OperatorNamespace, Name: "peer-west"}, secret))
		secret.Data["kubeconfig"] = kubeconfig
		require.NoError(t, east.Admin.Update(ctx, secret))
		require.Eventually(t, func() bool { return builds() == before+1 }, 30*time.Second, 100*time.Millisecond)

		// The first identity loses its permissions; mirroring must go on with the new one.
		require.NoError(t, client.IgnoreNotFound(west.Admin.Delete(ctx, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "supportstack-peer-supportstack-peer-east"}})))
		update(t, east, key, func(tn *v1alpha1.SupportTenant) { tn.Spec.DisplayName = "Acme, after the rotation" })
		require.EventuallyWithT(t, func(c *assert.CollectT) {
			assert.Equal(c, "Acme, after the rotation", get(t, west, key).Spec.DisplayName)
			pc := &v1alpha1.PeerCluster{}
			assert.NoError(c, east.Admin.Get(ctx, client.ObjectKey{Name: "west"}, pc))
			assert.True(c, meta.IsStatusConditionTrue(pc.Status.Conditions, v1alpha1.PeerConditionReady))
		}, 30*time.Second, 100*time.Millisecond)
	})

	t.Run("a peer outage with writes on both sides: each side keeps serving, and the backlog is driven across", func(t *testing.T) {
		eastStore, westStore := storage(t, east, key), storage(t, west, key)
		eastDP, westDP := dataPlane(t, east, key), dataPlane(t, west, key)
		env.CutTraffic("west")
		env.CutTraffic("east")
		cut := time.Now()
		require.EventuallyWithT(t, func(c *assert.CollectT) {
			for _, p := range []*planes.Plane{east, west} {
				tn := get(t, p, key)
				reach := meta.FindStatusCondition(tn.Status.Conditions, v1alpha1.ConditionPeerReachable)
				if assert.NotNil(c, reach) {
					assert.Equal(c, metav1.ConditionFalse, reach.Status, "%s PeerReachable", p.Name)
					assert.Equal(c, v1alpha1.ReasonPeerStorageUnreachable, reach.Reason)
				}
				assert.True(c, meta.IsStatusConditionTrue(tn.Status.Conditions, v1alpha1.ConditionReady), "%s still Ready", p.Name)
			}
		}, time.Minute, 200*time.Millisecond)
		t.Logf("both sides report the peer unreachable %s after the cut", time.Since(cut).Round(100*time.Millisecond))

		// The local data plane keeps taking records: an agent's question through east's ingest lands in east.
		q := a.ask(t, "asked while the clusters cannot see each other")
		stop := a.run(t)
		require.EventuallyWithT(t, func(c *assert.CollectT) {
			_, err := readLocal(eastStore, protocol.QuestionKey(device, q))
			assert.NoError(c, err)
		}, time.Minute, 250*time.Millisecond)
		stop()

		const n = 1500
		writeMany(t, eastDP, "devices/outage-east/records", n)
		writeMany(t, westDP, "devices/outage-west/records", n)
		env.RestoreTraffic("west")
		env.RestoreTraffic("east")
		restored := time.Now()
		require.EventuallyWithT(t, func(c *assert.CollectT) {
			a, err := objectstore.ListVersions(ctx, eastStore, naming.BucketName)
			if !assert.NoError(c, err) {
				return
			}
			b, err := objectstore.ListVersions(ctx, westStore, naming.BucketName)
			if !assert.NoError(c, err) {
				return
			}
			d := objectstore.DiffVersions(a, b, restored)
			assert.True(c, d.Empty(), "%s", d.Describe("in east", "in west"))
			assert.GreaterOrEqual(c, d.Compared, 2*n)
		}, 2*time.Minute, time.Second)
		t.Logf("both copies hold the same %d+ versions %s after the peers could see each other again", 2*n,
			time.Since(restored).Round(100*time.Millisecond))

		require.EventuallyWithT(t, func(c *assert.CollectT) {
			for _, p := range []*planes.Plane{east, west} {
				rs := get(t, p, key).Status.Replication
				if assert.NotNil(c, rs) && assert.NotNil(c, rs.CatchUp, "%s catch-up: %+v", p.Name, rs) {
					assert.Equal(c, v1alpha1.CatchUpIdle, rs.CatchUp.Phase)
					assert.Positive(c, rs.CatchUp.Requeued, "%s re-queued the backlog", p.Name)
					if assert.NotNil(c, rs.CatchUp.CompletedAt) {
						assert.False(c, rs.CatchUp.CompletedAt.Time.Before(restored.Truncate(time.Second)))
					}
				}
				if assert.NotNil(c, rs.LastVerifiedSync) {
					assert.False(c, rs.LastVerifiedSync.Time.Before(restored.Truncate(time.Second)))
				}
			}
		}, time.Minute, 250*time.Millisecond)
		waitReplicating(t, key, time.Minute)
	})

	t.Run("deleting the home deletes the standby", func(t *testing.T) {
		require.NoError(t, east.Admin.Delete(ctx, get(t, east, key)))
		require.EventuallyWithT(t, func(c *assert.CollectT) {
			err := west.Admin.Get(ctx, key, &v1alpha1.SupportTenant{})
			assert.True(c, apierrors.IsNotFound(err), "standby still there: %v", err)
			err = east.Admin.Get(ctx, key, &v1alpha1.SupportTenant{})
			assert.True(c, apierrors.IsNotFound(err), "home still there: %v", err)
		}, time.Minute, 200*time.Millisecond)
	})
}

// TestStandbyConflict: a tenant of the same name in the peer that is not the home's standby is left alone, and
// the home says why it does not replicate.
func TestStandbyConflict(t *testing.T) {
	ctx := context.Background()
	// The foreign tenant is there first: were it created after the home, the home's operator could have mirrored
	// its standby in its place already.
	ns := localcluster.TestNamespace(t, east.Admin)
	require.NoError(t, ignoreExists(west.Admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})))
	foreign := &v1alpha1.SupportTenant{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "clash"},
		Spec:       v1alpha1.SupportTenantSpec{DisplayName: "west's own", Suspend: true},
	}
	require.NoError(t, west.Admin.Create(ctx, foreign))
	home := createReplicatedTenant(t, ns, "clash", func(tn *v1alpha1.SupportTenant) { tn.Spec.Suspend = true })
	key := client.ObjectKeyFromObject(home)
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		cond := meta.FindStatusCondition(get(t, east, key).Status.Conditions, v1alpha1.ConditionReplicating)
		if assert.NotNil(c, cond) {
			assert.Equal(c, v1alpha1.ReasonStandbyConflict, cond.Reason)
			assert.Contains(c, cond.Message, "rename one of them")
		}
	}, time.Minute, 200*time.Millisecond)
	require.Equal(t, "west's own", get(t, west, key).Spec.DisplayName, "a foreign tenant is never overwritten")
	require.NoError(t, east.Admin.Delete(ctx, home))
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.True(c, apierrors.IsNotFound(east.Admin.Get(ctx, key, &v1alpha1.SupportTenant{})))
	}, 30*time.Second, 100*time.Millisecond)
	require.NoError(t, west.Admin.Get(ctx, key, &v1alpha1.SupportTenant{}), "deleting the home leaves a foreign tenant alone")
	require.NoError(t, west.Admin.Delete(ctx, foreign))
}

func ignoreExists(err error) error {
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// versions are the resourceVersions of every object of a namespace in both planes, events included: any write
// by either operator (or its runner) changes them.
func versions(t require.TestingT, namespace string) map[string]string {
	out := map[string]string{}
	lists := func() []client.ObjectList {
		return []client.ObjectList{&v1alpha1.SupportTenantList{}, &corev1.SecretList{}, &corev1.ServiceList{},
			&corev1.ServiceAccountList{}, &corev1.ConfigMapList{}, &eventsList{}}
	}
	for _, p := range []*planes.Plane{east, west} {
		for _, l := range append(lists(), workloadLists()...) {
			require.NoError(t, p.Admin.List(context.Background(), l, client.InNamespace(namespace)))
			items, err := meta.ExtractList(l)
			require.NoError(t, err)
			for _, it := range items {
				o := it.(client.Object)
				out[fmt.Sprintf("%s/%T/%s", p.Name, o, o.GetName())] = o.GetResourceVersion()
			}
		}
	}
	return out
}

// dataPlane is a plane's copy of the tenant's bucket as ingest reaches it: with the data-plane user.
func dataPlane(t require.TestingT, p *planes.Plane, key client.ObjectKey) *minio.Client {
	mc, err := p.DataPlaneStorage(context.Background(), key)
	require.NoError(t, err)
	return mc
}

func put(t require.TestingT, mc *minio.Client, key, body string) {
	_, err := mc.PutObject(context.Background(), naming.BucketName, key, strings.NewReader(body), int64(len(body)), minio.PutObjectOptions{})
	require.NoError(t, err)
}

// writeMany writes n small objects under prefix, 16 at a time.
func writeMany(t require.TestingT, mc *minio.Client, prefix string, n int) {
	sem := make(chan struct{}, 16)
	errs := make(chan error, n)
	for i := range n {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			body := fmt.Sprintf(`{"seq":%d}`, i)
			_, err := mc.PutObject(context.Background(), naming.BucketName, fmt.Sprintf("%s/%06d.json", prefix, i),
				strings.NewReader(body), int64(len(body)), minio.PutObjectOptions{})
			errs <- err
		}()
	}
	for range n {
		require.NoError(t, <-errs)
	}
}
