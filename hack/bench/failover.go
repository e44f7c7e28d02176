package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/supportstack/supportstack/api/v1alpha1"
	"github.com/supportstack/supportstack/internal/harness/planes"
	"github.com/supportstack/supportstack/internal/naming"
	"github.com/supportstack/supportstack/internal/protocol"
)

// failoverFigures stops east's MinIO under load, repeatedly, with the operators at their defaults but for
// healthyFor (--failover-healthy-for, so that a run takes a minute rather than two), and measures:
//   - the RTO as agents see it: for each agent, the longest any of its batches waited for an acknowledgement
//     (retries included) around the outage;
//   - when the operator declared the failover, and the RTO it recorded from the data plane;
//   - the failback: from MinIO's return to the tenant serving from its own copy again, verified;
//   - records lost: every acknowledged batch is looked for in both copies after the failback.
func failoverFigures(ctx context.Context, o options, work string) error {
	env, err := startBenchPlanes(o, work)
	if err != nil {
		return err
	}
	defer env.Stop()
	east, west := env.Plane("east"), env.Plane("west")
	key, _, err := applyReplicated(ctx, east, west, "failover", func(tn *v1alpha1.SupportTenant) {
		tn.Spec.Failover = &v1alpha1.FailoverSpec{Mode: v1alpha1.FailoverAutomatic,
			UnhealthyAfter: metav1.Duration{Duration: 15 * time.Second}, HealthyFor: metav1.Duration{Duration: o.failoverHealthyFor}}
	})
	if err != nil {
		return err
	}
	// Agents reach east's ingest as from outside: through a stable address, while the pods behind it restart
	// when the data plane's preferred copy changes.
	url, err := env.PublicURL("east", key.Namespace, naming.Ingest(key.Name), 80)
	if err != nil {
		return err
	}
	shared := &corev1.Secret{}
	if err := east.Admin.Get(ctx, client.ObjectKey{Namespace: key.Namespace, Name: naming.SharedSecret(key.Name)}, shared); err != nil {
		return err
	}
	devices := make([]protocol.EnrollResponse, o.failoverAgents)
	for i := range devices {
		if devices[i], err = enrollDevice(ctx, url, string(shared.Data[naming.SecretKeyEnrollmentToken])); err != nil {
			return err
		}
	}
	fmt.Printf("Failover (two local clusters; east's MinIO stopped for %s while %d agents send a 50-record batch every %s "+
		"through east's ingest, %d runs; unhealthyAfter 15s, healthyFor %s)\n", o.failoverOutage, o.failoverAgents,
		o.failoverInterval, o.failoverRuns, o.failoverHealthyFor)

	load := startLoad(ctx, url, devices, o.failoverInterval)
	defer load.stop()
	var rtos, recordedRTOs, declared, failbacks []float64
	for run := range o.failoverRuns {
		if err := waitFailover(ctx, east, key, v1alpha1.FailoverNormal, 3*time.Minute, time.Time{}); err != nil {
			return err
		}
		time.Sleep(2 * time.Second) // acknowledgements flowing before the outage
		release, err := east.Runner.Hold(key.Namespace, naming.MinIO(key.Name)+"-0")
		if err != nil {
			return err
		}
		stopped := time.Now()
		if err := waitFailover(ctx, east, key, v1alpha1.FailoverFailedOver, time.Minute, time.Time{}); err != nil {
			release()
			return err
		}
		declaredAfter := time.Since(stopped)
		time.Sleep(max(o.failoverOutage-declaredAfter, 0))
		agentRTO := load.waitsAround(stopped, time.Now())
		release()
		back := time.Now()
		if err := waitFailover(ctx, east, key, v1alpha1.FailoverNormal, 5*time.Minute, back); err != nil {
			return err
		}
		failback := time.Since(back)
		tn := &v1alpha1.SupportTenant{}
		if err := east.Admin.Get(ctx, key, tn); err != nil {
			return err
		}
		lf := tn.Status.Replication.LastFailover
		recorded := "none"
		if lf.RTO != nil {
			recorded = lf.RTO.Duration.String()
			recordedRTOs = append(recordedRTOs, lf.RTO.Seconds())
		}
		fmt.Printf("  run %d: longest wait for an acknowledgement per agent p50 %.2f s, max %.2f s; declared after %.1f s; RTO recorded by the "+
			"data plane %s; failed back, verified=%v, %.1f s after MinIO returned\n", run+1, quantile(agentRTO, 0.5),
			quantile(agentRTO, 1), declaredAfter.Seconds(), recorded, lf.Verified, failback.Seconds())
		rtos = append(rtos, agentRTO...)
		declared = append(declared, declaredAfter.Seconds())
		failbacks = append(failbacks, failback.Seconds())
	}
	slices.Sort(rtos)
	slices.Sort(failbacks)
	fmt.Printf("  RTO of a storage outage as agents see it, their longest wait (%d agents × %d runs):  p50 %.2f s  max %.2f s  (goal ≤ 2 s)\n",
		o.failoverAgents, o.failoverRuns, quantile(rtos, 0.5), quantile(rtos, 1))
	fmt.Printf("  RTO recorded in status.replication.lastFailover.rto:  %s\n", seconds(recordedRTOs))
	fmt.Printf("  failover declared after:  %s\n", seconds(declared))
	fmt.Printf("  failback, MinIO back → serving from its own copy, verified:  %s\n", seconds(failbacks))
	if err := drillFigures(ctx, o, east, key); err != nil {
		return err
	}
	if o.failoverBacklog > 0 {
		if err := backlogFailback(ctx, o, east, west, key); err != nil {
			return err
		}
	}
	load.stop()

	eastStore, err := east.RootStorage(ctx, key)
	if err != nil {
		return err
	}
	westStore, err := west.RootStorage(ctx, key)
	if err != nil {
		return err
	}
	acked := load.acknowledged()
	lost := map[string]int{}
	for name, mc := range map[string]*minio.Client{"east": eastStore, "west": westStore} {
		stored := map[string]bool{}
		for _, d := range devices {
			for obj := range mc.ListObjectsIter(ctx, bucket, minio.ListObjectsOptions{Prefix: protocol.RecordsPrefix(d.DeviceID), Recursive: true}) {
				if obj.Err != nil {
					return obj.Err
				}
				stored[obj.Key] = true
			}
		}
		for _, k := range acked {
			if !stored[k] {
				lost[name]++
			}
		}
	}
	fmt.Printf("  acknowledged batches: %d (%d records); missing in east: %d, missing in west: %d; failed requests: %d\n\n",
		len(acked), len(acked)*recordsPerBatch, lost["east"], lost["west"], load.failures.Load())
	if lost["east"]+lost["west"] > 0 {
		return fmt.Errorf("acknowledged batches are missing: %v", lost)
	}
	return nil
}

