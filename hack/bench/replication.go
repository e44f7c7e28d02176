package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/supportstack/supportstack/api/v1alpha1"
	"github.com/supportstack/supportstack/controllers"
	"github.com/supportstack/supportstack/internal/harness/planes"
	"github.com/supportstack/supportstack/internal/naming"
	"github.com/supportstack/supportstack/internal/objectstore"
	"github.com/supportstack/supportstack/internal/protocol"
)

// replicationFigures runs two local clusters with their operators at production settings and measures:
//   - the time from applying a replicated tenant to both sides Ready and replicating;
//   - replication lag under sustained ingest load: for each batch acknowledged by east's ingest, when it is
//     readable in west (the truth, measured by listing west's copy every 50 ms), next to the lag the product
//     reports for the same window (the heartbeat canary's samples, from its Prometheus histogram);
//   - catch-up: a backlog written in east while the clusters cannot see each other, then the rate at which it
//     reaches west from the moment they can, and the time until both copies' versioned listings match.
func replicationFigures(ctx context.Context, o options, work string) error {
	env, err := startBenchPlanes(o, work)
	if err != nil {
		return err
	}
	defer env.Stop()
	east, west := env.Plane("east"), env.Plane("west")
	fmt.Printf("Replication (two local clusters, an operator each at its defaults, single-drive MinIO per copy)\n")

	var keys []client.ObjectKey
	for i := range 3 {
		key, took, err := applyReplicated(ctx, east, west, fmt.Sprintf("bench%d", i))
		if err != nil {
			return err
		}
		keys = append(keys, key)
		fmt.Printf("  apply → both sides Ready and Replicating, tenant %d:  %6.1f s\n", i+1, took.Seconds())
	}
	key := keys[0]

	lag, err := lagUnderLoad(ctx, east, west, key, o)
	if err != nil {
		return err
	}
	fmt.Printf("  lag under load, %d agents through east's ingest (%.0f batches/s for %s; every 20th batch watched, %d):\n",
		o.agents, lag.rate, o.lagDuration, len(lag.product))
	line := func(what string, v []float64) {
		fmt.Printf("    %-50s p50 %5.2f s  p90 %5.2f s  p99 %5.2f s  max %5.2f s\n", what, quantile(v, 0.5), quantile(v, 0.9),
			quantile(v, 0.99), quantile(v, 1))
	}
	line("batch acknowledged in east → readable in west:", lag.product)
	line("MinIO's own: created in east's MinIO → readable in west:", lag.minio)
	fmt.Printf("    %-50s p50 %5.2f s  p99 %5.2f s  (%d heartbeats; ×%.2f and ×%.2f of MinIO's)\n",
		"what the product reports (heartbeat canary):", lag.reported.quantile(0.5), lag.reported.quantile(0.99), lag.reported.count,
		lag.reported.quantile(0.5)/quantile(lag.minio, 0.5), lag.reported.quantile(0.99)/quantile(lag.minio, 0.99))

	return catchUpFigures(ctx, env, east, west, keys[1], o.backlog)
}

// startBenchPlanes starts east and west with their operators at production settings; the operators log to a
// file of the work directory.
func startBenchPlanes(o options, work string) (*planes.Env, error) {
	if err := logOperatorsTo(work); err != nil {
		return nil, err
	}
	return planes.Start(planes.Options{SupportstackBin: o.supportstack, Dir: filepath.Join(work, "planes"),
		Operator: controllers.Options{}}, "east", "west")
}

// logOperatorsTo sends the operators' logs to a file of the work directory.
func logOperatorsTo(work string) error {
	logFile, err := os.Create(filepath.Join(work, "operators.log"))
	if err != nil {
		return err
	}
	ctrl.SetLogger(zap.New(zap.WriteTo(logFile)))
	return nil
}

