package sender

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/supportstack/supportstack/agent/client"
	"github.com/supportstack/supportstack/agent/enroll"
	"github.com/supportstack/supportstack/internal/protocol"
)

// Spool is the part of the durable spool the sender uses (agent/spool implements it).
type Spool interface {
	// Next returns the in-flight batch: the same records until Ack or Shrink, empty when nothing is pending.
	Next(maxRecords, maxBytes int) ([]protocol.Record, error)
	Ack(throughSeq uint64) error
	// Shrink halves the in-flight batch.
	Shrink() error
	// Rebase numbers the pending records and all later ones above highest, and reports whether that changed
	// anything (the server holds seqs the spool does not know of).
	Rebase(highest uint64) (bool, error)
	// Requeue appends a record again, under a new seq.
	Requeue(r protocol.Record) (uint64, error)
}

// Clock is the sender's time: Now, and Sleep for every deliberate wait (backoff, Retry-After, drain rate).
// Tests inject one that records the waits instead of sleeping.
type Clock interface {
	Now() time.Time
	// Sleep waits for d or until ctx is done.
	Sleep(ctx context.Context, d time.Duration) error
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) Sleep(ctx context.Context, d time.Duration) error { return Sleep(ctx, d) }

// Sleep waits d or until ctx ends, whichever is first, and returns ctx's error if it ended.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Options configure a Sender. Zero durations take the defaults noted.
type Options struct {
	Spool  Spool
	Client *client.Client
	// State is the device's enrollment; SaveState persists it after re-enrollment and endpoint refreshes.
	State     enroll.State
	SaveState func(enroll.State) error
	// AgentVersion is sent when enrolling again.
	AgentVersion string
	// RejectedDir keeps records the server refused for good.
	RejectedDir string
	// OnAck is called with the records of every acknowledged batch; OnReject with a record moved to
	// RejectedDir and the server's reason.
	OnAck    func(records []protocol.Record, at time.Time)
	OnReject func(record protocol.Record, reason string)
	Log      *slog.Logger
	Clock    Clock
	// Rand returns numbers in [0, 1) for the jitter; nil is math/rand.
	Rand func() float64

	MaxRecords int // per batch, default 1000
	MaxBytes   int // per batch, default 1 MiB

	BackoffMin time.Duration // default 1s
	// BackoffMax bounds the exponential backoff while no endpoint can be reached, default 10m.
	BackoffMax time.Duration
	// PacedMax bounds a wait the server asked for (503, 429 with Retry-After): a reachable server paces the
	// agent, and the agent never sits out long after it is ready again. Default 30s.
	PacedMax                 time.Duration
	RejectedRetryInterval    time.Duration // default 10m
	PrimaryRetryInterval     time.Duration // default 10m
	EndpointsRefreshInterval time.Duration // default 1h
	// IdlePoll bounds how long the sender waits for Notify when the spool is empty, default 1m.
	IdlePoll time.Duration
}

func (o *Options) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.BackoffMin, time.Second)
	def(&o.BackoffMax, 10*time.Minute)
	def(&o.PacedMax, 30*time.Second)
	def(&o.RejectedRetryInterval, 10*time.Minute)
	def(&o.PrimaryRetryInterval, 10*time.Minute)
	def(&o.EndpointsRefreshInterval, time.Hour)
	def(&o.IdlePoll, time.Minute)
	if o.MaxRecords <= 0 {
		o.MaxRecords = 1000
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = 1 << 20
	}
	if o.Clock == nil {
		o.Clock = realClock{}
	}
	if o.Rand == nil {
		o.Rand = rand.Float64
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Client == nil {
		o.Client = &client.Client{HTTP: client.NewHTTPClient(5*time.Second, 30*time.Second)}
	}
	if o.SaveState == nil {
		o.SaveState = func(enroll.State) error { return nil }
	}
}

