package storagepool

import "time"

// State of an endpoint's circuit breaker.
type State int

const (
	// Closed: requests go to the endpoint.
	Closed State = iota
	// HalfOpen: one probe request may go to the endpoint; its result closes or opens the breaker.
	HalfOpen
	// Open: the endpoint is skipped until OpenFor has passed or a health check succeeds.
	Open
)

func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case HalfOpen:
		return "half-open"
	case Open:
		return "open"
	}
	return "unknown"
}

// Event is something a breaker learns about its endpoint.
type Event int

const (
	// EventSuccess: a request to the endpoint succeeded.
	EventSuccess Event = iota
	// EventFailure: a request to the endpoint failed.
	EventFailure
	// EventHealthOK: the endpoint's health check succeeded.
	EventHealthOK
	// EventHealthFail: the endpoint's health check failed.
	EventHealthFail
	// EventAbandoned: an admitted request ended without a verdict (its caller gave up); it frees the probe slot
	// of a half-open breaker and changes nothing else.
	EventAbandoned
	// EventReadSuccess: a read (get, stat, list) succeeded. It shows the endpoint answers, not that it stores:
	// a full disk serves reads and refuses writes. It closes a half-open breaker but does not reset the failures
	// counted while closed, so failing writes open the breaker however many reads succeed between them.
	EventReadSuccess
	// EventTimeout: a request to the endpoint got no answer within the request timeout. A hung server holds
	// every request for that long, so one is evidence enough: it opens a closed breaker at once.
	EventTimeout
)

func (e Event) String() string {
	switch e {
	case EventSuccess:
		return "success"
	case EventFailure:
		return "failure"
	case EventHealthOK:
		return "health-ok"
	case EventHealthFail:
		return "health-fail"
	case EventAbandoned:
		return "abandoned"
	case EventReadSuccess:
		return "read-success"
	case EventTimeout:
		return "timeout"
	}
	return "unknown"
}

// Policy tunes a breaker.
type Policy struct {
	// FailureThreshold is how many consecutive request failures open a closed breaker.
	FailureThreshold int
	// HealthFailureThreshold is how many consecutive failed health checks, with no successful request between
	// them, open a closed breaker. One slow health answer under load is not evidence of an outage.
	HealthFailureThreshold int
	// OpenFor is how long an open breaker refuses requests before it lets one probe through.
	OpenFor time.Duration
}

// Breaker is one endpoint's breaker. Its methods are pure: they return the next breaker and change nothing.
type Breaker struct {
	State State
	// Failures counts consecutive request failures while closed.
	Failures int
	// HealthFailures counts consecutive failed health checks while closed.
	HealthFailures int
	// Since is when State last changed.
	Since time.Time
	// RetryAt is, while open, when a probe request may go through.
	RetryAt time.Time
	// Probing is, while half-open, whether the probe request is in flight.
	Probing bool
}

// Admit decides whether a request may go to the endpoint now. An open breaker whose OpenFor has passed becomes
// half-open and admits this request as its probe; a half-open breaker admits one probe at a time.
func (b Breaker) Admit(now time.Time, p Policy) (Breaker, bool) {
	switch b.State {
	case Closed:
		return b, true
	case HalfOpen:
		if b.Probing {
			return b, false
		}
		b.Probing = true
		return b, true
	default:
		if now.Before(b.RetryAt) {
			return b, false
		}
		return Breaker{State: HalfOpen, Since: now, Probing: true}, true
	}
}

// On returns the breaker after ev:
//
//	closed    + failure     -> closed with one more failure, open at FailureThreshold
//	closed, half-open + timeout -> open for OpenFor
//	closed    + health fail -> closed with one more health failure, open at HealthFailureThreshold
//	closed    + success, health ok -> closed, both counts reset
//	half-open + success     -> closed
//	half-open + failure, health fail -> open for OpenFor
//	open      + health fail -> open, waiting OpenFor again (Since is kept)
//	open, half-open + health ok -> closed
//	half-open + abandoned   -> half-open, probe slot free
//	half-open + read success -> closed; closed + read success -> unchanged
//
// A request result that reaches an open breaker (the request was admitted before it opened) changes nothing:
// only a probe or a health check may close it.
func (b Breaker) On(ev Event, now time.Time, p Policy) Breaker {
	open := func() Breaker { return Breaker{State: Open, Since: now, RetryAt: now.Add(p.OpenFor)} }
	closed := func() Breaker { return Breaker{State: Closed, Since: now} }
	switch ev {
	case EventSuccess:
		switch b.State {
		case Closed:
			b.Failures, b.HealthFailures = 0, 0
		case HalfOpen:
			return closed()
		}
	case EventFailure:
		switch b.State {
		case Closed:
			b.Failures++
			if b.Failures >= max(p.FailureThreshold, 1) {
				return open()
			}
		case HalfOpen:
			return open()
		}
	case EventTimeout:
		if b.State != Open {
			return open()
		}
	case EventHealthOK:
		if b.State != Closed {
			return closed()
		}
		b.HealthFailures = 0
	case EventHealthFail:
		switch b.State {
		case Closed:
			b.HealthFailures++
			if b.HealthFailures >= max(p.HealthFailureThreshold, 1) {
				return open()
			}
		case HalfOpen:
			return open()
		default:
			b.RetryAt = now.Add(p.OpenFor)
		}
	case EventAbandoned:
		if b.State == HalfOpen {
			b.Probing = false
		}
	case EventReadSuccess:
		if b.State == HalfOpen {
			return closed()
		}
	}
	return b
}
