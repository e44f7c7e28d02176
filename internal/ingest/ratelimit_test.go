package ingest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestBucketTake(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	const rate, burst = 10.0, 100
	tests := map[string]struct {
		in       bucket
		n        int
		now      time.Time
		wantOK   bool
		wantLeft float64
		wantWait time.Duration
	}{
		"full bucket takes a batch":          {bucket{100, t0}, 60, t0, true, 40, 0},
		"exactly the tokens left":            {bucket{40, t0}, 40, t0, true, 0, 0},
		"too few tokens: wait for the rest":  {bucket{40, t0}, 60, t0, false, 40, 2 * time.Second},
		"refill over time":                   {bucket{0, t0}, 30, t0.Add(3 * time.Second), true, 0, 0},
		"refill stops at burst":              {bucket{90, t0}, 100, t0.Add(time.Hour), true, 0, 0},
		"refill then still short":            {bucket{0, t0}, 50, t0.Add(time.Second), false, 10, 4 * time.Second},
		"a clock going back refills nothing": {bucket{10, t0}, 20, t0.Add(-time.Minute), false, 10, time.Second},
		"more than the burst never fits now": {bucket{100, t0}, 150, t0, false, 100, 5 * time.Second},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, ok, wait := tc.in.take(tc.n, tc.now, rate, burst)
			require.Equal(t, tc.wantOK, ok)
			require.InDelta(t, tc.wantLeft, got.tokens, 1e-9)
			require.Equal(t, tc.wantWait, wait)
		})
	}
}

func TestLimiterIsPerDeviceAndForgetsIdleDevices(t *testing.T) {
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	l := newLimiter(10, 20, 0)
	ok, _ := l.take("a", 20, now)
	require.True(t, ok)
	ok, wait := l.take("a", 10, now)
	require.False(t, ok)
	require.Equal(t, time.Second, wait)
	ok, _ = l.take("b", 20, now)
	require.True(t, ok, "another device has its own bucket")

	l.refund("a", 10)
	ok, _ = l.take("a", 10, now)
	require.True(t, ok, "a refund gives the tokens back")

	now = now.Add(2 * time.Minute) // both buckets have refilled: the next take sweeps them
	ok, _ = l.take("c", 1, now)
	require.True(t, ok)
	require.Len(t, l.buckets, 1)

	require.Equal(t, 1000, newLimiter(1, 10, 1000).burst, "the burst holds a full batch")
	var off *limiter = newLimiter(0, 10, 10)
	ok, _ = off.take("a", 1_000_000, now)
	require.True(t, ok, "rate 0 admits everything")
}

func TestRetryAfterSeconds(t *testing.T) {
	for d, want := range map[time.Duration]int{0: 1, time.Millisecond: 1, time.Second: 1, 1001 * time.Millisecond: 2, 7 * time.Second: 7} {
		require.Equal(t, want, retryAfterSeconds(d), "%s", d)
	}
}