// Sender drains a spool. Create it with New and run it with Run.
type Sender struct {
	o    Options
	kick chan struct{}

	// Owned by the Run goroutine.
	state         enroll.State
	cur           int           // index of the endpoint in use
	leftPrimaryAt time.Time     // when the sender moved off the first endpoint
	failStreak    int           // consecutive network/5xx failures
	roundRetry    time.Duration // longest Retry-After in the current round of endpoint failures
	roundAnswered bool          // some endpoint of the current round answered (it is reachable)
	unreachable   int           // consecutive rounds in which no endpoint answered
	answered      int           // consecutive rounds of answers without a Retry-After
	authFailures  int           // consecutive 401s
	throttled     int           // consecutive 429s
	bucket        bucket
	nextRefresh   time.Time // earliest next endpoint refresh after a failed one
	nextRenew     time.Time // earliest next renewal or key binding after a failed one
	nextRejected  time.Time // next retry of the records in RejectedDir
	rejected      int       // records in RejectedDir
	blocked       bool      // the in-flight batch was refused as a whole
	batchLimit    int       // records per batch, lowered after a 413 and grown back on success

	mu     sync.Mutex
	status Status
}

// New returns a sender; it does nothing until Run.
func New(o Options) *Sender {
	o.defaults()
	s := &Sender{o: o, kick: make(chan struct{}, 1), state: o.State, batchLimit: o.MaxRecords}
	s.bucket.setRate(o.State.MaxRecordsPerSecond, o.Clock.Now())
	s.status.Endpoints = o.State.SendEndpoints()
	s.status.MaxRecordsPerSecond = o.State.MaxRecordsPerSecond
	s.status.CredentialExpiresAt = o.State.ExpiresAt
	if eps := o.State.SendEndpoints(); len(eps) > 0 {
		s.status.Endpoint = eps[0]
	}
	return s
}

// Notify tells the sender that records were appended; it never blocks.
func (s *Sender) Notify() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// errStop ends Run: the context is done or the spool is closed.
var errStop = errors.New("stop")

// Run sends until ctx is done, then returns ctx's error. It returns early only when the spool fails for good.
func (s *Sender) Run(ctx context.Context) error {
	s.loadRejected()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		s.maintain(ctx)
		recs, err := s.o.Spool.Next(s.batchLimit, s.o.MaxBytes)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			s.o.Log.Error("Cannot read the spool", "err", err)
			s.setError(fmt.Errorf("read spool: %w", err))
			if s.o.Clock.Sleep(ctx, s.o.BackoffMax) != nil {
				return ctx.Err()
			}
			continue
		}
		if len(recs) == 0 {
			s.idle(ctx)
			continue
		}
		if err := s.deliver(ctx, recs); errors.Is(err, errStop) {
			return ctx.Err()
		}
	}
}

// idle waits for Notify, for maintenance to fall due, or for IdlePoll.
func (s *Sender) idle(ctx context.Context) {
	d := s.o.IdlePoll
	now := s.o.Clock.Now()
	for _, due := range []time.Time{s.refreshDue(), s.renewDue(), s.rejectedDue()} {
		if !due.IsZero() {
			d = min(d, max(due.Sub(now), time.Millisecond))
		}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-s.kick:
	case <-t.C:
	}
}

