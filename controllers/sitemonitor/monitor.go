// Package sitemonitor checks tenants' storage at one site outside of any reconcile: a manager Runnable that asks
// each registered MinIO for its health (/minio/health/cluster) and keeps its bucket bootstrapped (versioning,
// the exclusions, the retention rule). Reconcile never talks to MinIO: it registers what to check (Set) and
// reads the latest result (Snapshot); the monitor asks for a reconcile of a tenant whenever its result changes,
// through the channel returned by Events, which the controller watches as a source.
//
// A slow or hung MinIO delays only its own checks: each check has a deadline and checks run in parallel, a few
// at a time.
package sitemonitor

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/supportstack/supportstack/internal/objectstore"
)

// Defaults of Options.
const (
	DefaultInterval       = 10 * time.Second
	DefaultRetryInterval  = 2 * time.Second
	DefaultBucketInterval = 30 * time.Second
	DefaultCheckTimeout   = 5 * time.Second
	DefaultBucketTimeout  = 15 * time.Second
	DefaultConcurrency    = 8
)

// Options of a Monitor. Zero values take the defaults.
type Options struct {
	// Interval is how often a healthy site is checked; RetryInterval how often one that failed is.
	Interval, RetryInterval time.Duration
	// BucketInterval is how often a healthy site's bucket set-up is verified (and repaired).
	BucketInterval time.Duration
	// CheckTimeout bounds a health check, BucketTimeout a bucket set-up.
	CheckTimeout, BucketTimeout time.Duration
	// Concurrency bounds the checks under way at once.
	Concurrency int
	HTTPClient  *http.Client
	// Recorder receives the events of bucket set-up changes, about the target's Object; nil records none.
	Recorder events.EventRecorder
	// EventAction is the action of those events.
	EventAction string
}

// Target is one tenant's storage at this site.
type Target struct {
	URL       string
	AccessKey string
	SecretKey string
	// Bucket is set up with RetentionDays when it is not empty.
	Bucket        string
	RetentionDays int
	// Object is what events are about.
	Object client.Object
}

func (t Target) same(o Target) bool {
	return t.URL == o.URL && t.AccessKey == o.AccessKey && t.SecretKey == o.SecretKey && t.Bucket == o.Bucket &&
		t.RetentionDays == o.RetentionDays
}

// Snapshot is the latest result for a target.
type Snapshot struct {
	// Checked is false until the first health check of the current target has finished.
	Checked   bool
	CheckedAt time.Time
	// HealthErr is nil when the site answered its health check.
	HealthErr error
	// Since is when the site was first seen in its current health (answering or not).
	Since time.Time
	// BucketReady says the bucket was set up as the current target asks; BucketErr is the last set-up's error.
	BucketReady bool
	BucketErr   error
}

// Monitor checks the registered targets until its context ends. Create it with New.
type Monitor struct {
	o Options
	// subscribers get every event; each controller that watches the monitor has its own channel.
	subMu       sync.Mutex
	subscribers []chan event.GenericEvent
	wake        chan struct{}

	mu      sync.Mutex
	entries map[types.NamespacedName]*entry
}

type entry struct {
	target    Target
	snap      Snapshot
	next      time.Time // next health check
	bucketAt  time.Time // last successful bucket set-up
	running   bool
	generated uint64 // bumped by Set when the target changes, so a late result of an old target is dropped
}

// New returns a monitor; add it to the manager (it is a Runnable) and watch Events.
func New(o Options) *Monitor {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.Interval, DefaultInterval)
	def(&o.RetryInterval, DefaultRetryInterval)
	def(&o.BucketInterval, DefaultBucketInterval)
	def(&o.CheckTimeout, DefaultCheckTimeout)
	def(&o.BucketTimeout, DefaultBucketTimeout)
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{}
	}
	return &Monitor{o: o, wake: make(chan struct{}, 1),
		entries: map[types.NamespacedName]*entry{}}
}

// Events returns a new channel that delivers a tenant whenever its snapshot changed; call it once per watching
// controller.
func (m *Monitor) Events() <-chan event.GenericEvent {
	ch := make(chan event.GenericEvent, 1024)
	m.subMu.Lock()
	m.subscribers = append(m.subscribers, ch)
	m.subMu.Unlock()
	return ch
}

// Set registers or updates a target; a new or changed one is checked at once. It makes no requests.
func (m *Monitor) Set(key types.NamespacedName, t Target) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.entries[key]
	if ok && e.target.same(t) {
		e.target.Object = t.Object
		return
	}
	if !ok {
		e = &entry{}
		m.entries[key] = e
	}
	e.target, e.snap, e.next, e.bucketAt = t, Snapshot{}, time.Time{}, time.Time{}
	e.generated++
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// CheckSoon checks a registered target at once unless a check is under way or one is due sooner: other evidence
// (its pods turned unready) says its health may have changed, and a failover is declared from these checks.
func (m *Monitor) CheckSoon(key types.NamespacedName) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.entries[key]
	if !ok || e.running || !e.snap.Checked || e.snap.HealthErr != nil {
		return // unchecked or failing targets are checked every retry interval anyway
	}
	e.next = time.Now()
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// Forget stops checking a target.
func (m *Monitor) Forget(key types.NamespacedName) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.entries, key)
}

// Snapshot returns the latest result for a target, and false when it is not registered.
func (m *Monitor) Snapshot(key types.NamespacedName) (Snapshot, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.entries[key]
	if !ok {
		return Snapshot{}, false
	}
	return e.snap, true
}

