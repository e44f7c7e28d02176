package replication

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/minio/madmin-go/v3"
	"github.com/minio/minio-go/v7"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/supportstack/supportstack/api/v1alpha1"
	"github.com/supportstack/supportstack/internal/objectstore"
	"github.com/supportstack/supportstack/internal/protocol"
)

// A disaster-recovery drill (v1alpha1.AnnotationDrill) exercises the failover it prepares for, end to end: the
// data plane's breakers, the operator's declaration, the failback and its verification. Its data-path part runs
// in the tenant's worker, next to its loops, because it acts on this copy's MinIO and reads the peer's the way
// the worker already does: canaries, the fence, the measurements, the restore. The reconciler does the rest: while
// the fence is on it tells the failover decision that this copy fails (it does, for the data plane), it tells the
// drill once the failover is declared, and once the tenant has failed back it completes the drill.
//
// A drill stops nothing: the fence disables the data plane's MinIO user in this copy, which the data plane meets
// as a copy refusing its requests, and the restore enables it again. Every way out of a drill enables the user,
// and the worker's set-up enables it whenever no drill holds the fence, so an operator that dies mid-drill
// restores access when it starts again.

// Drill timing; the hold and the waits are MonitorOptions.
const (
	drillCanaries       = 20
	drillCanaryInterval = 100 * time.Millisecond
	drillPollInterval   = 500 * time.Millisecond
	// DefaultDrillHold is the least time a drill keeps this copy fenced: every data-plane server meets the fence,
	// not only the first.
	DefaultDrillHold = 10 * time.Second
	// DefaultDrillMaxHold is how much longer than the tenant's unhealthyAfter a drill keeps waiting for the data
	// plane to write through the peer and for the failover to be declared.
	DefaultDrillMaxHold = time.Minute
	// DefaultDrillVerifyWithin is how much longer than the tenant's healthyFor a drill waits, once access is
	// restored, for the verified failback.
	DefaultDrillVerifyWithin = 5 * time.Minute
)

// DrillProgress is what the monitor knows of a tenant's last drill.
type DrillProgress struct {
	Name  string
	Phase v1alpha1.DrillPhase
	// Started, Fenced, WritesResumed, Declared, Restored, FailedBack and Completed date the drill's steps; zero
	// until they happen.
	Started, Fenced, WritesResumed, Declared, Restored, FailedBack, Completed time.Time
	// RTO is measured by the data plane (its switch records), RPO by the canaries; each only when Known.
	RTO, RPO           time.Duration
	RTOKnown, RPOKnown bool
	Canaries, Missing  int
	// Verified says the tenant failed back after a verification of both copies.
	Verified bool
	Message  string
}

// Running reports whether the drill has not ended.
func (d DrillProgress) Running() bool {
	switch d.Phase {
	case v1alpha1.DrillPreparing, v1alpha1.DrillFenced, v1alpha1.DrillVerifying:
		return true
	}
	return false
}

// Fencing reports whether the drill holds this copy fenced now.
func (d DrillProgress) Fencing() bool { return d.Phase == v1alpha1.DrillFenced }

// drillTimes are a drill's limits, from the tenant's failover policy.
type drillTimes struct {
	// maxHold is the longest the fence stays on; failbackWithin the longest the failback may take after it.
	maxHold, failbackWithin time.Duration
}

// drillSignals carry what the reconciler sees to a running drill.
type drillSignals struct {
	declared   chan time.Time     // the failover was declared
	failedBack chan drillFailback // the tenant failed back
	abort      chan string
}

type drillFailback struct {
	at       time.Time
	verified bool
}

func newDrillSignals() drillSignals {
	return drillSignals{declared: make(chan time.Time, 1), failedBack: make(chan drillFailback, 1), abort: make(chan string, 1)}
}

func send[T any](c chan T, v T) {
	select {
	case c <- v:
	default: // one is already on its way
	}
}

// StartDrill starts a drill named name on the tenant's copy, for a tenant that declares a failover after
// unhealthyAfter and fails back after healthyFor. It returns false when the tenant has no worker or a drill
// already runs.
func (m *Monitor) StartDrill(key types.NamespacedName, name string, unhealthyAfter, healthyFor time.Duration) bool {
	w := m.worker(key)
	if w == nil {
		return false
	}
	return w.startDrill(name, drillTimes{maxHold: unhealthyAfter + m.o.DrillMaxHold, failbackWithin: healthyFor + m.o.DrillVerifyWithin})
}

// AbortDrill ends the tenant's running drill early, restoring the data plane's access; reason says why.
func (m *Monitor) AbortDrill(key types.NamespacedName, reason string) {
	if w := m.worker(key); w != nil {
		send(w.drillSignals().abort, reason)
	}
}

