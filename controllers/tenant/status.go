package tenant

import (
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/supportstack/supportstack/api/v1alpha1"
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

	storage, ingest, dashboard workload

	// storageChecked is true when MinIO was asked for its health and the bucket was ensured.
	storageChecked bool
	storageErr     error
	bucketErr      error
	retentionDays  int32
}

// conditions derives the tenant's conditions from an observation.
func conditions(o observation) []metav1.Condition {
	cond := func(typ string, ok bool, reason, format string, args ...any) metav1.Condition {
		status := metav1.ConditionFalse
		if ok {
			status = metav1.ConditionTrue
		}
		return metav1.Condition{Type: typ, Status: status, Reason: reason, Message: fmt.Sprintf(format, args...),
			ObservedGeneration: o.generation}
	}
	suspended := func(typ string) metav1.Condition {
		return cond(typ, false, v1alpha1.ReasonSuspended, "spec.suspend is true: scaled to zero, data is kept")
	}

	var storage, ingest, dashboard metav1.Condition
	if o.suspended {
		storage, ingest, dashboard = suspended(v1alpha1.ConditionStorageReady),
			suspended(v1alpha1.ConditionIngestReady), suspended(v1alpha1.ConditionDashboardReady)
	} else {
		storage = workloadCondition(cond, v1alpha1.ConditionStorageReady, "MinIO servers", o.storage)
		if storage.Status == metav1.ConditionTrue {
			switch {
			case !o.storageChecked:
				storage = cond(v1alpha1.ConditionStorageReady, false, v1alpha1.ReasonReconciling, "checking MinIO")
			case o.storageErr != nil:
				storage = cond(v1alpha1.ConditionStorageReady, false, v1alpha1.ReasonStorageUnreachable, "%v", o.storageErr)
			case o.bucketErr != nil:
				storage = cond(v1alpha1.ConditionStorageReady, false, v1alpha1.ReasonBucketNotConfigured, "%v", o.bucketErr)
			default:
				storage = cond(v1alpha1.ConditionStorageReady, true, v1alpha1.ReasonAvailable,
					"bucket %s is versioned and keeps records for %d days", naming.BucketName, o.retentionDays)
			}
		}
		ingest = workloadCondition(cond, v1alpha1.ConditionIngestReady, "ingest pods", o.ingest)
		dashboard = workloadCondition(cond, v1alpha1.ConditionDashboardReady, "dashboard pods", o.dashboard)
	}

	var ready metav1.Condition
	var notReady []string
	for _, c := range []metav1.Condition{storage, ingest, dashboard} {
		if c.Status != metav1.ConditionTrue {
			notReady = append(notReady, c.Type)
		}
	}
	switch {
	case o.suspended:
		ready = suspended(v1alpha1.ConditionReady)
	case o.applyErr != nil:
		ready = cond(v1alpha1.ConditionReady, false, v1alpha1.ReasonApplyFailed, "%v", o.applyErr)
	case len(notReady) > 0:
		ready = cond(v1alpha1.ConditionReady, false, v1alpha1.ReasonComponentsNotReady, "not ready: %s",
			strings.Join(notReady, ", "))
	default:
		ready = cond(v1alpha1.ConditionReady, true, v1alpha1.ReasonAvailable, "storage, ingest and dashboard are available")
	}
	return []metav1.Condition{ready, storage, ingest, dashboard}
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
func phase(conds []metav1.Condition, suspended, wasReady bool) v1alpha1.TenantPhase {
	switch {
	case suspended:
		return v1alpha1.PhaseSuspended
	case meta.IsStatusConditionTrue(conds, v1alpha1.ConditionReady):
		return v1alpha1.PhaseReady
	case wasReady:
		return v1alpha1.PhaseDegraded
	default:
		return v1alpha1.PhaseProvisioning
	}
}

// desiredStatus computes the next status from the current one and an observation. Timestamps of unchanged
// conditions and site health are kept, so that a resync of a converged tenant computes the same status.
func (c Config) desiredStatus(t *v1alpha1.SupportTenant, o observation, now time.Time) v1alpha1.SupportTenantStatus {
	st := *t.Status.DeepCopy()
	st.ObservedGeneration = o.generation
	for _, cond := range conditions(o) {
		meta.SetStatusCondition(&st.Conditions, cond)
	}
	st.CredentialsSecretName = naming.CredentialsSecret(t.Name)
	st.Endpoints = c.endpoints(t)

	if st.Storage == nil {
		st.Storage = &v1alpha1.StorageStatus{}
	}
	st.Storage.ActiveSite = v1alpha1.SiteLocal
	if o.storageChecked {
		healthy := o.storageErr == nil
		if st.Storage.Local == nil || st.Storage.Local.Healthy != healthy {
			st.Storage.Local = &v1alpha1.SiteHealth{Healthy: healthy, Since: &metav1.Time{Time: now}}
		}
		if healthy && o.bucketErr == nil {
			st.Storage.Bucket = naming.BucketName
		}
	}
	if st.FirstReadyTime == nil && meta.IsStatusConditionTrue(st.Conditions, v1alpha1.ConditionReady) {
		st.FirstReadyTime = &metav1.Time{Time: now}
	}
	st.Phase = phase(st.Conditions, o.suspended, st.FirstReadyTime != nil)
	return st
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
