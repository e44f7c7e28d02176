package tenant

import (
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/supportstack/supportstack/api/v1alpha1"
	tenantac "github.com/supportstack/supportstack/api/v1alpha1/applyconfiguration/api/v1alpha1"
	conds "github.com/supportstack/supportstack/internal/conditions"
	"github.com/supportstack/supportstack/internal/naming"
)

// workload is what the status needs to know of a Deployment or StatefulSet.
type workload struct {
	found   bool
	desired int32
	ready   int32
	// observed is false while the workload's controller has not yet seen its latest spec.
	observed bool
}

func deploymentState(d *appsv1.Deployment) workload {
	if d == nil {
		return workload{}
	}
	return workload{found: true, desired: replicas(d.Spec.Replicas), ready: d.Status.ReadyReplicas,
		observed: d.Status.ObservedGeneration >= d.Generation}
}

func statefulSetState(s *appsv1.StatefulSet) workload {
	if s == nil {
		return workload{}
	}
	return workload{found: true, desired: replicas(s.Spec.Replicas), ready: s.Status.ReadyReplicas,
		observed: s.Status.ObservedGeneration >= s.Generation}
}

func replicas(p *int32) int32 {
	if p == nil {
		return 1
	}
	return *p
}

// observation is everything one reconcile learned; the status is a pure function of it.
type observation struct {
	generation int64
	suspended  bool
	// applyErr is the first error from writing the tenant's objects.
	applyErr error
	// quotaErr says which of the namespace's ResourceQuotas the tenant cannot fit in.
	quotaErr error

	storage, ingest, dashboard workload

	// storageChecked is true when MinIO was asked for its health and the bucket was ensured.
	storageChecked bool
	storageErr     error
	bucketErr      error
	retentionDays  int32
}

// conditions derives the conditions the tenant controller owns, but Ready, from an observation.
func conditions(o observation) []metav1.Condition {
	cond := conditionFor(o.generation)
	suspended := func(typ string) metav1.Condition {
		return cond(typ, false, v1alpha1.ReasonSuspended, "spec.suspend is true: scaled to zero, data is kept")
	}
	if o.suspended {
		return []metav1.Condition{suspended(v1alpha1.ConditionStorageReady),
			suspended(v1alpha1.ConditionIngestReady), suspended(v1alpha1.ConditionDashboardReady)}
	}
	storage := workloadCondition(cond, v1alpha1.ConditionStorageReady, "MinIO servers", o.storage)
	// An erasure set with servers down still serves as long as MinIO has write quorum, which its cluster health
	// check (o.storageErr) answers: the servers' count alone cannot tell.
	partial := o.storage.found && o.storage.observed && o.storage.desired > 1 && o.storage.ready > 0 && o.storage.ready < o.storage.desired
	if storage.Status == metav1.ConditionTrue || partial {
		switch {
		case !o.storageChecked:
			storage = cond(v1alpha1.ConditionStorageReady, false, v1alpha1.ReasonReconciling, "checking MinIO")
		case o.storageErr != nil && partial:
			storage = cond(v1alpha1.ConditionStorageReady, false, v1alpha1.ReasonStorageUnreachable, "%d/%d MinIO servers ready: %v",
				o.storage.ready, o.storage.desired, o.storageErr)
		case o.storageErr != nil:
			storage = cond(v1alpha1.ConditionStorageReady, false, v1alpha1.ReasonStorageUnreachable, "%v", o.storageErr)
		case o.bucketErr != nil:
			storage = cond(v1alpha1.ConditionStorageReady, false, v1alpha1.ReasonBucketNotConfigured, "%v", o.bucketErr)
		case partial:
			storage = cond(v1alpha1.ConditionStorageReady, true, v1alpha1.ReasonServersUnavailable,
				"%d/%d MinIO servers ready: the erasure set serves with reduced redundancy", o.storage.ready, o.storage.desired)
		default:
			storage = cond(v1alpha1.ConditionStorageReady, true, v1alpha1.ReasonAvailable,
				"bucket %s is versioned and keeps records for %d days", naming.BucketName, o.retentionDays)
		}
	}
	return []metav1.Condition{storage,
		workloadCondition(cond, v1alpha1.ConditionIngestReady, "ingest pods", o.ingest),
		workloadCondition(cond, v1alpha1.ConditionDashboardReady, "dashboard pods", o.dashboard)}
}

