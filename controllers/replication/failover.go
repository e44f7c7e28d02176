package replication

import (
	"cmp"
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

// Defaults of a replicated tenant without spec.failover: the product's promise is automatic failover.
const (
	DefaultUnhealthyAfter = 15 * time.Second
	DefaultHealthyFor     = 60 * time.Second
)

// policy is the tenant's failover configuration, defaults filled in.
func policy(t *v1alpha1.SupportTenant) failover.Policy {
	p := failover.Policy{Mode: failover.Automatic, UnhealthyAfter: DefaultUnhealthyAfter, HealthyFor: DefaultHealthyFor}
	if f := t.Spec.Failover; f != nil {
		p.Mode = cmp.Or(f.Mode, failover.Automatic)
		if f.UnhealthyAfter.Duration > 0 {
			p.UnhealthyAfter = f.UnhealthyAfter.Duration
		}
		// The API server defaults healthyFor, so zero is an explicit "0s": fail back as soon as local answers.
		p.HealthyFor = f.HealthyFor.Duration
	}
	return p
}

// lastRecord is the failover record the status holds.
func lastRecord(t *v1alpha1.SupportTenant) failover.Record {
	var rec failover.Record
	if f := t.Status.Failover; f != nil {
		rec.State = f.State
		if f.VerifyFrom != nil {
			rec.VerifyFrom = f.VerifyFrom.Time
		}
	}
	rec.Active = failover.Local
	if s := t.Status.Storage; s != nil && s.ActiveSite == failover.Peer {
		rec.Active = failover.Peer
	}
	if r := t.Status.Replication; r != nil && r.LastFailover != nil && r.LastFailover.FailedBackAt == nil {
		rec.FailoverAt = r.LastFailover.At.Time
	}
	return rec
}

// failoverStep decides where the tenant serves from (internal/failover) and asks the monitor for the
// verification a failback waits for.
func (r *Reconciler) failoverStep(_ context.Context, st *state) (*ctrl.Result, error) {
	t, o := st.tenant, &st.obs
	if !o.monitored || t.Spec.Suspend {
		return nil, nil
	}
	obs := failover.Observation{Now: time.Now(), VerifiedAt: o.snap.VerifiedThrough}
	if t.Annotations[v1alpha1.AnnotationActiveSite] == string(v1alpha1.SitePeer) {
		obs.Requested = failover.Peer
	}
	if o.localChecked {
		obs.Local = failover.Health{Known: true, Healthy: o.localHealthy, Since: o.localSince}
	}
	if o.snap.PeerChecked {
		obs.Peer = failover.Health{Known: true, Healthy: o.snap.PeerHealthErr == nil}
	}
	drill := o.snap.Drill
	obs.Local = drillLocal(obs.Local, drill)
	prev := lastRecord(t)
	d := failover.Decide(prev, obs, policy(t))
	if d.CatchUp {
		r.Monitor.VerifyFrom(client.ObjectKeyFromObject(t), d.VerifyFrom)
	}
	if drill.Fencing() {
		d.Message = fmt.Sprintf("drill %s: %s", drill.Name, d.Message)
		o.drillFailover = d.Event == failover.EventFailedOver
	}
	r.tellDrill(t, drill, d)
	if rs := t.Status.Replication; d.Active == failover.Peer && rs != nil && rs.LastFailover != nil && rs.LastFailover.RTO == nil {
		r.Monitor.MeasureRTO(client.ObjectKeyFromObject(t), rs.LastFailover.At.Add(-rtoLookback))
	}
	o.failover, o.failoverDecided = d, true
	return nil, nil
}

// rtoLookback: the data plane's writes may fail a little before the operator's health check sees the copy
// failing (which dates the failover); its switch records are looked for from this long before.
const rtoLookback = 30 * time.Second

// withRTO completes an open failover record with what the data plane recorded of moving its writes to the peer.
func withRTO(rec *v1alpha1.FailoverRecord, s Snapshot) *v1alpha1.FailoverRecord {
	if rec == nil || rec.RTO != nil || rec.FailedBackAt != nil || s.WritesResumed.Before(rec.At.Add(-rtoLookback)) {
		return rec
	}
	rec = rec.DeepCopy()
	at := metav1.NewTime(s.WritesResumed.Truncate(time.Second))
	rec.WritesResumedAt, rec.RTO = &at, &metav1.Duration{Duration: s.RTO.Round(time.Millisecond)}
	return rec
}

// failoverStatus is the decision as the status shows it, with the failover record it changes.
func failoverStatus(cur *v1alpha1.FailoverRecord, d failover.Decision, now time.Time) (v1alpha1.FailoverStatus, *v1alpha1.FailoverRecord) {
	fs := v1alpha1.FailoverStatus{State: d.State, Reason: d.Reason, Message: d.Message}
	if !d.VerifyFrom.IsZero() {
		at := metav1.NewTime(d.VerifyFrom.Truncate(time.Second))
		fs.VerifyFrom = &at
	}
	rec := cur
	at := metav1.NewTime(now.Truncate(time.Second))
	switch d.Event {
	case failover.EventFailedOver, failover.EventSwitchedOver:
		rec = &v1alpha1.FailoverRecord{At: metav1.NewTime(d.FailoverAt.Truncate(time.Second)), Trigger: d.Reason, DeclaredAt: &at}
	case failover.EventFailedBack:
		if cur != nil {
			rec = cur.DeepCopy()
			rec.FailedBackAt, rec.Verified = &at, d.Reason == "FailedBack"
		}
	}
	return fs, rec
}

// recordFailover announces what a failover decision changed, and counts it.
func (r *Reconciler) recordFailover(t *v1alpha1.SupportTenant, d failover.Decision) {
	own, _ := role(t)
	failoverState.WithLabelValues(t.Namespace, t.Name, own).Set(stateValue[d.State])
	if d.Event == "" {
		return
	}
	failoverEvents.WithLabelValues(t.Namespace, t.Name, own, string(d.Event)).Inc()
	typ := corev1.EventTypeNormal
	switch d.Event {
	case failover.EventFailedOver, failover.EventSwitchNeeded, failover.EventUnavailable:
		typ = corev1.EventTypeWarning
	}
	r.Recorder.Eventf(t, nil, typ, string(d.Event), "Failover", "%s", d.Message)
}

// stateValue is the failover state as the supportstack_failover_state gauge reports it.
var stateValue = map[failover.State]float64{
	failover.Normal: 0, failover.LocalFailing: 1, failover.AwaitingSwitch: 2, failover.FailedOver: 3,
	failover.FailingBack: 4, failover.Unavailable: 5,
}

// drillLocal is this copy's health as the failover decision sees it during a drill: while the fence is on the
// copy fails, for the data plane it does; once access is restored it answers since the restore, so that the
// failback waits healthyFor from then.
func drillLocal(h failover.Health, drill DrillProgress) failover.Health {
	switch {
	case !h.Known || !h.Healthy:
		return h
	case drill.Fencing():
		return failover.Health{Known: true, Healthy: false, Since: drill.Fenced}
	case drill.Running() && h.Since.Before(drill.Restored):
		h.Since = drill.Restored
	}
	return h
}

// tellDrill tells a running drill what the decision means for it: the failover it waits for is declared, or the
// tenant has failed back.
func (r *Reconciler) tellDrill(t *v1alpha1.SupportTenant, drill DrillProgress, d failover.Decision) {
	key := client.ObjectKeyFromObject(t)
	var lf *v1alpha1.FailoverRecord
	if rs := t.Status.Replication; rs != nil {
		lf = rs.LastFailover
	}
	switch {
	case drill.Fencing() && d.Active == failover.Peer:
		at := time.Now()
		if d.Event != failover.EventFailedOver && lf != nil && lf.DeclaredAt != nil {
			at = lf.DeclaredAt.Time
		}
		r.Monitor.DrillDeclared(key, at)
	case drill.Phase != v1alpha1.DrillVerifying:
	case d.Event == failover.EventFailedBack:
		r.Monitor.DrillFailedBack(key, time.Now(), d.Reason == "FailedBack")
	case d.Active == failover.Local && lf != nil && lf.FailedBackAt != nil && !lf.FailedBackAt.Time.Before(drill.Fenced.Truncate(time.Second)):
		r.Monitor.DrillFailedBack(key, lf.FailedBackAt.Time, lf.Verified)
	}
}
