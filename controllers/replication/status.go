package replication

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/supportstack/supportstack/api/v1alpha1"
	tenantac "github.com/supportstack/supportstack/api/v1alpha1/applyconfiguration/api/v1alpha1"
	conds "github.com/supportstack/supportstack/internal/conditions"
	"github.com/supportstack/supportstack/internal/naming"
)

// ownedConditions are the condition types the replication controller writes.
var ownedConditions = []string{v1alpha1.ConditionPeerReachable, v1alpha1.ConditionReplicating}

// replicationStatus is the part of a tenant's status the replication controller owns.
// Its fields are exported for equality.Semantic, which refuses unexported ones.
type replicationStatus struct {
	Conditions  []metav1.Condition
	Peer        *v1alpha1.SiteHealth
	ActiveSite  v1alpha1.Site
	Replication v1alpha1.ReplicationStatus
	Failover    *v1alpha1.FailoverStatus
}

func (r *Reconciler) lagThreshold() time.Duration { return cmp.Or(r.LagThreshold, DefaultLagThreshold) }

// lagResolution is how far the measured lag moves from the one in the status before the status follows, unless it
// crosses the threshold. A converged tenant's lag wobbles around a second with the machine's load; following each
// wobble would rewrite the status of every tenant every few seconds. The lag metric has every measurement.
const lagResolution = 2 * time.Second

// reportedLag is the lag the status shows, in seconds, given the stored one and a measurement.
func reportedLag(stored *int64, measured, threshold time.Duration) int64 {
	if stored == nil {
		return lagSeconds(measured)
	}
	shown := time.Duration(*stored) * time.Second
	if (measured > threshold) == (shown > threshold) && (measured-shown).Abs() <= lagResolution {
		return *stored
	}
	return lagSeconds(measured)
}

