package replication

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/minio/madmin-go/v3"
	"github.com/minio/minio-go/v7"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/supportstack/supportstack/api/v1alpha1"
	"github.com/supportstack/supportstack/internal/objectstore"
	"github.com/supportstack/supportstack/internal/protocol"
)

// Defaults of MonitorOptions.
const (
	DefaultHeartbeatInterval  = 2 * time.Second
	DefaultProbeInterval      = 500 * time.Millisecond
	DefaultCheckInterval      = 10 * time.Second
	DefaultRetryInterval      = 2 * time.Second
	DefaultSetupInterval      = 30 * time.Second
	DefaultDiffInterval       = 10 * time.Minute
	DefaultRequeueLimit       = 2000
	DefaultRequeueConcurrency = 32
	DefaultResyncAfterRounds  = 5
	heartbeatsKept            = 3
	// inFlight: a version written this recently and still pending is on its way, not behind. MinIO's own p99 is
	// about 2 s on a busy pair (FAILOVER.md).
	inFlight       = 10 * time.Second
	pruneInterval  = time.Minute
	requestTimeout = 5 * time.Second
	setupTimeout   = 20 * time.Second
)

// MonitorOptions configure a Monitor; zero values take the defaults.
type MonitorOptions struct {
	// HeartbeatInterval is how often each copy writes its heartbeat; ProbeInterval how often it reads the peer's.
	HeartbeatInterval, ProbeInterval time.Duration
	// CheckInterval is how often the peer's health and MinIO's view of the remote target are read;
	// RetryInterval how soon a failed set-up or check is tried again.
	CheckInterval, RetryInterval time.Duration
	// SetupInterval is how often a configured replication is verified (and repaired).
	SetupInterval time.Duration
	// DiffInterval is how often a healthy pair is checked for a backlog (and verified) without a reason to.
	DiffInterval time.Duration
	// RequeueLimit is the largest backlog re-queued version by version; a larger one is re-queued by listing
	// the bucket. RequeueConcurrency bounds the HEADs under way at once.
	RequeueLimit, RequeueConcurrency int
	// ResyncAfterRounds is how many rounds without progress make the operator ask MinIO for a resync.
	ResyncAfterRounds int
	// Recorder receives events about the target's Object; nil records none.
	Recorder events.EventRecorder
	// DrillHold, DrillMaxHold and DrillVerifyWithin time a drill (DefaultDrillHold and the others).
	DrillHold, DrillMaxHold, DrillVerifyWithin time.Duration
	// BucketReady reports whether the local bucket is set up (versioned): replication waits for it.
	BucketReady func(types.NamespacedName) bool
	HTTPClient  *http.Client
}

func (o *MonitorOptions) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.HeartbeatInterval, DefaultHeartbeatInterval)
	def(&o.ProbeInterval, DefaultProbeInterval)
	def(&o.CheckInterval, DefaultCheckInterval)
	def(&o.RetryInterval, DefaultRetryInterval)
	def(&o.SetupInterval, DefaultSetupInterval)
	def(&o.DiffInterval, DefaultDiffInterval)
	def(&o.DrillHold, DefaultDrillHold)
	def(&o.DrillMaxHold, DefaultDrillMaxHold)
	def(&o.DrillVerifyWithin, DefaultDrillVerifyWithin)
	if o.RequeueLimit <= 0 {
		o.RequeueLimit = DefaultRequeueLimit
	}
	if o.RequeueConcurrency <= 0 {
		o.RequeueConcurrency = DefaultRequeueConcurrency
	}
	if o.ResyncAfterRounds <= 0 {
		o.ResyncAfterRounds = DefaultResyncAfterRounds
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{}
	}
	if o.BucketReady == nil {
		o.BucketReady = func(types.NamespacedName) bool { return true }
	}
}

// Target is one replicated tenant's copy in this cluster and the way to its peer copy.
type Target struct {
	// Role and PeerRole name the heartbeats (naming.RoleHome, naming.RoleStandby).
	Role, PeerRole string
	Bucket         string
	// Local is this copy's MinIO with its root credentials.
	Local objectstore.Endpoint
	// Users are made in this copy's MinIO: the data-plane user and the user the peer replicates in with.
	Users []objectstore.User
	// DataPlaneUser is the access key of the data plane's user among Users: a drill disables it in this copy.
	DataPlaneUser string
	// Remote is the peer's MinIO as this copy's MinIO reaches it, with the user that replicates into it.
	Remote objectstore.Remote
	// Peer is the peer's MinIO as the operator reaches it, with the data-plane user: its health and the
	// verification of both copies.
	Peer objectstore.Endpoint
	// Object is what events are about.
	Object client.Object
}