// deliver makes one attempt to send recs and handles the answer. errStop means the context is done.
func (s *Sender) deliver(ctx context.Context, recs []protocol.Record) error {
	first, last := recs[0].Seq, recs[len(recs)-1].Seq
	if wait := s.bucket.take(len(recs), s.o.Clock.Now()); wait > 0 {
		s.o.Log.Debug("Keeping to the drain rate", "wait", wait, "records", len(recs))
		if s.o.Clock.Sleep(ctx, wait) != nil {
			return errStop
		}
	}
	ep := s.endpoint()
	now := s.o.Clock.Now()
	s.update(func(st *Status) { st.LastAttempt = now; st.Endpoint = ep })
	batch := &protocol.Batch{DeviceID: s.state.DeviceID, Records: recs}
	ack, err := s.o.Client.SendBatch(ctx, ep, s.state.Credential, batch)
	if err == nil && ack.AckedThroughSeq != last {
		err = fmt.Errorf("server acknowledged through seq %d, batch ends at %d", ack.AckedThroughSeq, last)
		s.o.Log.Error("Unexpected acknowledgement: sending the batch again", "endpoint", ep, "firstSeq", first, "lastSeq", last, "ackedThroughSeq", ack.AckedThroughSeq)
		s.bucket.refund(len(recs))
		return s.fail(ctx, ep, err, &client.StatusError{Status: http.StatusOK}) // it answered: it is reachable
	}
	if err != nil {
		s.bucket.refund(len(recs))
		if ctx.Err() != nil {
			return errStop
		}
		return s.handleError(ctx, ep, recs, err)
	}
	if err := s.o.Spool.Ack(last); err != nil {
		s.o.Log.Error("Cannot ack the spool", "lastSeq", last, "err", err)
		s.setError(fmt.Errorf("ack spool: %w", err))
		return s.pause(ctx, s.o.BackoffMax)
	}
	s.succeeded(ep, now)
	if s.batchLimit < s.o.MaxRecords {
		s.batchLimit = min(s.o.MaxRecords, s.batchLimit+s.batchLimit/4+1)
	}
	if s.blocked {
		s.blocked = false
		s.o.Log.Warn("A batch the server had refused was accepted", "firstSeq", first, "lastSeq", last)
		s.update(func(st *Status) { st.Blocked = nil })
	}
	if s.o.OnAck != nil {
		s.o.OnAck(recs, s.o.Clock.Now())
	}
	s.o.Log.Debug("Batch delivered", "endpoint", ep, "records", len(recs), "firstSeq", first, "lastSeq", last)
	return nil
}

// recordCodes are the error codes by which the server refuses one record of a batch (internal/protocol,
// internal/ingest).
var recordCodes = map[string]bool{
	"invalid_seq": true, "seq_regression": true, "unknown_kind": true, "missing_time": true,
	"record_too_large": true, "invalid_data": true, "invalid_question": true, "question_exists": true,
	"duplicate_name": true, "number_out_of_range": true, "invalid_utf8": true,
}

func (s *Sender) handleError(ctx context.Context, ep string, recs []protocol.Record, err error) error {
	se := client.AsStatus(err)
	switch {
	case se == nil, se.Status >= 500, se.Status == http.StatusRequestTimeout:
		return s.fail(ctx, ep, err, se)
	case se.Status == http.StatusTooManyRequests:
		// The device is over its rate, or ingest is busy: the endpoint is fine and says when to come back. Wait
		// that long, on the same endpoint.
		s.throttled++
		s.setError(err)
		return s.pause(ctx, s.paced(se.RetryAfter, s.throttled))
	case se.Status == http.StatusConflict && se.Code == "seq_reused":
		return s.renumber(ctx, recs, se)
	case se.Status == http.StatusUnauthorized:
		return s.unauthorized(ctx, err)
	case se.Status == http.StatusRequestEntityTooLarge && len(recs) > 1:
		s.o.Log.Info("Server asks for a smaller batch", "records", len(recs), "code", se.Code)
		s.batchLimit = max(1, len(recs)/2)
		return s.shrink(ctx, recs, err)
	case se.Status == http.StatusRequestEntityTooLarge || recordCodes[se.Code]:
		if len(recs) > 1 {
			s.o.Log.Warn("Server refused a record: narrowing the batch down to it", "status", se.Status, "code", se.Code, "records", len(recs))
			return s.shrink(ctx, recs, err)
		}
		return s.reject(ctx, recs[0], se)
	default:
		return s.block(ctx, recs, se)
	}
}

