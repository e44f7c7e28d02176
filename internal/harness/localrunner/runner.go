package localrunner

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"
)

// Runner runs the pods of Deployments and StatefulSets as local processes.
//
// Use one Runner per control plane, each with its own StateDir: claim
// directories are keyed by namespace and pod name only. Loopback addresses
// are unique across Runners and processes.
type Runner struct {
	// Client reads Secrets, ConfigMaps, Services and the workloads, and
	// writes the workloads' status. Its reads must see the objects the pods
	// reference: a cache restricted by label selectors does not. Defaults to
	// the manager's client.
	Client client.Client
	// Selector picks the workloads to run by their labels, e.g.
	// app.kubernetes.io/managed-by=supportstack-operator. Nil runs all.
	Selector labels.Selector
	// Binaries maps a container image to a local executable.
	Binaries func(image string) (path string, err error)
	// StateDir holds volumes, run directories and container logs.
	StateDir string

	// ProbePeriod is the longest time between two readiness probes of a pod;
	// a probe's shorter periodSeconds is honoured. Default 1s.
	ProbePeriod time.Duration
	// RetryInterval is how soon a pod that waits for a Service, Secret or
	// ConfigMap is tried again. Default 1s.
	RetryInterval time.Duration
	// ContainerEnv, when set, adds environment variables to the container of
	// an image in a pod with address ip: what a program needs where the
	// emulation differs from a pod of its own (see miniotest.PodEnv).
	ContainerEnv func(image string, ip netip.Addr) []string

	// log serves the process and probe goroutines, which outlive the
	// reconcile that started them and so cannot use its context's logger.
	log    logr.Logger
	ips    *ipPool
	events map[kind]chan event.GenericEvent
	noted  sync.Map
	done   chan struct{} // closed by stopAll

	// apiServerEnv is KUBERNETES_SERVICE_HOST and _PORT, as the kubelet sets them.
	apiServerEnv []string

	mu   sync.Mutex
	pods map[workloadKey]map[int32]*pod
	// stable holds the addresses of StatefulSets' pods (see stableAddr).
	stable map[workloadKey]map[int32]netip.Addr
	peers  map[string]PeerResolver // by DNS suffix, see AddPeer
	closed bool
}

// SetupWithManager registers one controller each for Deployments and
// StatefulSets, and a runnable that stops every process when the manager
// stops.
func (r *Runner) SetupWithManager(mgr ctrl.Manager) error {
	if r.Binaries == nil {
		return errors.New("localrunner: Binaries is required")
	}
	if r.StateDir == "" {
		return errors.New("localrunner: StateDir is required")
	}
	// Processes run in their own working directories, so every path handed
	// to them must be absolute.
	stateDir, err := filepath.Abs(r.StateDir)
	if err != nil {
		return fmt.Errorf("resolve state dir: %w", err)
	}
	r.StateDir = stateDir
	if r.Client == nil {
		r.Client = mgr.GetClient()
	}
	if r.Selector == nil {
		r.Selector = labels.Everything()
	}
	if r.ProbePeriod <= 0 {
		r.ProbePeriod = time.Second
	}
	if r.RetryInterval <= 0 {
		r.RetryInterval = time.Second
	}
	r.log = mgr.GetLogger().WithName("localrunner")
	r.ips = defaultIPs
	r.pods = map[workloadKey]map[int32]*pod{}
	r.stable = map[workloadKey]map[int32]netip.Addr{}
	if r.apiServerEnv, err = apiServerEnv(mgr.GetConfig().Host); err != nil {
		return err
	}
	r.done = make(chan struct{})
	r.events = map[kind]chan event.GenericEvent{}

	for _, k := range []kind{kindDeployment, kindStatefulSet} {
		r.events[k] = make(chan event.GenericEvent)
		err := ctrl.NewControllerManagedBy(mgr).
			Named("localrunner-"+strings.ToLower(string(k))).
			For(newObject(k), builder.WithPredicates(r.selectorPredicate())).
			WatchesRawSource(source.Channel(r.events[k], &handler.EnqueueRequestForObject{})).
			WithOptions(controller.Options{
				// Several Runners may live in one process, one per control plane.
				SkipNameValidation: ptr.To(true),
				// Stopping a pod can take its grace period; other workloads should not wait for it.
				MaxConcurrentReconciles: 4,
			}).
			Complete(reconcile.Func(func(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
				return r.reconcile(ctx, workloadKey{Kind: k, Namespace: req.Namespace, Name: req.Name})
			}))
		if err != nil {
			return fmt.Errorf("create %s controller: %w", k, err)
		}
	}
	return mgr.Add(stopper{r})
}

// stopper stops every process when the manager stops. It runs without
// leader election so that it is there however the manager is configured.
type stopper struct{ r *Runner }