// DrillDeclared tells the tenant's drill that the failover was declared at at: the fence may be lifted.
func (m *Monitor) DrillDeclared(key types.NamespacedName, at time.Time) {
	if w := m.worker(key); w != nil {
		send(w.drillSignals().declared, at)
	}
}

// DrillFailedBack tells the tenant's drill that the tenant failed back at at, verified or not: the drill ends.
func (m *Monitor) DrillFailedBack(key types.NamespacedName, at time.Time, verified bool) {
	if w := m.worker(key); w != nil {
		send(w.drillSignals().failedBack, drillFailback{at: at, verified: verified})
	}
}

func (w *worker) drillSignals() drillSignals {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.signals
}

func (w *worker) startDrill(name string, times drillTimes) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.runCtx == nil || w.runCtx.Err() != nil || w.snap.Drill.Running() {
		return false
	}
	w.snap.Drill = DrillProgress{Name: name, Phase: v1alpha1.DrillPreparing, Started: time.Now()}
	w.signals = newDrillSignals() // nothing meant for an earlier drill reaches this one
	ctx, signals := w.runCtx, w.signals
	w.drills.Go(func() { w.runDrill(ctx, name, times, signals) })
	return true
}

// drillRun is one drill's state while it runs.
type drillRun struct {
	w       *worker
	d       DrillProgress
	id      string // names the drill's canaries
	times   drillTimes
	signals drillSignals
}

func (r *drillRun) publish() {
	d := r.d
	r.w.update(func(s *Snapshot) { s.Drill = d })
}

// finish ends the drill with a result, announces and counts it.
func (r *drillRun) finish(phase v1alpha1.DrillPhase, format string, args ...any) {
	r.d.Phase, r.d.Completed, r.d.Message = phase, time.Now(), fmt.Sprintf(format, args...)
	r.publish()
	typ := corev1.EventTypeNormal
	if phase != v1alpha1.DrillSucceeded {
		typ = corev1.EventTypeWarning
	}
	r.w.event(typ, "Drill"+string(phase), "Drill %s: %s", r.d.Name, r.d.Message)
	recordDrill(r.w.key, r.w.target.Role, r.d)
	r.w.log.Info("Drill ended", "drill", r.d.Name, "result", phase, "message", r.d.Message)
}

// wait waits d, and reports why the drill must stop instead: its abort, or the worker stopping.
func (r *drillRun) wait(ctx context.Context, d time.Duration) (string, bool) {
	select {
	case <-ctx.Done():
		return "the operator stopped watching this tenant's replication", true
	case reason := <-r.signals.abort:
		return reason, true
	case <-time.After(d):
		return "", false
	}
}

// runDrill runs one drill: canaries, fence, measurements under the fence until the failover is declared,
// restore, and the wait for the verified failback.
func (w *worker) runDrill(ctx context.Context, name string, times drillTimes, signals drillSignals) {
	r := &drillRun{w: w, d: w.snapshot().Drill, times: times, signals: signals}
	r.id = strconv.FormatInt(r.d.Started.UnixNano(), 10)
	w.event(corev1.EventTypeNormal, "DrillStarted",
		"Drill %s: writing canaries, then refusing this copy's storage to the data plane", name)
	written, ok := r.writeCanaries(ctx)
	if !ok {
		return
	}
	if err := r.probePeer(ctx); err != nil {
		r.finish(v1alpha1.DrillFailed, "the data plane could not write to the peer's copy, so nothing was fenced: %v", err)
		return
	}
	fenceStarted := time.Now()
	if err := w.fence(ctx, true); err != nil {
		_ = w.restore()
		r.finish(v1alpha1.DrillFailed, "could not refuse this copy's storage to the data plane: %v; nothing was changed", err)
		return
	}
	r.d.Phase, r.d.Fenced = v1alpha1.DrillFenced, time.Now()
	r.measureRPO(ctx, written)
	r.publish()
	reason, aborted := r.hold(ctx, fenceStarted)
	if err := w.restore(); err != nil {
		r.finish(v1alpha1.DrillFailed, "restoring the data plane's access to this copy failed (the operator keeps trying): %v", err)
		return
	}
	r.d.Restored = time.Now()
	switch {
	case aborted:
		r.finish(v1alpha1.DrillAborted, "%s; this copy's storage serves the data plane again", reason)
		return
	case r.d.Declared.IsZero():
		r.conclude()
		return
	}
	r.d.Phase = v1alpha1.DrillVerifying
	r.publish()
	if reason, aborted := r.failback(ctx); aborted {
		r.finish(v1alpha1.DrillAborted, "%s, before the tenant failed back; access to this copy is restored", reason)
		return
	}
	r.conclude()
}