// desired computes the replication part of the status from an observation. Timestamps that did not change are
// taken from current, so that a resync of a converged tenant computes what is stored.
func (r *Reconciler) desired(t *v1alpha1.SupportTenant, o observation, now time.Time) replicationStatus {
	cur := t.Status
	at := metav1.NewTime(now)
	cond := func(typ string, ok bool, reason, format string, args ...any) metav1.Condition {
		status := metav1.ConditionFalse
		if ok {
			status = metav1.ConditionTrue
		}
		return metav1.Condition{Type: typ, Status: status, Reason: reason, Message: fmt.Sprintf(format, args...),
			ObservedGeneration: t.Generation}
	}
	peerName := t.Spec.Replication.Peer
	s := o.snap
	var reach, repl metav1.Condition
	switch {
	case o.peerClusterMissing:
		msg := fmt.Sprintf("no PeerCluster %s in this cluster", peerName)
		if !isHome(t) {
			msg += fmt.Sprintf(": create one named %s (the home cluster's --cluster-name) that leads back to the home cluster", peerName)
		}
		reach = cond(v1alpha1.ConditionPeerReachable, false, v1alpha1.ReasonPeerClusterNotFound, "%s", msg)
		repl = cond(v1alpha1.ConditionReplicating, false, v1alpha1.ReasonPeerClusterNotFound, "%s", msg)
		out := replicationStatus{Conditions: []metav1.Condition{reach, repl}, ActiveSite: v1alpha1.SiteLocal, Failover: cur.Failover}
		if cur.Replication != nil {
			out.Replication.LastFailover = cur.Replication.LastFailover
		}
		out.Replication.LastDrill = cmp.Or(o.drillOverride, storedDrill(t))
		return out
	case o.peerAPIErr != nil:
		reach = cond(v1alpha1.ConditionPeerReachable, false, v1alpha1.ReasonPeerAPIUnreachable, "%v", o.peerAPIErr)
	case !o.monitored || !s.PeerChecked:
		reach = cond(v1alpha1.ConditionPeerReachable, false, v1alpha1.ReasonReconciling, "checking the peer's storage")
	case s.PeerHealthErr != nil:
		reach = cond(v1alpha1.ConditionPeerReachable, false, v1alpha1.ReasonPeerStorageUnreachable, "%v", s.PeerHealthErr)
	default:
		reach = cond(v1alpha1.ConditionPeerReachable, true, v1alpha1.ReasonAvailable, "the peer's storage answers")
		if isHome(t) {
			reach.Message = "the peer's API server and storage answer"
		}
	}

	var storedLag *int64
	if cur.Replication != nil {
		storedLag = cur.Replication.LagSeconds
	}
	lag := reportedLag(storedLag, s.Lag, r.lagThreshold())
	switch {
	case o.clusterNameMissing:
		repl = cond(v1alpha1.ConditionReplicating, false, v1alpha1.ReasonClusterNameMissing,
			"the operator has no --cluster-name: it names this cluster to the peer and is needed to mirror the standby")
	case o.conflict:
		repl = cond(v1alpha1.ConditionReplicating, false, v1alpha1.ReasonStandbyConflict, "%v", o.mirrorErr)
	case o.waitingForHome:
		repl = cond(v1alpha1.ConditionReplicating, false, v1alpha1.ReasonWaitingForHome,
			"waiting for Secret %s, which the home cluster's operator hands over", naming.SharedSecret(t.Name))
	case o.mirrorErr != nil && o.peerAPIErr == nil:
		repl = cond(v1alpha1.ConditionReplicating, false, v1alpha1.ReasonReplicationSetupFailed, "mirroring the standby: %v", o.mirrorErr)
	case o.registerErr != nil:
		repl = cond(v1alpha1.ConditionReplicating, false, v1alpha1.ReasonReplicationSetupFailed, "%v", o.registerErr)
	case !o.monitored:
		repl = cond(v1alpha1.ConditionReplicating, false, v1alpha1.ReasonReconciling, "waiting for this copy's storage")
	case !s.Configured && s.SetupErr != nil:
		repl = cond(v1alpha1.ConditionReplicating, false, v1alpha1.ReasonReplicationSetupFailed, "%v", s.SetupErr)
	case !s.Configured:
		repl = cond(v1alpha1.ConditionReplicating, false, v1alpha1.ReasonReconciling, "setting up replication to the peer")
	case s.PeerHealthErr != nil || s.PeerChecked && !s.TargetOnline:
		repl = cond(v1alpha1.ConditionReplicating, false, v1alpha1.ReasonPeerStorageUnreachable,
			"the peer's storage is unreachable: writes are kept here and driven across when it returns")
	case s.CatchUp == v1alpha1.CatchUpRequeueing || s.CatchUp == v1alpha1.CatchUpResyncing:
		repl = cond(v1alpha1.ConditionReplicating, false, v1alpha1.ReasonCatchingUp,
			"%d versions are not yet on the peer; %d re-queued so far", s.Backlog, s.Requeued)
	case !s.LagKnown:
		repl = cond(v1alpha1.ConditionReplicating, false, v1alpha1.ReasonNoPeerHeartbeat,
			"no heartbeat of the peer's copy has arrived here yet")
	case s.Lag > r.lagThreshold():
		repl = cond(v1alpha1.ConditionReplicating, false, v1alpha1.ReasonLagging,
			"the peer's writes arrive %ds late (threshold %s)", lag, r.lagThreshold())
	default:
		repl = cond(v1alpha1.ConditionReplicating, true, v1alpha1.ReasonInSync,
			"replicating both ways; the peer's writes arrive within %ds", max(lag, 1))
	}

	out := replicationStatus{Conditions: conds.Merge(conds.Select(cur.Conditions, ownedConditions...), []metav1.Condition{reach, repl}, at)}
	out.ActiveSite = v1alpha1.SiteLocal
	if cur.Storage != nil && cur.Storage.ActiveSite != "" {
		out.ActiveSite = cur.Storage.ActiveSite
	}
	out.Failover = cur.Failover
	var lastFailover *v1alpha1.FailoverRecord
	if cur.Replication != nil {
		lastFailover = cur.Replication.LastFailover
	}
	if o.failoverDecided {
		d := o.failover
		out.ActiveSite = d.Active
		fs, rec := failoverStatus(lastFailover, d, now)
		if o.drillFailover {
			rec.Trigger = "Drill"
		}
		rec = withRTO(rec, s)
		out.Failover, lastFailover = &fs, rec
	}
	if o.monitored && s.PeerChecked {
		healthy := s.PeerHealthErr == nil
		out.Peer = &v1alpha1.SiteHealth{Healthy: healthy, Since: &at}
		if p := currentPeer(cur); p != nil && p.Healthy == healthy {
			out.Peer.Since = p.Since
		}
	}
	var lastDrill *v1alpha1.DrillRecord
	if cur.Replication != nil {
		lastDrill = cur.Replication.LastDrill
	}
	rs := v1alpha1.ReplicationStatus{LastFailover: lastFailover, LastDrill: cmp.Or(o.drillOverride, drillRecord(lastDrill, s.Drill))}
	if o.monitored {
		if s.LagKnown {
			rs.LagSeconds = &lag
		}
		rs.FailedObjects = s.FailedLastHour
		if s.Backlog >= 0 {
			b := s.Backlog
			rs.Backlog = &b
		}
		if !s.LastVerified.IsZero() {
			v := metav1.NewTime(s.LastVerified.Truncate(time.Second))
			rs.LastVerifiedSync = &v
		}
		if !s.CatchUpStarted.IsZero() || s.CatchUp != v1alpha1.CatchUpIdle {
			cu := &v1alpha1.CatchUpStatus{Phase: s.CatchUp, Requeued: s.Requeued}
			if !s.CatchUpStarted.IsZero() {
				st := metav1.NewTime(s.CatchUpStarted.Truncate(time.Second))
				cu.StartedAt = &st
			}
			if !s.CatchUpCompleted.IsZero() {
				c := metav1.NewTime(s.CatchUpCompleted.Truncate(time.Second))
				cu.CompletedAt = &c
			}
			rs.CatchUp = cu
		}
	}
	out.Replication = rs
	return out
}

