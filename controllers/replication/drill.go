package replication

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/minio/madmin-go/v3"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/supportstack/supportstack/api/v1alpha1"
	"github.com/supportstack/supportstack/internal/objectstore"
	"github.com/supportstack/supportstack/internal/protocol"
)

// A disaster-recovery drill (v1alpha1.AnnotationDrill) runs in the tenant's worker, next to its loops, because it
// acts on this copy's MinIO and reads the peer's the way the worker already does. It stops nothing: it disables
// the data plane's MinIO user in this copy (the fence), which the data plane meets as a copy refusing its
// requests, and enables it again. Every way out of a drill enables the user, and the worker's set-up enables it
// whenever no drill holds the fence, so an operator that dies mid-drill restores access when it starts again.

// Drill timing; the hold and the verification wait are MonitorOptions.
const (
	drillCanaries       = 20
	drillCanaryInterval = 100 * time.Millisecond
	drillPollInterval   = 500 * time.Millisecond
	// DefaultDrillHold is the least time a drill keeps this copy fenced once the data plane has written through
	// the peer: every data-plane server meets the fence, not only the first.
	DefaultDrillHold = 10 * time.Second
	// DefaultDrillMaxHold is the longest a drill waits for the data plane to write through the peer.
	DefaultDrillMaxHold = time.Minute
	// DefaultDrillVerifyWithin is how long a drill waits for both copies to be verified equal after the fence.
	DefaultDrillVerifyWithin = 5 * time.Minute
)

// DrillProgress is what the monitor knows of a tenant's last drill.
type DrillProgress struct {
	Name  string
	Phase v1alpha1.DrillPhase
	// Started, Fenced, WritesResumed, Restored and Completed date the drill's steps; zero until they happen.
	Started, Fenced, WritesResumed, Restored, Completed time.Time
	// RTO is measured by the data plane (its switch records), RPO by the canaries; each only when Known.
	RTO, RPO           time.Duration
	RTOKnown, RPOKnown bool
	Canaries, Missing  int
	Verified           bool
	Message            string
}

// Running reports whether the drill has not ended.
func (d DrillProgress) Running() bool {
	switch d.Phase {
	case v1alpha1.DrillPreparing, v1alpha1.DrillFenced, v1alpha1.DrillVerifying:
		return true
	}
	return false
}

// StartDrill starts a drill named name on the tenant's copy. It returns false when the tenant has no worker or
// a drill already runs.
func (m *Monitor) StartDrill(key types.NamespacedName, name string) bool {
	w := m.worker(key)
	if w == nil {
		return false
	}
	return w.startDrill(name)
}

// AbortDrill ends the tenant's running drill early, restoring the data plane's access; reason says why.
func (m *Monitor) AbortDrill(key types.NamespacedName, reason string) {
	if w := m.worker(key); w != nil {
		select {
		case w.drillAbort <- reason:
		default: // an abort is already on its way
		}
	}
}

func (w *worker) startDrill(name string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.runCtx == nil || w.snap.Drill.Running() {
		return false
	}
	w.snap.Drill = DrillProgress{Name: name, Phase: v1alpha1.DrillPreparing, Started: time.Now()}
	// Drain an abort meant for an earlier drill.
	select {
	case <-w.drillAbort:
	default:
	}
	ctx := w.runCtx
	w.drills.Go(func() { w.drill(ctx, name) })
	return true
}

// drillRun is one drill's state while it runs.
type drillRun struct {
	w  *worker
	d  DrillProgress
	id string // names the drill's canaries
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
	case reason := <-r.w.drillAbort:
		return reason, true
	case <-time.After(d):
		return "", false
	}
}