// writeCanaries writes the drill's canaries to this copy, one every drillCanaryInterval, and returns their write
// times.
func (r *drillRun) writeCanaries(ctx context.Context) ([]time.Time, bool) {
	w := r.w
	written := make([]time.Time, 0, drillCanaries)
	for i := range drillCanaries {
		at := time.Now()
		cctx, cancel := context.WithTimeout(ctx, requestTimeout)
		err := objectstore.WriteCanary(cctx, w.fast, w.target.Bucket, r.id, i, at)
		cancel()
		if err != nil {
			r.finish(v1alpha1.DrillFailed, "%v; nothing was fenced", err)
			return nil, false
		}
		written = append(written, at)
		if i == drillCanaries-1 {
			break // the last canary just before the fence: what a real outage would catch in flight
		}
		if reason, stop := r.wait(ctx, drillCanaryInterval); stop {
			r.finish(v1alpha1.DrillAborted, "%s; nothing was fenced", reason)
			return nil, false
		}
	}
	r.d.Canaries = len(written)
	return written, true
}

// measureRPO counts the canaries the peer lacks now that this copy is fenced: the oldest of them dates what a
// real outage at this moment would have left only here.
func (r *drillRun) measureRPO(ctx context.Context, written []time.Time) {
	w := r.w
	cctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	held, err := objectstore.Canaries(cctx, w.peer, w.target.Bucket, r.id)
	if err != nil {
		r.d.Message = fmt.Sprintf("the peer's canaries could not be read at the fence: %v", err)
		return
	}
	r.d.Missing, r.d.RPO, r.d.RPOKnown = 0, 0, true
	for i, at := range written {
		if held[objectstore.CanaryKey(r.id, i)] {
			continue
		}
		if r.d.Missing == 0 {
			r.d.RPO = r.d.Fenced.Sub(at)
		}
		r.d.Missing++
	}
}

// hold keeps this copy fenced until the data plane has written through the peer, the failover is declared and
// the hold has passed, or until the longest hold has. It reads the data plane's switch records from the peer:
// they date its first refused write and the first the peer took. A peer that fails ends the drill: the data
// plane needs this copy back.
func (r *drillRun) hold(ctx context.Context, fenceStarted time.Time) (string, bool) {
	w := r.w
	startAfter := fmt.Sprintf("%s%020d", protocol.SwitchPrefix, fenceStarted.UTC().UnixNano())
	for {
		if s := w.snapshot(); s.PeerHealthErr != nil {
			return "the peer's storage stopped answering during the drill", true
		}
		select {
		case at := <-r.signals.declared:
			if r.d.Declared.IsZero() { // the first report dates it; later ones repeat it from the status, to the second
				r.d.Declared = at
				r.publish()
			}
		default:
		}
		if err := r.readSwitches(ctx, startAfter); isAccessDenied(err) {
			return fmt.Sprintf("the peer's copy refuses the data plane (%v)", err), true
		}
		held := time.Since(r.d.Fenced)
		if r.d.RTOKnown && !r.d.Declared.IsZero() && held >= w.m.o.DrillHold || held >= r.times.maxHold {
			return "", false
		}
		if reason, stop := r.wait(ctx, drillPollInterval); stop {
			return reason, true
		}
	}
}

// readSwitches reads the data plane's switch records written since the fence, every server's: the RTO is the
// longest any of them could not write.
func (r *drillRun) readSwitches(ctx context.Context, startAfter string) error {
	w := r.w
	cctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	recs, err := objectstore.ReadSwitches(cctx, w.peer, w.target.Bucket, startAfter, 100)
	if err != nil {
		w.log.V(1).Info("Reading the data plane's switch records failed", "error", err.Error())
	}
	prev := r.d
	for _, rec := range recs {
		r.d.WritesResumed = maxTime(r.d.WritesResumed, rec.ResumedAt)
		r.d.RTO = max(r.d.RTO, rec.ResumedAt.Sub(rec.FailedAt))
		r.d.RTOKnown = true
	}
	if r.d != prev {
		r.publish()
	}
	return err
}

// probePeer writes a small object to the peer's copy as the data plane would: a drill fences this copy only when
// the data plane has somewhere to write (the peer may itself be fenced by a drill, or refuse its user).
func (r *drillRun) probePeer(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	return objectstore.WriteCanary(cctx, r.w.peer, r.w.target.Bucket, r.id, drillCanaries, time.Now())
}

// isAccessDenied reports whether MinIO refused the request's credentials.
func isAccessDenied(err error) bool {
	return err != nil && minio.ToErrorResponse(err).StatusCode == http.StatusForbidden
}

// failback waits until the reconciler reports that the tenant failed back, or until the wait runs out (conclude
// says so).
func (r *drillRun) failback(ctx context.Context) (string, bool) {
	select {
	case <-ctx.Done():
		return "the operator stopped watching this tenant's replication", true
	case reason := <-r.signals.abort:
		return reason, true
	case fb := <-r.signals.failedBack:
		r.d.FailedBack, r.d.Verified = fb.at, fb.verified
	case <-time.After(r.times.failbackWithin):
	}
	return "", false
}