func (s stopper) Start(ctx context.Context) error {
	<-ctx.Done()
	s.r.stopAll()
	return nil
}

func (stopper) NeedLeaderElection() bool { return false }

// selectorPredicate passes workloads that match the selector, and updates
// that make one stop matching, so that its pods are stopped.
func (r *Runner) selectorPredicate() predicate.Predicate {
	match := func(o client.Object) bool { return o != nil && r.Selector.Matches(labels.Set(o.GetLabels())) }
	return predicate.Funcs{
		CreateFunc:  func(e event.CreateEvent) bool { return match(e.Object) },
		UpdateFunc:  func(e event.UpdateEvent) bool { return match(e.ObjectOld) || match(e.ObjectNew) },
		DeleteFunc:  func(e event.DeleteEvent) bool { return match(e.Object) },
		GenericFunc: func(e event.GenericEvent) bool { return match(e.Object) },
	}
}

// reconcile brings the pods of one workload to its spec and writes its
// status.
func (r *Runner) reconcile(ctx context.Context, key workloadKey) (ctrl.Result, error) {
	obj := newObject(key.Kind)
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: key.Namespace, Name: key.Name}, obj)
	switch {
	case apierrors.IsNotFound(err):
		r.stopWorkload(ctx, key, "workload deleted")
		return ctrl.Result{}, nil
	case err != nil:
		return ctrl.Result{}, fmt.Errorf("get %s: %w", key, err)
	case !obj.GetDeletionTimestamp().IsZero():
		r.stopWorkload(ctx, key, "workload deleted")
		return ctrl.Result{}, nil
	case !r.Selector.Matches(labels.Set(obj.GetLabels())):
		r.stopWorkload(ctx, key, "workload no longer selected")
		return ctrl.Result{}, nil
	}
	w, err := workloadOf(obj)
	if err != nil {
		return ctrl.Result{}, err
	}
	waiting, syncErr := r.syncPods(ctx, w)
	if err := r.writeStatus(ctx, w); err != nil {
		return ctrl.Result{}, errors.Join(syncErr, err)
	}
	if syncErr != nil {
		return ctrl.Result{}, syncErr
	}
	if waiting {
		return ctrl.Result{RequeueAfter: r.RetryInterval}, nil
	}
	return ctrl.Result{}, nil
}

// syncPods starts missing replicas, stops surplus ones and replaces pods of
// an older template. A ready pod is replaced only while all its siblings are
// ready, so a template change rolls through the replicas one at a time (and
// a broken template is replaced at once, since its pods are not ready).
// waiting reports pods that could not start yet.
func (r *Runner) syncPods(ctx context.Context, w *workload) (waiting bool, err error) {
	log := log.FromContext(ctx)
	current := r.podsOf(w.key)
	var surplus []*pod
	for ord, p := range current {
		if ord >= w.replicas {
			surplus = append(surplus, p)
			delete(current, ord)
		}
	}
	if len(surplus) > 0 {
		r.stopPods(ctx, "scaled down", surplus...)
	}
	if w.key.Kind == kindStatefulSet {
		r.releaseStable(w.key, w.replicas)
	}
	for ord := range w.replicas {
		old := current[ord]
		if old != nil && old.hash == w.hash {
			continue
		}
		if old != nil && old.ready.Load() && !siblingsReady(current, ord, w.replicas) {
			continue // its turn comes when the siblings are ready, which triggers a reconcile
		}
		p, err := r.buildPod(ctx, w, ord)
		var wait *waitError
		if errors.As(err, &wait) {
			r.noteOnce("wait/"+w.key.String()+"/"+wait.msg, "Pod waits", "pod", klog.KRef(w.key.Namespace, podName(w.key.Name, ord)), "reason", wait.msg)
			waiting = true
			continue
		}
		if err != nil {
			return waiting, fmt.Errorf("prepare pod %s: %w", podName(w.key.Name, ord), err)
		}
		if old != nil {
			r.stopPods(ctx, "pod template changed", old)
		}
		if !r.addPod(p) {
			p.stop() // the manager is stopping; nothing may start any more
			return waiting, nil
		}
		p.start(r.ProbePeriod, func() { r.notify(w.key) })
		current[ord] = p
		log.Info("Started pod", "pod", klog.KRef(p.owner.Namespace, p.name), "ip", p.ip.String())
	}
	return waiting, nil
}

func siblingsReady(pods map[int32]*pod, self, replicas int32) bool {
	for ord := range replicas {
		if ord == self {
			continue
		}
		if p := pods[ord]; p == nil || !p.ready.Load() {
			return false
		}
	}
	return true
}