// shrink halves the in-flight batch; a spool that does not shrink it blocks the batch instead of looping.
func (s *Sender) shrink(ctx context.Context, recs []protocol.Record, cause error) error {
	if err := s.o.Spool.Shrink(); err != nil {
		s.o.Log.Error("Cannot shrink the in-flight batch", "err", err)
		s.setError(fmt.Errorf("shrink spool batch: %w", err))
		return s.pause(ctx, s.o.BackoffMax)
	}
	next, err := s.o.Spool.Next(s.batchLimit, s.o.MaxBytes)
	if err == nil && len(next) >= len(recs) {
		s.o.Log.Error("The spool did not shrink the batch", "records", len(recs))
		return s.block(ctx, recs, client.AsStatus(cause))
	}
	return nil
}

// renumber handles a batch refused because the server holds some of its seqs with other records: the device's
// spool was wiped or restored while it kept its identity. The spool numbers everything pending above the
// server's highest seq and the batch goes again at once under its new seqs.
func (s *Sender) renumber(ctx context.Context, recs []protocol.Record, se *client.StatusError) error {
	moved, err := s.o.Spool.Rebase(se.HighestSeq)
	if err != nil {
		s.o.Log.Error("Cannot renumber the spool", "highestSeq", se.HighestSeq, "err", err)
		s.setError(fmt.Errorf("renumber spool: %w", err))
		return s.pause(ctx, s.o.BackoffMax)
	}
	if !moved {
		// The server claims seqs below what is pending: nothing to renumber, so the refusal stands.
		return s.block(ctx, recs, se)
	}
	s.o.Log.Warn("The server holds seqs this spool does not know of: renumbering pending records above them",
		"highestSeq", se.HighestSeq, "firstSeq", recs[0].Seq, "lastSeq", recs[len(recs)-1].Seq)
	return nil
}

// fail handles a failure of the endpoint (network, timeout, 5xx): the next endpoint is tried at once, and after
// a whole round of failures the sender waits. How long depends on what the round said. An endpoint that
// answered (a 503 while its storage is out, say) is reachable and paces the agent with its Retry-After: the
// agent is back within seconds of the server being ready. Only when no endpoint answered at all does the wait
// grow exponentially, up to BackoffMax.
func (s *Sender) fail(ctx context.Context, ep string, err error, se *client.StatusError) error {
	s.failStreak++
	s.setError(err)
	if se != nil {
		s.roundAnswered = true
		s.roundRetry = max(s.roundRetry, se.RetryAfter)
	}
	n := len(s.state.SendEndpoints())
	if n > 1 {
		s.o.Log.Info("Endpoint failed, trying the next one", "endpoint", ep, "err", err)
		if s.cur == 0 {
			s.leftPrimaryAt = s.o.Clock.Now()
		}
		s.cur = (s.cur + 1) % n
		if s.failStreak%n != 0 {
			return nil // Retry-After is about the server that said it: the next one is tried at once
		}
	}
	var wait time.Duration
	if s.roundAnswered {
		s.unreachable = 0
		if s.roundRetry == 0 {
			s.answered++
		}
		wait = s.paced(s.roundRetry, s.answered)
	} else {
		s.unreachable++
		s.answered = 0
		wait = s.backoff(s.unreachable)
		if s.unreachable == 3 {
			s.o.Log.Warn("Cannot reach the ingest service, retrying with backoff", "endpoints", n, "err", err)
		}
	}
	s.roundRetry, s.roundAnswered = 0, false
	return s.pause(ctx, wait)
}

func (s *Sender) backoff(attempt int) time.Duration {
	return Backoff(attempt, s.o.BackoffMin, s.o.BackoffMax, s.o.Rand())
}

// paced is the wait a reachable server asked for (Paced).
func (s *Sender) paced(retryAfter time.Duration, attempt int) time.Duration {
	return Paced(retryAfter, attempt, s.o.BackoffMin, s.o.BackoffMax, s.o.PacedMax, s.o.Rand())
}