func seconds(v []float64) string {
	out := ""
	for i, s := range v {
		if i > 0 {
			out += ", "
		}
		out += fmt.Sprintf("%.2f s", s)
	}
	return out
}

// waitFailover waits until east's tenant is in state (and, for Normal after a failover, failed back after since
// with a verification).
func waitFailover(ctx context.Context, p *planes.Plane, key client.ObjectKey, state v1alpha1.FailoverState, timeout time.Duration, since time.Time) error {
	deadline := time.Now().Add(timeout)
	for {
		tn := &v1alpha1.SupportTenant{}
		if err := p.Admin.Get(ctx, key, tn); err == nil && tn.Status.Failover != nil && tn.Status.Failover.State == state {
			lf := tn.Status.Replication.LastFailover
			if since.IsZero() || lf != nil && lf.FailedBackAt != nil && !lf.FailedBackAt.Time.Before(since.Truncate(time.Second)) {
				return nil
			}
		}
		if time.Now().After(deadline) {
			msg := ""
			if tn.Status.Failover != nil {
				msg = fmt.Sprintf("%s: %s", tn.Status.Failover.State, tn.Status.Failover.Message)
			}
			return fmt.Errorf("tenant %s not %s after %s (%s)", key, state, timeout, msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// load is simulated agents sending batches continuously, one at a time each, retrying a batch until it is
// acknowledged as agents do.
type load struct {
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	mu       sync.Mutex
	acks     [][]ackAt // per agent
	failures atomic.Int64
}

type ackAt struct {
	sent, acked time.Time // sent: the batch's first attempt
	key         string
}

func startLoad(ctx context.Context, url string, devices []protocol.EnrollResponse, interval time.Duration) *load {
	ctx, cancel := context.WithCancel(ctx)
	l := &load{cancel: cancel, acks: make([][]ackAt, len(devices))}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: len(devices)}}
	for i, d := range devices {
		l.wg.Go(func() {
			seq := uint64(1)
			for ctx.Err() == nil {
				recs := make([]protocol.Record, recordsPerBatch)
				now := time.Now().UTC()
				for j := range recs {
					recs[j] = perfRecord(seq, now)
					seq++
				}
				key := protocol.BatchKey(d.DeviceID, recs[0].Time, recs[0].Seq, recs[len(recs)-1].Seq)
				body := gzipJSON(protocol.Batch{DeviceID: d.DeviceID, Records: recs})
				sent := time.Now()
				for ctx.Err() == nil {
					if postBatch(ctx, hc, url, d.Credential, body) {
						l.mu.Lock()
						l.acks[i] = append(l.acks[i], ackAt{sent: sent, acked: time.Now(), key: key})
						l.mu.Unlock()
						break
					}
					l.failures.Add(1)
					select {
					case <-ctx.Done():
					case <-time.After(100 * time.Millisecond):
					}
				}
				select {
				case <-ctx.Done():
				case <-time.After(interval):
				}
			}
		})
	}
	return l
}

// postBatch sends one batch and reports whether it was acknowledged.
func postBatch(ctx context.Context, hc *http.Client, url, credential string, body []byte) bool {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+protocol.PathBatches, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+credential)
	req.Header.Set("Content-Encoding", "gzip")
	resp, err := hc.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func (l *load) stop() {
	l.cancel()
	l.wg.Wait()
}

// waitsAround is, per agent, the longest any of its batches waited for an acknowledgement (retries included),
// among the batches first sent from 5 s before t to until: how long the agent could not get its records taken.
func (l *load) waitsAround(t, until time.Time) []float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []float64
	for _, acks := range l.acks {
		longest := 0.0
		for _, a := range acks {
			if a.sent.After(t.Add(-5*time.Second)) && a.sent.Before(until) {
				longest = max(longest, a.acked.Sub(a.sent).Seconds())
			}
		}
		out = append(out, longest)
	}
	slices.Sort(out)
	return out
}

func (l *load) acknowledged() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, acks := range l.acks {
		for _, a := range acks {
			out = append(out, a.key)
		}
	}
	return out
}

