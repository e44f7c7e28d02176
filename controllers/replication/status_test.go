package replication

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/supportstack/supportstack/api/v1alpha1"
	"github.com/supportstack/supportstack/controllers/peer"
	"github.com/supportstack/supportstack/internal/failover"
)

func TestDesiredStatus(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	healthy := Snapshot{Configured: true, PeerChecked: true, TargetOnline: true, LagKnown: true, Lag: 1500 * time.Millisecond,
		Backlog: 0, CatchUp: v1alpha1.CatchUpIdle, LastVerified: now.Add(-time.Minute)}
	with := func(f func(*Snapshot)) Snapshot {
		s := healthy
		f(&s)
		return s
	}
	type want struct {
		reach, repl       string // reasons
		reachOK, replOK   bool
		active            v1alpha1.Site
		lag               *int64
		peerHealthyStatus *bool
	}
	one := int64(1)
	yes, no := true, false
	tests := map[string]struct {
		home bool
		obs  observation
		want want
	}{
		"in sync": {home: true, obs: observation{monitored: true, snap: healthy, localChecked: true, localHealthy: true},
			want: want{reach: v1alpha1.ReasonAvailable, reachOK: true, repl: v1alpha1.ReasonInSync, replOK: true,
				active: v1alpha1.SiteLocal, lag: &one, peerHealthyStatus: &yes}},
		"no PeerCluster": {home: false, obs: observation{peerClusterMissing: true},
			want: want{reach: v1alpha1.ReasonPeerClusterNotFound, repl: v1alpha1.ReasonPeerClusterNotFound, active: v1alpha1.SiteLocal}},
		"the peer's API server fails a home": {home: true, obs: observation{monitored: true, snap: healthy,
			peerAPIErr: &peer.NotReadyError{Peer: "west", Reason: v1alpha1.ReasonTLSFailed, Message: "x509"}},
			want: want{reach: v1alpha1.ReasonPeerAPIUnreachable, repl: v1alpha1.ReasonInSync, replOK: true, active: v1alpha1.SiteLocal,
				lag: &one, peerHealthyStatus: &yes}},
		"no cluster name": {home: true, obs: observation{monitored: true, snap: healthy, clusterNameMissing: true},
			want: want{reach: v1alpha1.ReasonAvailable, reachOK: true, repl: v1alpha1.ReasonClusterNameMissing, active: v1alpha1.SiteLocal,
				lag: &one, peerHealthyStatus: &yes}},
		"a foreign tenant in the peer": {home: true, obs: observation{monitored: true, snap: healthy, conflict: true,
			mirrorErr: errors.New("conflict: rename one of them")},
			want: want{reach: v1alpha1.ReasonAvailable, reachOK: true, repl: v1alpha1.ReasonStandbyConflict, active: v1alpha1.SiteLocal,
				lag: &one, peerHealthyStatus: &yes}},
		"a standby before its home handed over": {obs: observation{waitingForHome: true},
			want: want{reach: v1alpha1.ReasonReconciling, repl: v1alpha1.ReasonWaitingForHome, active: v1alpha1.SiteLocal}},
		"set-up refused": {home: true, obs: observation{monitored: true, snap: Snapshot{PeerChecked: true, SetupErr: errors.New("refused"), Backlog: -1}},
			want: want{reach: v1alpha1.ReasonAvailable, reachOK: true, repl: v1alpha1.ReasonReplicationSetupFailed, active: v1alpha1.SiteLocal,
				peerHealthyStatus: &yes}},
		"peer storage down": {home: true, obs: observation{monitored: true, localChecked: true, localHealthy: true,
			snap: with(func(s *Snapshot) { s.PeerHealthErr, s.TargetOnline = errors.New("connection refused"), false })},
			want: want{reach: v1alpha1.ReasonPeerStorageUnreachable, repl: v1alpha1.ReasonPeerStorageUnreachable, active: v1alpha1.SiteLocal,
				lag: &one, peerHealthyStatus: &no}},
		"failed over: the peer is the active site": {home: true, obs: observation{monitored: true,
			localChecked: true, localHealthy: false, snap: healthy, failoverDecided: true,
			failover: failover.Decision{Record: failover.Record{State: failover.FailedOver, Active: failover.Peer, FailoverAt: now.Add(-time.Minute)},
				Reason: "LocalStorageFailed", Message: "m", Event: failover.EventFailedOver}},
			want: want{reach: v1alpha1.ReasonAvailable, reachOK: true, repl: v1alpha1.ReasonInSync, replOK: true, active: v1alpha1.SitePeer,
				lag: &one, peerHealthyStatus: &yes}},
		"catching up": {home: true, obs: observation{monitored: true, snap: with(func(s *Snapshot) {
			s.CatchUp, s.Backlog, s.Requeued = v1alpha1.CatchUpRequeueing, 1200, 800
		})},
			want: want{reach: v1alpha1.ReasonAvailable, reachOK: true, repl: v1alpha1.ReasonCatchingUp, active: v1alpha1.SiteLocal,
				lag: &one, peerHealthyStatus: &yes}},
		"no heartbeat yet": {home: true, obs: observation{monitored: true, snap: with(func(s *Snapshot) { s.LagKnown = false })},
			want: want{reach: v1alpha1.ReasonAvailable, reachOK: true, repl: v1alpha1.ReasonNoPeerHeartbeat, active: v1alpha1.SiteLocal,
				peerHealthyStatus: &yes}},
		"lagging": {home: true, obs: observation{monitored: true, snap: with(func(s *Snapshot) { s.Lag = 45 * time.Second })},
			want: want{reach: v1alpha1.ReasonAvailable, reachOK: true, repl: v1alpha1.ReasonLagging, active: v1alpha1.SiteLocal,
				lag: ptr(int64(45)), peerHealthyStatus: &yes}},
	}
	r := &Reconciler{LagThreshold: 30 * time.Second}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tn := &v1alpha1.SupportTenant{ObjectMeta: metav1.ObjectMeta{Name: "acme", Namespace: "ns", Generation: 3},
				Spec: v1alpha1.SupportTenantSpec{Replication: &v1alpha1.ReplicationSpec{Peer: "west"}}}
			if !tc.home {
				tn.Spec.Replication.StandbyOf = "east"
			}
			got := r.desired(tn, tc.obs, now)
			reach := meta.FindStatusCondition(got.Conditions, v1alpha1.ConditionPeerReachable)
			repl := meta.FindStatusCondition(got.Conditions, v1alpha1.ConditionReplicating)
			require.NotNil(t, reach)
			require.NotNil(t, repl)
			require.Equal(t, tc.want.reach, reach.Reason, reach.Message)
			require.Equal(t, tc.want.repl, repl.Reason, repl.Message)
			require.Equal(t, tc.want.reachOK, reach.Status == metav1.ConditionTrue)
			require.Equal(t, tc.want.replOK, repl.Status == metav1.ConditionTrue)
			require.Equal(t, int64(3), repl.ObservedGeneration)
			require.NotEmpty(t, repl.Message)
			require.Equal(t, tc.want.active, got.ActiveSite)
			require.Equal(t, tc.want.lag, got.Replication.LagSeconds)
			if tc.want.peerHealthyStatus == nil {
				require.Nil(t, got.Peer)
			} else {
				require.Equal(t, *tc.want.peerHealthyStatus, got.Peer.Healthy)
			}

			// Computing again from the stored result changes nothing: a resync writes nothing.
			tn.Status.Conditions = got.Conditions
			tn.Status.Storage = &v1alpha1.StorageStatus{Peer: got.Peer, ActiveSite: got.ActiveSite}
			rs := got.Replication
			tn.Status.Replication = &rs
			// Decided again from the stored record, the failover carries no event: that happened once.
			obs := tc.obs
			obs.failover.Event = ""
			again := r.desired(tn, obs, now.Add(time.Minute))
			require.Equal(t, got, again)
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestReportedLag(t *testing.T) {
	const threshold = 30 * time.Second
	s := func(v int64) *int64 { return &v }
	tests := []struct {
		name     string
		stored   *int64
		measured time.Duration
		want     int64
	}{
		{"first measurement", nil, 1900 * time.Millisecond, 1},
		{"a wobble up keeps the status", s(0), 1900 * time.Millisecond, 0},
		{"a wobble down keeps the status", s(2), 300 * time.Millisecond, 2},
		{"a move beyond the resolution is followed", s(0), 2100 * time.Millisecond, 2},
		{"a growing lag is followed", s(3), 9 * time.Second, 9},
		{"crossing the threshold is followed at once", s(29), 30500 * time.Millisecond, 30},
		{"coming back under the threshold is followed at once", s(31), 29 * time.Second, 29},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, reportedLag(tc.stored, tc.measured, threshold))
		})
	}
}