// podsOf returns a copy of the running pods of a workload by ordinal.
func (r *Runner) podsOf(key workloadKey) map[int32]*pod {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[int32]*pod, len(r.pods[key]))
	for ord, p := range r.pods[key] {
		out[ord] = p
	}
	return out
}

func (r *Runner) hasPod(key workloadKey, ordinal int32) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pods[key][ordinal] != nil
}

// addPod records p as its workload's replica; false once the runner stops.
func (r *Runner) addPod(p *pod) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	if r.pods[p.owner] == nil {
		r.pods[p.owner] = map[int32]*pod{}
	}
	r.pods[p.owner][p.ordinal] = p
	return true
}

// stopPods forgets the pods, so that no Service resolves to them, and stops
// them in parallel.
func (r *Runner) stopPods(ctx context.Context, reason string, pods ...*pod) {
	r.mu.Lock()
	for _, p := range pods {
		if r.pods[p.owner][p.ordinal] == p {
			delete(r.pods[p.owner], p.ordinal)
		}
		if len(r.pods[p.owner]) == 0 {
			delete(r.pods, p.owner)
		}
	}
	r.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range pods {
		wg.Go(p.stop)
	}
	wg.Wait()
	for _, p := range pods {
		log.FromContext(ctx).Info("Stopped pod", "pod", klog.KRef(p.owner.Namespace, p.name), "reason", reason)
	}
}

func (r *Runner) stopWorkload(ctx context.Context, key workloadKey, reason string) {
	if pods := r.podsOf(key); len(pods) > 0 {
		r.stopPods(ctx, reason, mapValues(pods)...)
	}
	r.releaseStable(key, 0)
}

// stopAll stops every pod and refuses new ones; the manager is stopping.
func (r *Runner) stopAll() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	close(r.done)
	var all []*pod
	for _, pods := range r.pods {
		all = append(all, mapValues(pods)...)
	}
	r.mu.Unlock()
	r.stopPods(logr.NewContext(context.Background(), r.log), "manager stopped", all...)
	r.mu.Lock()
	for _, addrs := range r.stable {
		for _, ip := range addrs {
			r.ips.release(ip)
		}
	}
	clear(r.stable)
	r.mu.Unlock()
}

// apiServerEnv is what the kubelet tells containers about the API server, from the rest config's host.
func apiServerEnv(host string) ([]string, error) {
	if !strings.Contains(host, "://") {
		host = "https://" + host
	}
	u, err := url.Parse(host)
	if err != nil {
		return nil, fmt.Errorf("parse the API server's address %q: %w", host, err)
	}
	port := u.Port()
	if port == "" {
		port = "443"
	}
	return []string{"KUBERNETES_SERVICE_HOST=" + u.Hostname(), "KUBERNETES_SERVICE_PORT=" + port}, nil
}

// notify enqueues a workload whose pod readiness changed. The send happens in
// a goroutine so that a probe loop never blocks on the controller's queue.
func (r *Runner) notify(key workloadKey) {
	obj := newObject(key.Kind)
	obj.SetNamespace(key.Namespace)
	obj.SetName(key.Name)
	go func() {
		select {
		case r.events[key.Kind] <- event.GenericEvent{Object: obj}:
		case <-r.done:
		}
	}()
}

// noteOnce logs a message once per key for the Runner's lifetime, for
// conditions that would otherwise be logged on every reconcile.
func (r *Runner) noteOnce(key, msg string, kv ...any) {
	if _, seen := r.noted.LoadOrStore(key, struct{}{}); !seen {
		r.log.Info(msg, kv...)
	}
}

// PodInfo describes one pod the runner runs.
type PodInfo struct {
	Namespace string
	Name      string
	Kind      string // Deployment or StatefulSet
	Workload  string
	IP        string
	Ready     bool
	// PIDs holds the process of each container in spec order, 0 while one
	// is not running (e.g. waiting to be restarted).
	PIDs []int
}

// Pods lists the running pods, sorted by namespace and name.
func (r *Runner) Pods() []PodInfo {
	r.mu.Lock()
	var all []*pod
	for _, pods := range r.pods {
		all = append(all, mapValues(pods)...)
	}
	r.mu.Unlock()
	out := make([]PodInfo, 0, len(all))
	for _, p := range all {
		out = append(out, PodInfo{
			Namespace: p.owner.Namespace,
			Name:      p.name,
			Kind:      string(p.owner.Kind),
			Workload:  p.owner.Name,
			IP:        p.ip.String(),
			Ready:     p.ready.Load(),
			PIDs:      p.pids(),
		})
	}
	slices.SortFunc(out, func(a, b PodInfo) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	return out
}

func mapValues[K comparable, V any](m map[K]V) []V {
	out := make([]V, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}
