package failover

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var t0 = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

var policy = Policy{Mode: Automatic, UnhealthyAfter: 15 * time.Second, HealthyFor: 30 * time.Second}

// step is one observation at t0+at and what the decision after it must be.
type step struct {
	at         time.Duration
	local      *bool // nil: unchanged since the previous step
	peer       *bool
	requested  Site
	verifiedAt time.Duration // relative to t0; negative: never
	unknown    bool          // the operator has not observed both copies yet

	state   State
	active  Site
	event   Event
	catchUp bool
}

var up, down = ptr(true), ptr(false)

func ptr[T any](v T) *T { return &v }

// run feeds the steps to Decide, keeping the record and each copy's health with the time it last changed, as
// the operator does.
func run(t *testing.T, p Policy, steps []step) Record {
	t.Helper()
	var rec Record
	local := Health{Known: true, Healthy: true, Since: t0.Add(-time.Hour)}
	peer := Health{Known: true, Healthy: true, Since: t0.Add(-time.Hour)}
	set := func(h *Health, v *bool, now time.Time) {
		if v != nil && *v != h.Healthy {
			h.Healthy, h.Since = *v, now
		}
	}
	for i, s := range steps {
		now := t0.Add(s.at)
		set(&local, s.local, now)
		set(&peer, s.peer, now)
		o := Observation{Now: now, Local: local, Peer: peer, Requested: s.requested}
		if s.verifiedAt >= 0 {
			o.VerifiedAt = t0.Add(s.verifiedAt)
		}
		if s.unknown {
			o.Local.Known, o.Peer.Known = false, false
		}
		d := Decide(rec, o, p)
		where := fmt.Sprintf("step %d at %s: %s: %s", i, s.at, d.Reason, d.Message)
		require.Equal(t, s.state, d.State, where)
		require.Equal(t, s.active, d.Active, where)
		require.Equal(t, s.event, d.Event, where)
		require.Equal(t, s.catchUp, d.CatchUp, where)
		require.NotEmpty(t, d.Reason, where)
		require.NotEmpty(t, d.Message, where)
		require.Equal(t, d.CatchUp, !d.VerifyFrom.IsZero(), "a verification is asked for exactly while one is awaited: "+where)
		if !d.RecheckAt.IsZero() {
			// Nothing changes until the recheck, and something does then.
			require.True(t, d.RecheckAt.After(now), where)
			o.Now = d.RecheckAt.Add(-time.Millisecond)
			before := Decide(d.Record, o, p)
			require.Equal(t, d.Record, before.Record, "just before the recheck: "+where)
			require.Equal(t, d.Message, before.Message, "a message that changes while a delay runs rewrites the status: "+where)
			o.Now = d.RecheckAt
			require.NotEqual(t, d.State, Decide(d.Record, o, p).State, "at the recheck: "+where)
		}
		rec = d.Record
	}
	return rec
}

const never = -1