func currentPeer(st v1alpha1.SupportTenantStatus) *v1alpha1.SiteHealth {
	if st.Storage == nil {
		return nil
	}
	return st.Storage.Peer
}

// stored is the replication part of the status as stored.
func stored(t *v1alpha1.SupportTenant) replicationStatus {
	out := replicationStatus{Conditions: conds.Select(t.Status.Conditions, ownedConditions...)}
	if t.Status.Storage != nil {
		out.Peer, out.ActiveSite = t.Status.Storage.Peer, t.Status.Storage.ActiveSite
	}
	if t.Status.Replication != nil {
		out.Replication = *t.Status.Replication
	}
	out.Failover = t.Status.Failover
	return out
}

// writeStatus applies the replication part of the status when it differs from the stored one.
func (r *Reconciler) writeStatus(ctx context.Context, t *v1alpha1.SupportTenant, o observation) error {
	if !t.DeletionTimestamp.IsZero() {
		return nil
	}
	next := r.desired(t, o, time.Now())
	if equality.Semantic.DeepEqual(stored(t), next) {
		return nil
	}
	before := stored(t)
	storage := tenantac.StorageStatus().WithActiveSite(next.ActiveSite)
	if next.Peer != nil {
		peer := tenantac.SiteHealth().WithHealthy(next.Peer.Healthy)
		if next.Peer.Since != nil {
			peer.WithSince(*next.Peer.Since)
		}
		storage.WithPeer(peer)
	}
	rs := next.Replication
	repl := tenantac.ReplicationStatus().WithFailedObjects(rs.FailedObjects)
	if rs.LagSeconds != nil {
		repl.WithLagSeconds(*rs.LagSeconds)
	}
	if rs.Backlog != nil {
		repl.WithBacklog(*rs.Backlog)
	}
	if rs.LastVerifiedSync != nil {
		repl.WithLastVerifiedSync(*rs.LastVerifiedSync)
	}
	if cu := rs.CatchUp; cu != nil {
		c := tenantac.CatchUpStatus().WithPhase(cu.Phase).WithRequeued(cu.Requeued)
		if cu.StartedAt != nil {
			c.WithStartedAt(*cu.StartedAt)
		}
		if cu.CompletedAt != nil {
			c.WithCompletedAt(*cu.CompletedAt)
		}
		repl.WithCatchUp(c)
	}
	if lf := rs.LastFailover; lf != nil {
		rec := tenantac.FailoverRecord().WithAt(lf.At).WithTrigger(lf.Trigger).WithVerified(lf.Verified)
		if lf.WritesResumedAt != nil {
			rec.WithWritesResumedAt(*lf.WritesResumedAt)
		}
		if lf.RTO != nil {
			rec.WithRTO(*lf.RTO)
		}
		if lf.DeclaredAt != nil {
			rec.WithDeclaredAt(*lf.DeclaredAt)
		}
		if lf.FailedBackAt != nil {
			rec.WithFailedBackAt(*lf.FailedBackAt)
		}
		repl.WithLastFailover(rec)
	}
	if ld := rs.LastDrill; ld != nil {
		repl.WithLastDrill(drillApply(ld))
	}
	status := tenantac.SupportTenantStatus().
		WithConditions(conds.Apply(next.Conditions)...).
		WithStorage(storage).
		WithReplication(repl)
	if f := next.Failover; f != nil {
		fs := tenantac.FailoverStatus().WithState(f.State).WithReason(f.Reason).WithMessage(f.Message)
		if f.VerifyFrom != nil {
			fs.WithVerifyFrom(*f.VerifyFrom)
		}
		status.WithFailover(fs)
	}
	if err := r.Status().Apply(ctx, tenantac.SupportTenant(t.Name, t.Namespace).WithStatus(status),
		client.FieldOwner(naming.StatusOwnerReplication), client.ForceOwnership); err != nil {
		return fmt.Errorf("apply replication status: %w", err)
	}
	r.recordTransitions(t, before.Conditions, next.Conditions)
	if o.failoverDecided {
		r.recordFailover(t, o.failover)
	}
	return nil
}