// drill runs one drill: canaries, fence, measurements under the fence, restore, verification.
func (w *worker) drill(ctx context.Context, name string) {
	r := &drillRun{w: w, d: w.snapshot().Drill}
	r.id = strconv.FormatInt(r.d.Started.UnixNano(), 10)
	w.event(corev1.EventTypeNormal, "DrillStarted",
		"Drill %s: writing canaries, then refusing this copy's storage to the data plane", name)
	written, ok := r.writeCanaries(ctx)
	if !ok {
		return
	}
	fenceStarted := time.Now()
	if err := w.fence(ctx, true); err != nil {
		w.restore()
		r.finish(v1alpha1.DrillFailed, "could not refuse this copy's storage to the data plane: %v; nothing was changed", err)
		return
	}
	r.d.Phase, r.d.Fenced = v1alpha1.DrillFenced, time.Now()
	r.measureRPO(ctx, written)
	r.publish()
	reason, aborted := r.hold(ctx, fenceStarted)
	if err := w.restore(); err != nil {
		r.d.Message = fmt.Sprintf("restoring access failed (the worker's set-up retries it): %v", err)
	}
	r.d.Restored = time.Now()
	if aborted {
		r.finish(v1alpha1.DrillAborted, "%s; this copy's storage serves the data plane again", reason)
		return
	}
	r.d.Phase = v1alpha1.DrillVerifying
	r.publish()
	w.requestVerification(r.d.Restored)
	if reason, aborted := r.verified(ctx); aborted {
		r.finish(v1alpha1.DrillAborted, "%s, before both copies were verified", reason)
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

// hold keeps this copy fenced until the data plane has written through the peer and the hold has passed, or
// the longest hold has. It reads the data plane's switch records from the peer: they date its first refused
// write and the first the peer took. A peer that fails ends the drill: the data plane needs this copy back.
func (r *drillRun) hold(ctx context.Context, fenceStarted time.Time) (string, bool) {
	w := r.w
	startAfter := fmt.Sprintf("%s%020d", protocol.SwitchPrefix, fenceStarted.UTC().UnixNano())
	var measuredAt time.Time
	for {
		if s := w.snapshot(); s.PeerHealthErr != nil {
			return "the peer's storage stopped answering during the drill", true
		}
		cctx, cancel := context.WithTimeout(ctx, requestTimeout)
		recs, err := objectstore.ReadSwitches(cctx, w.peer, w.target.Bucket, startAfter, 100)
		cancel()
		if err != nil {
			w.log.V(1).Info("Reading the data plane's switch records failed", "error", err.Error())
		}
		if len(recs) > 0 {
			prev := r.d
			for _, rec := range recs {
				r.d.WritesResumed = maxTime(r.d.WritesResumed, rec.ResumedAt)
				r.d.RTO = max(r.d.RTO, rec.ResumedAt.Sub(rec.FailedAt))
			}
			r.d.RTOKnown = true
			if measuredAt.IsZero() {
				measuredAt = time.Now()
			}
			if r.d != prev {
				r.publish()
			}
		}
		now := time.Now()
		if !measuredAt.IsZero() && now.Sub(measuredAt) >= w.m.o.DrillHold || now.Sub(r.d.Fenced) >= w.m.o.DrillMaxHold {
			return "", false
		}
		if reason, stop := r.wait(ctx, drillPollInterval); stop {
			return reason, true
		}
	}
}

// verified waits until a verification covers every version written before access was restored, or until the
// wait runs out (conclude says so).
func (r *drillRun) verified(ctx context.Context) (string, bool) {
	deadline := r.d.Fenced.Add(r.w.m.o.DrillVerifyWithin)
	for time.Now().Before(deadline) {
		if !r.w.snapshot().VerifiedThrough.Before(r.d.Restored) {
			r.d.Verified = true
			return "", false
		}
		if reason, stop := r.wait(ctx, drillPollInterval); stop {
			return reason, true
		}
	}
	return "", false
}

// conclude records the drill's result from what it measured.
func (r *drillRun) conclude() {
	d := r.d
	rpo := "not measured"
	if d.RPOKnown {
		rpo = fmt.Sprintf("%d of %d canaries were not yet on the peer at the fence (RPO %s)", d.Missing, d.Canaries,
			d.RPO.Round(time.Millisecond))
	}
	switch {
	case !d.RTOKnown:
		r.finish(v1alpha1.DrillFailed, "no data-plane write reached the peer during the %s this copy was fenced, so no RTO "+
			"was measured (a drill measures live traffic); %s", d.Restored.Sub(d.Fenced).Round(time.Second), rpo)
	case !d.Verified:
		r.finish(v1alpha1.DrillFailed, "RTO %s, %s; but both copies were not verified equal within %s of the fence: %s",
			d.RTO.Round(time.Millisecond), rpo, r.w.m.o.DrillVerifyWithin, errText(r.w.snapshot().VerifyErr))
	default:
		r.finish(v1alpha1.DrillSucceeded, "the data plane wrote through the peer %s after its first refused write (RTO); %s; "+
			"both copies verified equal %s after access was restored", d.RTO.Round(time.Millisecond), rpo,
			time.Since(d.Restored).Round(time.Second))
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
// restore access.
func (w *worker) restore() error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*requestTimeout)
	defer cancel()
	var err error
	for range 3 {
		if err = w.fence(ctx, false); err == nil || ctx.Err() != nil {
			return err
		}
		time.Sleep(time.Second)
	}
	return err
}

// requestVerification asks the run loop for a verification covering what was written before from.
func (w *worker) requestVerification(from time.Time) {
	w.mu.Lock()
	if from.After(w.verifyFrom) {
		w.verifyFrom = from
	}
	w.mu.Unlock()
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