func (t Target) same(o Target) bool {
	t.Object, o.Object = nil, nil
	return reflect.DeepEqual(t, o)
}

// Snapshot is what the monitor knows of one replicated tenant.
type Snapshot struct {
	// Configured: the users, the remote target and the rule are in place; SetupErr is the last set-up's error.
	Configured bool
	SetupErr   error
	ARN        string
	// PeerChecked is false until the peer's health was first checked; PeerHealthErr is nil while it answers.
	PeerChecked   bool
	PeerHealthErr error
	// TargetOnline is MinIO's view of the peer (its liveness check); FailedLastHour and Queued its counters.
	TargetOnline   bool
	FailedLastHour int64
	Queued         int64
	// Lag is how late the peer's heartbeat arrives here; LagKnown is false before any heartbeat arrived.
	Lag      time.Duration
	LagKnown bool
	// PeerHeartbeat is the peer's stamp on the newest of its heartbeats seen here.
	PeerHeartbeat time.Time
	// Backlog is the number of versions the last diff found not yet on the peer, -1 before any diff.
	Backlog int64
	// CatchUp is the progress of the last catch-up.
	CatchUp          v1alpha1.CatchUpPhase
	CatchUpStarted   time.Time
	CatchUpCompleted time.Time
	Requeued         int64
	// LastVerified is when both copies were last found to hold the same versions; VerifyErr why the last
	// verification failed.
	LastVerified time.Time
	VerifyErr    error
	// VerifiedThrough is what the last successful verification covered: versions written before it.
	VerifiedThrough time.Time
	// WritesResumed and RTO are what the data plane recorded of its last move to the peer's copy after the time
	// MeasureRTO asked about: when the last of its servers wrote there, and the longest any of them could not write.
	WritesResumed time.Time
	RTO           time.Duration
	// Drill is the last drill, running or ended; its Name is empty before any.
	Drill DrillProgress
}

// changed reports whether two snapshots differ in what the status shows.
func (s Snapshot) changed(o Snapshot) bool {
	return s.Configured != o.Configured || errText(s.SetupErr) != errText(o.SetupErr) ||
		s.PeerChecked != o.PeerChecked || errText(s.PeerHealthErr) != errText(o.PeerHealthErr) ||
		s.TargetOnline != o.TargetOnline || s.FailedLastHour != o.FailedLastHour ||
		s.LagKnown != o.LagKnown || lagSeconds(s.Lag) != lagSeconds(o.Lag) ||
		s.Backlog != o.Backlog || s.CatchUp != o.CatchUp || !s.CatchUpStarted.Equal(o.CatchUpStarted) ||
		!s.CatchUpCompleted.Equal(o.CatchUpCompleted) || s.Requeued != o.Requeued ||
		!s.LastVerified.Equal(o.LastVerified) || errText(s.VerifyErr) != errText(o.VerifyErr) ||
		!s.VerifiedThrough.Equal(o.VerifiedThrough) || !s.WritesResumed.Equal(o.WritesResumed) || s.RTO != o.RTO ||
		s.Drill != o.Drill
}

func lagSeconds(d time.Duration) int64 { return int64(d / time.Second) }

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// Monitor runs, for each replicated tenant of this cluster, a worker that sets up this copy's side of the
// replication, writes this copy's heartbeat, reads the peer's, watches the peer and MinIO's view of it, and
// drives a backlog across after an outage. Reconciles register tenants (Set) and read Snapshots; the monitor asks
// for a reconcile when a snapshot changes in a way the status shows, through Events.
type Monitor struct {
	o      MonitorOptions
	events chan event.GenericEvent

	mu      sync.Mutex
	ctx     context.Context // set by Start
	workers map[types.NamespacedName]*worker
}

