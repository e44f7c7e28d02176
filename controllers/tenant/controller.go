package tenant

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	"k8s.io/client-go/tools/events"
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

	"github.com/supportstack/supportstack/api/v1alpha1"
	"github.com/supportstack/supportstack/controllers/peer"
	"github.com/supportstack/supportstack/controllers/sitemonitor"
	"github.com/supportstack/supportstack/internal/naming"
)

// ControllerName names the controller in logs, metrics and events.
const ControllerName = "supporttenant"

// DefaultResyncPeriod is how often a tenant's MinIO is checked when nothing else triggers a reconcile: MinIO's
// health is not an object the operator could watch.
const DefaultResyncPeriod = 30 * time.Second

// StorageResolver tells where the operator reaches a tenant's MinIO.
type StorageResolver interface {
	StorageURL(ctx context.Context, t *v1alpha1.SupportTenant) (string, error)
}

// ResolverFunc adapts a function to a StorageResolver.
type ResolverFunc func(ctx context.Context, t *v1alpha1.SupportTenant) (string, error)

// StorageURL calls f.
func (f ResolverFunc) StorageURL(ctx context.Context, t *v1alpha1.SupportTenant) (string, error) {
	return f(ctx, t)
}

// ServiceResolver reaches MinIO through its in-cluster Service: right when the operator runs in the cluster.
type ServiceResolver struct{ Config Config }

// StorageURL is the URL of the tenant's MinIO Service.
func (s ServiceResolver) StorageURL(_ context.Context, t *v1alpha1.SupportTenant) (string, error) {
	return s.Config.storageEndpoint(t), nil
}

// Reconciler converges a SupportTenant's objects in one cluster and reports their state.
type Reconciler struct {
	// Client must write with the operator's field owner (client.WithFieldOwner).
	client.Client
	// APIReader reads around the cache, for objects the cache may not show yet.
	APIReader client.Reader
	Config    Config
	Storage   StorageResolver
	Recorder  events.EventRecorder
	// Monitor checks the tenants' MinIO and sets up their buckets; Reconcile only reads its results.
	Monitor *sitemonitor.Monitor
	// ResyncPeriod overrides DefaultResyncPeriod.
	ResyncPeriod time.Duration
	// MaxConcurrentReconciles is how many tenants are reconciled at once; 0 means DefaultMaxConcurrentReconciles.
	MaxConcurrentReconciles int
}

// DefaultMaxConcurrentReconciles is how many tenants are reconciled at once by default: a reconcile makes no
// request to MinIO, only to the API server.
const DefaultMaxConcurrentReconciles = 4

// +kubebuilder:rbac:groups=supportstack.io,resources=supporttenants,verbs=get;list;watch
// +kubebuilder:rbac:groups=supportstack.io,resources=supporttenants/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=supportstack.io,resources=supporttenants/finalizers,verbs=update
// +kubebuilder:rbac:groups=supportstack.io,resources=peerclusters,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups="",resources=services;serviceaccounts,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups="",resources=resourcequotas,verbs=get;list;watch
// +kubebuilder:rbac:groups=apps,resources=statefulsets;deployments,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups=autoscaling,resources=horizontalpodautoscalers,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups=networking.k8s.io,resources=networkpolicies,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups=networking.k8s.io,resources=ingresses,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// activeSiteChanged passes updates that move the active site: the replication controller declares failovers and
// the phase follows them.
var activeSiteChanged = predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
	site := func(o client.Object) v1alpha1.Site {
		if t, ok := o.(*v1alpha1.SupportTenant); ok && t.Status.Storage != nil {
			return t.Status.Storage.ActiveSite
		}
		return ""
	}
	return site(e.ObjectOld) != site(e.ObjectNew)
}}

