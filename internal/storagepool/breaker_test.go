package storagepool

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestBreakerOn(t *testing.T) {
	p := Policy{FailureThreshold: 3, HealthFailureThreshold: 3, OpenFor: 2 * time.Second}
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	now := t0.Add(5 * time.Second)
	openAt := func(since, retry time.Time) Breaker { return Breaker{State: Open, Since: since, RetryAt: retry} }

	tests := map[string]struct {
		in   Breaker
		ev   Event
		want Breaker
	}{
		"closed, first failure counts": {
			Breaker{State: Closed, Since: t0}, EventFailure,
			Breaker{State: Closed, Since: t0, Failures: 1}},
		"closed, failure below threshold stays closed": {
			Breaker{State: Closed, Since: t0, Failures: 1}, EventFailure,
			Breaker{State: Closed, Since: t0, Failures: 2}},
		"closed, failure at threshold opens": {
			Breaker{State: Closed, Since: t0, Failures: 2}, EventFailure,
			openAt(now, now.Add(2*time.Second))},
		"closed, a timeout opens at once": {
			Breaker{State: Closed, Since: t0}, EventTimeout,
			openAt(now, now.Add(2*time.Second))},
		"half-open, a timed-out probe opens": {
			Breaker{State: HalfOpen, Since: t0, Probing: true}, EventTimeout,
			openAt(now, now.Add(2*time.Second))},
		"open, a late timeout of a request admitted before changes nothing": {
			openAt(t0, t0.Add(2*time.Second)), EventTimeout,
			openAt(t0, t0.Add(2*time.Second))},
		"closed, success resets the failures": {
			Breaker{State: Closed, Since: t0, Failures: 2}, EventSuccess,
			Breaker{State: Closed, Since: t0}},
		"closed, one failed health check is not evidence enough": {
			Breaker{State: Closed, Since: t0}, EventHealthFail,
			Breaker{State: Closed, Since: t0, HealthFailures: 1}},
		"closed, failed health checks at threshold open": {
			Breaker{State: Closed, Since: t0, HealthFailures: 2}, EventHealthFail,
			openAt(now, now.Add(2*time.Second))},
		"closed, a request failure and a failed health check count apart": {
			Breaker{State: Closed, Since: t0, Failures: 2, HealthFailures: 1}, EventHealthFail,
			Breaker{State: Closed, Since: t0, Failures: 2, HealthFailures: 2}},
		"closed, a success resets both counts": {
			Breaker{State: Closed, Since: t0, Failures: 2, HealthFailures: 2}, EventSuccess,
			Breaker{State: Closed, Since: t0}},
		"closed, a passed health check resets the health count only": {
			Breaker{State: Closed, Since: t0, Failures: 1, HealthFailures: 2}, EventHealthOK,
			Breaker{State: Closed, Since: t0, Failures: 1}},
		"closed, abandoned changes nothing": {
			Breaker{State: Closed, Since: t0, Failures: 1}, EventAbandoned,
			Breaker{State: Closed, Since: t0, Failures: 1}},
		"closed, a read success keeps the failures (a full disk serves reads)": {
			Breaker{State: Closed, Since: t0, Failures: 2, HealthFailures: 1}, EventReadSuccess,
			Breaker{State: Closed, Since: t0, Failures: 2, HealthFailures: 1}},
		"half-open, a read probe closes": {
			Breaker{State: HalfOpen, Since: t0, Probing: true}, EventReadSuccess,
			Breaker{State: Closed, Since: now}},
		"open, a late read success changes nothing": {
			openAt(t0, t0.Add(2*time.Second)), EventReadSuccess,
			openAt(t0, t0.Add(2*time.Second))},
		"half-open, probe success closes": {
			Breaker{State: HalfOpen, Since: t0, Probing: true}, EventSuccess,
			Breaker{State: Closed, Since: now}},
		"half-open, probe failure opens again": {
			Breaker{State: HalfOpen, Since: t0, Probing: true}, EventFailure,
			openAt(now, now.Add(2*time.Second))},
		"half-open, health ok closes": {
			Breaker{State: HalfOpen, Since: t0, Probing: true}, EventHealthOK,
			Breaker{State: Closed, Since: now}},
		"half-open, health fail opens": {
			Breaker{State: HalfOpen, Since: t0, Probing: true}, EventHealthFail,
			openAt(now, now.Add(2*time.Second))},
		"half-open, abandoned probe frees the slot": {
			Breaker{State: HalfOpen, Since: t0, Probing: true}, EventAbandoned,
			Breaker{State: HalfOpen, Since: t0}},
		"open, health ok closes": {
			openAt(t0, t0.Add(2*time.Second)), EventHealthOK,
			Breaker{State: Closed, Since: now}},
		"open, health fail keeps it open and postpones the probe": {
			openAt(t0, t0.Add(2*time.Second)), EventHealthFail,
			openAt(t0, now.Add(2*time.Second))},
		"open, late success of an earlier request changes nothing": {
			openAt(t0, t0.Add(2*time.Second)), EventSuccess,
			openAt(t0, t0.Add(2*time.Second))},
		"open, late failure of an earlier request changes nothing": {
			openAt(t0, t0.Add(2*time.Second)), EventFailure,
			openAt(t0, t0.Add(2*time.Second))},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			require.Equal(t, tc.want, tc.in.On(tc.ev, now, p))
		})
	}
}

