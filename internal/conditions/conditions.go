// Package conditions helps the controllers that share a tenant's status: each writes its own conditions by
// server-side apply under a field owner of its own, and keeps lastTransitionTime when a condition did not change.
package conditions

import (
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
)

// Merge returns the conditions current would have with next set: a condition whose status is unchanged keeps
// its lastTransitionTime, others get now's. Conditions of other types are kept as they are.
func Merge(current, next []metav1.Condition, now metav1.Time) []metav1.Condition {
	out := make([]metav1.Condition, 0, len(current)+len(next))
	for _, c := range current {
		out = append(out, *c.DeepCopy())
	}
	for _, c := range next {
		if c.LastTransitionTime.IsZero() {
			c.LastTransitionTime = now
		}
		meta.SetStatusCondition(&out, c)
	}
	return out
}

// Select returns the conditions of the given types, in the order of types.
func Select(conds []metav1.Condition, types ...string) []metav1.Condition {
	var out []metav1.Condition
	for _, typ := range types {
		if c := meta.FindStatusCondition(conds, typ); c != nil {
			out = append(out, *c)
		}
	}
	return out
}

// Apply is conds as apply configurations.
func Apply(conds []metav1.Condition) []*metav1ac.ConditionApplyConfiguration {
	out := make([]*metav1ac.ConditionApplyConfiguration, 0, len(conds))
	for _, c := range conds {
		out = append(out, metav1ac.Condition().
			WithType(c.Type).
			WithStatus(c.Status).
			WithReason(c.Reason).
			WithMessage(c.Message).
			WithObservedGeneration(c.ObservedGeneration).
			WithLastTransitionTime(c.LastTransitionTime))
	}
	return out
}