// SetupWithManager registers the controller: it reconciles a tenant when its spec changes and when any of its
// children changes, status included, since the tenant's conditions follow the children's readiness.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named(ControllerName).
		For(&v1alpha1.SupportTenant{}, builder.WithPredicates(
			predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}, activeSiteChanged))).
		Owns(&corev1.Secret{}).
		Owns(&corev1.ServiceAccount{}).
		Owns(&corev1.Service{}).
		Owns(&appsv1.StatefulSet{}).
		Owns(&appsv1.Deployment{}).
		Owns(&autoscalingv2.HorizontalPodAutoscaler{}).
		Owns(&policyv1.PodDisruptionBudget{}).
		Owns(&networkingv1.Ingress{}).
		Owns(&networkingv1.NetworkPolicy{}).
		// A quota decides whether the tenant fits in its namespace.
		Watches(&corev1.ResourceQuota{}, handler.EnqueueRequestsFromMapFunc(r.tenantsIn)).
		// A PeerCluster's inbound path is part of its tenants' storage NetworkPolicy.
		Watches(&v1alpha1.PeerCluster{}, handler.EnqueueRequestsFromMapFunc(peer.TenantsOf(r.Client))).
		// The site monitor's results: MinIO's health and the bucket set-up.
		WatchesRawSource(source.Channel(r.Monitor.Events(), &handler.EnqueueRequestForObject{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: r.maxConcurrentReconciles()}).
		Complete(r)
}

// tenantsIn maps an object to the tenants of its namespace.
func (r *Reconciler) tenantsIn(ctx context.Context, o client.Object) []reconcile.Request {
	var tenants v1alpha1.SupportTenantList
	if err := r.List(ctx, &tenants, client.InNamespace(o.GetNamespace())); err != nil {
		log.FromContext(ctx).Error(err, "Cannot list the tenants of a namespace", "namespace", o.GetNamespace())
		return nil
	}
	return peer.TenantRequests(&tenants)
}

func (r *Reconciler) maxConcurrentReconciles() int {
	if r.MaxConcurrentReconciles > 0 {
		return r.MaxConcurrentReconciles
	}
	return DefaultMaxConcurrentReconciles
}