// NeedLeaderElection: only the leader reconciles, so only the leader needs the results.
func (m *Monitor) NeedLeaderElection() bool { return true }

// Start checks what is due until ctx ends.
func (m *Monitor) Start(ctx context.Context) error {
	sem := make(chan struct{}, m.o.Concurrency)
	var wg sync.WaitGroup
	defer wg.Wait()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		for _, job := range m.due(time.Now()) {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return nil
			}
			wg.Go(func() {
				defer func() { <-sem }()
				m.check(ctx, job)
			})
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-m.wake:
		}
	}
}

// job is one check of one target, as it was when the check started.
type job struct {
	key        types.NamespacedName
	target     Target
	generated  uint64
	wantBucket bool
}

// due marks the checks that are due as running and returns them.
func (m *Monitor) due(now time.Time) []job {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []job
	for key, e := range m.entries {
		if e.running || now.Before(e.next) {
			continue
		}
		e.running = true
		out = append(out, job{key: key, target: e.target, generated: e.generated,
			wantBucket: e.target.Bucket != "" && (!e.snap.BucketReady || now.Sub(e.bucketAt) >= m.o.BucketInterval)})
	}
	slices.SortFunc(out, func(a, b job) int { return compareKeys(a.key, b.key) })
	return out
}

func compareKeys(a, b types.NamespacedName) int {
	if a.Namespace != b.Namespace {
		if a.Namespace < b.Namespace {
			return -1
		}
		return 1
	}
	switch {
	case a.Name < b.Name:
		return -1
	case a.Name > b.Name:
		return 1
	}
	return 0
}

// check runs one health check, and the bucket set-up when it is due and the site is healthy, and publishes the
// result.
func (m *Monitor) check(ctx context.Context, j job) {
	hctx, cancel := context.WithTimeout(ctx, m.o.CheckTimeout)
	healthErr := objectstore.Health(hctx, m.o.HTTPClient, j.target.URL)
	cancel()
	if ctx.Err() != nil {
		m.release(j)
		return
	}
	var bucketErr error
	bucketDone := false
	if healthErr == nil && j.wantBucket {
		bucketErr = m.ensureBucket(ctx, j.target)
		bucketDone = true
	}
	m.publish(j, healthErr, bucketDone, bucketErr)
}

// ensureBucket sets the bucket up and records an event for each change.
func (m *Monitor) ensureBucket(ctx context.Context, t Target) error {
	mc, err := objectstore.NewClient(objectstore.Endpoint{URL: t.URL, AccessKey: t.AccessKey, SecretKey: t.SecretKey})
	if err != nil {
		return err
	}
	bctx, cancel := context.WithTimeout(ctx, m.o.BucketTimeout)
	defer cancel()
	changes, err := objectstore.EnsureBucket(bctx, mc, t.Bucket, t.RetentionDays)
	if m.o.Recorder != nil && t.Object != nil {
		for _, c := range changes {
			m.o.Recorder.Eventf(t.Object, nil, corev1.EventTypeNormal, string(c), m.o.EventAction, "%s", ChangeMessage(c, t.Bucket, t.RetentionDays))
		}
	}
	return err
}

// ChangeMessage describes a bucket set-up change in an event.
func ChangeMessage(c objectstore.Change, bucket string, retentionDays int) string {
	switch c {
	case objectstore.ChangeBucketCreated:
		return "Created bucket " + bucket
	case objectstore.ChangeVersioningEnabled:
		return "Enabled versioning of bucket " + bucket
	case objectstore.ChangeVersioningExclusions:
		return "Bucket " + bucket + " does not version the ingest service's seq ledgers"
	case objectstore.ChangeRetentionSet:
		return fmt.Sprintf("Bucket %s expires records after %d days", bucket, retentionDays)
	}
	return string(c)
}

func (m *Monitor) release(j job) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.entries[j.key]; ok && e.generated == j.generated {
		e.running = false
	}
}

// publish stores a check's result and asks for a reconcile of the tenant when the result changed.
func (m *Monitor) publish(j job, healthErr error, bucketDone bool, bucketErr error) {
	m.mu.Lock()
	e, ok := m.entries[j.key]
	if !ok || e.generated != j.generated {
		if ok {
			e.running = false
		}
		m.mu.Unlock()
		return // forgotten or changed meanwhile: the result is about an old target
	}
	now := time.Now()
	prev := e.snap
	next := prev
	next.Checked, next.CheckedAt, next.HealthErr = true, now, healthErr
	if !prev.Checked || (prev.HealthErr == nil) != (healthErr == nil) {
		next.Since = now
	}
	if bucketDone {
		next.BucketReady, next.BucketErr = bucketErr == nil, bucketErr
		if bucketErr == nil {
			e.bucketAt = now
		}
	}
	e.snap, e.running = next, false
	e.next = now.Add(m.o.Interval)
	if healthErr != nil || next.BucketErr != nil {
		e.next = now.Add(m.o.RetryInterval)
	}
	changed := !prev.Checked || errText(prev.HealthErr) != errText(next.HealthErr) ||
		prev.BucketReady != next.BucketReady || errText(prev.BucketErr) != errText(next.BucketErr)
	obj := e.target.Object
	m.mu.Unlock()
	if changed && obj != nil {
		m.subMu.Lock()
		for _, ch := range m.subscribers {
			select {
			case ch <- event.GenericEvent{Object: obj}:
			default:
				log.Log.WithName("sitemonitor").Info("Event queue full: the tenant is reconciled at its next resync", "tenant", j.key)
			}
		}
		m.subMu.Unlock()
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
