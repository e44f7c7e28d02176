package localrunner

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

func TestDeploymentAvailable(t *testing.T) {
	rolling := func(unavailable, surge intstr.IntOrString) appsv1.DeploymentStrategy {
		return appsv1.DeploymentStrategy{
			Type:          appsv1.RollingUpdateDeploymentStrategyType,
			RollingUpdate: &appsv1.RollingUpdateDeployment{MaxUnavailable: &unavailable, MaxSurge: &surge},
		}
	}
	tests := map[string]struct {
		replicas int32
		strategy appsv1.DeploymentStrategy
		ready    int32
		want     corev1.ConditionStatus
	}{
		"all ready":                      {replicas: 2, strategy: rolling(intstr.FromString("25%"), intstr.FromString("25%")), ready: 2, want: corev1.ConditionTrue},
		"25% of 2 rounds down to 0":      {replicas: 2, strategy: rolling(intstr.FromString("25%"), intstr.FromString("25%")), ready: 1, want: corev1.ConditionFalse},
		"25% of 4 allows one":            {replicas: 4, strategy: rolling(intstr.FromString("25%"), intstr.FromString("25%")), ready: 3, want: corev1.ConditionTrue},
		"both zero allows one":           {replicas: 2, strategy: rolling(intstr.FromInt32(0), intstr.FromInt32(0)), ready: 1, want: corev1.ConditionTrue},
		"recreate needs all":             {replicas: 3, strategy: appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}, ready: 2, want: corev1.ConditionFalse},
		"zero replicas is available":     {replicas: 0, strategy: rolling(intstr.FromInt32(1), intstr.FromInt32(1)), ready: 0, want: corev1.ConditionTrue},
		"one replica none ready":         {replicas: 1, strategy: rolling(intstr.FromString("25%"), intstr.FromString("25%")), ready: 0, want: corev1.ConditionFalse},
		"max unavailable above replicas": {replicas: 1, strategy: rolling(intstr.FromInt32(5), intstr.FromInt32(0)), ready: 0, want: corev1.ConditionTrue},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			d := &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Replicas: ptr.To(tc.replicas), Strategy: tc.strategy}}
			st := deploymentStatus(d, podCounts{replicas: tc.replicas, ready: tc.ready, updated: tc.replicas}, metav1.Now())
			require.Len(t, st.Conditions, 1)
			assert.Equal(t, tc.want, st.Conditions[0].Status)
			assert.Equal(t, tc.ready, st.ReadyReplicas)
			assert.Equal(t, tc.ready, st.AvailableReplicas)
			assert.Equal(t, max(tc.replicas-tc.ready, 0), st.UnavailableReplicas)
		})
	}
}

func TestDeploymentConditionTimes(t *testing.T) {
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Generation: 4},
		Spec:       appsv1.DeploymentSpec{Replicas: ptr.To[int32](1)},
	}
	t0 := metav1.NewTime(time.Unix(1000, 0))
	d.Status = deploymentStatus(d, podCounts{replicas: 1, ready: 1, updated: 1}, t0)
	assert.Equal(t, int64(4), d.Status.ObservedGeneration)

	// Same availability later: nothing changes, so no status write is needed.
	again := deploymentStatus(d, podCounts{replicas: 1, ready: 1, updated: 1}, metav1.NewTime(time.Unix(2000, 0)))
	assert.Equal(t, d.Status, again)

	t1 := metav1.NewTime(time.Unix(3000, 0))
	down := deploymentStatus(d, podCounts{replicas: 1, ready: 0, updated: 1}, t1)
	assert.Equal(t, corev1.ConditionFalse, down.Conditions[0].Status)
	assert.Equal(t, t1, down.Conditions[0].LastTransitionTime)
}

func TestStatefulSetStatus(t *testing.T) {
	s := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "db", Generation: 2}}
	st := statefulSetStatus(s, podCounts{replicas: 3, ready: 2, updated: 3}, "db-abc")
	assert.Equal(t, appsv1.StatefulSetStatus{
		ObservedGeneration: 2, Replicas: 3, ReadyReplicas: 2, AvailableReplicas: 2,
		CurrentReplicas: 3, UpdatedReplicas: 3, CurrentRevision: "db-abc", UpdateRevision: "db-abc",
	}, st)
}