// NewMonitor returns a monitor; add it to the manager and watch Events.
func NewMonitor(o MonitorOptions) *Monitor {
	o.defaults()
	return &Monitor{o: o, events: make(chan event.GenericEvent, 1024), workers: map[types.NamespacedName]*worker{}}
}

// Events delivers a tenant whenever its snapshot changed.
func (m *Monitor) Events() <-chan event.GenericEvent { return m.events }

// NeedLeaderElection: only the leader writes heartbeats and drives catch-ups.
func (m *Monitor) NeedLeaderElection() bool { return true }

// Start runs the registered workers until ctx ends.
func (m *Monitor) Start(ctx context.Context) error {
	m.mu.Lock()
	m.ctx = ctx
	for _, w := range m.workers {
		w.start(ctx)
	}
	m.mu.Unlock()
	<-ctx.Done()
	m.mu.Lock()
	all := make([]*worker, 0, len(m.workers))
	for _, w := range m.workers {
		all = append(all, w)
	}
	m.mu.Unlock()
	for _, w := range all {
		w.stop()
	}
	return nil
}

// Set registers or updates a tenant's target; a changed target restarts its worker with a fresh snapshot.
func (m *Monitor) Set(key types.NamespacedName, t Target) {
	m.mu.Lock()
	old, ok := m.workers[key]
	if ok && old.target.same(t) {
		old.setObject(t.Object)
		m.mu.Unlock()
		return
	}
	w := newWorker(m, key, t)
	m.workers[key] = w
	if m.ctx != nil {
		w.start(m.ctx)
	}
	m.mu.Unlock()
	// Stopped outside the lock: a drill it runs restores access on its way out, which may take a while, and
	// every tenant's reconcile asks the monitor for its worker.
	if ok {
		old.stop()
	}
}

// VerifyFrom asks the tenant's worker to drive what each copy lacks across and verify both copies, covering
// every version written before from, until a verification does.
func (m *Monitor) VerifyFrom(key types.NamespacedName, from time.Time) {
	if w := m.worker(key); w != nil {
		w.requestVerification(from)
	}
}

// requestVerification asks the run loop for a verification covering what was written before from.
func (w *worker) requestVerification(from time.Time) {
	w.mu.Lock()
	if from.After(w.verifyFrom) {
		w.verifyFrom = from
	}
	w.mu.Unlock()
}

// MeasureRTO asks the tenant's worker to read, from the peer's copy, the data plane's records of moving its
// writes there after from (protocol.StorageSwitch), until it finds some.
func (m *Monitor) MeasureRTO(key types.NamespacedName, from time.Time) {
	w := m.worker(key)
	if w == nil {
		return
	}
	w.mu.Lock()
	w.rtoFrom = from
	w.mu.Unlock()
}

