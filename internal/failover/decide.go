// Package failover decides, from observations of both copies of a tenant's storage, which copy the tenant's
// data plane is declared to serve from and what the operator should do about it. The decision is a pure
// function: the operator observes, Decide declares, the operator records and acts.
//
// The data plane does not wait for this decision to survive an outage: its breakers move writes to the peer
// within seconds (FAILOVER.md, "who decides what"). Decide says what that means for the tenant — when an outage
// is declared a failover, when failing back may begin, and that it ends only once both copies were verified
// equal after local storage came back.
package failover

import (
	"fmt"
	"time"

	"github.com/supportstack/supportstack/api/v1alpha1"
)

// State, Mode and Site are the API's: the decision speaks the status's language, so that what it decides is
// what the status shows.
type (
	State = v1alpha1.FailoverState
	Mode  = v1alpha1.FailoverMode
	Site  = v1alpha1.Site
)

const (
	// Normal: local storage serves; the peer (if healthy) holds a replica.
	Normal = v1alpha1.FailoverNormal
	// LocalFailing: local storage fails, for less than the failover delay. The data plane may already write to
	// the peer.
	LocalFailing = v1alpha1.FailoverLocalFailing
	// AwaitingSwitch: local storage has failed for longer than the failover delay in Manual mode; the data plane
	// stays on local storage (and refuses writes) until a person switches to the peer.
	AwaitingSwitch = v1alpha1.FailoverAwaitingSwitch
	// FailedOver: the peer serves.
	FailedOver = v1alpha1.FailoverFailedOver
	// FailingBack: local storage has been healthy for long enough; the outage's writes are being driven across
	// and verified. The peer still serves.
	FailingBack = v1alpha1.FailoverFailingBack
	// Unavailable: neither copy answers. Ingest refuses writes with 503 and agents keep spooling.
	Unavailable = v1alpha1.FailoverUnavailable

	Automatic = v1alpha1.FailoverAutomatic
	Manual    = v1alpha1.FailoverManual

	Local = v1alpha1.SiteLocal
	Peer  = v1alpha1.SitePeer
)

// Health is an observation of one copy: whether it answers, since when, and whether it was observed at all.
type Health struct {
	Known   bool
	Healthy bool
	Since   time.Time
}

// Policy is the tenant's failover configuration.
type Policy struct {
	Mode Mode
	// UnhealthyAfter is how long local storage must fail before a failover is declared.
	UnhealthyAfter time.Duration
	// HealthyFor is how long local storage must answer again before failing back begins, so that a flapping
	// copy does not take the data plane back and forth.
	HealthyFor time.Duration
}

// Observation is what the operator knows now.
type Observation struct {
	Now   time.Time
	Local Health
	Peer  Health
	// Requested is the site a person asked for ("" when none): in Manual mode the only way to fail over; in both
	// modes a planned switchover.
	Requested Site
	// VerifiedAt is when both copies were last proven equal (zero: never).
	VerifiedAt time.Time
}

// Record is what the last decision left in the tenant's status.
type Record struct {
	State  State
	Active Site
	// FailoverAt is when the current failover began: when local storage was first seen failing.
	FailoverAt time.Time
	// VerifyFrom is set while the tenant waits for a verification: failing back (from when it began) or draining
	// for a planned switchover (from when it was asked for). Only a verification that covers every version
	// written before it counts.
	VerifyFrom time.Time
}

// Event names what a decision changed, for an event and a metric. Empty when nothing did.
type Event string

const (
	EventFailedOver      Event = "FailedOver"
	EventSwitchNeeded    Event = "ManualFailoverRequired"
	EventSwitchedOver    Event = "SwitchedOver"
	EventFailbackStarted Event = "FailbackStarted"
	EventFailedBack      Event = "FailedBack"
	EventUnavailable     Event = "StorageUnavailable"
	EventLocalRecovered  Event = "StorageRecovered"
)

// Decision is the next record, why, and what changed.
type Decision struct {
	Record
	Reason  string
	Message string
	Event   Event
	// CatchUp asks the operator to drive what each copy lacks across and verify both copies now.
	CatchUp bool
	// RecheckAt is when the decision changes with no new observation (a delay runs out); zero when it does not.
	RecheckAt time.Time
}

// Decide computes the next record from the last one and an observation. Until both copies have been observed
// it keeps the last record: an operator that restarts mid-failover must not fail back on no evidence.
func Decide(prev Record, o Observation, p Policy) Decision {
	if prev.State == "" {
		prev = Record{State: Normal, Active: Local}
	}
	d := Decision{Record: prev}
	if !o.Local.Known || !o.Peer.Known {
		return d.to(prev.State, prev.Active, "Observing", "waiting for the first health check of both copies")
	}
	localUp, peerUp := o.Local.Healthy, o.Peer.Healthy
	switch {
	case !localUp && !peerUp:
		d = d.to(Unavailable, prev.Active, "BothSitesDown",
			"neither this copy nor the peer's answers: ingest refuses writes and agents keep them until one returns")
		d.Event = changed(prev.State, Unavailable, EventUnavailable)
		return d
	case prev.Active == Peer:
		return d.servingFromPeer(o, p)
	default:
		return d.servingFromLocal(o, p)
	}
}