// applyReplicated creates a replicated tenant in east and waits until both sides are Ready and replicating.
func applyReplicated(ctx context.Context, east, west *planes.Plane, name string, mutate ...func(*v1alpha1.SupportTenant)) (client.ObjectKey, time.Duration, error) {
	ns := "bench-" + name
	if err := east.Admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return client.ObjectKey{}, 0, err
	}
	size := resource.MustParse("1Gi")
	tn := &v1alpha1.SupportTenant{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.SupportTenantSpec{DisplayName: name, Storage: v1alpha1.StorageSpec{Size: &size},
			Ingest:      v1alpha1.IngestSpec{Replicas: 1, MaxReplicas: 1},
			Replication: &v1alpha1.ReplicationSpec{Peer: "west"}},
	}
	for _, m := range mutate {
		m(tn)
	}
	start := time.Now()
	if err := east.Admin.Create(ctx, tn); err != nil {
		return client.ObjectKey{}, 0, err
	}
	key := client.ObjectKeyFromObject(tn)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ok := true
		for _, p := range []*planes.Plane{east, west} {
			got := &v1alpha1.SupportTenant{}
			if err := p.Admin.Get(ctx, key, got); err != nil ||
				!meta.IsStatusConditionTrue(got.Status.Conditions, v1alpha1.ConditionReady) ||
				!meta.IsStatusConditionTrue(got.Status.Conditions, v1alpha1.ConditionReplicating) {
				ok = false
			}
		}
		if ok {
			return key, time.Since(start), nil
		}
		if time.Now().After(deadline) {
			var why []string
			for _, p := range []*planes.Plane{east, west} {
				got := &v1alpha1.SupportTenant{}
				_ = p.Admin.Get(ctx, key, got)
				for _, c := range got.Status.Conditions {
					if c.Status != metav1.ConditionTrue {
						why = append(why, fmt.Sprintf("%s %s: %s: %s", p.Name, c.Type, c.Reason, c.Message))
					}
				}
			}
			return key, 0, fmt.Errorf("tenant %s not Ready and replicating on both sides after 2 minutes: %s", key, strings.Join(why, "; "))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// lagFigures are the lags of one run under load, in seconds, sorted.
type lagFigures struct {
	// product: from ingest's acknowledgement in east; minio: from the object's creation in east's MinIO.
	product, minio []float64
	reported       histogram
	rate           float64
}

// lagUnderLoad sends batches through east's ingest from o.agents simulated agents for o.lagDuration and measures
// each batch's way to west, next to the canary's lag histogram of the same window.
func lagUnderLoad(ctx context.Context, east, west *planes.Plane, key client.ObjectKey, o options) (lagFigures, error) {
	addr, err := east.Runner.ServiceAddress(key.Namespace, naming.Ingest(key.Name), 80)
	if err != nil {
		return lagFigures{}, err
	}
	url := "http://" + addr
	shared := &corev1.Secret{}
	if err := east.Admin.Get(ctx, client.ObjectKey{Namespace: key.Namespace, Name: naming.SharedSecret(key.Name)}, shared); err != nil {
		return lagFigures{}, err
	}
	westStore, err := west.RootStorage(ctx, key)
	if err != nil {
		return lagFigures{}, err
	}
	eastStore, err := east.RootStorage(ctx, key)
	if err != nil {
		return lagFigures{}, err
	}
	devices := make([]protocol.EnrollResponse, o.agents)
	for i := range devices {
		if devices[i], err = enrollDevice(ctx, url, string(shared.Data[naming.SecretKeyEnrollmentToken])); err != nil {
			return lagFigures{}, err
		}
	}

	// Every sampleEvery-th batch is watched: acked is when east's ingest acknowledged it, seen when a HEAD in west
	// (proxying off, every 20 ms) first found it. Watching every batch would load west's MinIO enough to change
	// what is measured.
	const sampleEvery = 20
	var mu sync.Mutex
	acked, seen := map[string]time.Time{}, map[string]time.Time{}
	before := canaryHistogram(key, naming.RoleStandby)
	pollCtx, stopPoll := context.WithCancel(ctx)
	defer stopPoll()
	watch := make(chan string, 100000)
	var pollers sync.WaitGroup
	for range 32 {
		pollers.Go(func() { watchReplicas(pollCtx, westStore, watch, &mu, seen) })
	}

	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: o.agents}}
	var batches atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for _, d := range devices {
		wg.Go(func() {
			seq := uint64(1)
			for time.Since(start) < o.lagDuration {
				recs := make([]protocol.Record, recordsPerBatch)
				now := time.Now().UTC()
				for i := range recs {
					recs[i] = perfRecord(seq, now)
					seq++
				}
				objKey := protocol.BatchKey(d.DeviceID, recs[0].Time, recs[0].Seq, recs[len(recs)-1].Seq)
				body := gzipJSON(protocol.Batch{DeviceID: d.DeviceID, Records: recs})
				if err := sendBatch(ctx, hc, url, d.Credential, body); err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
				if batches.Add(1)%sampleEvery == 0 {
					mu.Lock()
					acked[objKey] = time.Now()
					mu.Unlock()
					watch <- objKey
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		return lagFigures{}, firstErr
	}
	missing := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for k := range acked {
			if _, ok := seen[k]; !ok {
				n++
			}
		}
		return n
	}
	for deadline := time.Now().Add(time.Minute); missing() > 0 && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}
	stopPoll()
	pollers.Wait()
	after := canaryHistogram(key, naming.RoleStandby)

	// When each batch object was created in east's MinIO (its clock is this machine's; a listing has
	// milliseconds, a HEAD only seconds).
	created := map[string]time.Time{}
	for _, d := range devices {
		for obj := range eastStore.ListObjectsIter(ctx, bucket, minio.ListObjectsOptions{Prefix: protocol.RecordsPrefix(d.DeviceID), Recursive: true}) {
			if obj.Err != nil {
				return lagFigures{}, obj.Err
			}
			created[obj.Key] = obj.LastModified
		}
	}

	mu.Lock()
	defer mu.Unlock()
	out := lagFigures{reported: after.minus(before), rate: float64(batches.Load()) / elapsed.Seconds()}
	for k, at := range acked {
		got, ok := seen[k]
		if !ok {
			continue
		}
		out.product = append(out.product, max(got.Sub(at).Seconds(), 0))
		if c, ok := created[k]; ok {
			out.minio = append(out.minio, max(got.Sub(c).Seconds(), 0))
		}
	}
	if len(out.product) < len(acked) {
		return lagFigures{}, fmt.Errorf("%d of %d batches never reached west", len(acked)-len(out.product), len(acked))
	}
	slices.Sort(out.product)
	slices.Sort(out.minio)
	return out, nil
}

// sendBatch posts a batch as an agent does, waiting as long as ingest's Retry-After asks when it is busy.
func sendBatch(ctx context.Context, hc *http.Client, url, credential string, body []byte) error {
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+protocol.PathBatches, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+credential)
		req.Header.Set("Content-Encoding", "gzip")
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusOK:
			return nil
		case http.StatusTooManyRequests, http.StatusServiceUnavailable:
			wait := time.Second
			if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
				wait = time.Duration(s) * time.Second
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(wait):
			}
		default:
			return fmt.Errorf("batch: %s", resp.Status)
		}
	}
}

