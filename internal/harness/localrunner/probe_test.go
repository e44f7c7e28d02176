package localrunner

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	corev1 "k8s.io/api/core/v1"
)

func TestReadinessObserve(t *testing.T) {
	fail := errors.New("probe failed")
	probe := &corev1.Probe{SuccessThreshold: 1, FailureThreshold: 2}
	type step struct {
		running bool
		starts  int
		err     error
		want    bool
	}
	tests := map[string]struct {
		probe *corev1.Probe
		steps []step
	}{
		"no probe: ready while running": {
			steps: []step{{running: true, starts: 1, want: true}, {running: false, starts: 1, want: false}, {running: true, starts: 2, want: true}},
		},
		"unsupported probe: ready while running": {
			probe: &corev1.Probe{},
			steps: []step{{running: true, starts: 1, err: errUnsupportedProbe, want: true}},
		},
		"starts unready until success": {
			probe: probe,
			steps: []step{{running: true, starts: 1, err: fail}, {running: true, starts: 1, want: true}},
		},
		"failure threshold": {
			probe: probe,
			steps: []step{
				{running: true, starts: 1, want: true},
				{running: true, starts: 1, err: fail, want: true},
				{running: true, starts: 1, err: fail, want: false},
				{running: true, starts: 1, want: true},
			},
		},
		"restart resets readiness": {
			probe: probe,
			steps: []step{
				{running: true, starts: 1, want: true},
				{running: true, starts: 2, err: fail, want: false},
			},
		},
		"default failure threshold is 3": {
			probe: &corev1.Probe{},
			steps: []step{
				{running: true, starts: 1, want: true},
				{running: true, starts: 1, err: fail, want: true},
				{running: true, starts: 1, err: fail, want: true},
				{running: true, starts: 1, err: fail, want: false},
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var r readiness
			for i, s := range tc.steps {
				assert.Equal(t, s.want, r.observe(tc.probe, s.running, s.starts, s.err), "step %d", i)
			}
		})
	}
}

func TestProbePeriod(t *testing.T) {
	assert.Equal(t, time.Second, probePeriod(nil, time.Second))
	assert.Equal(t, time.Second, probePeriod(&corev1.Probe{PeriodSeconds: 10}, time.Second))
	assert.Equal(t, 200*time.Millisecond, probePeriod(&corev1.Probe{PeriodSeconds: 1}, 200*time.Millisecond))
	assert.Equal(t, time.Second, probePeriod(&corev1.Probe{PeriodSeconds: 1}, 5*time.Second))
}