// pause sleeps for d, showing the next attempt in the status.
func (s *Sender) pause(ctx context.Context, d time.Duration) error {
	next := s.o.Clock.Now().Add(d)
	s.update(func(st *Status) { st.NextAttempt = next; st.ConsecutiveFailures = s.failStreak })
	err := s.o.Clock.Sleep(ctx, d)
	s.update(func(st *Status) { st.NextAttempt = time.Time{} })
	if err != nil {
		return errStop
	}
	return nil
}

func (s *Sender) succeeded(ep string, at time.Time) {
	if s.failStreak > 2 {
		s.o.Log.Warn("Ingest service reachable again", "endpoint", ep, "failedAttempts", s.failStreak)
	}
	s.failStreak, s.authFailures, s.throttled, s.roundRetry = 0, 0, 0, 0
	s.roundAnswered, s.unreachable, s.answered = false, 0, 0
	s.update(func(st *Status) {
		st.LastSuccess, st.Endpoint, st.ConsecutiveFailures = at, ep, 0
		st.LastError, st.LastErrorAt = "", time.Time{}
	})
}

// endpoint returns the endpoint to use, going back to the first one every PrimaryRetryInterval.
func (s *Sender) endpoint() string {
	eps := s.state.SendEndpoints()
	if s.cur >= len(eps) {
		s.cur = 0
	}
	if s.cur != 0 && s.o.Clock.Now().Sub(s.leftPrimaryAt) >= s.o.PrimaryRetryInterval {
		s.o.Log.Info("Trying the first endpoint again", "endpoint", eps[0])
		s.cur = 0
	}
	return eps[s.cur]
}

// unauthorized enrolls again after a 401; a second 401 in a row also waits a backoff, so that a server that
// rejects every credential is not hammered.
func (s *Sender) unauthorized(ctx context.Context, cause error) error {
	s.authFailures++
	s.o.Log.Warn("Credential rejected: enrolling again", "attempt", s.authFailures)
	if s.authFailures > 1 {
		if err := s.pause(ctx, s.backoff(s.authFailures-1)); err != nil {
			return err
		}
	}
	if err := s.reenroll(ctx); err != nil {
		s.o.Log.Error("Enrolling again failed", "err", err)
		s.setError(fmt.Errorf("enroll again after %v: %w", cause, err))
		s.failStreak++
		return s.pause(ctx, s.backoff(s.failStreak))
	}
	return nil
}