// ownedConditions are the condition types the tenant controller writes.
var ownedConditions = []string{v1alpha1.ConditionReady, v1alpha1.ConditionStorageReady, v1alpha1.ConditionIngestReady,
	v1alpha1.ConditionDashboardReady}

// informational conditions describe the tenant without deciding whether it serves: a tenant whose replication
// lags or whose peer is unreachable still takes its agents' records.
var informational = map[string]bool{v1alpha1.ConditionReplicating: true, v1alpha1.ConditionPeerReachable: true}

func conditionFor(generation int64) func(typ string, ok bool, reason, format string, args ...any) metav1.Condition {
	return func(typ string, ok bool, reason, format string, args ...any) metav1.Condition {
		status := metav1.ConditionFalse
		if ok {
			status = metav1.ConditionTrue
		}
		return metav1.Condition{Type: typ, Status: status, Reason: reason, Message: fmt.Sprintf(format, args...),
			ObservedGeneration: generation}
	}
}

// withOwnConditions is current with the tenant controller's conditions set from o, and Ready computed from them
// and from every other writer's.
func withOwnConditions(current []metav1.Condition, o observation, at metav1.Time) []metav1.Condition {
	next := conds.Merge(current, conditions(o), at)
	return conds.Merge(next, []metav1.Condition{readiness(next, o)}, at)
}

// readiness computes Ready from every condition present, whoever wrote it (the tenant controller's own and the
// replication controller's): Ready is true when every condition that decides whether the tenant serves is true.
func readiness(conds []metav1.Condition, o observation) metav1.Condition {
	cond := conditionFor(o.generation)
	var notReady []string
	for _, c := range conds {
		if c.Type != v1alpha1.ConditionReady && !informational[c.Type] && c.Status != metav1.ConditionTrue {
			notReady = append(notReady, c.Type)
		}
	}
	switch {
	case o.suspended:
		return cond(v1alpha1.ConditionReady, false, v1alpha1.ReasonSuspended, "spec.suspend is true: scaled to zero, data is kept")
	case o.applyErr != nil:
		return cond(v1alpha1.ConditionReady, false, v1alpha1.ReasonApplyFailed, "%v", o.applyErr)
	case o.quotaErr != nil:
		return cond(v1alpha1.ConditionReady, false, v1alpha1.ReasonQuotaExceeded, "%v", o.quotaErr)
	case len(notReady) > 0:
		return cond(v1alpha1.ConditionReady, false, v1alpha1.ReasonComponentsNotReady, "not ready: %s", strings.Join(notReady, ", "))
	}
	return cond(v1alpha1.ConditionReady, true, v1alpha1.ReasonAvailable, "storage, ingest and dashboard are available")
}

// workloadCondition is True when every wanted pod of the workload is ready.
func workloadCondition(cond func(string, bool, string, string, ...any) metav1.Condition, typ, what string, w workload) metav1.Condition {
	switch {
	case !w.found:
		return cond(typ, false, v1alpha1.ReasonReconciling, "%s are being created", what)
	case !w.observed:
		return cond(typ, false, v1alpha1.ReasonReconciling, "%s are being updated", what)
	case w.ready < w.desired:
		return cond(typ, false, v1alpha1.ReasonPodsNotReady, "%d/%d %s ready", w.ready, w.desired, what)
	default:
		return cond(typ, true, v1alpha1.ReasonAvailable, "%d/%d %s ready", w.ready, w.desired, what)
	}
}

// phase summarises the conditions for print columns. A tenant that was never Ready is still provisioning;
// afterwards anything short of Ready is degraded.
func phase(conds []metav1.Condition, suspended, wasReady, onPeer bool) v1alpha1.TenantPhase {
	switch {
	case suspended:
		return v1alpha1.PhaseSuspended
	case onPeer:
		// The replication controller declared a failover: the tenant serves from the peer's copy.
		return v1alpha1.PhaseFailedOver
	case meta.IsStatusConditionTrue(conds, v1alpha1.ConditionReady):
		return v1alpha1.PhaseReady
	case wasReady:
		return v1alpha1.PhaseDegraded
	default:
		return v1alpha1.PhaseProvisioning
	}
}