func TestDecide(t *testing.T) {
	tests := map[string]struct {
		policy Policy
		steps  []step
	}{
		"healthy stays normal": {policy, []step{
			{at: 0, verifiedAt: never, state: Normal, active: Local},
			{at: time.Minute, verifiedAt: never, state: Normal, active: Local},
		}},
		"a short failure is not a failover": {policy, []step{
			{at: 0, local: down, verifiedAt: never, state: LocalFailing, active: Local},
			{at: 14 * time.Second, verifiedAt: never, state: LocalFailing, active: Local},
			{at: 15 * time.Second, local: up, verifiedAt: never, state: Normal, active: Local, event: EventLocalRecovered},
		}},
		"automatic failover, then a verified failback": {policy, []step{
			{at: 0, local: down, verifiedAt: never, state: LocalFailing, active: Local},
			{at: 15 * time.Second, verifiedAt: never, state: FailedOver, active: Peer, event: EventFailedOver},
			{at: 20 * time.Second, verifiedAt: never, state: FailedOver, active: Peer},
			{at: time.Minute, local: up, verifiedAt: never, state: FailedOver, active: Peer},
			{at: 89 * time.Second, verifiedAt: never, state: FailedOver, active: Peer},
			{at: 90 * time.Second, verifiedAt: never, state: FailingBack, active: Peer, event: EventFailbackStarted, catchUp: true},
			// A verification from before the failback began proves nothing about the outage's writes.
			{at: 95 * time.Second, verifiedAt: 80 * time.Second, state: FailingBack, active: Peer, catchUp: true},
			{at: 100 * time.Second, verifiedAt: 99 * time.Second, state: Normal, active: Local, event: EventFailedBack},
			{at: 110 * time.Second, verifiedAt: 99 * time.Second, state: Normal, active: Local},
		}},
		"the failover's start is when local storage was first seen failing": {policy, []step{
			{at: 3 * time.Second, local: down, verifiedAt: never, state: LocalFailing, active: Local},
			{at: 20 * time.Second, verifiedAt: never, state: FailedOver, active: Peer, event: EventFailedOver},
		}},
		"manual: no failover until a person asks, then failback when the request is removed": {
			Policy{Mode: Manual, UnhealthyAfter: 15 * time.Second, HealthyFor: 30 * time.Second}, []step{
				{at: 0, local: down, verifiedAt: never, state: LocalFailing, active: Local},
				{at: 15 * time.Second, verifiedAt: never, state: AwaitingSwitch, active: Local, event: EventSwitchNeeded},
				{at: 30 * time.Second, verifiedAt: never, state: AwaitingSwitch, active: Local},
				{at: 40 * time.Second, requested: Peer, verifiedAt: never, state: FailedOver, active: Peer, event: EventFailedOver},
				{at: 2 * time.Minute, local: up, requested: Peer, verifiedAt: never, state: FailedOver, active: Peer},
				{at: 5 * time.Minute, requested: Peer, verifiedAt: never, state: FailedOver, active: Peer},
				{at: 6 * time.Minute, verifiedAt: never, state: FailingBack, active: Peer, event: EventFailbackStarted, catchUp: true},
				{at: 7 * time.Minute, verifiedAt: 6*time.Minute + time.Second, state: Normal, active: Local, event: EventFailedBack},
			}},
		"manual: local storage back before anyone switched": {
			Policy{Mode: Manual, UnhealthyAfter: 15 * time.Second, HealthyFor: 30 * time.Second}, []step{
				{at: 0, local: down, verifiedAt: never, state: LocalFailing, active: Local},
				{at: 20 * time.Second, verifiedAt: never, state: AwaitingSwitch, active: Local, event: EventSwitchNeeded},
				{at: 25 * time.Second, local: up, verifiedAt: never, state: Normal, active: Local, event: EventLocalRecovered},
			}},
		"both sites down, then the peer first": {policy, []step{
			{at: 0, local: down, verifiedAt: never, state: LocalFailing, active: Local},
			{at: 5 * time.Second, peer: down, verifiedAt: never, state: Unavailable, active: Local, event: EventUnavailable},
			{at: 10 * time.Second, verifiedAt: never, state: Unavailable, active: Local},
			{at: 30 * time.Second, peer: up, verifiedAt: never, state: FailedOver, active: Peer, event: EventFailedOver},
		}},
		"both sites down, then local first": {policy, []step{
			{at: 0, local: down, peer: down, verifiedAt: never, state: Unavailable, active: Local, event: EventUnavailable},
			{at: 30 * time.Second, local: up, verifiedAt: never, state: Normal, active: Local, event: EventLocalRecovered},
		}},
		"the peer fails while it serves: local serves again at once, unverified": {policy, []step{
			{at: 0, local: down, verifiedAt: never, state: LocalFailing, active: Local},
			{at: 15 * time.Second, verifiedAt: never, state: FailedOver, active: Peer, event: EventFailedOver},
			{at: 20 * time.Second, local: up, verifiedAt: never, state: FailedOver, active: Peer},
			{at: 25 * time.Second, peer: down, verifiedAt: never, state: Normal, active: Local, event: EventFailedBack},
		}},
		"both down while on the peer, local returns first": {policy, []step{
			{at: 0, local: down, verifiedAt: never, state: LocalFailing, active: Local},
			{at: 15 * time.Second, verifiedAt: never, state: FailedOver, active: Peer, event: EventFailedOver},
			{at: 20 * time.Second, peer: down, verifiedAt: never, state: Unavailable, active: Peer, event: EventUnavailable},
			{at: 30 * time.Second, local: up, verifiedAt: never, state: Normal, active: Local, event: EventFailedBack},
		}},
		"a second outage during failback keeps the first failover": {policy, []step{
			{at: 0, local: down, verifiedAt: never, state: LocalFailing, active: Local},
			{at: 15 * time.Second, verifiedAt: never, state: FailedOver, active: Peer, event: EventFailedOver},
			{at: 20 * time.Second, local: up, verifiedAt: never, state: FailedOver, active: Peer},
			{at: 50 * time.Second, verifiedAt: never, state: FailingBack, active: Peer, event: EventFailbackStarted, catchUp: true},
			{at: 55 * time.Second, local: down, verifiedAt: never, state: FailedOver, active: Peer},
			// A verification that started during the failed failback is no longer enough.
			{at: 60 * time.Second, local: up, verifiedAt: 58 * time.Second, state: FailedOver, active: Peer},
			{at: 90 * time.Second, verifiedAt: 58 * time.Second, state: FailingBack, active: Peer, event: EventFailbackStarted, catchUp: true},
			{at: 95 * time.Second, verifiedAt: 91 * time.Second, state: Normal, active: Local, event: EventFailedBack},
		}},
		"planned switchover waits for the drain, and back": {policy, []step{
			{at: 10 * time.Second, requested: Peer, verifiedAt: never, state: Normal, active: Local, catchUp: true},
			// A verification that covers only what was written before the request is not the drain.
			{at: 12 * time.Second, requested: Peer, verifiedAt: 8 * time.Second, state: Normal, active: Local, catchUp: true},
			{at: 15 * time.Second, requested: Peer, verifiedAt: 11 * time.Second, state: FailedOver, active: Peer, event: EventSwitchedOver},
			{at: 10 * time.Minute, requested: Peer, verifiedAt: 11 * time.Second, state: FailedOver, active: Peer},
			{at: 11 * time.Minute, verifiedAt: 11 * time.Second, state: FailingBack, active: Peer, event: EventFailbackStarted, catchUp: true},
			{at: 12 * time.Minute, verifiedAt: 11*time.Minute + time.Second, state: Normal, active: Local, event: EventFailedBack},
		}},
		"a switchover asked for and withdrawn while draining": {policy, []step{
			{at: 0, requested: Peer, verifiedAt: never, state: Normal, active: Local, catchUp: true},
			{at: 5 * time.Second, verifiedAt: never, state: Normal, active: Local},
		}},
		"a switchover to a peer that is down does not happen": {policy, []step{
			{at: 0, peer: down, requested: Peer, verifiedAt: time.Second, state: Normal, active: Local},
		}},
		"no decision before both copies were observed": {policy, []step{
			{at: 0, local: down, verifiedAt: never, state: LocalFailing, active: Local},
			{at: 15 * time.Second, verifiedAt: never, state: FailedOver, active: Peer, event: EventFailedOver},
			// The operator restarts: nothing is known yet, so nothing changes.
			{at: 16 * time.Minute, local: up, unknown: true, verifiedAt: never, state: FailedOver, active: Peer},
		}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) { run(t, tc.policy, tc.steps) })
	}
}

// TestFlappingNeverFailsBack: local storage that answers for less than HealthyFor at a time never takes the data
// plane back, and the outage stays one failover.
func TestFlappingNeverFailsBack(t *testing.T) {
	var rec Record
	local := Health{Known: true, Healthy: true, Since: t0.Add(-time.Hour)}
	peer := Health{Known: true, Healthy: true, Since: t0.Add(-time.Hour)}
	events := map[Event]int{}
	for s := 0; s < 600; s++ { // ten minutes, a check a second; local flips every 20 s
		now := t0.Add(time.Duration(s) * time.Second)
		if healthy := (s/20)%2 == 1; healthy != local.Healthy {
			local.Healthy, local.Since = healthy, now
		}
		d := Decide(rec, Observation{Now: now, Local: local, Peer: peer}, policy)
		if d.Event != "" {
			events[d.Event]++
		}
		if s >= 15 {
			require.Equal(t, Peer, d.Active, "at %ds: %s", s, d.Message)
		}
		rec = d.Record
	}
	require.Equal(t, map[Event]int{EventFailedOver: 1}, events)
	require.Equal(t, t0, rec.FailoverAt)
}