// reenroll enrolls with the stored token, device ID and key, at the endpoints in order and then the first
// enrollment URL, and saves the new state. A device without a key gets one, saved before it is sent.
func (s *Sender) reenroll(ctx context.Context) error {
	if !s.state.HasKey() {
		keyed := s.state
		if err := enroll.EnsureKey(&keyed); err != nil {
			return err
		}
		if err := s.o.SaveState(keyed); err != nil {
			return fmt.Errorf("save the device key before binding it: %w", err)
		}
		s.state = keyed
	}
	urls := s.state.SendEndpoints()
	var lastErr error
	for _, u := range urls {
		prev := s.state
		ns, err := enroll.Enroll(ctx, s.o.Client, u, s.state.Token, &prev, s.o.AgentVersion, s.o.Clock.Now())
		if err != nil {
			lastErr = err
			if se := client.AsStatus(err); se != nil && se.Status < 500 && se.Status != http.StatusTooManyRequests {
				return err // the token itself is refused: other endpoints will say the same
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			continue
		}
		ns.EndpointsRefreshedAt = time.Time{} // fetch endpoints and drain rate with the new credential
		if ns.DeviceID != s.state.DeviceID {
			s.o.Log.Warn("Enrolled as a new device: the server would not confirm the old identity",
				"oldDeviceId", s.state.DeviceID, "deviceId", ns.DeviceID)
		}
		s.setState(ns)
		s.o.Log.Info("Enrolled again", "endpoint", u, "expiresAt", ns.ExpiresAt)
		return nil
	}
	return lastErr
}

// setState adopts and persists a new enrollment state.
func (s *Sender) setState(ns enroll.State) {
	if !slices.Equal(ns.SendEndpoints(), s.state.SendEndpoints()) {
		s.cur = 0
	}
	s.state = ns
	s.bucket.setRate(ns.MaxRecordsPerSecond, s.o.Clock.Now())
	if err := s.o.SaveState(ns); err != nil {
		s.o.Log.Error("Cannot save the enrollment state", "err", err)
	}
	s.update(func(st *Status) {
		st.Endpoints = ns.SendEndpoints()
		st.CredentialExpiresAt = ns.ExpiresAt
		st.MaxRecordsPerSecond = ns.MaxRecordsPerSecond
	})
}

// maintain runs what is due: endpoint refresh, credential renewal, retry of rejected records.
func (s *Sender) maintain(ctx context.Context) {
	now := s.o.Clock.Now()
	if due := s.renewDue(); !due.IsZero() && !now.Before(due) {
		if err := s.reenroll(ctx); err != nil {
			s.nextRenew = now.Add(time.Hour)
			s.o.Log.Warn("Cannot renew the credential yet", "expiresAt", s.state.ExpiresAt, "err", err)
		}
	}
	if due := s.refreshDue(); !now.Before(due) {
		s.refreshEndpoints(ctx)
	}
	if due := s.rejectedDue(); !due.IsZero() && !now.Before(due) {
		s.retryRejected(ctx)
	}
}

// renewDue is when the credential is renewed: a quarter of its lifetime (at most a week) before it expires, and
// at once for a device from before device keys, which binds its first key that way.
func (s *Sender) renewDue() time.Time {
	if !s.state.HasKey() {
		return maxTime(s.o.Clock.Now(), s.nextRenew)
	}
	if s.state.ExpiresAt.IsZero() {
		return time.Time{}
	}
	ttl := s.state.ExpiresAt.Sub(s.state.EnrolledAt)
	lead := min(7*24*time.Hour, max(ttl/4, 0))
	return maxTime(s.state.ExpiresAt.Add(-lead), s.nextRenew)
}

func (s *Sender) refreshDue() time.Time {
	return maxTime(s.state.EndpointsRefreshedAt.Add(s.o.EndpointsRefreshInterval), s.nextRefresh)
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// refreshEndpoints fetches the endpoint list and drain rate and persists them.
func (s *Sender) refreshEndpoints(ctx context.Context) {
	now := s.o.Clock.Now()
	ep := s.endpoint()
	resp, err := s.o.Client.Endpoints(ctx, ep, s.state.Credential)
	if err != nil {
		s.nextRefresh = now.Add(min(5*time.Minute, s.o.EndpointsRefreshInterval))
		if se := client.AsStatus(err); se != nil && se.Status == http.StatusUnauthorized {
			if err := s.reenroll(ctx); err != nil {
				s.o.Log.Warn("Cannot enroll again", "err", err)
			}
			return
		}
		s.o.Log.Info("Cannot refresh the endpoint list", "endpoint", ep, "err", err)
		return
	}
	ns := s.state
	ns.MaxRecordsPerSecond, ns.EndpointsRefreshedAt = resp.MaxRecordsPerSecond, now
	if len(resp.Endpoints) > 0 { // empty: keep the endpoints we have
		ns.Endpoints = resp.Endpoints
	}
	if !slices.Equal(ns.Endpoints, s.state.Endpoints) {
		s.o.Log.Info("Endpoint list changed", "endpoints", ns.Endpoints)
	}
	s.setState(ns)
}

func (s *Sender) setError(err error) {
	now := s.o.Clock.Now()
	s.update(func(st *Status) { st.LastError, st.LastErrorAt = err.Error(), now })
}

func (s *Sender) update(f func(*Status)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(&s.status)
}