// Reconcile runs the steps that converge one tenant, then writes its status once.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	t := &v1alpha1.SupportTenant{}
	if err := r.Get(ctx, req.NamespacedName, t); err != nil {
		if apierrors.IsNotFound(err) {
			forgetMetrics(req.Namespace, req.Name)
			r.Monitor.Forget(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !t.DeletionTimestamp.IsZero() {
		// Children carry owner references: garbage collection removes them, PVCs follow the StatefulSet's
		// retention policy.
		r.Monitor.Forget(req.NamespacedName)
		return ctrl.Result{}, nil
	}

	st := &state{tenant: t, obs: observation{generation: t.Generation, suspended: t.Spec.Suspend,
		retentionDays: t.Spec.Storage.RetentionDays}}
	result, err := r.converge(ctx, st)
	statusErr := r.writeStatus(ctx, t, st.obs)
	if errors.Is(err, reconcile.TerminalError(nil)) && statusErr == nil {
		// Retrying at once cannot help (the condition and a Warning event say what a human must do), but the
		// obstacle may go away without any event the operator watches: look again at the next resync.
		return ctrl.Result{RequeueAfter: r.resyncPeriod()}, nil
	}
	err = errors.Join(err, statusErr)
	switch {
	case err != nil:
		return ctrl.Result{}, err
	case result != nil:
		return *result, nil
	case t.Spec.Suspend:
		return ctrl.Result{}, nil
	}
	return ctrl.Result{RequeueAfter: r.resyncPeriod()}, nil
}

func (r *Reconciler) resyncPeriod() time.Duration {
	if r.ResyncPeriod > 0 {
		return r.ResyncPeriod
	}
	return DefaultResyncPeriod
}

// state is what the steps of one reconcile share: the tenant, what the steps found, and what they observed.
type state struct {
	tenant      *v1alpha1.SupportTenant
	credentials map[string][]byte
	obs         observation
}

// step is one step of a reconcile. A nil result and error mean "go on"; a result ends the reconcile with it, an
// error ends it with the error. Steps that write the tenant's objects record their failure in the observation
// and go on, so that the observing steps still run and the status stays true to what exists.
type step func(ctx context.Context, st *state) (*ctrl.Result, error)

// converge runs the steps in order until one ends the reconcile. It returns the first failure to write the
// tenant's objects when no step ended with an error of its own.
func (r *Reconciler) converge(ctx context.Context, st *state) (*ctrl.Result, error) {
	for _, s := range []step{r.credentialsStep, r.quotaStep, r.childrenStep, r.observeStep, r.storageStep} {
		if result, err := s(ctx, st); result != nil || err != nil {
			return result, errors.Join(st.obs.applyErr, err)
		}
	}
	return nil, st.obs.applyErr
}

// credentialsStep ensures the credentials Secret and announces its creation.
func (r *Reconciler) credentialsStep(ctx context.Context, st *state) (*ctrl.Result, error) {
	t := st.tenant
	data, changed, err := r.ensureCredentials(ctx, t)
	if err != nil {
		r.Recorder.Eventf(t, nil, corev1.EventTypeWarning, ReasonCredentialsFailed, ActionReconcile, "%v", err)
		st.obs.applyErr = err
		return nil, nil
	}
	if changed {
		r.Recorder.Eventf(t, nil, corev1.EventTypeNormal, ReasonCredentialsCreated, ActionReconcile,
			"Generated credentials in Secret %s", naming.CredentialsSecret(t.Name))
	}
	st.credentials = data
	return nil, nil
}

// childrenStep applies every child and removes the ones the spec no longer asks for; without credentials (the
// Secret failed) there is nothing the workloads could run with.
func (r *Reconciler) childrenStep(ctx context.Context, st *state) (*ctrl.Result, error) {
	if st.credentials == nil {
		return nil, nil
	}
	if err := r.applyChildren(ctx, st.tenant); err != nil {
		st.obs.applyErr = err
	}
	return nil, nil
}

// applyChildren applies every child and removes the ones the spec no longer asks for.
func (r *Reconciler) applyChildren(ctx context.Context, t *v1alpha1.SupportTenant) error {
	scale := ingestScale{current: -1}
	ingest := &appsv1.Deployment{}
	switch err := r.Get(ctx, client.ObjectKey{Namespace: t.Namespace, Name: naming.Ingest(t.Name)}, ingest); {
	case err == nil:
		scale.current = replicas(ingest.Spec.Replicas)
		owned, err := appsv1ac.ExtractDeployment(ingest, naming.FieldOwner)
		if err != nil {
			return fmt.Errorf("extract owned fields of the ingest Deployment: %w", err)
		}
		scale.operatorOwned = owned.Spec != nil && owned.Spec.Replicas != nil
	case !apierrors.IsNotFound(err):
		return fmt.Errorf("get ingest Deployment: %w", err)
	}

	peer, err := r.peerOf(ctx, t)
	if err != nil {
		return err
	}
	// One event per reconcile lists what it created and what it set back to the spec, rather than one per
	// object: a new tenant's thirteen objects are one line for a person, and one request, not thirteen, for the
	// API server (which matters with a thousand tenants).
	var createdObjs, updatedObjs []string
	defer func() {
		if len(createdObjs) > 0 {
			r.Recorder.Eventf(t, nil, corev1.EventTypeNormal, ReasonCreated, ActionApply, "Created %s", strings.Join(createdObjs, ", "))
		}
		if len(updatedObjs) > 0 {
			r.Recorder.Eventf(t, nil, corev1.EventTypeNormal, ReasonUpdated, ActionApply, "Updated to match the tenant's spec: %s",
				strings.Join(updatedObjs, ", "))
		}
	}()
	for _, ch := range r.Config.children(t, world{scale: scale, peer: peer}) {
		outcome, err := r.applyChild(ctx, ch)
		if err != nil {
			r.Recorder.Eventf(t, ch.current, corev1.EventTypeWarning, ReasonApplyFailed, ActionApply, "%v", err)
			return err
		}
		switch outcome {
		case created:
			createdObjs = append(createdObjs, ch.kind+" "+ch.current.GetName())
		case updated:
			updatedObjs = append(updatedObjs, ch.kind+" "+ch.current.GetName())
		}
	}
	deleted, err := r.deleteStaleIngresses(ctx, t)
	for _, name := range deleted {
		r.Recorder.Eventf(t, nil, corev1.EventTypeNormal, ReasonDeleted, ActionApply,
			"Deleted Ingress %s: its host was removed from the spec", name)
	}
	return err
}

// peerOf reads the PeerCluster a replicated tenant names; nil without replication or when it does not exist (the
// tenant then admits no peer traffic).
func (r *Reconciler) peerOf(ctx context.Context, t *v1alpha1.SupportTenant) (*v1alpha1.PeerCluster, error) {
	if t.Spec.Replication == nil {
		return nil, nil
	}
	peer := &v1alpha1.PeerCluster{}
	switch err := r.Get(ctx, client.ObjectKey{Name: t.Spec.Replication.Peer}, peer); {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("get PeerCluster %s: %w", t.Spec.Replication.Peer, err)
	}
	return peer, nil
}

// observeStep reads the readiness of the tenant's workloads.
func (r *Reconciler) observeStep(ctx context.Context, st *state) (*ctrl.Result, error) {
	return nil, r.observeWorkloads(ctx, st.tenant, &st.obs)
}

// observeWorkloads reads the readiness of the tenant's workloads.
func (r *Reconciler) observeWorkloads(ctx context.Context, t *v1alpha1.SupportTenant, obs *observation) error {
	sts := &appsv1.StatefulSet{}
	if err := r.getOptional(ctx, t, naming.MinIO(t.Name), sts); err != nil {
		return err
	} else if sts.Name != "" {
		obs.storage = statefulSetState(sts)
	}
	for name, w := range map[string]*workload{naming.Ingest(t.Name): &obs.ingest, naming.Dashboard(t.Name): &obs.dashboard} {
		d := &appsv1.Deployment{}
		if err := r.getOptional(ctx, t, name, d); err != nil {
			return err
		} else if d.Name != "" {
			*w = deploymentState(d)
		}
	}
	return nil
}

// getOptional gets a child; a missing child leaves obj empty.
func (r *Reconciler) getOptional(ctx context.Context, t *v1alpha1.SupportTenant, name string, obj client.Object) error {
	err := r.Get(ctx, client.ObjectKey{Namespace: t.Namespace, Name: name}, obj)
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("get %s: %w", name, err)
	}
	return nil
}

// storageStep registers the tenant's MinIO with the site monitor, which checks its health and sets up its bucket
// outside of any reconcile, and reads the monitor's latest result into obs. Its failures are conditions, not
// reconcile errors: an unreachable MinIO is observed state, and the monitor asks for a reconcile when it changes.
func (r *Reconciler) storageStep(ctx context.Context, st *state) (*ctrl.Result, error) {
	t, credentials, obs := st.tenant, st.credentials, &st.obs
	key := client.ObjectKeyFromObject(t)
	if t.Spec.Suspend || credentials == nil {
		r.Monitor.Forget(key)
		return nil, nil
	}
	obs.storageChecked = true
	if obs.storage.ready == 0 {
		// A MinIO that was monitored stays monitored at its last address: its failing checks are what the
		// failover decision (and the site's health in the status) are made of; its pods turning unready is a
		// reason to check now rather than at the next interval.
		obs.storageErr = errors.New("no MinIO server is ready")
		r.Monitor.CheckSoon(key)
		return nil, nil
	}
	url, err := r.Storage.StorageURL(ctx, t)
	if err != nil {
		obs.storageErr = fmt.Errorf("resolve storage address: %w", err)
		return nil, nil
	}
	r.Monitor.Set(key, sitemonitor.Target{
		URL:           url,
		AccessKey:     string(credentials[naming.SecretKeyRootUser]),
		SecretKey:     string(credentials[naming.SecretKeyRootPassword]),
		Bucket:        naming.BucketName,
		RetentionDays: int(t.Spec.Storage.RetentionDays),
		Object:        t.DeepCopy(),
	})
	snap, _ := r.Monitor.Snapshot(key)
	switch {
	case !snap.Checked:
		obs.storageChecked = false
	case snap.HealthErr != nil:
		obs.storageErr = snap.HealthErr
	case snap.BucketErr != nil:
		obs.bucketErr = snap.BucketErr
	case !snap.BucketReady:
		obs.storageChecked = false // healthy, bucket set-up under way
	}
	return nil, nil
}

// writeStatus patches the status when it differs from the stored one, and records events for conditions that
// changed.
func (r *Reconciler) writeStatus(ctx context.Context, t *v1alpha1.SupportTenant, obs observation) error {
	next := r.Config.desiredStatus(t, obs, time.Now())
	recordConditionMetrics(t, next.Conditions)
	recordStorageMetrics(t, obs.storage)
	if equality.Semantic.DeepEqual(t.Status, next) {
		return nil
	}
	before := t.Status.DeepCopy()
	if err := r.Status().Apply(ctx, statusApply(t, next), client.FieldOwner(naming.StatusOwnerTenant), client.ForceOwnership); err != nil {
		return fmt.Errorf("apply status: %w", err)
	}
	t.Status = next
	log.FromContext(ctx).V(1).Info("Status updated", "phase", next.Phase)
	r.recordTransitions(t, *before, next.Conditions)
	return nil
}
