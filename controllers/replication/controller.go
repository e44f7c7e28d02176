// Package replication makes a tenant exist in two clusters with its storage replicated both ways.
//
// A tenant with spec.replication is a home (made by a human) or a standby (made in the peer cluster by the home's
// operator, spec.replication.standbyOf set). On a home, the replication controller keeps the tenant's shared
// Secret (enrollment token, signing key, data-plane and replication users), mirrors the namespace, the shared
// Secret and the standby into the peer cluster, reverts hand edits of the standby's spec and deletes the standby
// with the home. On both sides it registers the tenant with the Monitor, which sets up this copy's side of the
// bucket replication, writes and reads the heartbeats and drives catch-ups, and it writes the replication part
// of the tenant's status (PeerReachable, Replicating, storage.peer, replication.*) under a field owner of its
// own. Each side's operator sets up its own MinIO only.
package replication

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/supportstack/supportstack/api/v1alpha1"
	"github.com/supportstack/supportstack/controllers/peer"
	"github.com/supportstack/supportstack/controllers/sitemonitor"
	"github.com/supportstack/supportstack/internal/failover"
	"github.com/supportstack/supportstack/internal/naming"
)

// ControllerName names the controller in logs, metrics and events.
const ControllerName = "replication"

// Finalizer keeps a home tenant until its standby is deleted.
const Finalizer = "supportstack.io/standby"

// Defaults of the Reconciler.
const (
	DefaultResyncPeriod = 30 * time.Second
	// DefaultLagThreshold is the lag above which Replicating turns False (Lagging).
	DefaultLagThreshold = 30 * time.Second
	// DefaultMaxConcurrentReconciles: a reconcile of a home talks to the peer's API server, which may be slow.
	DefaultMaxConcurrentReconciles = 4
)

// StorageResolver tells where the operator reaches a tenant's MinIO in this cluster.
type StorageResolver interface {
	StorageURL(ctx context.Context, t *v1alpha1.SupportTenant) (string, error)
}

// PeerURLResolver maps a URL built from a PeerCluster's storageURLTemplate to the address the operator and this
// cluster's MinIO use. In a cluster it is the URL itself; the local harness maps a peer plane's names to its
// pods.
type PeerURLResolver func(peer *v1alpha1.PeerCluster, url string) (string, error)

// Reconciler is the replication controller.
type Reconciler struct {
	// Client must write with the operator's field owner.
	client.Client
	APIReader client.Reader
	// ClusterName names this cluster to its peers (the operator's --cluster-name): a standby's standbyOf.
	ClusterName string
	Registry    *peer.Registry
	Monitor     *Monitor
	Sites       *sitemonitor.Monitor
	Storage     StorageResolver
	PeerURL     PeerURLResolver
	Recorder    events.EventRecorder
	// ResyncPeriod and LagThreshold override the defaults.
	ResyncPeriod, LagThreshold time.Duration
	MaxConcurrentReconciles    int
}

// +kubebuilder:rbac:groups=supportstack.io,resources=supporttenants,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=supportstack.io,resources=supporttenants/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=supportstack.io,resources=supporttenants/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;patch

