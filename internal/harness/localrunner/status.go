package localrunner

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
)

// podCounts summarizes a workload's running pods.
type podCounts struct {
	replicas int32 // pods running, ready or not
	ready    int32
	updated  int32 // pods of the current template
}

func (r *Runner) counts(w *workload) podCounts {
	var c podCounts
	for _, p := range r.podsOf(w.key) {
		c.replicas++
		if p.ready.Load() {
			c.ready++
		}
		if p.hash == w.hash {
			c.updated++
		}
	}
	return c
}

// writeStatus writes the workload's status through the status subresource
// when it differs from what the object holds. The runner is the only writer:
// without kube-controller-manager nothing else maintains it.
func (r *Runner) writeStatus(ctx context.Context, w *workload) error {
	c := r.counts(w)
	var changed bool
	orig := w.obj.DeepCopyObject().(client.Object)
	switch o := w.obj.(type) {
	case *appsv1.Deployment:
		st := deploymentStatus(o, c, metav1.Now())
		changed = !equality.Semantic.DeepEqual(st, o.Status)
		o.Status = st
	case *appsv1.StatefulSet:
		st := statefulSetStatus(o, c, o.Name+"-"+w.hash)
		changed = !equality.Semantic.DeepEqual(st, o.Status)
		o.Status = st
	}
	if !changed {
		return nil
	}
	if err := r.Client.Status().Patch(ctx, w.obj, client.MergeFrom(orig)); err != nil {
		return fmt.Errorf("write status of %s: %w", w.key, err)
	}
	log.FromContext(ctx).V(1).Info("Wrote status", "replicas", c.replicas, "readyReplicas", c.ready)
	return nil
}

// deploymentStatus is the status the deployment controller would report for
// the given pods. Available follows its rule: at least replicas minus
// maxUnavailable pods are available.
func deploymentStatus(d *appsv1.Deployment, c podCounts, now metav1.Time) appsv1.DeploymentStatus {
	desired := ptr.Deref(d.Spec.Replicas, 1)
	st := *d.Status.DeepCopy()
	st.ObservedGeneration = d.Generation
	st.Replicas = c.replicas
	st.UpdatedReplicas = c.updated
	st.ReadyReplicas = c.ready
	// minReadySeconds is not emulated: a ready pod counts as available.
	st.AvailableReplicas = c.ready
	st.UnavailableReplicas = max(desired-c.ready, 0)

	cond := appsv1.DeploymentCondition{
		Type:    appsv1.DeploymentAvailable,
		Status:  corev1.ConditionFalse,
		Reason:  "MinimumReplicasUnavailable",
		Message: "Deployment does not have minimum availability.",
	}
	if c.ready >= desired-maxUnavailable(d) {
		cond.Status = corev1.ConditionTrue
		cond.Reason = "MinimumReplicasAvailable"
		cond.Message = "Deployment has minimum availability."
	}
	setDeploymentCondition(&st, cond, now)
	return st
}

// maxUnavailable resolves the rolling update's maxUnavailable like the
// deployment controller: 0 for Recreate, defaults of 25%, and 1 when both
// maxSurge and maxUnavailable come out as 0.
func maxUnavailable(d *appsv1.Deployment) int32 {
	desired := int(ptr.Deref(d.Spec.Replicas, 1))
	if d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType || desired == 0 {
		return 0
	}
	unavailable, surge := intstr.FromString("25%"), intstr.FromString("25%")
	if ru := d.Spec.Strategy.RollingUpdate; ru != nil {
		unavailable = ptr.Deref(ru.MaxUnavailable, unavailable)
		surge = ptr.Deref(ru.MaxSurge, surge)
	}
	u, err := intstr.GetScaledValueFromIntOrPercent(&unavailable, desired, false)
	if err != nil {
		return 0
	}
	s, err := intstr.GetScaledValueFromIntOrPercent(&surge, desired, true)
	if err != nil {
		return 0
	}
	if u == 0 && s == 0 {
		u = 1
	}
	return int32(min(u, desired))
}

// setDeploymentCondition sets cond like the deployment controller: an
// unchanged status and reason leave the condition alone, and the transition
// time moves only when the status changes.
func setDeploymentCondition(st *appsv1.DeploymentStatus, cond appsv1.DeploymentCondition, now metav1.Time) {
	for i := range st.Conditions {
		cur := &st.Conditions[i]
		if cur.Type != cond.Type {
			continue
		}
		if cur.Status == cond.Status && cur.Reason == cond.Reason {
			return
		}
		cond.LastUpdateTime = now
		cond.LastTransitionTime = now
		if cur.Status == cond.Status {
			cond.LastTransitionTime = cur.LastTransitionTime
		}
		*cur = cond
		return
	}
	cond.LastUpdateTime = now
	cond.LastTransitionTime = now
	st.Conditions = append(st.Conditions, cond)
}

// statefulSetStatus is the status the StatefulSet controller would report.
// Pods are replaced in place, so there is a single revision.
func statefulSetStatus(s *appsv1.StatefulSet, c podCounts, revision string) appsv1.StatefulSetStatus {
	st := *s.Status.DeepCopy()
	st.ObservedGeneration = s.Generation
	st.Replicas = c.replicas
	st.ReadyReplicas = c.ready
	st.AvailableReplicas = c.ready
	st.CurrentReplicas = c.updated
	st.UpdatedReplicas = c.updated
	st.CurrentRevision = revision
	st.UpdateRevision = revision
	return st
}