// drillFigures runs drills under the load and prints what each recorded: the data plane's RTO, the canaries'
// RPO, when the failover was declared and how long the verified failback took.
func drillFigures(ctx context.Context, o options, east *planes.Plane, key client.ObjectKey) error {
	if o.failoverDrills == 0 {
		return nil
	}
	var rtos, rpos, totals []float64
	for i := range o.failoverDrills {
		if err := waitFailover(ctx, east, key, v1alpha1.FailoverNormal, 3*time.Minute, time.Time{}); err != nil {
			return err
		}
		name := fmt.Sprintf("bench-%d-%d", time.Now().Unix(), i)
		tn := &v1alpha1.SupportTenant{}
		if err := east.Admin.Get(ctx, key, tn); err != nil {
			return err
		}
		patch := client.MergeFrom(tn.DeepCopy())
		metav1.SetMetaDataAnnotation(&tn.ObjectMeta, v1alpha1.AnnotationDrill, name)
		if err := east.Admin.Patch(ctx, tn, patch); err != nil {
			return err
		}
		started := time.Now()
		var d *v1alpha1.DrillRecord
		for d == nil || d.Name != name || d.CompletedAt == nil {
			if time.Since(started) > 10*time.Minute {
				return fmt.Errorf("drill %s did not end in 10 minutes", name)
			}
			time.Sleep(100 * time.Millisecond)
			if err := east.Admin.Get(ctx, key, tn); err != nil {
				return err
			}
			d = tn.Status.Replication.LastDrill
		}
		if d.Phase != v1alpha1.DrillSucceeded {
			return fmt.Errorf("drill %s: %s: %s", name, d.Phase, d.Message)
		}
		total := time.Since(started)
		fmt.Printf("  drill %d: %s\n", i+1, d.Message)
		rtos, rpos, totals = append(rtos, d.RTO.Seconds()), append(rpos, d.RPO.Seconds()), append(totals, total.Seconds())
	}
	fmt.Printf("  drills' recorded RTO:  %s\n  drills' recorded RPO:  %s\n  drill, annotation → Succeeded:  %s\n",
		seconds(rtos), seconds(rpos), seconds(totals))
	return nil
}

// backlogFailback stops east's MinIO once more, writes o.failoverBacklog small objects to west's copy as the
// data plane would during a long outage (the load keeps sending too), starts MinIO again and measures the
// failback: MinIO back → the tenant serves from its own copy, verified to hold every one of them.
func backlogFailback(ctx context.Context, o options, east, west *planes.Plane, key client.ObjectKey) error {
	if err := waitFailover(ctx, east, key, v1alpha1.FailoverNormal, 3*time.Minute, time.Time{}); err != nil {
		return err
	}
	release, err := east.Runner.Hold(key.Namespace, naming.MinIO(key.Name)+"-0")
	if err != nil {
		return err
	}
	defer release()
	if err := waitFailover(ctx, east, key, v1alpha1.FailoverFailedOver, time.Minute, time.Time{}); err != nil {
		return err
	}
	westData, err := west.DataPlaneStorage(ctx, key)
	if err != nil {
		return err
	}
	start := time.Now()
	prefix := fmt.Sprintf("bench-backlog/%d", start.Unix())
	if err := writeBacklog(ctx, westData, prefix+"/", o.failoverBacklog); err != nil {
		return err
	}
	wrote := time.Since(start)
	release()
	back := time.Now()
	if err := waitFailover(ctx, east, key, v1alpha1.FailoverNormal, time.Hour, back); err != nil {
		return err
	}
	failback := time.Since(back)
	eastStore, err := east.RootStorage(ctx, key)
	if err != nil {
		return err
	}
	n := 0
	for obj := range eastStore.ListObjectsIter(ctx, bucket, minio.ListObjectsOptions{Prefix: prefix + "/", Recursive: true}) {
		if obj.Err != nil {
			return obj.Err
		}
		n++
	}
	fmt.Printf("  failback with a backlog: %d objects written to west in %.0f s while east's MinIO was down; MinIO back → "+
		"serving from its own copy, verified: %.0f s; east holds %d of them\n", o.failoverBacklog, wrote.Seconds(), failback.Seconds(), n)
	if n != o.failoverBacklog {
		return fmt.Errorf("east holds %d of the %d backlog objects after a verified failback", n, o.failoverBacklog)
	}
	return nil
}
