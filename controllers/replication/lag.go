package replication

import "time"

// lagEstimator turns reads of the peer's heartbeat into replication lag. The peer writes its heartbeat every
// heartbeat interval stamped with its clock; this side reads it every probe interval. A heartbeat first seen at
// poll t(k) arrived between t(k-1) and t(k): its lag is estimated at the midpoint, so the estimate is off by at
// most half a probe interval (plus the clocks' skew). While no new heartbeat arrives the lag is at least the age
// of the newest one less two heartbeat intervals (one for the next heartbeat to be due, one for a late write): a
// peer that stops replicating shows a growing lag.
type lagEstimator struct {
	heartbeatInterval time.Duration

	newest   time.Time // peer's stamp of the newest heartbeat seen
	prevPoll time.Time
	sample   time.Duration
	have     bool
}

// observe records a poll at poll that read a heartbeat stamped at (zero when there was none). It returns the lag
// of a heartbeat seen for the first time, and whether there was one.
func (e *lagEstimator) observe(poll, at time.Time) (time.Duration, bool) {
	prev := e.prevPoll
	e.prevPoll = poll
	if at.IsZero() || !at.After(e.newest) {
		return 0, false
	}
	first := !e.have
	e.newest, e.have = at, true
	arrived := poll
	if !prev.IsZero() && !first {
		arrived = prev.Add(poll.Sub(prev) / 2)
	}
	lag := max(arrived.Sub(at), 0)
	if first {
		// The first heartbeat seen may have waited since long before this side looked: it says nothing of the lag
		// but that it is at most its age.
		lag = min(lag, e.heartbeatInterval)
	}
	e.sample = lag
	return lag, !first
}

// current is the lag at now, and false before any heartbeat was seen.
func (e *lagEstimator) current(now time.Time) (time.Duration, bool) {
	if !e.have {
		return 0, false
	}
	return max(e.sample, now.Sub(e.newest)-2*e.heartbeatInterval), true
}

// newestHeartbeat is the peer's stamp of the newest heartbeat seen here.
func (e *lagEstimator) newestHeartbeat() time.Time { return e.newest }