// switchReader reads the data plane's switch records from the peer's copy every check interval, on a loop of its
// own: while this copy hangs, the worker's own loop waits on it, and the RTO is wanted exactly then.
func (w *worker) switchReader(ctx context.Context) {
	tick := time.NewTicker(w.m.o.CheckInterval)
	defer tick.Stop()
	for {
		if s := w.snapshot(); s.PeerChecked && s.PeerHealthErr == nil {
			w.readSwitches(ctx)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// readSwitches looks for the switch records MeasureRTO asked for.
func (w *worker) readSwitches(ctx context.Context) {
	w.mu.Lock()
	from := w.rtoFrom
	w.mu.Unlock()
	if from.IsZero() || !w.snapshot().WritesResumed.Before(from) {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	startAfter := fmt.Sprintf("%s%020d", protocol.SwitchPrefix, from.UTC().UnixNano())
	recs, err := objectstore.ReadSwitches(ctx, w.peer, w.target.Bucket, startAfter, 100)
	if err != nil {
		w.log.V(1).Info("Reading the data plane's switch records failed", "error", err.Error())
	}
	if len(recs) == 0 {
		return
	}
	var resumed time.Time
	var rto time.Duration
	for _, r := range recs {
		if r.ResumedAt.After(resumed) {
			resumed = r.ResumedAt
		}
		rto = max(rto, r.ResumedAt.Sub(r.FailedAt))
	}
	w.update(func(s *Snapshot) { s.WritesResumed, s.RTO = resumed, rto })
}

// worker is the tenant's worker, nil when it has none.
func (m *Monitor) worker(key types.NamespacedName) *worker {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.workers[key]
}

// Forget stops a tenant's worker.
func (m *Monitor) Forget(key types.NamespacedName) {
	m.mu.Lock()
	w, ok := m.workers[key]
	delete(m.workers, key)
	m.mu.Unlock()
	if ok {
		w.stop()
		forgetMetrics(key)
	}
}

// Snapshot returns the latest snapshot of a tenant, and false when it is not registered.
func (m *Monitor) Snapshot(key types.NamespacedName) (Snapshot, bool) {
	w := m.worker(key)
	if w == nil {
		return Snapshot{}, false
	}
	return w.snapshot(), true
}

// worker watches one tenant's replication.
type worker struct {
	m      *Monitor
	key    types.NamespacedName
	target Target
	log    logr.Logger

	local    *minio.Client // root, minio-go's retries
	fast     *minio.Client // root, one try: heartbeats
	adm      *madmin.AdminClient
	peer     *minio.Client // data-plane user at the peer
	buildErr error

	cancel context.CancelFunc
	done   chan struct{}

	// runCtx is the run loop's context (under mu), which drills run in; drills tracks them; signals (under mu)
	// reach the running one.
	runCtx  context.Context
	drills  sync.WaitGroup
	signals drillSignals
	// usersMu orders the set-up's work on this copy's users with a drill's fence; fenced (under usersMu) tells
	// the set-up to leave the data plane's user disabled.
	usersMu sync.Mutex
	fenced  bool

	mu   sync.Mutex
	snap Snapshot
	obj  client.Object

	// Owned by the run loop.
	lag         lagEstimator
	catchUpWant bool
	// verifyFrom asks for a verification covering what was written before it (a failback waits for one);
	// retryAt holds back the next attempt after a failed one.
	verifyFrom time.Time
	retryAt    time.Time
	// rtoFrom asks for the data plane's switch records written after it (MeasureRTO).
	rtoFrom     time.Time
	catchUpDue  time.Time
	catchUpBusy chan bool // non-nil while a catch-up runs; yields whether to retry soon
	peerBack    time.Time // when the peer last came back
}

func newWorker(m *Monitor, key types.NamespacedName, t Target) *worker {
	w := &worker{m: m, key: key, target: t, obj: t.Object, snap: Snapshot{Backlog: -1, CatchUp: v1alpha1.CatchUpIdle},
		log: log.Log.WithName("replication-monitor").WithValues("tenant", key.String()),
		lag: lagEstimator{heartbeatInterval: m.o.HeartbeatInterval}, catchUpWant: true, signals: newDrillSignals()}
	var errs []error
	var err error
	w.local, err = objectstore.NewClient(t.Local)
	errs = append(errs, err)
	w.fast, err = objectstore.NewFailFastClient(t.Local)
	errs = append(errs, err)
	w.adm, err = objectstore.NewAdminClient(t.Local)
	errs = append(errs, err)
	w.peer, err = objectstore.NewFailFastClient(t.Peer)
	errs = append(errs, err)
	w.buildErr = errors.Join(errs...)
	return w
}

func (w *worker) start(ctx context.Context) {
	ctx, w.cancel = context.WithCancel(ctx)
	w.done = make(chan struct{})
	w.mu.Lock()
	w.runCtx = ctx
	w.mu.Unlock()
	go func() {
		defer close(w.done)
		w.run(ctx)
	}()
}

func (w *worker) stop() {
	if w.cancel == nil {
		return
	}
	w.mu.Lock()
	w.runCtx = nil // no drill starts on a stopping worker
	w.mu.Unlock()
	w.cancel()
	<-w.done
	w.drills.Wait()
}

func (w *worker) setObject(o client.Object) {
	w.mu.Lock()
	w.obj = o
	w.mu.Unlock()
}

func (w *worker) snapshot() Snapshot {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.snap
}

// update changes the snapshot and asks for a reconcile when the status would change.
func (w *worker) update(f func(*Snapshot)) {
	w.mu.Lock()
	prev := w.snap
	f(&w.snap)
	next, obj := w.snap, w.obj
	w.mu.Unlock()
	recordMetrics(w.key, w.target.Role, next)
	if next.changed(prev) && obj != nil {
		select {
		case w.m.events <- event.GenericEvent{Object: obj}:
		default:
			w.log.Info("Event queue full: the tenant is reconciled at its next resync")
		}
	}
}

func (w *worker) event(typ, reason, format string, args ...any) {
	w.mu.Lock()
	obj := w.obj
	w.mu.Unlock()
	if w.m.o.Recorder != nil && obj != nil {
		w.m.o.Recorder.Eventf(obj, nil, typ, reason, "Replicate", format, args...)
	}
}

// run is the worker's loop: every probe interval it does what is due.
func (w *worker) run(ctx context.Context) {
	if w.buildErr != nil {
		w.update(func(s *Snapshot) { s.SetupErr = w.buildErr })
		return
	}
	canaryDone, switchesDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(canaryDone)
		w.canary(ctx)
	}()
	go func() {
		defer close(switchesDone)
		w.switchReader(ctx)
	}()
	defer func() { <-canaryDone; <-switchesDone }()
	var nextSetup, nextCheck, nextPrune time.Time
	tick := time.NewTicker(max(w.m.o.ProbeInterval, 250*time.Millisecond))
	defer tick.Stop()
	defer w.waitCatchUp()
	for {
		now := time.Now()
		bucketReady := w.m.o.BucketReady(w.key)
		if bucketReady && !now.Before(nextSetup) {
			nextSetup = now.Add(w.setup(ctx))
		}
		if !now.Before(nextCheck) {
			nextCheck = now.Add(w.check(ctx))
		}
		if bucketReady && !now.Before(nextPrune) {
			w.prune(ctx)
			nextPrune = now.Add(pruneInterval)
		}
		w.maybeCatchUp(ctx, now)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// canary writes this copy's heartbeat every heartbeat interval and reads the peer's every probe interval, on a
// loop of its own, so that a slow set-up or check never delays a heartbeat (a late heartbeat reads as lag).
func (w *worker) canary(ctx context.Context) {
	var nextHeartbeat time.Time
	tick := time.NewTicker(w.m.o.ProbeInterval)
	defer tick.Stop()
	for {
		if w.m.o.BucketReady(w.key) {
			if now := time.Now(); !now.Before(nextHeartbeat) {
				w.writeHeartbeat(ctx, now)
				nextHeartbeat = now.Add(w.m.o.HeartbeatInterval)
			}
			w.readHeartbeat(ctx)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// setup makes sure this copy's users, remote target and rule are in place, and returns when to look again.
func (w *worker) setup(ctx context.Context) time.Duration {
	ctx, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	t := w.target
	changes, err := w.ensureUsers(ctx)
	arn := ""
	if err == nil {
		var c []objectstore.Change
		arn, c, err = objectstore.EnsureReplication(ctx, w.adm, w.local, t.Bucket, t.Remote)
		changes = append(changes, c...)
	}
	prev := w.snapshot()
	w.update(func(s *Snapshot) {
		s.SetupErr = err
		if err == nil {
			s.Configured, s.ARN = true, arn
		}
	})
	if err != nil {
		if errText(prev.SetupErr) != errText(err) {
			w.log.Info("Replication set-up failed; retrying", "error", err.Error())
		}
		return w.m.o.RetryInterval
	}
	if len(changes) > 0 {
		w.log.Info("Replication set up", "changes", changes)
		w.event(corev1.EventTypeNormal, "ReplicationConfigured", "Replication of bucket %s to the peer: %v", t.Bucket, changes)
		if prev.Configured && prev.ARN != arn {
			w.catchUpWant = true // a new target: what the old one had not carried must be carried now
		}
	}
	return w.m.o.SetupInterval
}

// ensureUsers makes this copy's users as they should be; a drill's fence keeps the data plane's user disabled.
func (w *worker) ensureUsers(ctx context.Context) ([]objectstore.Change, error) {
	w.usersMu.Lock()
	defer w.usersMu.Unlock()
	var changes []objectstore.Change
	for _, u := range w.target.Users {
		if w.fenced && u.AccessKey == w.target.DataPlaneUser {
			continue
		}
		c, err := objectstore.EnsureUser(ctx, w.adm, w.target.Local.URL, w.target.Bucket, u)
		changes = append(changes, c...)
		if err != nil {
			return changes, err
		}
	}
	return changes, nil
}

func (w *worker) writeHeartbeat(ctx context.Context, now time.Time) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	if err := objectstore.WriteHeartbeat(ctx, w.fast, w.target.Bucket, w.target.Role, now); err != nil {
		heartbeatErrors.WithLabelValues(w.key.Namespace, w.key.Name, w.target.Role, "write").Inc()
	}
}

// readHeartbeat reads the peer's heartbeat in this copy and updates the lag.
func (w *worker) readHeartbeat(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	poll := time.Now()
	hb, err := objectstore.ReadHeartbeat(ctx, w.fast, w.target.Bucket, w.target.PeerRole)
	if err != nil && !errors.Is(err, objectstore.ErrNoHeartbeat) {
		heartbeatErrors.WithLabelValues(w.key.Namespace, w.key.Name, w.target.Role, "read").Inc()
	}
	if sample, ok := w.lag.observe(poll, hb.At); ok {
		lagObserved.WithLabelValues(w.key.Namespace, w.key.Name, w.target.Role).Observe(sample.Seconds())
	}
	lag, known := w.lag.current(time.Now())
	newest := w.lag.newestHeartbeat()
	w.update(func(s *Snapshot) { s.Lag, s.LagKnown, s.PeerHeartbeat = lag, known, newest })
}

// check reads the peer's health and MinIO's view of the remote target, and returns when to look again. A peer
// that comes back (by either view) gets a catch-up.
func (w *worker) check(ctx context.Context) time.Duration {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	healthErr := objectstore.Health(ctx, w.m.o.HTTPClient, w.target.Peer.URL)
	prev := w.snapshot()
	var state objectstore.TargetState
	var stateErr error
	if prev.Configured {
		state, stateErr = objectstore.RemoteTarget(ctx, w.adm, w.local, w.target.Bucket, prev.ARN)
	}
	w.update(func(s *Snapshot) {
		s.PeerChecked, s.PeerHealthErr = true, healthErr
		if stateErr == nil {
			s.TargetOnline, s.FailedLastHour, s.Queued = state.Online, state.FailedLastHour, state.Queued
		}
	})
	next := w.snapshot()
	if (prev.PeerHealthErr != nil || !prev.PeerChecked) && healthErr == nil ||
		prev.Configured && !prev.TargetOnline && next.TargetOnline {
		w.catchUpWant = true
		// Whatever was written until now and is not on the peer is backlog, however recent.
		w.peerBack = time.Now()
	}
	if prev.PeerChecked && (prev.PeerHealthErr == nil) != (healthErr == nil) {
		if healthErr != nil {
			w.event(corev1.EventTypeWarning, v1alpha1.ReasonPeerStorageUnreachable, "The peer's storage does not answer: %v", healthErr)
		} else {
			w.event(corev1.EventTypeNormal, "PeerStorageReachable", "The peer's storage answers again")
		}
	}
	if healthErr != nil || stateErr != nil || next.Configured && !next.TargetOnline {
		// Until MinIO itself sees the peer again (its own check runs every few seconds), nothing crosses.
		return w.m.o.RetryInterval
	}
	return w.m.o.CheckInterval
}

func (w *worker) prune(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	if _, err := objectstore.PruneHeartbeats(ctx, w.local, w.target.Bucket, heartbeatsKept); err != nil {
		w.log.V(1).Info("Pruning heartbeats failed", "error", err.Error())
	}
}

// maybeCatchUp starts a catch-up in the background when one is wanted or due and the peer can take it.
func (w *worker) maybeCatchUp(ctx context.Context, now time.Time) {
	if w.catchUpBusy != nil {
		select {
		case retry := <-w.catchUpBusy:
			w.catchUpBusy = nil
			if retry {
				w.catchUpDue = now.Add(w.m.o.RetryInterval * 5)
				w.retryAt = w.catchUpDue
			}
		default:
			return
		}
	}
	s := w.snapshot()
	if !s.Configured || s.PeerHealthErr != nil || !s.PeerChecked || !s.TargetOnline {
		return
	}
	if !w.catchUpWant && now.Before(w.catchUpDue) && !w.verificationDue(s, now) {
		return
	}
	w.catchUpWant = false
	w.catchUpDue = now.Add(w.m.o.DiffInterval)
	busy := make(chan bool, 1)
	w.catchUpBusy = busy
	peerBack := w.peerBack
	go func() { busy <- w.catchUp(ctx, s.ARN, peerBack) }()
}

// verificationDue reports whether a requested verification should start now: none since the request covers it,
// what was written before the request is no longer in flight (the verification's cutoff lies before every
// version that may still be), and the last attempt did not just fail.
func (w *worker) verificationDue(s Snapshot, now time.Time) bool {
	w.mu.Lock()
	from := w.verifyFrom
	w.mu.Unlock()
	return !from.IsZero() && s.VerifiedThrough.Before(from) && !now.Before(from.Add(inFlight)) && !now.Before(w.retryAt)
}

func (w *worker) waitCatchUp() {
	if w.catchUpBusy != nil {
		<-w.catchUpBusy
	}
}

// catchUp drives what MinIO has not replicated to the peer across, then verifies both copies. It reports
// whether it should be tried again soon (it failed, the peer went away, or the copies still differ). A catch-up
// stays open in the snapshot, with its start and re-queue count, until a verification closes it. A version still
// pending counts as backlog when it was written before peerBack (the peer's return) or long enough ago not to be
// in flight.
func (w *worker) catchUp(ctx context.Context, arn string, peerBack time.Time) (retry bool) {
	o := w.m.o
	last, stuck, rounds := -1, 0, 0
	var finalDiff time.Time
	for ; ; rounds++ {
		if s := w.snapshot(); s.PeerHealthErr != nil || !s.TargetOnline {
			w.update(func(s *Snapshot) { s.CatchUp = v1alpha1.CatchUpIdle })
			return true // nothing can cross now; the peer's return starts the next round
		}
		diffStarted := time.Now()
		dctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		notBefore := diffStarted.Add(-inFlight)
		if peerBack.After(notBefore) {
			notBefore = peerBack
		}
		versions, total, err := objectstore.Unreplicated(dctx, w.adm, w.target.Bucket, arn, o.RequeueLimit, notBefore)
		cancel()
		if err != nil {
			w.log.Info("Replication diff failed", "error", err.Error())
			w.update(func(s *Snapshot) { s.CatchUp = v1alpha1.CatchUpIdle })
			return true
		}
		if total == 0 {
			finalDiff = notBefore
			w.update(func(s *Snapshot) { s.Backlog = 0 })
			break
		}
		if rounds == 0 {
			w.log.Info("Catching up: versions not yet on the peer", "backlog", total)
			w.event(corev1.EventTypeNormal, "CatchUpStarted", "%d versions are not yet on the peer: driving them across", total)
		}
		// Re-queue at first and whenever MinIO stopped making progress; while the backlog shrinks, MinIO is
		// busy with what was queued, and queueing it again would only crowd its queue.
		progress := last >= 0 && total < last
		if progress {
			stuck = 0
		} else if last >= 0 {
			stuck++
		}
		last = total
		phase := v1alpha1.CatchUpRequeueing
		if stuck >= o.ResyncAfterRounds {
			phase, stuck = v1alpha1.CatchUpResyncing, 0
		}
		w.update(func(s *Snapshot) {
			if !open(*s) {
				s.CatchUpStarted, s.Requeued = diffStarted, 0
			}
			s.Backlog, s.CatchUp = int64(total), phase
		})
		if !progress {
			n, err := w.drive(ctx, arn, phase, versions, total)
			requeuedTotal.WithLabelValues(w.key.Namespace, w.key.Name, w.target.Role).Add(float64(n))
			w.update(func(s *Snapshot) { s.Requeued += int64(n) })
			if err != nil {
				w.log.Info("Driving the backlog failed", "error", err.Error())
				w.update(func(s *Snapshot) { s.CatchUp = v1alpha1.CatchUpIdle })
				return true
			}
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(o.RetryInterval):
		}
	}
	w.update(func(s *Snapshot) {
		if open(*s) {
			s.CatchUp = v1alpha1.CatchUpVerifying // a routine verification is no news
		}
	})
	before := w.snapshot()
	diff, cutoff, err := w.verify(ctx, finalDiff, before)
	now := time.Now()
	w.update(func(s *Snapshot) {
		s.CatchUp, s.VerifyErr = v1alpha1.CatchUpIdle, err
		if err == nil {
			s.LastVerified, s.VerifiedThrough = now, cutoff
			if open(*s) {
				s.CatchUpCompleted = now
			}
		}
	})
	if err != nil {
		w.log.Info("Both copies are not equal yet", "diff", err.Error())
		return true
	}
	if open(before) {
		took := now.Sub(before.CatchUpStarted)
		w.log.Info("Caught up: both copies hold the same versions", "requeued", before.Requeued, "took", took.String(),
			"compared", diff.Compared)
		w.event(corev1.EventTypeNormal, "CatchUpCompleted", "Re-queued %d versions; both copies hold the same %d versions (took %s)",
			before.Requeued, diff.Compared, took.Round(time.Millisecond))
	}
	return false
}

// open reports whether a catch-up started and no verification has closed it yet.
func open(s Snapshot) bool { return s.CatchUpStarted.After(s.CatchUpCompleted) }

// drive makes MinIO queue the backlog again: version by version, by listing the bucket, or by a resync.
func (w *worker) drive(ctx context.Context, arn string, phase v1alpha1.CatchUpPhase, versions []objectstore.ObjectVersion, total int) (int, error) {
	o := w.m.o
	switch {
	case phase == v1alpha1.CatchUpResyncing:
		w.log.Info("The backlog does not shrink: asking MinIO for a resync", "backlog", total)
		w.event(corev1.EventTypeWarning, "ResyncStarted", "%d versions did not reach the peer after %d rounds: resyncing the bucket",
			total, o.ResyncAfterRounds)
		if err := objectstore.Resync(ctx, w.local, w.target.Bucket, arn); err != nil {
			return 0, err
		}
		for {
			running, err := objectstore.ResyncRunning(ctx, w.local, w.target.Bucket, arn)
			if err != nil || !running {
				return total, err
			}
			select {
			case <-ctx.Done():
				return total, ctx.Err()
			case <-time.After(o.RetryInterval):
			}
		}
	case total > len(versions):
		// Listing reads every version; the ones it re-queues are the backlog.
		_, err := objectstore.RequeueByListing(ctx, w.local, w.target.Bucket)
		return total, err
	default:
		return objectstore.Requeue(ctx, w.local, w.target.Bucket, versions, o.RequeueConcurrency)
	}
}

// verify lists the versions of both copies and compares those written before every sign that they have had
// their chance to replicate: the last diff that found nothing pending here (what was written before it has
// reached the peer or is in flight), the newest heartbeat of the peer seen here and the newest of this copy's
// heartbeats seen at the peer (both directions flow). When a catch-up is open, both heartbeats must have crossed
// since it started, or the comparison would cover only what was written before the outage.
func (w *worker) verify(ctx context.Context, finalDiff time.Time, s Snapshot) (objectstore.VersionDiff, time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	theirs, err := objectstore.ReadHeartbeat(ctx, w.peer, w.target.Bucket, w.target.Role)
	if err != nil {
		return objectstore.VersionDiff{}, time.Time{}, fmt.Errorf("read this copy's heartbeat at the peer: %w", err)
	}
	ours := s.PeerHeartbeat
	if ours.IsZero() {
		return objectstore.VersionDiff{}, time.Time{}, errors.New("no heartbeat of the peer has arrived here yet")
	}
	if open(s) && (theirs.At.Before(s.CatchUpStarted) || ours.Before(s.CatchUpStarted)) {
		return objectstore.VersionDiff{}, time.Time{}, errors.New("waiting for both copies' heartbeats to cross since the catch-up started")
	}
	cutoff := finalDiff
	for _, t := range []time.Time{theirs.At, ours} {
		if t.Before(cutoff) {
			cutoff = t
		}
	}
	local, err := objectstore.ListVersions(ctx, w.local, w.target.Bucket)
	if err != nil {
		return objectstore.VersionDiff{}, time.Time{}, err
	}
	remote, err := objectstore.ListVersions(ctx, w.peer, w.target.Bucket)
	if err != nil {
		return objectstore.VersionDiff{}, time.Time{}, fmt.Errorf("at the peer: %w", err)
	}
	d := objectstore.DiffVersions(local, remote, cutoff)
	if !d.Empty() {
		return d, time.Time{}, errors.New(d.Describe("here", "at the peer"))
	}
	return d, cutoff, nil
}
