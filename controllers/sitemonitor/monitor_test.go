package sitemonitor

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/supportstack/supportstack/api/v1alpha1"
	"github.com/supportstack/supportstack/internal/harness/miniotest"
	"github.com/supportstack/supportstack/internal/objectstore"
)

// watched is a started monitor and the events it sends a watching controller.
type watched struct {
	*Monitor
	events <-chan event.GenericEvent
}

func start(t *testing.T, o Options) watched {
	t.Helper()
	m := New(o)
	events := m.Events()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Start(ctx) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })
	return watched{Monitor: m, events: events}
}

func tenant(name string) *v1alpha1.SupportTenant {
	return &v1alpha1.SupportTenant{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}}
}

// waitEvent waits for the monitor to ask for a reconcile of the named tenant.
func waitEvent(t *testing.T, m watched, name string) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case ev := <-m.events:
			if ev.Object.GetName() == name {
				return
			}
		case <-deadline:
			t.Fatalf("no event for %s", name)
		}
	}
}

// The monitor checks a registered MinIO, sets its bucket up, asks for a reconcile whenever the result changes,
// and notices the site going down and coming back.
func TestMonitorFollowsASite(t *testing.T) {
	srv := miniotest.Start(t, miniotest.Options{})
	m := start(t, Options{Interval: 200 * time.Millisecond, RetryInterval: 100 * time.Millisecond})
	key := types.NamespacedName{Namespace: "ns", Name: "acme"}
	_, ok := m.Snapshot(key)
	require.False(t, ok)

	m.Set(key, Target{URL: srv.URL, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, Bucket: "supportstack", RetentionDays: 9, Object: tenant("acme")})
	waitEvent(t, m, "acme")
	snap, ok := m.Snapshot(key)
	require.True(t, ok)
	require.True(t, snap.Checked)
	require.NoError(t, snap.HealthErr)
	require.True(t, snap.BucketReady)
	mc, err := objectstore.NewClient(objectstore.Endpoint{URL: srv.URL, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey})
	require.NoError(t, err)
	v, err := mc.GetBucketVersioning(context.Background(), "supportstack")
	require.NoError(t, err)
	require.True(t, v.Enabled())

	srv.Stop()
	waitEvent(t, m, "acme")
	snap, _ = m.Snapshot(key)
	require.Error(t, snap.HealthErr)

	require.NoError(t, srv.Restart())
	for snap.HealthErr != nil { // MinIO may answer 503 for a moment while it starts: each change is an event
		waitEvent(t, m, "acme")
		snap, _ = m.Snapshot(key)
	}

	// A changed target starts over; a forgotten one is gone.
	m.Set(key, Target{URL: srv.URL, AccessKey: srv.AccessKey, SecretKey: "wrong-secret-key", Bucket: "supportstack", RetentionDays: 9, Object: tenant("acme")})
	snap, _ = m.Snapshot(key)
	require.False(t, snap.Checked)
	for !snap.Checked { // events of the old target may still be queued
		waitEvent(t, m, "acme")
		snap, _ = m.Snapshot(key)
	}
	require.NoError(t, snap.HealthErr, "the health check needs no credentials")
	require.Error(t, snap.BucketErr, "the bucket set-up with a wrong secret")
	m.Forget(key)
	_, ok = m.Snapshot(key)
	require.False(t, ok)
}

// A hung MinIO holds up only its own checks: a healthy site registered next to it is checked and reported.
func TestHungSiteDelaysOnlyItself(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() }) // accepted, never answered
		}
	}()
	srv := miniotest.Start(t, miniotest.Options{})
	m := start(t, Options{Interval: 200 * time.Millisecond, RetryInterval: 100 * time.Millisecond, CheckTimeout: 3 * time.Second})
	m.Set(types.NamespacedName{Namespace: "ns", Name: "hung"}, Target{URL: "http://" + l.Addr().String(), Object: tenant("hung")})
	m.Set(types.NamespacedName{Namespace: "ns", Name: "fine"}, Target{URL: srv.URL, Object: tenant("fine")})
	began := time.Now()
	waitEvent(t, m, "fine")
	require.Less(t, time.Since(began), 2*time.Second)
	waitEvent(t, m, "hung")
	snap, _ := m.Snapshot(types.NamespacedName{Namespace: "ns", Name: "hung"})
	require.Error(t, snap.HealthErr)
}

// CheckSoon checks a healthy site at once instead of at its next interval, and the snapshot says since when the
// site is in its current health.
func TestCheckSoon(t *testing.T) {
	srv := miniotest.Start(t, miniotest.Options{})
	m := start(t, Options{Interval: time.Hour, RetryInterval: 100 * time.Millisecond})
	key := types.NamespacedName{Namespace: "ns", Name: "acme"}
	m.Set(key, Target{URL: srv.URL, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, Bucket: "supportstack", RetentionDays: 9, Object: tenant("acme")})
	waitEvent(t, m, "acme")
	snap, _ := m.Snapshot(key)
	require.NoError(t, snap.HealthErr)
	healthySince := snap.Since
	require.False(t, healthySince.IsZero())

	srv.Stop()
	stopped := time.Now()
	m.CheckSoon(key)
	for snap.HealthErr == nil { // events of the set-up may still be queued; without CheckSoon none would come
		waitEvent(t, m, "acme")
		snap, _ = m.Snapshot(key)
	}
	require.False(t, snap.Since.Before(stopped))
	require.Less(t, time.Since(stopped), 10*time.Second)
}