func (d Decision) servingFromLocal(o Observation, p Policy) Decision {
	prev, draining := d.State, d.VerifyFrom
	d.VerifyFrom = time.Time{}
	if o.Local.Healthy {
		if o.Requested == Peer && o.Peer.Healthy {
			// A planned switchover: only once the peer holds everything written here until it was asked for
			// (both copies' heartbeats crossed, an empty diff, equal listings).
			if draining.IsZero() {
				draining = o.Now
			}
			if o.VerifiedAt.Before(draining) {
				d = d.to(Normal, Local, "SwitchoverDraining",
					"switching to the peer once it holds every write of this copy until the switch was asked for")
				d.VerifyFrom, d.CatchUp = draining, true
				return d
			}
			d = d.to(FailedOver, Peer, "SwitchedOver", "switched to the peer as requested, with nothing left behind")
			d.Event, d.FailoverAt, d.VerifyFrom = EventSwitchedOver, o.Now, time.Time{}
			return d
		}
		d = d.to(Normal, Local, "Serving", "this copy serves")
		if !o.Peer.Healthy {
			d.Reason, d.Message = "ServingAlone", "this copy serves alone: the peer's copy does not answer"
		}
		if prev == LocalFailing || prev == AwaitingSwitch || prev == Unavailable {
			d.Event = EventLocalRecovered
		}
		return d
	}
	// This copy fails; the peer answers.
	down := o.Now.Sub(o.Local.Since)
	switch {
	case o.Requested == Peer:
	case down < p.UnhealthyAfter:
		d = d.to(LocalFailing, Local, "LocalStorageFailing", fmt.Sprintf(
			"this copy fails since %s; a failover is declared once it has failed for %s", clock(o.Local.Since), p.UnhealthyAfter))
		d.RecheckAt = o.Local.Since.Add(p.UnhealthyAfter)
		return d
	case p.Mode == Manual:
		d = d.to(AwaitingSwitch, Local, "ManualFailoverRequired", fmt.Sprintf(
			"this copy fails since %s and failover is Manual: ingest refuses writes until someone switches to the "+
				"peer (kubectl annotate supporttenant <name> supportstack.io/active-site=peer)", clock(o.Local.Since)))
		d.Event = changed(prev, AwaitingSwitch, EventSwitchNeeded)
		return d
	}
	d = d.to(FailedOver, Peer, "LocalStorageFailed", "this copy's storage fails: the peer's copy serves")
	d.Event, d.FailoverAt, d.VerifyFrom = EventFailedOver, o.Local.Since, time.Time{}
	return d
}

func (d Decision) servingFromPeer(o Observation, p Policy) Decision {
	prev := d.State
	switch {
	case !o.Peer.Healthy:
		// The peer stopped answering while it served and this copy answers: this copy must serve, verified or not.
		d = d.to(Normal, Local, "PeerStorageFailed", "the peer's copy stopped answering while it served: this copy "+
			"serves again, and what the peer took during the outage comes across when it returns")
		d.Event, d.FailoverAt, d.VerifyFrom = EventFailedBack, time.Time{}, time.Time{}
		return d
	case !o.Local.Healthy:
		msg := "this copy's storage fails: the peer's copy serves"
		if prev == FailingBack {
			msg = "this copy failed again while failing back: the peer's copy serves"
		}
		d = d.to(FailedOver, Peer, "LocalStorageFailed", msg)
		d.VerifyFrom = time.Time{}
		return d
	case o.Requested == Peer:
		d = d.to(FailedOver, Peer, "SwitchRequested",
			"serving from the peer's copy as requested (remove the supportstack.io/active-site annotation to fail back)")
		d.VerifyFrom = time.Time{}
		return d
	case prev != FailingBack:
		if up := o.Now.Sub(o.Local.Since); up < p.HealthyFor {
			d = d.to(FailedOver, Peer, "WaitingForStableLocal", fmt.Sprintf(
				"this copy answers again since %s; failing back once it has answered for %s without a failure", clock(o.Local.Since), p.HealthyFor))
			d.RecheckAt = o.Local.Since.Add(p.HealthyFor)
			return d
		}
		d = d.to(FailingBack, Peer, "FailingBack",
			"driving the outage's writes across both ways and verifying both copies; the peer serves until they are equal")
		d.Event, d.VerifyFrom, d.CatchUp = EventFailbackStarted, o.Now, true
		return d
	case o.VerifiedAt.Before(d.VerifyFrom):
		d = d.to(FailingBack, Peer, "FailingBack",
			"driving the outage's writes across both ways and verifying both copies; the peer serves until they are equal")
		d.CatchUp = true
		return d
	}
	d = d.to(Normal, Local, "FailedBack", fmt.Sprintf("both copies were verified equal at %s: this copy serves again",
		o.VerifiedAt.UTC().Format(time.RFC3339)))
	d.Event, d.FailoverAt, d.VerifyFrom = EventFailedBack, time.Time{}, time.Time{}
	return d
}

// clock formats a time for a message. Messages name moments, not durations, so that they do not change (and the
// status is not rewritten) every second while a delay runs.
func clock(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// changed is ev when the state moves into s, nothing when it was there already.
func changed(prev, s State, ev Event) Event {
	if prev == s {
		return ""
	}
	return ev
}

func (d Decision) to(s State, active Site, reason, msg string) Decision {
	d.State, d.Active, d.Reason, d.Message = s, active, reason, msg
	return d
}
