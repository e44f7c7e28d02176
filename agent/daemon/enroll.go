package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/supportstack/supportstack/agent/client"
	"github.com/supportstack/supportstack/agent/config"
	"github.com/supportstack/supportstack/agent/enroll"
	"github.com/supportstack/supportstack/agent/sender"
)

// EnrollingStatus is the daemon's own enrollment while the device is not enrolled yet, for "status".
type EnrollingStatus struct {
	// URLs are the config's ingest_urls, tried in this order.
	URLs []string `json:"urls"`
	// Reason says why the device is not enrolled yet. It never holds the token.
	Reason string `json:"reason"`
	// Refused is set while the server refuses the token (401, 403); it is then tried again only every
	// refused_enrollment_retry_interval.
	Refused     bool      `json:"refused,omitempty"`
	Attempts    int       `json:"attempts"`
	LastAttempt time.Time `json:"lastAttempt,omitzero"`
	NextAttempt time.Time `json:"nextAttempt,omitzero"`
}

// notEnrolled is run's error when the device is not enrolled and the config does not say how to enroll it.
func notEnrolled(cfg config.Config) error {
	var missing string
	switch {
	case len(cfg.IngestURLs) > 0:
		missing = " (the config sets ingest_urls but no token)"
	case cfg.EnrollmentToken != "" || cfg.EnrollmentTokenFile != "":
		missing = " (the config sets a token but no ingest_urls)"
	}
	return fmt.Errorf("%w, or set ingest_urls and enrollment_token (or enrollment_token_file) in the config file so that run enrolls by itself%s",
		enroll.ErrNotEnrolled, missing)
}

// enroller enrolls a device that has no enrollment yet with the config's ingest_urls and token: it tries the
// URLs in order until one takes the enrollment, and keeps trying (the agent runs as a service and must outlast a
// network that is down at boot): with backoff while no URL can be reached, at the server's pace when it asks
// for one (Retry-After), and only every RefusedEnrollmentRetryInterval while the server refuses the token.
type enroller struct {
	cfg     config.Config
	lay     config.Layout
	client  *client.Client
	version string
	log     *slog.Logger
	rand    func() float64                                   // in [0, 1), for the jitter
	sleep   func(ctx context.Context, d time.Duration) error // every deliberate wait
	now     func() time.Time

	mu     sync.Mutex
	status *EnrollingStatus // nil once enrolled

	// Owned by run.
	streak      int             // consecutive failed attempts
	unreachable int             // consecutive rounds in which no URL answered
	logged      map[string]bool // refusals and local problems logged at warn, by reason
}

func newEnroller(cfg config.Config, lay config.Layout, cl *client.Client, version string, log *slog.Logger) *enroller {
	return &enroller{
		cfg: cfg, lay: lay, client: cl, version: version, log: log,
		rand: rand.Float64, sleep: sender.Sleep, now: time.Now,
		status: &EnrollingStatus{URLs: slices.Clone(cfg.IngestURLs), Reason: "enrolling at " + strings.Join(cfg.IngestURLs, ", ")},
		logged: map[string]bool{},
	}
}

// Status returns a copy of the enrollment's status, nil once the device is enrolled; safe from any goroutine.
func (e *enroller) Status() *EnrollingStatus {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.status == nil {
		return nil
	}
	s := *e.status
	s.URLs = slices.Clone(s.URLs)
	return &s
}

func (e *enroller) update(f func(*EnrollingStatus)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.status != nil {
		f(e.status)
	}
}

// run enrolls and saves the enrollment as "enroll" does, and returns it; false when ctx ended first.
func (e *enroller) run(ctx context.Context) (enroll.State, bool) {
	var base enroll.State // the device's key, made once and presented by every attempt
	for {
		st, wait, ok := e.attempt(ctx, &base)
		if ok && e.save(ctx, st) {
			e.mu.Lock()
			e.status = nil
			e.mu.Unlock()
			return st, true
		}
		if ctx.Err() != nil {
			return enroll.State{}, false
		}
		next := e.now().Add(wait)
		e.update(func(s *EnrollingStatus) { s.NextAttempt = next })
		if e.sleep(ctx, wait) != nil {
			return enroll.State{}, false
		}
	}
}