// TestFailoverRecordRoundTrip: what a decision leaves in the status is the record the next decision starts from.
func TestFailoverRecordRoundTrip(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	var rec *v1alpha1.FailoverRecord // carried from decision to decision, as the status carries it
	for _, d := range []failover.Decision{
		{Record: failover.Record{State: failover.Normal, Active: failover.Local}, Reason: "Serving"},
		{Record: failover.Record{State: failover.FailedOver, Active: failover.Peer, FailoverAt: now.Add(-20 * time.Second)},
			Reason: "LocalStorageFailed", Event: failover.EventFailedOver},
		{Record: failover.Record{State: failover.FailingBack, Active: failover.Peer, FailoverAt: now.Add(-20 * time.Second),
			VerifyFrom: now}, Reason: "FailingBack", Event: failover.EventFailbackStarted},
	} {
		var fs v1alpha1.FailoverStatus
		fs, rec = failoverStatus(rec, d, now)
		tn := &v1alpha1.SupportTenant{Status: v1alpha1.SupportTenantStatus{Failover: &fs,
			Storage: &v1alpha1.StorageStatus{ActiveSite: v1alpha1.Site(d.Active)}, Replication: &v1alpha1.ReplicationStatus{LastFailover: rec}}}
		require.Equal(t, d.Record, lastRecord(tn), "%s", d.State)
	}

	// A failback closes the record: it says when, and whether it was verified.
	at := now.Add(-time.Minute)
	open := &v1alpha1.FailoverRecord{At: metav1.NewTime(at), Trigger: "LocalStorageFailed"}
	_, closed := failoverStatus(open, failover.Decision{Record: failover.Record{State: failover.Normal, Active: failover.Local},
		Reason: "FailedBack", Event: failover.EventFailedBack}, now)
	require.True(t, closed.Verified)
	require.Equal(t, now, closed.FailedBackAt.Time)
	require.Nil(t, open.FailedBackAt, "the stored record is not changed in place")
	_, forced := failoverStatus(open, failover.Decision{Record: failover.Record{State: failover.Normal, Active: failover.Local},
		Reason: "PeerStorageFailed", Event: failover.EventFailedBack}, now)
	require.False(t, forced.Verified)
}