// conclude records the drill's result from what it measured.
func (r *drillRun) conclude() {
	d := r.d
	rpo := "RPO not measured"
	if d.RPOKnown {
		rpo = fmt.Sprintf("%d of %d canaries were not yet on the peer at the fence (RPO %s)", d.Missing, d.Canaries,
			d.RPO.Round(time.Millisecond))
	}
	rto := fmt.Sprintf("the data plane wrote through the peer %s after its first refused write (RTO)", d.RTO.Round(time.Millisecond))
	declared := fmt.Sprintf("failover declared %s after the fence", d.Declared.Sub(d.Fenced).Round(100*time.Millisecond))
	switch {
	case !d.RTOKnown:
		r.finish(v1alpha1.DrillFailed, "no data-plane write reached the peer during the %s this copy was fenced, so no RTO "+
			"was measured (a drill measures live traffic); %s", d.Restored.Sub(d.Fenced).Round(time.Second), rpo)
	case d.Declared.IsZero():
		r.finish(v1alpha1.DrillFailed, "%s; %s; but the failover was not declared within the %s this copy was fenced",
			rto, rpo, d.Restored.Sub(d.Fenced).Round(time.Second))
	case d.FailedBack.IsZero():
		r.finish(v1alpha1.DrillFailed, "%s; %s; %s; but the tenant had not failed back %s after access was restored",
			rto, rpo, declared, r.times.failbackWithin)
	case !d.Verified:
		r.finish(v1alpha1.DrillFailed, "%s; %s; %s; but the tenant failed back without a verification (the peer failed)",
			rto, rpo, declared)
	default:
		r.finish(v1alpha1.DrillSucceeded, "%s; %s; %s; failed back, verified, %s after access was restored",
			rto, rpo, declared, d.FailedBack.Sub(d.Restored).Round(time.Second))
	}
}

// fence disables (or enables) the data plane's user in this copy's MinIO. While fenced, the set-up leaves the
// user as it is.
func (w *worker) fence(ctx context.Context, on bool) error {
	w.usersMu.Lock()
	defer w.usersMu.Unlock()
	status := madmin.AccountEnabled
	if on {
		status = madmin.AccountDisabled
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	if err := w.adm.SetUserStatus(ctx, w.target.DataPlaneUser, status); err != nil {
		if !on {
			w.fenced = false // the set-up enables the user when it next can
		}
		return fmt.Errorf("set the data plane's user %s: %w", status, err)
	}
	w.fenced = on
	return nil
}

// restore lifts the fence, on a context of its own: a drill that ends because its worker stops must still
// restore access. When a few tries fail it keeps trying in the background until it succeeds (for up to a day):
// the worker's set-up would enable the user too, but a worker that stopped has no set-up any more.
func (w *worker) restore() error {
	try := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		defer cancel()
		return w.fence(ctx, false)
	}
	var err error
	for i := range 3 {
		if err = try(); err == nil {
			return nil
		}
		if i < 2 {
			time.Sleep(time.Second)
		}
	}
	go func() {
		for deadline := time.Now().Add(24 * time.Hour); time.Now().Before(deadline); time.Sleep(5 * time.Second) {
			if try() == nil {
				w.log.Info("The data plane's access to this copy is restored after a drill")
				return
			}
		}
		w.log.Error(nil, "The data plane's user (the shared Secret's dataplane-access-key) could not be enabled again after a drill: enable it by hand")
	}()
	return err
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// RefuseDrill records that the drill named name was not started, and why.
func (m *Monitor) RefuseDrill(key types.NamespacedName, name, reason string) {
	if w := m.worker(key); w != nil {
		w.endDrill(DrillProgress{Name: name, Started: time.Now()}, v1alpha1.DrillRefused, reason)
	}
}

// AbandonDrill records that a drill the status shows running has no worker behind it: the operator restarted,
// or this copy's worker was replaced, mid-drill. The worker's set-up enables the data plane's user again.
func (m *Monitor) AbandonDrill(key types.NamespacedName, d DrillProgress) {
	if w := m.worker(key); w != nil {
		w.endDrill(d, v1alpha1.DrillAborted, "the operator stopped watching this copy during the drill (it restarted, "+
			"or this copy's storage moved); its set-up restores the data plane's access to this copy")
	}
}

// endDrill records a drill that ended outside the drill's own run, unless one runs or it is already recorded.
func (w *worker) endDrill(d DrillProgress, phase v1alpha1.DrillPhase, message string) {
	cur := w.snapshot().Drill
	if cur.Running() || cur.Name == d.Name && !cur.Completed.IsZero() {
		return
	}
	r := &drillRun{w: w, d: d}
	r.finish(phase, "%s", message)
}