// watchReplicas takes batch objects from watch and HEADs each in a copy (proxying off) every 20 ms until it is
// there, recording when it was first found.
func watchReplicas(ctx context.Context, mc *minio.Client, watch <-chan string, mu *sync.Mutex, seen map[string]time.Time) {
	opts := minio.StatObjectOptions{}
	opts.Internal.ReplicationProxyRequest = "false"
	for {
		var key string
		select {
		case <-ctx.Done():
			return
		case key = <-watch:
		}
		for ctx.Err() == nil {
			if _, err := mc.StatObject(ctx, bucket, key, opts); err == nil {
				now := time.Now()
				mu.Lock()
				seen[key] = now
				mu.Unlock()
				break
			}
			select {
			case <-ctx.Done():
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
}

// histogram is a snapshot of a Prometheus histogram: cumulative counts per upper bound.
type histogram struct {
	bounds []float64
	counts []uint64
	count  uint64
}

// canaryHistogram reads the canary's lag histogram of the tenant's copy with the given role.
func canaryHistogram(key client.ObjectKey, role string) histogram {
	families, err := metrics.Registry.Gather()
	if err != nil {
		return histogram{}
	}
	want := map[string]string{"namespace": key.Namespace, "tenant": key.Name, "role": role}
	for _, f := range families {
		if f.GetName() != "supportstack_replication_lag_observed_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			if !labelsMatch(m, want) {
				continue
			}
			h := histogram{count: m.GetHistogram().GetSampleCount()}
			for _, b := range m.GetHistogram().GetBucket() {
				h.bounds = append(h.bounds, b.GetUpperBound())
				h.counts = append(h.counts, b.GetCumulativeCount())
			}
			return h
		}
	}
	return histogram{}
}

func labelsMatch(m *dto.Metric, want map[string]string) bool {
	n := 0
	for _, l := range m.GetLabel() {
		if v, ok := want[l.GetName()]; ok && v == l.GetValue() {
			n++
		}
	}
	return n == len(want)
}

// minus is the histogram of the samples observed between b and h.
func (h histogram) minus(b histogram) histogram {
	out := histogram{bounds: h.bounds, count: h.count - b.count}
	for i, c := range h.counts {
		if i < len(b.counts) {
			c -= b.counts[i]
		}
		out.counts = append(out.counts, c)
	}
	return out
}

// quantile estimates the q-quantile as Prometheus' histogram_quantile does: linearly within the bucket.
func (h histogram) quantile(q float64) float64 {
	if h.count == 0 {
		return math.NaN()
	}
	rank := q * float64(h.count)
	lower, prev := 0.0, uint64(0)
	for i, c := range h.counts {
		if float64(c) >= rank {
			if c == prev {
				return h.bounds[i]
			}
			return lower + (h.bounds[i]-lower)*(rank-float64(prev))/float64(c-prev)
		}
		lower, prev = h.bounds[i], c
	}
	return lower
}

// quantile of sorted values.
func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// catchUpFigures writes a backlog into east while the clusters cannot see each other, lets them see each other
// again and measures how fast the backlog reaches west and when both copies' versioned listings match.
func catchUpFigures(ctx context.Context, env *planes.Env, east, west *planes.Plane, key client.ObjectKey, n int) error {
	eastStore, err := east.RootStorage(ctx, key)
	if err != nil {
		return err
	}
	westStore, err := west.RootStorage(ctx, key)
	if err != nil {
		return err
	}
	const prefix = "devices/backlog/records/"
	onPeer := func() int {
		c := 0
		for obj := range westStore.ListObjectsIter(ctx, bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
			if obj.Err == nil {
				c++
			}
		}
		return c
	}
	env.CutTraffic("west")
	if err := writeBacklog(ctx, eastStore, prefix, n); err != nil {
		env.RestoreTraffic("west")
		return err
	}
	already := onPeer()
	// MinIO has marked what it could not replicate as failed; its own retries come minutes later.
	env.RestoreTraffic("west")
	restored := time.Now()
	var checkpoints []string
	next := 5 * time.Second
	var arrived time.Duration
	for {
		c := onPeer()
		if since := time.Since(restored); since >= next {
			checkpoints = append(checkpoints, fmt.Sprintf("+%ds: %d", int(next.Seconds()), c))
			next += 5 * time.Second
		}
		if c >= n {
			arrived = time.Since(restored)
			break
		}
		if time.Since(restored) > 10*time.Minute {
			return fmt.Errorf("backlog: %d of %d versions in west 10 minutes after the peers could see each other", c, n)
		}
		time.Sleep(time.Second) // listing the whole backlog is work for west too: not too often
	}
	var matched time.Duration
	for {
		a, errA := objectstore.ListVersions(ctx, eastStore, bucket)
		b, errB := objectstore.ListVersions(ctx, westStore, bucket)
		if errA == nil && errB == nil && objectstore.DiffVersions(a, b, restored).Empty() {
			matched = time.Since(restored)
			break
		}
		if time.Since(restored) > 10*time.Minute {
			return errors.New("versioned listings still differ 10 minutes after the peers could see each other")
		}
		time.Sleep(500 * time.Millisecond)
	}
	tn := &v1alpha1.SupportTenant{}
	started := "?"
	if err := east.Admin.Get(ctx, key, tn); err == nil && tn.Status.Replication != nil && tn.Status.Replication.CatchUp != nil &&
		tn.Status.Replication.CatchUp.StartedAt != nil {
		started = fmt.Sprintf("%+.0f s", tn.Status.Replication.CatchUp.StartedAt.Sub(restored).Seconds())
	}
	fmt.Printf("  catch-up of %d versions written in east while west was cut off (%d reached west anyway; the operator started driving them at %s):\n",
		n, already, started)
	fmt.Printf("    all in west %.1f s after the peers saw each other again (%.0f versions/s); versioned listings equal after %.1f s\n",
		arrived.Seconds(), float64(n-already)/arrived.Seconds(), matched.Seconds())
	if len(checkpoints) > 0 {
		fmt.Printf("    in west: %s\n", strings.Join(checkpoints, ", "))
	}
	fmt.Println()
	return nil
}

// writeBacklog writes n small objects under prefix, 32 at a time.
func writeBacklog(ctx context.Context, mc *minio.Client, prefix string, n int) error {
	sem := make(chan struct{}, 32)
	errs := make(chan error, n)
	pad := strings.Repeat("x", 512)
	for i := range n {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			body := fmt.Sprintf(`{"seq":%d,"pad":"%s"}`, i, pad)
			_, err := mc.PutObject(ctx, bucket, fmt.Sprintf("%s%06d.json", prefix, i), strings.NewReader(body), int64(len(body)),
				minio.PutObjectOptions{})
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			return err
		}
	}
	return nil
}