// desiredStatus computes the next status from the current one and an observation: the fields the tenant
// controller owns change, every other writer's are kept. Timestamps of unchanged conditions and site health are
// kept, so that a resync of a converged tenant computes the same status.
func (c Config) desiredStatus(t *v1alpha1.SupportTenant, o observation, now time.Time) v1alpha1.SupportTenantStatus {
	st := *t.Status.DeepCopy()
	st.ObservedGeneration = o.generation
	at := metav1.NewTime(now)
	st.Conditions = withOwnConditions(st.Conditions, o, at)
	st.CredentialsSecretName = naming.CredentialsSecret(t.Name)
	st.Endpoints = c.endpoints(t)

	if st.Storage == nil {
		st.Storage = &v1alpha1.StorageStatus{}
	}
	if t.Spec.Replication == nil {
		// One site: it is the active one. With replication the replication controller says which site is.
		st.Storage.ActiveSite = v1alpha1.SiteLocal
	}
	if o.storageChecked {
		healthy := o.storageErr == nil
		if st.Storage.Local == nil || st.Storage.Local.Healthy != healthy {
			st.Storage.Local = &v1alpha1.SiteHealth{Healthy: healthy, Since: &at}
		}
		if healthy && o.bucketErr == nil {
			st.Storage.Bucket = naming.BucketName
		}
	}
	if st.FirstReadyTime == nil && meta.IsStatusConditionTrue(st.Conditions, v1alpha1.ConditionReady) {
		st.FirstReadyTime = &at
	}
	onPeer := t.Spec.Replication != nil && st.Storage.ActiveSite == v1alpha1.SitePeer
	st.Phase = phase(st.Conditions, o.suspended, st.FirstReadyTime != nil, onPeer)
	return st
}

// statusApply is the part of st that the tenant controller owns, as a server-side apply of the status: other
// controllers own the rest (replication, the peer site) under field owners of their own.
func statusApply(t *v1alpha1.SupportTenant, st v1alpha1.SupportTenantStatus) *tenantac.SupportTenantApplyConfiguration {
	status := tenantac.SupportTenantStatus().
		WithObservedGeneration(st.ObservedGeneration).
		WithPhase(st.Phase).
		WithConditions(conds.Apply(conds.Select(st.Conditions, ownedConditions...))...).
		WithEndpoints(tenantac.TenantEndpoints().WithIngest(st.Endpoints.Ingest).WithDashboard(st.Endpoints.Dashboard).
			WithStatus(st.Endpoints.Status)).
		WithCredentialsSecretName(st.CredentialsSecretName)
	if st.FirstReadyTime != nil {
		status.WithFirstReadyTime(*st.FirstReadyTime)
	}
	if s := st.Storage; s != nil {
		storage := tenantac.StorageStatus()
		if s.Bucket != "" {
			storage.WithBucket(s.Bucket)
		}
		if t.Spec.Replication == nil && s.ActiveSite != "" {
			storage.WithActiveSite(s.ActiveSite)
		}
		if s.Local != nil {
			local := tenantac.SiteHealth().WithHealthy(s.Local.Healthy)
			if s.Local.Since != nil {
				local.WithSince(*s.Local.Since)
			}
			storage.WithLocal(local)
		}
		status.WithStorage(storage)
	}
	return tenantac.SupportTenant(t.Name, t.Namespace).WithStatus(status)
}

// endpoints are the tenant's URLs: public ones where the spec gives a host, in-cluster Services otherwise.
func (c Config) endpoints(t *v1alpha1.SupportTenant) v1alpha1.TenantEndpoints {
	dashboard := c.publicURL(t, naming.Dashboard(t.Name), t.Spec.Dashboard.Exposure)
	return v1alpha1.TenantEndpoints{
		Ingest:    c.publicURL(t, naming.Ingest(t.Name), t.Spec.Ingest.Exposure),
		Dashboard: dashboard,
		Status:    dashboard + "/status",
	}
}
