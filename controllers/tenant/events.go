package tenant

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/supportstack/supportstack/api/v1alpha1"
)

// Event reasons and actions. Reasons are constant so that `kubectl events --for` output can be filtered; the
// note carries the detail.
const (
	ReasonCreated            = "Created"
	ReasonUpdated            = "Updated"
	ReasonDeleted            = "Deleted"
	ReasonApplyFailed        = "ApplyFailed"
	ReasonCredentialsCreated = "CredentialsCreated"
	ReasonCredentialsFailed  = "CredentialsFailed"
	ReasonBecameReady        = "BecameReady"
	ReasonRecovered          = "Recovered"
	ReasonNotReady           = "NotReady"
	ReasonStorageDegraded    = "StorageDegraded"
	ReasonQuotaExceeded      = "QuotaExceeded"

	ActionApply            = "Apply"
	ActionReconcile        = "Reconcile"
	ActionBootstrapStorage = "BootstrapStorage"
	ActionObserve          = "Observe"
)

// recordTransitions announces what a human should notice, once per change: the tenant becoming Ready (for the
// first time, or again after an outage), a component that stops being ready, and an erasure set that serves with
// servers down (and all of them back). Suspension is the user's own doing and is not announced as a failure.
func (r *Reconciler) recordTransitions(t *v1alpha1.SupportTenant, before v1alpha1.SupportTenantStatus, after []metav1.Condition) {
	for _, c := range after {
		old := meta.FindStatusCondition(before.Conditions, c.Type)
		if c.Type == v1alpha1.ConditionStorageReady && c.Status == metav1.ConditionTrue && old != nil && old.Status == metav1.ConditionTrue {
			// Serving throughout: servers of the erasure set went down, or all came back.
			was, is := old.Reason == v1alpha1.ReasonServersUnavailable, c.Reason == v1alpha1.ReasonServersUnavailable
			switch {
			case is && !was:
				r.Recorder.Eventf(t, nil, corev1.EventTypeWarning, ReasonStorageDegraded, ActionObserve, "%s: %s", c.Type, c.Message)
			case was && !is:
				r.Recorder.Eventf(t, nil, corev1.EventTypeNormal, ReasonRecovered, ActionObserve, "%s: every MinIO server is ready", c.Type)
			}
		}
		if c.Type == v1alpha1.ConditionReady && c.Reason == v1alpha1.ReasonQuotaExceeded && (old == nil || old.Reason != c.Reason) {
			r.Recorder.Eventf(t, nil, corev1.EventTypeWarning, ReasonQuotaExceeded, ActionObserve, "%s", c.Message)
		}
		if old != nil && old.Status == c.Status {
			continue
		}
		switch {
		case c.Type == v1alpha1.ConditionReady && c.Status == metav1.ConditionTrue:
			reason := ReasonRecovered
			if before.FirstReadyTime == nil || (old != nil && old.Reason == v1alpha1.ReasonSuspended) {
				reason = ReasonBecameReady
			}
			r.Recorder.Eventf(t, nil, corev1.EventTypeNormal, reason, ActionObserve, "Tenant is ready: %s", c.Message)
		case c.Type != v1alpha1.ConditionReady && c.Status == metav1.ConditionFalse &&
			old != nil && old.Status == metav1.ConditionTrue && c.Reason != v1alpha1.ReasonSuspended:
			r.Recorder.Eventf(t, nil, corev1.EventTypeWarning, ReasonNotReady, ActionObserve, "%s: %s", c.Type, c.Message)
		}
	}
}