func TestBreakerAdmit(t *testing.T) {
	p := Policy{FailureThreshold: 3, OpenFor: 2 * time.Second}
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

	tests := map[string]struct {
		in    Breaker
		now   time.Time
		want  Breaker
		admit bool
	}{
		"closed admits": {
			Breaker{State: Closed, Since: t0, Failures: 2}, t0.Add(time.Second),
			Breaker{State: Closed, Since: t0, Failures: 2}, true},
		"open refuses before OpenFor": {
			Breaker{State: Open, Since: t0, RetryAt: t0.Add(2 * time.Second)}, t0.Add(1999 * time.Millisecond),
			Breaker{State: Open, Since: t0, RetryAt: t0.Add(2 * time.Second)}, false},
		"open turns half-open after OpenFor and admits the probe": {
			Breaker{State: Open, Since: t0, RetryAt: t0.Add(2 * time.Second)}, t0.Add(2 * time.Second),
			Breaker{State: HalfOpen, Since: t0.Add(2 * time.Second), Probing: true}, true},
		"half-open admits one probe": {
			Breaker{State: HalfOpen, Since: t0}, t0.Add(time.Second),
			Breaker{State: HalfOpen, Since: t0, Probing: true}, true},
		"half-open refuses while the probe is in flight": {
			Breaker{State: HalfOpen, Since: t0, Probing: true}, t0.Add(time.Second),
			Breaker{State: HalfOpen, Since: t0, Probing: true}, false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, ok := tc.in.Admit(tc.now, p)
			require.Equal(t, tc.admit, ok)
			require.Equal(t, tc.want, got)
		})
	}
}

// A whole outage and recovery, as the pool drives it: three failures open, OpenFor later a failed probe opens
// again, a good health check closes.
func TestBreakerSequence(t *testing.T) {
	p := Policy{FailureThreshold: 3, OpenFor: 2 * time.Second}
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	b := Breaker{Since: now}
	for range 3 {
		var ok bool
		b, ok = b.Admit(now, p)
		require.True(t, ok)
		b = b.On(EventFailure, now, p)
	}
	require.Equal(t, Open, b.State)
	_, ok := b.Admit(now.Add(time.Second), p)
	require.False(t, ok)

	now = now.Add(2 * time.Second)
	b, ok = b.Admit(now, p)
	require.True(t, ok)
	require.Equal(t, HalfOpen, b.State)
	b = b.On(EventFailure, now, p)
	require.Equal(t, Open, b.State)

	b = b.On(EventHealthOK, now.Add(time.Second), p)
	require.Equal(t, Breaker{State: Closed, Since: now.Add(time.Second)}, b)
}

func TestStateString(t *testing.T) {
	require.Equal(t, "closed", Closed.String())
	require.Equal(t, "half-open", HalfOpen.String())
	require.Equal(t, "open", Open.String())
}