// SetupWithManager registers the controller. It reconciles replicated tenants when their spec changes, when
// their shared or credentials Secret changes, when their standby changes in the peer cluster, and when the
// replication monitor's or the site monitor's snapshot changes.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.PeerURL == nil {
		r.PeerURL = func(_ *v1alpha1.PeerCluster, url string) (string, error) { return url, nil }
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named(ControllerName).
		For(&v1alpha1.SupportTenant{}, builder.WithPredicates(
			predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Watches(&corev1.Secret{}, handler.EnqueueRequestForOwner(mgr.GetScheme(), mgr.GetRESTMapper(),
			&v1alpha1.SupportTenant{}, handler.OnlyControllerOwner())).
		WatchesRawSource(source.Channel(r.Monitor.Events(), &handler.EnqueueRequestForObject{})).
		// This copy's storage coming up (or going down) changes what is registered with the monitor.
		WatchesRawSource(source.Channel(r.Sites.Events(), &handler.EnqueueRequestForObject{})).
		WatchesRawSource(source.Channel(r.Registry.Events(), &handler.EnqueueRequestForObject{})).
		// A PeerCluster that connects (or fails) changes what its tenants can do.
		Watches(&v1alpha1.PeerCluster{}, handler.EnqueueRequestsFromMapFunc(peer.TenantsOf(r.Client))).
		WithOptions(controller.Options{MaxConcurrentReconciles: cmp.Or(r.MaxConcurrentReconciles, DefaultMaxConcurrentReconciles)}).
		Complete(r)
}

func (r *Reconciler) resyncPeriod() time.Duration { return cmp.Or(r.ResyncPeriod, DefaultResyncPeriod) }

// state is what the steps of one reconcile share.
type state struct {
	tenant *v1alpha1.SupportTenant
	// peerCluster is the PeerCluster spec.replication.peer names, nil when it does not exist.
	peerCluster *v1alpha1.PeerCluster
	shared      map[string][]byte
	obs         observation
}

// observation is what the status is computed from.
type observation struct {
	// clusterNameMissing: this operator has no --cluster-name (a home cannot be mirrored).
	clusterNameMissing bool
	peerClusterMissing bool
	// peerAPIErr says why the peer's API server cannot be used (homes only).
	peerAPIErr error
	// mirrorErr is a failure to mirror the standby; conflict says a foreign tenant stands in its place.
	mirrorErr error
	conflict  bool
	// waitingForHome: a standby without its shared Secret yet.
	waitingForHome bool
	registerErr    error
	snap           Snapshot
	monitored      bool
	localHealthy   bool
	localChecked   bool
	localSince     time.Time
	// failover is where the tenant serves from, decided when failoverDecided.
	failover        failover.Decision
	failoverDecided bool
	// drillOverride is a drill refused, or closed, while the tenant has no worker to record it; drillFailover
	// says the failover declared now is a drill's.
	drillOverride *v1alpha1.DrillRecord
	drillFailover bool
}

type step func(ctx context.Context, st *state) (*ctrl.Result, error)

// Reconcile runs the steps for one tenant and writes its replication status.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	t := &v1alpha1.SupportTenant{}
	if err := r.Get(ctx, req.NamespacedName, t); err != nil {
		if apierrors.IsNotFound(err) {
			r.Monitor.Forget(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if t.Spec.Replication == nil && !controllerutil.ContainsFinalizer(t, Finalizer) {
		r.Monitor.Forget(req.NamespacedName)
		if name := t.Annotations[v1alpha1.AnnotationDrill]; name != "" {
			r.Recorder.Eventf(t, nil, corev1.EventTypeWarning, "DrillRefused", "Drill",
				"Drill %s: the tenant is not replicated (spec.replication): there is no peer copy to move to", name)
		}
		return ctrl.Result{}, r.clearStatus(ctx, t)
	}
	st := &state{tenant: t}
	for _, s := range []step{r.deletionStep, r.peerClusterStep, r.sharedSecretStep, r.mirrorStep, r.monitorStep, r.failoverStep, r.drillStep} {
		if result, err := s(ctx, st); result != nil || err != nil {
			if result == nil {
				result = &ctrl.Result{}
			}
			return *result, err
		}
	}
	if err := r.writeStatus(ctx, t, st.obs); err != nil {
		return ctrl.Result{}, err
	}
	next := r.resyncPeriod()
	if at := st.obs.failover.RecheckAt; st.obs.failoverDecided && !at.IsZero() {
		next = min(next, max(time.Until(at), 10*time.Millisecond))
	}
	return ctrl.Result{RequeueAfter: next}, nil
}

// isHome reports whether t is a home tenant (not a standby).
func isHome(t *v1alpha1.SupportTenant) bool {
	return t.Spec.Replication != nil && t.Spec.Replication.StandbyOf == ""
}

// role is the copy's role: it names its heartbeat and the user replicating into it.
func role(t *v1alpha1.SupportTenant) (own, peer string) {
	if isHome(t) {
		return naming.RoleHome, naming.RoleStandby
	}
	return naming.RoleStandby, naming.RoleHome
}

// peerClusterStep reads the PeerCluster the tenant names.
func (r *Reconciler) peerClusterStep(ctx context.Context, st *state) (*ctrl.Result, error) {
	pc := &v1alpha1.PeerCluster{}
	switch err := r.Get(ctx, client.ObjectKey{Name: st.tenant.Spec.Replication.Peer}, pc); {
	case apierrors.IsNotFound(err):
		st.obs.peerClusterMissing = true
	case err != nil:
		return nil, fmt.Errorf("get PeerCluster %s: %w", st.tenant.Spec.Replication.Peer, err)
	default:
		st.peerCluster = pc
	}
	return nil, nil
}

// monitorStep registers the tenant with the monitor and reads its snapshot.
func (r *Reconciler) monitorStep(ctx context.Context, st *state) (*ctrl.Result, error) {
	t := st.tenant
	key := client.ObjectKeyFromObject(t)
	if site, ok := r.Sites.Snapshot(key); ok && site.Checked {
		st.obs.localChecked, st.obs.localHealthy, st.obs.localSince = true, site.HealthErr == nil, site.Since
	}
	if t.Spec.Suspend || st.peerCluster == nil || st.shared == nil {
		r.Monitor.Forget(key)
		return nil, nil
	}
	target, err := r.target(ctx, t, st.peerCluster, st.shared)
	if err != nil {
		// A worker already running keeps its target and what it knows: this copy's storage being unreachable
		// (its Service without a ready pod, say) is exactly when the failover decision needs the peer's view.
		st.obs.registerErr = err
		st.obs.snap, st.obs.monitored = r.Monitor.Snapshot(key)
		return nil, nil
	}
	r.Monitor.Set(key, target)
	st.obs.snap, st.obs.monitored = r.Monitor.Snapshot(key)
	return nil, nil
}

// bucketReady tells the monitor whether the site monitor has set the tenant's bucket up.
func BucketReady(sites *sitemonitor.Monitor) func(types.NamespacedName) bool {
	return func(key types.NamespacedName) bool {
		s, ok := sites.Snapshot(key)
		return ok && s.BucketReady
	}
}

var errNoCredentials = errors.New("the tenant's credentials Secret does not exist yet")
