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

	ActionApply            = "Apply"
	ActionReconcile        = "Reconcile"
	ActionBootstrapStorage = "BootstrapStorage"
	ActionObserve          = "Observe"
)

// recordTransitions announces conditions that changed status: a component (or the tenant) that became ready,
// recovered, or stopped being ready. Suspension is the user's own doing and is not announced as a failure.
func (r *Reconciler) recordTransitions(t *v1alpha1.SupportTenant, before, after []metav1.Condition) {
	for _, c := range after {
		old := meta.FindStatusCondition(before, c.Type)
		if old != nil && old.Status == c.Status {
			continue
		}
		switch {
		case c.Status == metav1.ConditionTrue && (old == nil || old.Reason == v1alpha1.ReasonReconciling || old.Reason == v1alpha1.ReasonSuspended):
			r.Recorder.Eventf(t, nil, corev1.EventTypeNormal, ReasonBecameReady, ActionObserve, "%s: %s", c.Type, c.Message)
		case c.Status == metav1.ConditionTrue:
			r.Recorder.Eventf(t, nil, corev1.EventTypeNormal, ReasonRecovered, ActionObserve, "%s: %s", c.Type, c.Message)
		case old != nil && old.Status == metav1.ConditionTrue && c.Reason != v1alpha1.ReasonSuspended:
			r.Recorder.Eventf(t, nil, corev1.EventTypeWarning, ReasonNotReady, ActionObserve, "%s: %s", c.Type, c.Message)
		}
	}
}