// clearStatus removes the replication part of the status of a tenant that is no longer replicated: applying an
// empty status under the controller's field owner gives up every field it owned.
func (r *Reconciler) clearStatus(ctx context.Context, t *v1alpha1.SupportTenant) error {
	s := stored(t)
	if len(s.Conditions) == 0 && s.Peer == nil && equality.Semantic.DeepEqual(s.Replication, v1alpha1.ReplicationStatus{}) {
		return nil
	}
	if !ownsStatus(t) {
		return nil
	}
	if err := r.Status().Apply(ctx, tenantac.SupportTenant(t.Name, t.Namespace).WithStatus(tenantac.SupportTenantStatus()),
		client.FieldOwner(naming.StatusOwnerReplication), client.ForceOwnership); err != nil {
		return fmt.Errorf("clear replication status: %w", err)
	}
	return nil
}

// ownsStatus reports whether the replication controller's field owner holds part of t's status.
func ownsStatus(t *v1alpha1.SupportTenant) bool {
	for _, mf := range t.ManagedFields {
		if mf.Manager == naming.StatusOwnerReplication && mf.Subresource == "status" {
			return true
		}
	}
	return false
}

// recordTransitions announces changes of the replication conditions a human should notice.
func (r *Reconciler) recordTransitions(t *v1alpha1.SupportTenant, before, after []metav1.Condition) {
	for _, c := range after {
		old := meta.FindStatusCondition(before, c.Type)
		if old != nil && old.Status == c.Status && old.Reason == c.Reason {
			continue
		}
		switch {
		case c.Status == metav1.ConditionTrue:
			r.Recorder.Eventf(t, nil, "Normal", c.Type, "Observe", "%s", c.Message)
		case old != nil && old.Status == metav1.ConditionTrue:
			r.Recorder.Eventf(t, nil, "Warning", c.Reason, "Observe", "%s: %s", c.Type, c.Message)
		}
	}
}

// drillApply is a drill record as an apply configuration.
func drillApply(d *v1alpha1.DrillRecord) *tenantac.DrillRecordApplyConfiguration {
	rec := tenantac.DrillRecord().WithName(d.Name).WithPhase(d.Phase).WithStartedAt(d.StartedAt).
		WithCanaries(d.Canaries).WithCanariesMissing(d.CanariesMissing).WithVerified(d.Verified).WithMessage(d.Message)
	for _, f := range []struct {
		t    *metav1.Time
		with func(metav1.Time) *tenantac.DrillRecordApplyConfiguration
	}{{d.FencedAt, rec.WithFencedAt}, {d.WritesResumedAt, rec.WithWritesResumedAt}, {d.DeclaredAt, rec.WithDeclaredAt},
		{d.RestoredAt, rec.WithRestoredAt}, {d.FailedBackAt, rec.WithFailedBackAt}, {d.CompletedAt, rec.WithCompletedAt}} {
		if f.t != nil {
			f.with(*f.t)
		}
	}
	if d.RTO != nil {
		rec.WithRTO(*d.RTO)
	}
	if d.RPO != nil {
		rec.WithRPO(*d.RPO)
	}
	return rec
}
