package replication

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrl "sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/supportstack/supportstack/api/v1alpha1"
	"github.com/supportstack/supportstack/internal/failover"
)

// drillStep starts the drill the annotation names, has the monitor record why it refuses one that could not run
// safely, ends a running drill whose annotation was removed or changed, and closes a drill the status shows
// running that no worker runs any more.
func (r *Reconciler) drillStep(_ context.Context, st *state) (*ctrl.Result, error) {
	t, o := st.tenant, &st.obs
	key := client.ObjectKeyFromObject(t)
	want := t.Annotations[v1alpha1.AnnotationDrill]
	stored := storedDrill(t)
	if !o.monitored {
		// No worker to run a drill: refuse a new one, and close one the status shows running (its worker
		// stopped and restored access), here, where the status records it.
		reason := "this copy's replication is not running (waiting for its storage, the peer or the shared Secret)"
		if t.Spec.Suspend {
			reason = "the tenant is suspended"
		}
		switch {
		case want != "" && (stored == nil || stored.Name != want):
			o.drillOverride = &v1alpha1.DrillRecord{Name: want, Phase: v1alpha1.DrillRefused,
				StartedAt: metav1.NewTime(time.Now().Truncate(time.Second)), Message: reason}
		case stored != nil && drillRunning(stored.Phase):
			o.drillOverride = stored.DeepCopy()
			o.drillOverride.Phase, o.drillOverride.Message = v1alpha1.DrillAborted, reason+"; the drill stopped with its worker, which restores the data plane's access to this copy"
			now := metav1.NewTime(time.Now().Truncate(time.Second))
			o.drillOverride.CompletedAt = &now
		default:
			return nil, nil
		}
		d := o.drillOverride
		r.Recorder.Eventf(t, nil, corev1.EventTypeWarning, "Drill"+string(d.Phase), "Drill", "Drill %s: %s", d.Name, d.Message)
		own, _ := role(t)
		drillsTotal.WithLabelValues(t.Namespace, t.Name, own, string(d.Phase)).Inc()
		return nil, nil
	}
	snap := o.snap.Drill
	switch {
	case snap.Running() && snap.Name != want:
		r.Monitor.AbortDrill(key, "the drill annotation was removed or changed")
	case snap.Running():
	case want != "" && want != snap.Name && (stored == nil || stored.Name != want):
		if reason := r.drillRefusal(t, o); reason != "" {
			r.Monitor.RefuseDrill(key, want, reason)
		} else {
			p := policy(t)
			r.Monitor.StartDrill(key, want, p.UnhealthyAfter, p.HealthyFor)
		}
	case snap.Name == "" && stored != nil && drillRunning(stored.Phase):
		r.Monitor.AbandonDrill(key, drillFromRecord(stored))
	}
	o.snap, _ = r.Monitor.Snapshot(key)
	return nil, nil
}

// drillRefusal says why a drill cannot run now, or "" when it can: it must leave the data plane a healthy,
// current copy to write to.
func (r *Reconciler) drillRefusal(t *v1alpha1.SupportTenant, o *observation) string {
	s := o.snap
	switch {
	case t.Spec.Suspend:
		return "the tenant is suspended"
	case policy(t).Mode == failover.Manual:
		return "failover mode is Manual: the data plane writes to this copy only, so a drill would stop it"
	case t.Annotations[v1alpha1.AnnotationActiveSite] != "":
		return fmt.Sprintf("a switchover is asked for (%s): remove it, or let it complete and fail back, first", v1alpha1.AnnotationActiveSite)
	case o.failoverDecided && o.failover.State != failover.Normal:
		return fmt.Sprintf("the tenant's failover state is %s: a drill needs both copies healthy and this one serving", o.failover.State)
	case !o.localChecked || !o.localHealthy:
		return "this copy's storage is not known to be healthy"
	case !s.Configured:
		return "replication to the peer is not set up yet"
	case !s.PeerChecked || s.PeerHealthErr != nil || !s.TargetOnline:
		return "the peer's storage does not answer: the data plane would have nowhere to write"
	case open(s) || s.CatchUp != v1alpha1.CatchUpIdle:
		return "a catch-up is under way: the peer lacks part of this copy"
	case !s.LagKnown || s.Lag > r.lagThreshold():
		return fmt.Sprintf("replication lags (the peer's heartbeat arrives %s late, threshold %s)", s.Lag.Round(time.Second), r.lagThreshold())
	}
	return ""
}

func drillRunning(p v1alpha1.DrillPhase) bool { return DrillProgress{Phase: p}.Running() }

func storedDrill(t *v1alpha1.SupportTenant) *v1alpha1.DrillRecord {
	if rs := t.Status.Replication; rs != nil {
		return rs.LastDrill
	}
	return nil
}

// drillRecord is the status's view of a drill: the monitor's when it knows one, else the stored one.
func drillRecord(stored *v1alpha1.DrillRecord, d DrillProgress) *v1alpha1.DrillRecord {
	if d.Name == "" {
		return stored
	}
	ts := func(t time.Time) *metav1.Time {
		if t.IsZero() {
			return nil
		}
		mt := metav1.NewTime(t.Truncate(time.Second))
		return &mt
	}
	dur := func(v time.Duration, known bool) *metav1.Duration {
		if !known {
			return nil
		}
		return &metav1.Duration{Duration: v.Round(time.Millisecond)}
	}
	return &v1alpha1.DrillRecord{
		Name: d.Name, Phase: d.Phase, StartedAt: metav1.NewTime(d.Started.Truncate(time.Second)),
		FencedAt: ts(d.Fenced), WritesResumedAt: ts(d.WritesResumed), DeclaredAt: ts(d.Declared), RestoredAt: ts(d.Restored),
		FailedBackAt: ts(d.FailedBack), CompletedAt: ts(d.Completed), RTO: dur(d.RTO, d.RTOKnown), RPO: dur(d.RPO, d.RPOKnown),
		Canaries: int32(d.Canaries), CanariesMissing: int32(d.Missing), Verified: d.Verified, Message: d.Message,
	}
}

// drillFromRecord is a stored drill as the monitor knows drills.
func drillFromRecord(rec *v1alpha1.DrillRecord) DrillProgress {
	d := DrillProgress{Name: rec.Name, Phase: rec.Phase, Started: rec.StartedAt.Time,
		Canaries: int(rec.Canaries), Missing: int(rec.CanariesMissing)}
	at := func(t *metav1.Time) time.Time {
		if t == nil {
			return time.Time{}
		}
		return t.Time
	}
	d.Fenced, d.WritesResumed, d.Restored = at(rec.FencedAt), at(rec.WritesResumedAt), at(rec.RestoredAt)
	d.Declared, d.FailedBack = at(rec.DeclaredAt), at(rec.FailedBackAt)
	if rec.RTO != nil {
		d.RTO, d.RTOKnown = rec.RTO.Duration, true
	}
	if rec.RPO != nil {
		d.RPO, d.RPOKnown = rec.RPO.Duration, true
	}
	return d
}