// attempt makes one round of enrollment; on failure it returns the wait before the next one.
func (e *enroller) attempt(ctx context.Context, base *enroll.State) (enroll.State, time.Duration, bool) {
	// Enrolled meanwhile ("supportstack-agent enroll" while the daemon waits): that enrollment is the device's.
	if st, err := enroll.Load(e.lay.Enrollment()); err == nil {
		e.log.Info("Enrolled by another command meanwhile", "deviceId", st.DeviceID)
		return st, 0, true
	}
	if !base.HasKey() {
		if err := enroll.EnsureKey(base); err != nil {
			return enroll.State{}, e.localProblem(fmt.Errorf("make the device key: %w", err)), false
		}
	}
	token, err := e.cfg.Token()
	if err != nil {
		return enroll.State{}, e.localProblem(err), false
	}
	now := e.now()
	e.update(func(s *EnrollingStatus) { s.Attempts++; s.LastAttempt, s.NextAttempt = now, time.Time{} })
	st, err := enroll.Try(ctx, e.client, e.cfg.IngestURLs, token, base, e.version, now.UTC())
	if err == nil {
		enroll.FetchEndpoints(ctx, e.client, &st, e.now().UTC(), e.log)
		if e.streak > 0 {
			e.log.Warn("Enrolled", "deviceId", st.DeviceID, "url", st.URL, "failedAttempts", e.streak)
		} else {
			e.log.Info("Enrolled", "deviceId", st.DeviceID, "url", st.URL)
		}
		return st, 0, true
	}
	if ctx.Err() != nil {
		return enroll.State{}, 0, false
	}
	e.streak++
	var re *enroll.RoundError
	if !errors.As(err, &re) {
		re = &enroll.RoundError{Errs: []error{err}}
	}
	if re.Refused {
		// The token is wrong, revoked, expired or used up: asking again soon would change nothing, and the
		// log says so once per reason, not every time.
		se, url := re.Refusal(), e.cfg.IngestURLs[len(re.Errs)-1]
		every := e.cfg.RefusedEnrollmentRetryInterval
		reason := fmt.Sprintf("the enrollment token was refused at %s: HTTP %d %s", url, se.Status, se.Code)
		if se.Message != "" {
			reason += ": " + se.Message
		}
		if key := fmt.Sprintf("refused %d %s", se.Status, se.Code); !e.logged[key] {
			e.logged[key] = true
			e.log.Warn("The server refused the enrollment token: not enrolled yet; put a valid token in the config file and restart the agent",
				"url", url, "status", se.Status, "code", se.Code, "message", se.Message, "retryEvery", every)
		}
		e.update(func(s *EnrollingStatus) { s.Reason, s.Refused = reason, true })
		e.unreachable = 0
		return enroll.State{}, time.Duration(float64(every) * (0.9 + 0.2*e.rand())), false
	}
	e.update(func(s *EnrollingStatus) { s.Reason, s.Refused = "cannot enroll: "+err.Error(), false })
	var wait time.Duration
	switch {
	case re.Answered:
		// Reachable: it paces the agent with its Retry-After; without one (a 500, a 404 from a proxy) the wait
		// grows as while unreachable.
		e.unreachable = 0
		if re.RetryAfter > 0 {
			wait = sender.Paced(re.RetryAfter, e.streak, e.cfg.BackoffMin, e.cfg.BackoffMax, e.cfg.RetryAfterMax, e.rand())
		} else {
			wait = sender.Backoff(e.streak, e.cfg.BackoffMin, e.cfg.BackoffMax, e.rand())
		}
	default:
		e.unreachable++
		wait = sender.Backoff(e.streak, e.cfg.BackoffMin, e.cfg.BackoffMax, e.rand())
		if e.unreachable == 3 {
			e.log.Warn("Cannot reach the ingest service to enroll, retrying with backoff", "urls", len(e.cfg.IngestURLs), "err", err)
			return enroll.State{}, wait, false
		}
	}
	e.log.Info("Cannot enroll yet", "err", err, "retryIn", wait)
	return enroll.State{}, wait, false
}

// localProblem is a failure before any request (an unreadable token file): logged at warn once per reason, and
// tried again with backoff, since an installer may write the file a moment later.
func (e *enroller) localProblem(err error) time.Duration {
	e.streak++
	if !e.logged[err.Error()] {
		e.logged[err.Error()] = true
		e.log.Warn("Cannot enroll", "err", err)
	}
	e.update(func(s *EnrollingStatus) { s.Reason, s.Refused = err.Error(), false })
	return sender.Backoff(e.streak, e.cfg.BackoffMin, e.cfg.BackoffMax, e.rand())
}

// save stores the new enrollment. Nothing is sent before it is durable, so that a restart cannot enroll the
// device a second time; a failure is tried again with backoff until ctx ends.
func (e *enroller) save(ctx context.Context, st enroll.State) bool {
	for attempt := 1; ; attempt++ {
		err := enroll.Save(e.lay.Enrollment(), st)
		if err == nil {
			return true
		}
		if attempt == 1 {
			e.log.Error("Cannot save the enrollment; trying again", "deviceId", st.DeviceID, "err", err)
		}
		e.update(func(s *EnrollingStatus) {
			s.Reason = fmt.Sprintf("enrolled as %s, but cannot save the enrollment: %v", st.DeviceID, err)
		})
		if e.sleep(ctx, sender.Backoff(attempt, e.cfg.BackoffMin, e.cfg.BackoffMax, e.rand())) != nil {
			return false
		}
	}
}

// noteIgnoredConfig tells (at info) that the config's ingest_urls and token differ from the enrollment they are
// not used for: the enrollment wins, and "enroll" enrolls again with them.
func noteIgnoredConfig(cfg config.Config, st enroll.State, log *slog.Logger) {
	if !cfg.CanEnroll() {
		return
	}
	if slices.Contains(cfg.IngestURLs, st.URL) && (cfg.EnrollmentToken == "" || cfg.EnrollmentToken.Reveal() == st.Token) {
		return
	}
	log.Info("The device is enrolled: ingest_urls and the enrollment token of the config file are not used; run \"supportstack-agent enroll\" to enroll again with them",
		"deviceId", st.DeviceID, "enrolledAt", st.URL)
}
