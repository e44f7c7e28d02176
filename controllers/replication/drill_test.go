package replication

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/types"

	"github.com/supportstack/supportstack/api/v1alpha1"
	"github.com/supportstack/supportstack/internal/harness/miniotest"
	"github.com/supportstack/supportstack/internal/objectstore"
)

// A drill's fence is lifted on every way out: its annotation removed (AbortDrill) and its worker stopped
// (Forget: the tenant deleted, its replication turned off, the operator shutting down). Real MinIO servers; the
// data plane's user is refused while fenced and writes again afterwards.
func TestDrillFenceIsLiftedOnEveryWayOut(t *testing.T) {
	ctx := context.Background()
	local, peer := miniotest.Start(t, miniotest.Options{}), miniotest.Start(t, miniotest.Options{})
	dataPlane := objectstore.User{AccessKey: "ssdpdrilltest", SecretKey: "dataplane-secret-0123456789",
		Policy: policyDataPlane, Document: objectstore.DataPlanePolicy("supportstack")}
	replInto := func(role string) objectstore.User {
		return objectstore.User{AccessKey: "ssr" + role, SecretKey: "replication-secret-" + role + "-0123",
			Policy: policyReplication, Document: objectstore.ReplicationPolicy("supportstack")}
	}
	for _, s := range []*miniotest.Server{local, peer} {
		mc, err := objectstore.NewClient(objectstore.Endpoint{URL: s.URL, AccessKey: s.AccessKey, SecretKey: s.SecretKey})
		require.NoError(t, err)
		_, err = objectstore.EnsureBucket(ctx, mc, "supportstack", 7)
		require.NoError(t, err)
	}
	// The peer's side as its own operator would have set it up: its data-plane user and the user this copy
	// replicates in with.
	peerAdm, err := objectstore.NewAdminClient(objectstore.Endpoint{URL: peer.URL, AccessKey: peer.AccessKey, SecretKey: peer.SecretKey})
	require.NoError(t, err)
	for _, u := range []objectstore.User{dataPlane, replInto("standby")} {
		_, err := objectstore.EnsureUser(ctx, peerAdm, peer.URL, "supportstack", u)
		require.NoError(t, err)
	}
	target := Target{Role: "home", PeerRole: "standby", Bucket: "supportstack",
		Local:         objectstore.Endpoint{URL: local.URL, AccessKey: local.AccessKey, SecretKey: local.SecretKey},
		Users:         []objectstore.User{dataPlane, replInto("home")},
		DataPlaneUser: dataPlane.AccessKey,
		Remote:        objectstore.Remote{URL: peer.URL, AccessKey: replInto("standby").AccessKey, SecretKey: replInto("standby").SecretKey, Bucket: "supportstack"},
		Peer:          objectstore.Endpoint{URL: peer.URL, AccessKey: dataPlane.AccessKey, SecretKey: dataPlane.SecretKey}}
	writes := func() error {
		mc, err := objectstore.NewFailFastClient(objectstore.Endpoint{URL: local.URL, AccessKey: dataPlane.AccessKey, SecretKey: dataPlane.SecretKey})
		require.NoError(t, err)
		_, err = mc.PutObject(ctx, "supportstack", "devices/d/records/x", strings.NewReader("x"), 1, minio.PutObjectOptions{})
		return err
	}

	m := NewMonitor(MonitorOptions{HeartbeatInterval: 200 * time.Millisecond, ProbeInterval: 100 * time.Millisecond,
		CheckInterval: 500 * time.Millisecond, RetryInterval: 500 * time.Millisecond, SetupInterval: time.Second})
	mctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- m.Start(mctx) }()
	t.Cleanup(func() { stop(); <-done })
	key := types.NamespacedName{Namespace: "ns", Name: "acme"}

	fenced := func(name string) {
		t.Helper()
		m.Set(key, target)
		require.Eventually(t, func() bool { s, _ := m.Snapshot(key); return s.Configured && s.PeerChecked }, time.Minute, 100*time.Millisecond)
		require.NoError(t, writes(), "the data plane writes before the drill")
		require.True(t, m.StartDrill(key, name, time.Minute, time.Minute))
		require.False(t, m.StartDrill(key, name+"-again", time.Minute, time.Minute), "one drill at a time")
		require.Eventually(t, func() bool { s, _ := m.Snapshot(key); return s.Drill.Phase == v1alpha1.DrillFenced },
			30*time.Second, 50*time.Millisecond)
		err := writes()
		require.Error(t, err, "the fence refuses the data plane")
		require.Equal(t, http.StatusForbidden, minio.ToErrorResponse(err).StatusCode, "%v", err)
		s, _ := m.Snapshot(key)
		require.True(t, s.Drill.RPOKnown)
		require.Equal(t, drillCanaries, s.Drill.Canaries)
	}

	// The annotation removed.
	fenced("aborted")
	m.AbortDrill(key, "the drill annotation was removed")
	require.Eventually(t, func() bool { s, _ := m.Snapshot(key); return s.Drill.Phase == v1alpha1.DrillAborted }, 30*time.Second, 50*time.Millisecond)
	s, _ := m.Snapshot(key)
	require.Contains(t, s.Drill.Message, "annotation was removed")
	require.NoError(t, writes(), "access restored after the abort")

	// The worker stopped mid-drill.
	fenced("forgotten")
	m.Forget(key)
	require.NoError(t, writes(), "access restored when the worker stopped")
}
