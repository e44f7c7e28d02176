package replication

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/supportstack/supportstack/api/v1alpha1"
	"github.com/supportstack/supportstack/internal/failover"
)

// A drill runs only when it leaves the data plane a healthy, current copy to write to; each other case is refused
// with its own reason.
func TestDrillRefusal(t *testing.T) {
	ready := observation{monitored: true, localChecked: true, localHealthy: true,
		snap: Snapshot{Configured: true, PeerChecked: true, TargetOnline: true, LagKnown: true, Lag: time.Second,
			Backlog: 0, CatchUp: v1alpha1.CatchUpIdle},
		failoverDecided: true, failover: failover.Decision{Record: failover.Record{State: failover.Normal}}}
	replicated := func(f func(*v1alpha1.SupportTenant)) *v1alpha1.SupportTenant {
		tn := &v1alpha1.SupportTenant{Spec: v1alpha1.SupportTenantSpec{Replication: &v1alpha1.ReplicationSpec{Peer: "west"}}}
		if f != nil {
			f(tn)
		}
		return tn
	}
	tests := map[string]struct {
		tenant func(*v1alpha1.SupportTenant)
		obs    func(*observation)
		want   string // a part of the reason; "" means the drill may run
	}{
		"ready":     {},
		"suspended": {tenant: func(tn *v1alpha1.SupportTenant) { tn.Spec.Suspend = true }, want: "suspended"},
		"manual": {tenant: func(tn *v1alpha1.SupportTenant) {
			tn.Spec.Failover = &v1alpha1.FailoverSpec{Mode: v1alpha1.FailoverManual}
		}, want: "Manual"},
		"failed over":    {obs: func(o *observation) { o.failover.State = failover.FailedOver }, want: "FailedOver"},
		"failing back":   {obs: func(o *observation) { o.failover.State = failover.FailingBack }, want: "FailingBack"},
		"local unknown":  {obs: func(o *observation) { o.localChecked = false }, want: "this copy's storage"},
		"local failing":  {obs: func(o *observation) { o.localHealthy = false }, want: "this copy's storage"},
		"not configured": {obs: func(o *observation) { o.snap.Configured = false }, want: "not set up"},
		"peer down":      {obs: func(o *observation) { o.snap.PeerHealthErr = errors.New("refused") }, want: "peer's storage"},
		"target offline": {obs: func(o *observation) { o.snap.TargetOnline = false }, want: "peer's storage"},
		"catching up":    {obs: func(o *observation) { o.snap.CatchUp = v1alpha1.CatchUpRequeueing }, want: "catch-up"},
		"catch-up open": {obs: func(o *observation) {
			o.snap.CatchUpStarted = time.Now()
		}, want: "catch-up"},
		"lagging":    {obs: func(o *observation) { o.snap.Lag = 2 * DefaultLagThreshold }, want: "lags"},
		"no lag yet": {obs: func(o *observation) { o.snap.LagKnown = false }, want: "lags"},
	}
	r := &Reconciler{}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			o := ready
			if tc.obs != nil {
				tc.obs(&o)
			}
			got := r.drillRefusal(replicated(tc.tenant), &o)
			if tc.want == "" {
				require.Empty(t, got)
				return
			}
			require.Contains(t, got, tc.want)
		})
	}
}

// The status shows what a drill measured, and nothing it did not: an RTO or RPO not measured is absent, not zero.
func TestDrillRecord(t *testing.T) {
	start := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	stored := &v1alpha1.DrillRecord{Name: "old", Phase: v1alpha1.DrillSucceeded}
	require.Same(t, stored, drillRecord(stored, DrillProgress{}), "no drill known to the monitor: the stored one")

	d := DrillProgress{Name: "d1", Phase: v1alpha1.DrillFenced, Started: start, Fenced: start.Add(2 * time.Second),
		Canaries: 20, Missing: 3, RPO: 420 * time.Millisecond, RPOKnown: true}
	rec := drillRecord(stored, d)
	require.Equal(t, "d1", rec.Name)
	require.Nil(t, rec.RTO, "not measured yet")
	require.Equal(t, 420*time.Millisecond, rec.RPO.Duration)
	require.EqualValues(t, 3, rec.CanariesMissing)
	require.Nil(t, rec.RestoredAt)
	require.True(t, drillRunning(rec.Phase))

	back := drillFromRecord(rec)
	require.Equal(t, d.Fenced, back.Fenced)
	require.Equal(t, d.RPO, back.RPO)
	require.False(t, back.RTOKnown)
}
