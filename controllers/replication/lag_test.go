package replication

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestLagEstimator(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	e := lagEstimator{heartbeatInterval: time.Second}

	_, known := e.current(at(0))
	require.False(t, known, "no heartbeat seen yet")
	_, sample := e.observe(at(0), time.Time{})
	require.False(t, sample)

	// The first heartbeat seen says only that the lag is at most its age, capped at the heartbeat interval.
	lag, sample := e.observe(at(5000), at(0))
	require.False(t, sample)
	require.Equal(t, time.Second, lag)

	// Heartbeat written at 5.9s, not there at the poll at 6.0s, there at 6.2s: it arrived around 6.1s.
	_, sample = e.observe(at(6000), at(0))
	require.False(t, sample, "the same heartbeat again is no sample")
	lag, sample = e.observe(at(6200), at(5900))
	require.True(t, sample)
	require.Equal(t, 200*time.Millisecond, lag)
	cur, known := e.current(at(6300))
	require.True(t, known)
	require.Equal(t, 200*time.Millisecond, cur, "fresh: the sample")

	// Nothing new arrives: the lag grows with the age of the newest heartbeat beyond two intervals.
	cur, _ = e.current(at(5900 + 2000 + 3000))
	require.Equal(t, 3*time.Second, cur)

	// A heartbeat stamped in the future (the peer's clock runs ahead) counts as no lag, not a negative one.
	lag, sample = e.observe(at(10000), at(10500))
	require.True(t, sample)
	require.Zero(t, lag)
	require.Equal(t, at(10500), e.newestHeartbeat())

	// An older heartbeat (a stale read) changes nothing.
	_, sample = e.observe(at(10100), at(9000))
	require.False(t, sample)
	require.Equal(t, at(10500), e.newestHeartbeat())
}
