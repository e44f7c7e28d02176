package conditions

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestMergeKeepsTransitionTimesAndOtherTypes(t *testing.T) {
	t0 := metav1.NewTime(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC))
	now := metav1.NewTime(t0.Add(time.Hour))
	current := []metav1.Condition{
		{Type: "StorageReady", Status: metav1.ConditionTrue, Reason: "Available", LastTransitionTime: t0},
		{Type: "Replicating", Status: metav1.ConditionTrue, Reason: "Replicating", LastTransitionTime: t0},
	}
	got := Merge(current, []metav1.Condition{
		{Type: "StorageReady", Status: metav1.ConditionTrue, Reason: "Available", Message: "new text"},
		{Type: "IngestReady", Status: metav1.ConditionFalse, Reason: "PodsNotReady"},
	}, now)
	require.Len(t, got, 3)
	require.Equal(t, t0, Select(got, "StorageReady")[0].LastTransitionTime, "an unchanged status keeps its time")
	require.Equal(t, "new text", Select(got, "StorageReady")[0].Message)
	require.Equal(t, now, Select(got, "IngestReady")[0].LastTransitionTime)
	require.Equal(t, current[1], Select(got, "Replicating")[0], "another writer's condition is untouched")
	require.Equal(t, "Available", current[0].Reason, "the input is not modified")

	flipped := Merge(got, []metav1.Condition{{Type: "StorageReady", Status: metav1.ConditionFalse, Reason: "StorageUnreachable"}}, metav1.NewTime(now.Add(time.Minute)))
	require.Equal(t, now.Add(time.Minute), Select(flipped, "StorageReady")[0].LastTransitionTime.Time)

	ac := Apply(Select(got, "IngestReady"))
	require.Len(t, ac, 1)
	require.Equal(t, "IngestReady", *ac[0].Type)
	require.Equal(t, now, *ac[0].LastTransitionTime)
}
